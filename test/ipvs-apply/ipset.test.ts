/**
 * ipset: the output parsers, the wrapper, and the in-memory ipset — which is checked
 * against the real ipset in a scratch network namespace, script by script: same exit code,
 * same message, same sets afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandRunner, inputText } from '../../src/kernel/exec.js';
import { FakeIpset } from '../../src/kernel/fakes/ipset.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import {
  Ipset,
  IpsetError,
  parseIpsetError,
  parseIpsetHeader,
  parseIpsetSave,
} from '../../src/kernel/ipset.js';
import { canonicalEntry } from '../../src/kernel/ipset-entries.js';
import { createScratchNetns, type ScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { IPSET_SCRIPTS, type ToolScript } from './tool-scripts.js';

// Measured with ipset 7.17 (this project's hosts).
const SAVE_SAMPLE = `create KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x59e8abfc
add KUBE-LOAD-BALANCER-SOURCE-CIDR 1.2.3.4,tcp:80,5.6.7.8
add KUBE-LOAD-BALANCER-SOURCE-CIDR 1.2.3.4,tcp:81,5.6.7.0/24
create X6 hash:ip,port,net family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0xd5f5c7a2
add X6 fd00::1,tcp:80,fd00::5
add X6 fd00::1,tcp:80,fd00::/64
create BP bitmap:port range 0-65535
add BP 30080
create C hash:ip family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0x194802d0
add C 10.96.0.1 comment "x y"
`;

const HEADER_SAMPLE = `Name: A
Type: hash:ip,port
Revision: 7
Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x3a7c29c7
Size in memory: 264
References: 2
Number of entries: 1
`;

describe('ipset output', () => {
  it('reads ipset save: types, families, options, canonical sorted entries', () => {
    const sets = parseIpsetSave(SAVE_SAMPLE);
    expect(sets.map((s) => [s.name, s.type, s.family])).toEqual([
      ['KUBE-LOAD-BALANCER-SOURCE-CIDR', 'hash:ip,port,net', 'inet'],
      ['X6', 'hash:ip,port,net', 'inet6'],
      ['BP', 'bitmap:port', null],
      ['C', 'hash:ip', 'inet'],
    ]);
    expect(sets[1]!.entries).toEqual(['fd00::1,tcp:80,fd00::/64', 'fd00::1,tcp:80,fd00::5']);
    expect(sets[2]!.options).toEqual({ range: '0-65535' });
    expect(sets[3]!.entries).toEqual(['10.96.0.1']);
    expect(sets[3]!.options['comment']).toBe('');
  });

  it('reads a header and an error line', () => {
    expect(parseIpsetHeader(HEADER_SAMPLE)).toEqual({
      name: 'A',
      type: 'hash:ip,port',
      family: 'inet',
      references: 2,
      entries: 1,
    });
    expect(
      parseIpsetError('ipset v7.17: Error in line 4: Syntax error: Second element is missing from bogus.\n'),
    ).toEqual({
      lineNumber: 4,
      message: 'Syntax error: Second element is missing from bogus.',
    });
  });

  it('canonicalises entries as ipset save prints them', () => {
    const shape = { type: 'hash:ip,port,net', family: 'inet' as const };
    expect(canonicalEntry(shape, '1.2.3.4,6:80,5.6.7.8/32')).toBe('1.2.3.4,tcp:80,5.6.7.8');
    expect(canonicalEntry(shape, '1.2.3.4,udp:80,5.6.7.9/24')).toBe('1.2.3.4,udp:80,5.6.7.0/24');
    expect(() => canonicalEntry(shape, '1.2.3.4,tcp:80,0.0.0.0/0')).toThrow(/CIDR parameter/);
    expect(canonicalEntry({ type: 'hash:ip,port', family: 'inet6' }, 'FD00::0:1,53')).toBe('fd00::1,tcp:53');
    expect(canonicalEntry({ type: 'bitmap:port', family: null }, 'tcp:30080')).toBe('30080');
  });
});

describe('Ipset (the wrapper) on the in-memory ipset', () => {
  it('saves, tests, restores and names the failing line', async () => {
    const node = new FakeNode();
    const ipset = new Ipset(node);
    await ipset.restore(
      'create A hash:ip,port family inet hashsize 1024 maxelem 65536\nadd A 10.0.0.1,tcp:80\n',
    );
    expect((await ipset.save('A'))?.entries).toEqual(['10.0.0.1,tcp:80']);
    expect(await ipset.save('NOPE')).toBeNull();
    expect(await ipset.test('A', '10.0.0.1,tcp:80')).toBe(true);
    expect(await ipset.test('A', '10.0.0.2,tcp:80')).toBe(false);
    const err = await ipset.restore('add A 10.0.0.2,tcp:80\nadd A bogus\n').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpsetError);
    expect((err as IpsetError).lineNumber).toBe(2);
    expect((err as IpsetError).line).toBe('add A bogus');
    expect((await ipset.header('A'))?.entries).toBe(1);
  });

  it('cannot destroy a set an iptables rule uses', async () => {
    const node = new FakeNode();
    const ipset = new Ipset(node);
    await ipset.restore('create A hash:ip,port family inet\n');
    await node.run('iptables-nft-restore', ['--noflush'], {
      input: '*filter\n:X - [0:0]\n-A X -m set --match-set A dst,dst -j RETURN\nCOMMIT\n',
    });
    const err = await ipset.destroy('A').catch((e: unknown) => e);
    expect((err as IpsetError).inUse).toBe(true);
    expect(() => ipset.destroy('')).rejects.toThrow(/not a set name/);
  });
});

interface Outcome {
  results: { exitCode: number; stderr: string }[];
  sets: ReturnType<typeof parseIpsetSave>;
}

async function play(runner: CommandRunner, script: ToolScript): Promise<Outcome> {
  const results: Outcome['results'] = [];
  for (const step of script.steps) {
    const r = await runner.run('ipset', step.args, {
      reject: false,
      ...(step.input !== undefined ? { input: step.input } : {}),
    });
    results.push({ exitCode: r.exitCode, stderr: r.stderr.trim() });
  }
  const saved = await runner.run('ipset', ['save'], { reject: false });
  const sets = parseIpsetSave(saved.stdout).map((s) => {
    const { initval: _i, bucketsize: _b, ...options } = s.options;
    return { ...s, options };
  });
  await runner.run('ipset', ['destroy'], { reject: false });
  return { results, sets };
}

function fakeRunner(): CommandRunner {
  const fake = new FakeIpset();
  return { run: async (_cmd, args, options) => fake.run(args, inputText(options?.input ?? '')) };
}

describe('in-memory ipset, alone', () => {
  it.each(IPSET_SCRIPTS.map((s) => [s.name, s] as const))('%s: runs', async (_name, script) => {
    const outcome = await play(fakeRunner(), script);
    expect(outcome.results.length).toBe(script.steps.length);
  });
});

describeKernel('in-memory ipset against real ipset (scratch namespace)', () => {
  let scratch: ScratchNetns;
  beforeAll(async () => {
    scratch = await createScratchNetns();
  });
  afterAll(async () => {
    await scratch?.teardown();
  });

  it.each(IPSET_SCRIPTS.map((s) => [s.name, s] as const))('%s', async (_name, script) => {
    const real = await play(scratch.runner, script);
    const fake = await play(fakeRunner(), script);
    expect(fake).toEqual(real);
  });
});
