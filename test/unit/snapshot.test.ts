import { describe, expect, it } from 'vitest';
import { NONE } from '../../src/model/collections.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import type { Snapshot } from '../../src/model/types.js';
import { add, ep, nodeObject, serviceObject, sliceObject } from './objects.js';

const TOPOLOGY = { preferSameNode: true };

function storeWith(nodeName: string, ...objects: Record<string, unknown>[]): ObjectStore {
  const store = new ObjectStore(nodeName);
  store.apply(add(nodeObject(nodeName)));
  for (const o of objects) store.apply(add(o));
  return store;
}

function build(builder: SnapshotBuilder, store: ObjectStore): Snapshot {
  return builder.build(store, nodeInfoFrom(store.name, store.node));
}

function portOf(snapshot: Snapshot, serviceKey: string) {
  const found = snapshot.servicePorts.find((sp) => sp.port.serviceKey === serviceKey);
  if (!found) throw new Error(`no port of ${serviceKey}`);
  return found;
}

describe('SnapshotBuilder: each endpoint exists once, in the store', () => {
  it("a service port served by one slice uses the store's endpoint array itself", () => {
    const store = storeWith(
      'node-1',
      serviceObject('svc1'),
      sliceObject('svc1-a', [ep('10.0.0.2'), ep('10.0.0.1', { nodeName: 'node-1' })]),
    );
    const state = portOf(build(new SnapshotBuilder('IPv4', TOPOLOGY), store), 'ns1/svc1');
    expect(state.endpoints).toBe(store.slicesOf('ns1/svc1')[0]!.ports[0]!.endpoints);
    expect(state.endpoints.map((e) => [e.endpoint, e.isLocal])).toEqual([
      ['10.0.0.1:8080', true],
      ['10.0.0.2:8080', false],
    ]);
    // All ready: the cluster list is the endpoint list too; no local list is built.
    expect(state.selection.cluster).toBe(state.endpoints);
    expect(state.selection.local).toBe(NONE);
  });

  it('a service port served by several slices gets them merged, de-duplicated and sorted', () => {
    const store = storeWith(
      'node-1',
      serviceObject('svc1'),
      sliceObject('svc1-b', [ep('10.0.0.3'), ep('10.0.0.1', { nodeName: 'node-1' })]),
      sliceObject('svc1-a', [ep('10.0.0.2'), ep('10.0.0.1', { nodeName: 'node-2' })]),
    );
    const state = portOf(build(new SnapshotBuilder('IPv4', TOPOLOGY), store), 'ns1/svc1');
    // The local copy of 10.0.0.1 wins, although its slice comes second by name.
    expect(state.endpoints.map((e) => [e.endpoint, e.nodeName])).toEqual([
      ['10.0.0.1:8080', 'node-1'],
      ['10.0.0.2:8080', null],
      ['10.0.0.3:8080', null],
    ]);
    for (const slice of store.slicesOf('ns1/svc1'))
      expect(state.endpoints).not.toBe(slice.ports[0]!.endpoints);
  });

  it("a slice update gives only its service new arrays; the others' states stay the same objects", () => {
    const store = storeWith(
      'node-1',
      serviceObject('svc1'),
      serviceObject('svc2'),
      sliceObject('svc1-a', [ep('10.0.0.1')]),
      sliceObject('svc2-a', [ep('10.0.1.1')], { service: 'svc2' }),
    );
    const builder = new SnapshotBuilder('IPv4', TOPOLOGY);
    const first = build(builder, store);
    const [svc1, svc2] = [portOf(first, 'ns1/svc1'), portOf(first, 'ns1/svc2')];

    store.apply(add(sliceObject('svc1-a', [ep('10.0.0.9')])));
    const second = build(builder, store);
    expect(portOf(second, 'ns1/svc2')).toBe(svc2);
    const updated = portOf(second, 'ns1/svc1');
    expect(updated.endpoints).not.toBe(svc1.endpoints);
    expect(updated.endpoints).toBe(store.slicesOf('ns1/svc1')[0]!.ports[0]!.endpoints);
    expect(updated.endpoints.map((e) => e.endpoint)).toEqual(['10.0.0.9:8080']);
    // The first snapshot is untouched: it still lists the old endpoint.
    expect(svc1.endpoints.map((e) => e.endpoint)).toEqual(['10.0.0.1:8080']);
    // And the cache agrees with a fresh build.
    expect(second).toEqual(build(new SnapshotBuilder('IPv4', TOPOLOGY), store));
  });

  it("isLocal is decided by the store's node; a snapshot for another node is refused", () => {
    const objects = [serviceObject('svc1'), sliceObject('svc1-a', [ep('10.0.0.1', { nodeName: 'node-1' })])];
    const onNode1 = storeWith('node-1', ...objects);
    const onNode2 = storeWith('node-2', ...objects);
    const builder = new SnapshotBuilder('IPv4', TOPOLOGY);
    expect(portOf(build(builder, onNode1), 'ns1/svc1').endpoints[0]!.isLocal).toBe(true);
    expect(
      portOf(build(new SnapshotBuilder('IPv4', TOPOLOGY), onNode2), 'ns1/svc1').endpoints[0]!.isLocal,
    ).toBe(false);
    expect(() => builder.build(onNode1, nodeInfoFrom('node-2', null))).toThrow(
      'snapshot for node node-2 from the store of node node-1',
    );
  });
});
