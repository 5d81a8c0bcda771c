/**
 * Every kube-proxy set (both families, from the project's own table) is created, filled with
 * an entry of its type through `ipset restore`, and read back with `ipset save`.
 */
import assert from 'node:assert/strict';
import { IPSET_DEFINITIONS, ipsetCreateOptions, ipsetName } from '../../../../src/backends/ipvs/ipsets.js';
import type { IpsetType } from '../../../../src/backends/ipvs/state.js';
import type { CheckContext } from '../check.js';

/** One entry per type and family, as `ipset save` prints it back. */
const SAMPLE: Record<IpsetType, { IPv4: string; IPv6: string }> = {
  'hash:ip': { IPv4: '10.96.0.10', IPv6: 'fd00:10:96::a' },
  'hash:ip,port': { IPv4: '10.96.0.10,tcp:80', IPv6: 'fd00:10:96::a,tcp:80' },
  'hash:ip,port,ip': {
    IPv4: '10.244.1.2,tcp:8080,10.244.1.2',
    IPv6: 'fd00:10:244:1::2,tcp:8080,fd00:10:244:1::2',
  },
  'hash:ip,port,net': {
    IPv4: '10.96.0.20,tcp:80,192.168.0.0/16',
    IPv6: 'fd00:10:96::14,tcp:80,fd00:192:168::/64',
  },
  'bitmap:port': { IPv4: '30080', IPv6: '30080' },
};

export default async function (t: CheckContext): Promise<void> {
  const { runner } = await t.scratchNetns();
  const lines: string[] = [];
  const expected: string[] = [];
  for (const family of ['IPv4', 'IPv6'] as const) {
    for (const def of IPSET_DEFINITIONS) {
      const name = ipsetName(def.id, family);
      const setFamily = def.type === 'bitmap:port' ? null : family === 'IPv4' ? 'inet' : 'inet6';
      lines.push(`create ${name} ${def.type} ${ipsetCreateOptions({ type: def.type, family: setFamily })}`);
      lines.push(`add ${name} ${SAMPLE[def.type][family]}`);
      expected.push(`add ${name} ${SAMPLE[def.type][family]}`);
    }
  }
  const restore = await runner.run('ipset', ['restore'], { input: `${lines.join('\n')}\n` });
  assert.equal(restore.stderr, '', restore.stderr);
  const saved = (await runner.run('ipset', ['save'])).stdout;
  const savedLines = new Set(saved.split('\n'));
  const absent = expected.filter((l) => !savedLines.has(l));
  assert.deepEqual(absent, [], `ipset save lacks:\n${absent.join('\n')}\n--- ipset save ---\n${saved}`);
  for (const def of IPSET_DEFINITIONS) {
    assert.match(
      saved,
      new RegExp(`^create ${ipsetName(def.id, 'IPv4')} ${def.type.replace(/[,:]/g, '\\$&')} `, 'm'),
    );
  }
  const types = [...new Set(IPSET_DEFINITIONS.map((d) => d.type))];
  t.note(`${expected.length} sets (types ${types.join(', ')}) created, filled and read back`);
}
