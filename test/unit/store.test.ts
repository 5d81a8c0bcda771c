import { describe, expect, it } from 'vitest';
import { ObjectStore, SERVICE_PROXY_NAME_LABEL } from '../../src/model/store.js';
import { add, clone, del, ep, nodeObject, serviceObject, sliceObject } from './objects.js';

function store() {
  return new ObjectStore('node-1');
}

describe('ObjectStore change tracking', () => {
  it('a new Service is a change; its identical re-delivery is not', () => {
    const s = store();
    const svc = serviceObject('svc1');
    expect(s.apply(add(svc)).changedServices).toEqual(['ns1/svc1']);
    const v = s.version('ns1/svc1');
    expect(v).toBeGreaterThan(0);
    expect(s.apply(add(clone(svc))).changedServices).toEqual([]);
    expect(s.apply({ type: 'update', kind: 'Service', object: clone(svc) }).changedServices).toEqual([]);
    expect(s.version('ns1/svc1')).toBe(v);
  });

  it('a Service whose content changes is a change', () => {
    const s = store();
    s.apply(add(serviceObject('svc1')));
    const v = s.version('ns1/svc1');
    const changed = serviceObject('svc1', { spec: { clusterIP: '172.30.0.42' } });
    expect(s.apply({ type: 'update', kind: 'Service', object: changed }).changedServices).toEqual([
      'ns1/svc1',
    ]);
    expect(s.version('ns1/svc1')).toBeGreaterThan(v);
    expect(s.service('ns1/svc1')!.clusterIPs.IPv4).toBe('172.30.0.42');
  });

  it('objects from the API are identified by resourceVersion', () => {
    const s = store();
    s.apply(add(serviceObject('svc1', { resourceVersion: '10' })));
    expect(s.apply(add(serviceObject('svc1', { resourceVersion: '10' }))).changedServices).toEqual([]);
    expect(s.apply(add(serviceObject('svc1', { resourceVersion: '11' }))).changedServices).toEqual([
      'ns1/svc1',
    ]);
  });

  it('a slice change bumps the version of its Service', () => {
    const s = store();
    s.apply(add(serviceObject('svc1')));
    s.apply(add(serviceObject('svc2')));
    const v1 = s.version('ns1/svc1');
    const v2 = s.version('ns1/svc2');
    expect(s.apply(add(sliceObject('svc1-a', [ep('10.0.0.1')]))).changedServices).toEqual(['ns1/svc1']);
    expect(s.version('ns1/svc1')).toBeGreaterThan(v1);
    expect(s.version('ns1/svc2')).toBe(v2);
    expect(s.slicesOf('ns1/svc1').map((x) => x.name)).toEqual(['svc1-a']);

    const v1b = s.version('ns1/svc1');
    expect(s.apply(add(sliceObject('svc1-a', [ep('10.0.0.1')]))).changedServices).toEqual([]);
    expect(s.version('ns1/svc1')).toBe(v1b);
    expect(s.apply(add(sliceObject('svc1-a', [ep('10.0.0.2')]))).changedServices).toEqual(['ns1/svc1']);
    expect(s.version('ns1/svc1')).toBeGreaterThan(v1b);
  });

  it('a slice that moves to another Service bumps both', () => {
    const s = store();
    s.apply(add(sliceObject('x', [ep('10.0.0.1')], { service: 'svc1' })));
    const moved = s.apply(add(sliceObject('x', [ep('10.0.0.1')], { service: 'svc2' }))).changedServices;
    expect(moved.sort()).toEqual(['ns1/svc1', 'ns1/svc2']);
    expect(s.slicesOf('ns1/svc1')).toEqual([]);
    expect(s.slicesOf('ns1/svc2').map((x) => x.name)).toEqual(['x']);
  });

  it('a slice may arrive before its Service', () => {
    const s = store();
    expect(s.apply(add(sliceObject('svc1-a', [ep('10.0.0.1')]))).changedServices).toEqual(['ns1/svc1']);
    expect(s.apply(add(serviceObject('svc1'))).changedServices).toEqual(['ns1/svc1']);
    expect(s.serviceKeys()).toEqual(['ns1/svc1']);
    expect(s.slicesOf('ns1/svc1')).toHaveLength(1);
  });

  it('deleting a slice or a Service is a change; deleting an unknown one is not', () => {
    const s = store();
    const svc = serviceObject('svc1');
    const slice = sliceObject('svc1-a', [ep('10.0.0.1')]);
    s.apply(add(svc));
    s.apply(add(slice));
    let v = s.version('ns1/svc1');
    expect(s.apply(del(slice)).changedServices).toEqual(['ns1/svc1']);
    expect(s.version('ns1/svc1')).toBeGreaterThan(v);
    expect(s.slicesOf('ns1/svc1')).toEqual([]);
    v = s.version('ns1/svc1');
    expect(s.apply(del(svc)).changedServices).toEqual(['ns1/svc1']);
    expect(s.version('ns1/svc1')).toBeGreaterThan(v);
    expect(s.service('ns1/svc1')).toBeNull();
    expect(s.serviceKeys()).toEqual([]);
    expect(s.apply(del(svc)).changedServices).toEqual([]);
    expect(s.apply(del(serviceObject('never-seen'))).changedServices).toEqual([]);
  });

  it('changedSince lists the Services changed after a recorded sync', () => {
    const s = store();
    s.apply(add(serviceObject('svc1')));
    s.apply(add(serviceObject('svc2')));
    const synced = s.versionsSnapshot();
    expect(s.changedSince(synced)).toEqual(new Set());
    s.apply(add(sliceObject('svc2-a', [ep('10.0.0.1')], { service: 'svc2' })));
    s.apply(add(serviceObject('svc3')));
    expect(s.changedSince(synced)).toEqual(new Set(['ns1/svc2', 'ns1/svc3']));
    s.apply(del(serviceObject('svc1')));
    expect(s.changedSince(synced)).toEqual(new Set(['ns1/svc1', 'ns1/svc2', 'ns1/svc3']));
  });

  it('sorts Service keys byte-wise', () => {
    const s = store();
    for (const [ns, name] of [
      ['b', 'x'],
      ['a-b', 'x'],
      ['a', 'y'],
      ['a', 'x'],
    ] as const) {
      s.apply(add(serviceObject(name, { namespace: ns })));
    }
    expect(s.serviceKeys()).toEqual(['a-b/x', 'a/x', 'a/y', 'b/x']);
  });
});

