/**
 * The pure pieces under the cluster source: backoff steps, the relist diff, and the API
 * double's selector parsing (so the double itself can be trusted).
 */
import { describe, expect, test } from 'vitest';
import { Backoff } from '../../src/sources/backoff.js';
import { diffListed, identityOf, objectKeyOf } from '../../src/sources/list-watch.js';
import { fieldMatcher, type KubeObject, labelMatcher } from './fake-apiserver.js';

describe('Backoff', () => {
  const options = { initialMs: 1000, maxMs: 10_000, resetAfterMs: 60_000 };

  test('doubles up to the cap; jitter keeps each delay within [step/2, step]', () => {
    const low = new Backoff(options, () => 0);
    const high = new Backoff(options, () => 0.999999);
    const lows = [0, 1, 2, 3, 4, 5].map((i) => low.nextDelay(i * 100));
    const highs = [0, 1, 2, 3, 4, 5].map((i) => Math.round(high.nextDelay(i * 100)));
    expect(lows).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(highs).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  });

  test('a failure long after the previous one starts again from the initial step', () => {
    const b = new Backoff(options, () => 0);
    b.nextDelay(0);
    b.nextDelay(1000);
    expect(b.nextDelay(2000)).toBe(2000);
    expect(b.nextDelay(2000 + 60_000)).toBe(500);
    expect(b.attempts).toBe(1);
  });
});

const obj = (name: string, rv: string, namespace = 'default') => ({
  metadata: { name, namespace, resourceVersion: rv },
});

describe('diffListed', () => {
  test('deletes vanished objects, updates changed ones, and is silent about unchanged ones', () => {
    const known = new Map(
      [obj('a', '1'), obj('b', '2'), obj('c', '3')].map((o) => [
        objectKeyOf(o),
        { resourceVersion: o.metadata.resourceVersion, identity: o },
      ]),
    );
    const { events, next } = diffListed(known, [obj('a', '1'), obj('c', '7'), obj('d', '8')]);
    expect(events.map((e) => `${e.type} ${(e.object as KubeObject).metadata.name}`)).toEqual([
      'delete b',
      'update c',
      'add d',
    ]);
    // The delete carries the last known object's identity.
    expect((events[0]!.object as KubeObject).metadata.resourceVersion).toBe('2');
    expect([...next.keys()]).toEqual(['default/a', 'default/c', 'default/d']);
  });

  test('remembers of an object its identity, not its content, and a delete carries that', () => {
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 's',
        namespace: 'ns',
        uid: 'u-1',
        resourceVersion: '5',
        labels: { 'kubernetes.io/service-name': 'web' },
        annotations: { big: 'x'.repeat(1000) },
        managedFields: [{ manager: 'm' }],
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.1'] }],
      ports: [{ port: 80 }],
    };
    const identity = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      addressType: 'IPv4',
      metadata: {
        name: 's',
        namespace: 'ns',
        uid: 'u-1',
        resourceVersion: '5',
        labels: { 'kubernetes.io/service-name': 'web' },
      },
    };
    const listed = diffListed(new Map(), [slice], ['addressType']);
    expect(listed.events).toEqual([{ type: 'add', object: slice }]);
    expect(listed.next.get('ns/s')).toEqual({ resourceVersion: '5', identity });
    expect(diffListed(listed.next, []).events).toEqual([{ type: 'delete', object: identity }]);
    // A nameless object (malformed, keyed by content) is kept whole.
    expect(identityOf({ spec: {} })).toEqual({ spec: {} });
  });

  test('the same name in two namespaces is two objects; a nameless object is keyed by content', () => {
    const { events } = diffListed(new Map(), [obj('a', '1', 'x'), obj('a', '1', 'y'), { spec: {} }]);
    expect(events.map((e) => e.type)).toEqual(['add', 'add', 'add']);
    expect(objectKeyOf({ spec: {} })).toBe('?{"spec":{}}');
  });
});

describe('the API double’s selectors', () => {
  const o = (labels: Record<string, string>, name = 'n'): KubeObject => ({ metadata: { name, labels } });

  test('label selectors: !key, key, key=value, key!=value, all terms must hold', () => {
    const proxy = labelMatcher('!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless');
    expect(proxy(o({}))).toBe(true);
    expect(proxy(o({ 'service.kubernetes.io/headless': '' }))).toBe(false);
    expect(proxy(o({ 'service.kubernetes.io/service-proxy-name': 'x' }))).toBe(false);
    expect(labelMatcher('app')(o({ app: '' }))).toBe(true);
    expect(labelMatcher('app=web')(o({ app: 'web' }))).toBe(true);
    expect(labelMatcher('app==web')(o({ app: 'db' }))).toBe(false);
    expect(labelMatcher('app!=web')(o({}))).toBe(true);
    expect(labelMatcher('')(o({}))).toBe(true);
    expect(() => labelMatcher('app in (a,b)')).toThrow(/unsupported label selector term/);
  });

  test('field selectors compare a dotted path', () => {
    expect(fieldMatcher('metadata.name=node-1')(o({}, 'node-1'))).toBe(true);
    expect(fieldMatcher('metadata.name=node-1')(o({}, 'node-2'))).toBe(false);
    expect(
      fieldMatcher('spec.clusterIP!=None')({ metadata: { name: 'x' }, spec: { clusterIP: 'None' } }),
    ).toBe(false);
  });
});
