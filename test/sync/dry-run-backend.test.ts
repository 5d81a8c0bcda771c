import { describe, expect, it } from 'vitest';
import { endpointChain, serviceChains } from '../../src/backends/iptables/chain-names.js';
import { neutralHostFacts } from '../../src/config/host.js';
import { defaultKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import { DryRunBackend } from '../../src/sync/dry-run-backend.js';
import { iptablesOptions } from '../../src/sync/wiring.js';
import { node, service, slice } from './helpers.js';

const SVC_A = serviceChains('ns/a:http', 'TCP').svc;
const SVC_B = serviceChains('ns/b:http', 'TCP').svc;
const sep = (svc: string, ip: string) => endpointChain(`ns/${svc}:http`, 'TCP', `${ip}:8080`);

function setup() {
  const store = new ObjectStore('node-1');
  const builder = new SnapshotBuilder('IPv4', { preferSameNode: false });
  const written: string[] = [];
  const backend = new DryRunBackend(
    'IPv4',
    iptablesOptions({ ...defaultKubeProxyConfiguration(), clusterCIDR: '10.0.0.0/16' }, neutralHostFacts()),
    {
      write: (chunk, callback) => {
        written.push(chunk);
        callback();
        return true;
      },
    },
  );
  let seq = 0;
  const sync = async (full: boolean, changed: string[]) => {
    const snapshot = builder.build(store, nodeInfoFrom('node-1', store.node));
    const result = await backend.sync(snapshot, { seq: ++seq, full, changedServices: new Set(changed) });
    return { result, text: written.at(-1)! };
  };
  const declared = (text: string) =>
    text
      .split('\n')
      .filter((l) => /^:KUBE-(SVC|SEP|SVL|EXT|FW)-/.test(l))
      .map((l) => l.slice(1).split(' ')[0]);
  const deleted = (text: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('-X '))
      .map((l) => l.slice(3));
  return { store, backend, sync, declared, deleted };
}

describe('DryRunBackend', () => {
  it('prints a header and the restore text; partial syncs write only changed services and delete stale chains', async () => {
    const { store, backend, sync, declared, deleted } = setup();
    expect(backend.family).toBe('IPv4');
    expect(await backend.lostState()).toBe(false);
    for (const e of [
      service('a', '10.96.0.1'),
      slice('a', ['10.0.1.1']),
      service('b', '10.96.0.2'),
      slice('b', ['10.0.2.1']),
    ]) {
      store.apply(e);
    }
    const first = await sync(true, []);
    expect(first.text.startsWith('# sync 1 full IPv4\n*filter\n')).toBe(true);
    expect(first.text.endsWith('COMMIT\n')).toBe(true);
    expect(declared(first.text).sort()).toEqual(
      [SVC_A, SVC_B, sep('a', '10.0.1.1'), sep('b', '10.0.2.1')].sort(),
    );
    expect(deleted(first.text)).toEqual([]);
    expect(first.result).toMatchObject({
      full: true,
      rulesPerTable: { filter: expect.any(Number), nat: expect.any(Number) },
    });
    expect(first.result.restoreLines).toBe(first.text.split('\n').length - 2);

    store.apply(slice('a', ['10.0.1.2']));
    const second = await sync(false, ['ns/a']);
    expect(second.text.startsWith('# sync 2 partial IPv4\n')).toBe(true);
    expect(second.result.full).toBe(false);
    expect(declared(second.text).sort()).toEqual([SVC_A, sep('a', '10.0.1.1'), sep('a', '10.0.1.2')].sort());
    expect(deleted(second.text)).toEqual([sep('a', '10.0.1.1')]);
    // The fixed chains still jump to the untouched service's chain.
    expect(second.text).toContain(`-j ${SVC_B}`);

    store.apply({ ...service('a', '10.96.0.1'), type: 'delete' });
    const third = await sync(false, ['ns/a']);
    expect(deleted(third.text).sort()).toEqual([SVC_A, sep('a', '10.0.1.2')].sort());
    expect(third.text).not.toContain(`-j ${SVC_A}`);

    const fourth = await sync(false, []);
    expect(declared(fourth.text)).toEqual([]);
    expect(deleted(fourth.text)).toEqual([]);
  });

  it('upgrades to a full sync when the node’s addresses change the render context', async () => {
    const { store, sync, declared } = setup();
    store.apply(service('a', '10.96.0.1'));
    store.apply(slice('a', ['10.0.1.1']));
    store.apply(node('node-1', {}, '192.168.0.2'));
    await sync(true, []);
    store.apply(node('node-1', { team: 'x' }, '192.168.0.2'));
    expect((await sync(false, [])).result.full).toBe(false);
    store.apply(node('node-1', {}, '192.168.0.3'));
    const moved = await sync(false, []);
    expect(moved.result.full).toBe(true);
    expect(moved.text.startsWith('# sync 3 full IPv4\n')).toBe(true);
    expect(declared(moved.text)).toContain(SVC_A);
  });
});