describe('ObjectStore: the service-proxy-name label hands objects to another proxy', () => {
  it('a labelled Service is not stored', () => {
    const s = store();
    const labelled = serviceObject('svc1', { labels: { [SERVICE_PROXY_NAME_LABEL]: 'other-proxy' } });
    expect(s.apply(add(labelled)).changedServices).toEqual([]);
    expect(s.service('ns1/svc1')).toBeNull();
    expect(s.serviceKeys()).toEqual([]);
  });

  it('labelling a known Service removes it (a change); unlabelling brings it back', () => {
    const s = store();
    s.apply(add(serviceObject('svc1')));
    const labelled = serviceObject('svc1', { labels: { [SERVICE_PROXY_NAME_LABEL]: 'other-proxy' } });
    expect(s.apply(add(labelled)).changedServices).toEqual(['ns1/svc1']);
    expect(s.service('ns1/svc1')).toBeNull();
    expect(s.apply(add(labelled)).changedServices).toEqual([]);
    expect(s.apply(add(serviceObject('svc1'))).changedServices).toEqual(['ns1/svc1']);
    expect(s.service('ns1/svc1')).not.toBeNull();
  });

  it('a labelled slice is ignored', () => {
    const s = store();
    s.apply(add(serviceObject('svc1')));
    const labelled = sliceObject('svc1-a', [ep('10.0.0.1')], { labels: { [SERVICE_PROXY_NAME_LABEL]: 'x' } });
    expect(s.apply(add(labelled)).changedServices).toEqual([]);
    expect(s.slicesOf('ns1/svc1')).toEqual([]);
  });
});

describe('ObjectStore problems and the Node', () => {
  it('records a malformed Service as a problem and clears it once fixed', () => {
    const s = store();
    s.apply(add(serviceObject('svc1', { spec: { clusterIP: '10.0.0.300' } })));
    expect(s.currentProblems()).toEqual([
      {
        ref: { kind: 'Service', namespace: 'ns1', name: 'svc1' },
        field: 'spec.clusterIP',
        message: '"10.0.0.300" is not a valid IP address',
      },
    ]);
    expect(s.service('ns1/svc1')).toBeNull();
    s.apply(add(serviceObject('svc1')));
    expect(s.currentProblems()).toEqual([]);
    expect(s.service('ns1/svc1')).not.toBeNull();
  });

  it('reports objects without a name', () => {
    const s = store();
    s.apply({ type: 'add', kind: 'Service', object: { metadata: {} } });
    s.apply({ type: 'add', kind: 'EndpointSlice', object: 'not an object' });
    expect(s.currentProblems().map((p) => `${p.ref.kind} ${p.field}`)).toEqual([
      'Service metadata.name',
      'EndpointSlice metadata.name',
    ]);
  });

  it('keeps only its own Node, and identical re-delivery is not a change', () => {
    const s = store();
    expect(s.apply(add(nodeObject('node-2'))).nodeChanged).toBe(false);
    expect(s.node).toBeNull();
    expect(s.apply(add(nodeObject('node-1'))).nodeChanged).toBe(true);
    expect(s.apply(add(nodeObject('node-1'))).nodeChanged).toBe(false);
    expect(s.apply(add(nodeObject('node-1', { zone: 'zone-a' }))).nodeChanged).toBe(true);
    expect(s.apply(del(nodeObject('node-1'))).nodeChanged).toBe(true);
    expect(s.node).toBeNull();
  });
});
