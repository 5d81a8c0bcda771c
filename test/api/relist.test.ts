/**
 * Which resourceVersion each list asks for, and whether it is paged, as client-go's
 * reflector does it (ListWatcher.relist): the API double records every request's query
 * parameters and answers with the real server's resourceVersion semantics, with or without
 * a watch cache.
 */
import { describe, expect, test } from 'vitest';
import type { FakeApiServer, RecordedRequest, Resource } from './fake-apiserver.js';
import { type Harness, harnessPerTest, NODE_NAME, node, service, slice, waitFor } from './harness.js';

const harnesses = harnessPerTest();
const RESOURCES: Resource[] = ['services', 'endpointslices', 'nodes'];

function seed(f: FakeApiServer) {
  for (let i = 0; i < 5; i++) f.apply('services', service(`svc-${i}`, `10.96.0.${20 + i}`));
  f.apply('endpointslices', slice('svc-0-1', 'svc-0', ['10.244.1.1']));
  f.apply('nodes', node(NODE_NAME));
}

/** The list queries of a collection without the selectors, which every request carries. */
function listQueries(f: FakeApiServer, resource: Resource, from = 0): Record<string, string>[] {
  return f.requests
    .slice(from)
    .filter((r) => r.resource === resource && !r.watch)
    .map((r) => {
      const { labelSelector: _l, fieldSelector: _f, ...rest } = r.query;
      return { ...rest, ...(rest.continue ? { continue: 'token' } : {}), status: String(r.status) };
    });
}

async function syncedWithOpenWatches(harness: Harness): Promise<void> {
  await waitFor(() => harness.syncedCount() === 1, 'synced');
  await waitFor(() => harness.fake.openWatches === 3, 'three open watches');
}

/**
 * A control-plane restart: every connection drops, objects change meanwhile, and the new
 * server's watch cache starts at the current resourceVersion, so re-watching from an older
 * one is answered 410.
 */
async function restartControlPlane(harness: Harness): Promise<number> {
  const { fake } = harness;
  await fake.refuse();
  fake.remove('services', 'svc-1');
  fake.apply('services', service('svc-9', '10.96.0.99'));
  fake.compact('http');
  const from = fake.requests.length;
  await fake.resume();
  return from;
}

/** The resourceVersion each collection's re-watch asked for and was refused (410) with. */
function expiredWatchVersions(f: FakeApiServer, from: number): Map<Resource, string> {
  const gone = f.requests
    .slice(from)
    .filter((r): r is RecordedRequest & { resource: Resource } => r.watch && r.status === 410);
  return new Map(gone.map((r) => [r.resource, r.query.resourceVersion ?? '']));
}

describe('the first list', () => {
  test('asks for resourceVersion=0 with a limit; the watch cache answers in one piece', async () => {
    const harness = await harnesses.start({ seed, timing: { listPageSize: 2 } });
    await syncedWithOpenWatches(harness);
    for (const resource of RESOURCES) {
      expect(listQueries(harness.fake, resource)).toEqual([
        { resourceVersion: '0', limit: '2', status: '200' },
      ]);
    }
    expect(harness.store.serviceKeys()).toHaveLength(5);
  });

  test('without a watch cache the server pages it; continue pages carry no resourceVersion', async () => {
    const harness = await harnesses.start({ seed, fake: { watchCache: false }, timing: { listPageSize: 2 } });
    await syncedWithOpenWatches(harness);
    expect(listQueries(harness.fake, 'services')).toEqual([
      { resourceVersion: '0', limit: '2', status: '200' },
      { limit: '2', continue: 'token', status: '200' },
      { limit: '2', continue: 'token', status: '200' },
    ]);
    expect(harness.store.serviceKeys()).toHaveLength(5);
  });
});

describe('a relist', () => {
  test('after the watches dropped and came back 410: the last resourceVersion synced, unpaged, from the cache', async () => {
    const harness = await harnesses.start({ seed, timing: { listPageSize: 2 } });
    await syncedWithOpenWatches(harness);
    const from = await restartControlPlane(harness);
    await waitFor(
      () => RESOURCES.every((r) => listQueries(harness.fake, r, from).length === 1),
      'a relist of every collection',
    );
    const expired = expiredWatchVersions(harness.fake, from);
    expect([...expired.keys()].sort()).toEqual([...RESOURCES].sort());
    for (const resource of RESOURCES) {
      const lastSynced = expired.get(resource)!;
      expect(Number(lastSynced)).toBeGreaterThan(0);
      expect(listQueries(harness.fake, resource, from)).toEqual([
        { resourceVersion: lastSynced, status: '200' },
      ]);
    }
    await waitFor(() => harness.store.service('default/svc-9') !== null, 'the change made meanwhile');
    expect(harness.store.service('default/svc-1')).toBeNull();
  });

  test('after the list itself came back 410: a consistent read, paged, then the watch resumes', async () => {
    // Without a watch cache the first list came back in pages, so relists are paged too, and a
    // paged list at a resourceVersion is an exact read from etcd: compacted, 410.
    const harness = await harnesses.start({ seed, fake: { watchCache: false }, timing: { listPageSize: 2 } });
    await syncedWithOpenWatches(harness);
    const from = await restartControlPlane(harness);
    await waitFor(() => harness.store.service('default/svc-9') !== null, 'the change made meanwhile');
    const lastSynced = expiredWatchVersions(harness.fake, from).get('services')!;
    expect(listQueries(harness.fake, 'services', from)).toEqual([
      { resourceVersion: lastSynced, limit: '2', status: '410' },
      { limit: '2', status: '200' },
      { limit: '2', continue: 'token', status: '200' },
      { limit: '2', continue: 'token', status: '200' },
    ]);
    expect(harness.store.serviceKeys()).toEqual([
      'default/svc-0',
      'default/svc-2',
      'default/svc-3',
      'default/svc-4',
      'default/svc-9',
    ]);
    await waitFor(() => harness.fake.openWatches === 3, 'the watches resumed');
    harness.fake.apply('services', service('svc-10', '10.96.0.100'));
    await waitFor(() => harness.store.service('default/svc-10') !== null, 'a change after the relist');
  });

  test('with an expired continue token: one unpaged list at the same resourceVersion', async () => {
    const harness = await harnesses.create({
      seed,
      fake: { watchCache: false },
      timing: { listPageSize: 2 },
    });
    const { fake } = harness;
    fake.onRequest = (r) => {
      // Between the list's first and second page a change comes, and then a compaction.
      if (r.resource === 'services' && r.query.continue) {
        fake.apply('services', service('svc-5', '10.96.0.25'));
        fake.compact('http');
        fake.onRequest = null;
      }
    };
    await harness.start();
    await syncedWithOpenWatches(harness);
    expect(listQueries(fake, 'services')).toEqual([
      { resourceVersion: '0', limit: '2', status: '200' },
      { limit: '2', continue: 'token', status: '410' },
      { resourceVersion: '0', status: '200' },
    ]);
    expect(harness.store.serviceKeys()).toHaveLength(6);
  });
});
