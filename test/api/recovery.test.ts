/**
 * ClusterSource through disconnects, expired resourceVersions, outages and dead
 * connections. Backoff is checked by counting requests in a window, never by timing one.
 */
import { describe, expect, test } from 'vitest';
import type { FakeApiServer, Resource } from './fake-apiserver.js';
import { type Harness, harnessPerTest, NODE_NAME, node, service, sleep, slice, waitFor } from './harness.js';

const harnesses = harnessPerTest();
const started = harnesses.start;

const RESOURCES: Resource[] = ['services', 'endpointslices', 'nodes'];

function seed(f: FakeApiServer) {
  f.apply('services', service('a', '10.96.0.1'));
  f.apply('services', service('b', '10.96.0.2'));
  f.apply('services', service('c', '10.96.0.3'));
  f.apply('endpointslices', slice('a-1', 'a', ['10.244.1.1']));
  f.apply('nodes', node(NODE_NAME));
}

function listCounts(f: FakeApiServer): number[] {
  return RESOURCES.map((r) => f.requestsFor(r, 'list').length);
}

function logged(harness: Harness, pattern: RegExp): number {
  return harness.logLines.filter((l) => pattern.test(String(l.msg))).length;
}

async function syncedWithOpenWatches(harness: Harness): Promise<void> {
  await waitFor(() => harness.syncedCount() === 1, 'synced');
  await waitFor(() => harness.fake.openWatches === 3, 'three open watches');
}

describe('disconnects', () => {
  test('a watch the server ends normally is resumed at once, without backoff or relist', async () => {
    const harness = await started({ seed });
    await syncedWithOpenWatches(harness);
    await sleep(120); // a few bookmarks: the watches have seen events
    const watchesBefore = harness.fake.requests.filter((r) => r.watch).length;
    harness.fake.dropWatches();
    await waitFor(() => harness.fake.openWatches === 3, 'the watches again');
    expect(harness.fake.requests.filter((r) => r.watch).length).toBe(watchesBefore + 3);
    expect(listCounts(harness.fake)).toEqual([1, 1, 1]);
    expect(logged(harness, /retrying after backoff/)).toBe(0);
    harness.fake.apply('services', service('d', '10.96.0.4'));
    await waitFor(() => harness.store.service('default/d') !== null, 'd');
  });

  test('after the connection is lost, the watch resumes from the last resourceVersion without a relist', async () => {
    // Bookmarks only when asked: the resourceVersion each watch resumes from is then predictable.
    const harness = await started({
      seed,
      fake: { bookmarkIntervalMs: 0 },
      timing: { inactivityTimeoutMs: 10_000 },
    });
    await syncedWithOpenWatches(harness);
    const listRv = harness.fake.requestsFor('endpointslices', 'watch')[0]!.query.resourceVersion;

    const dRv = harness.fake.apply('services', service('d', '10.96.0.4'));
    await waitFor(() => harness.store.service('default/d') !== null, 'd');
    // The slices and nodes watches saw nothing since the list; one bookmark moves them on too.
    harness.fake.sendBookmarks();
    await sleep(100);
    const from = harness.events.length;
    const requestsBefore = harness.fake.requests.length;

    await harness.fake.refuse();
    harness.fake.apply('endpointslices', slice('d-1', 'd', ['10.244.4.4']));
    harness.fake.remove('services', 'b');
    await sleep(50);
    await harness.fake.resume();
    expect(Number(dRv)).toBeGreaterThan(Number(listRv));

    await waitFor(
      () => harness.store.slicesOf('default/d').length === 1 && harness.store.service('default/b') === null,
      'the changes made while disconnected',
    );
    expect(harness.described(from).sort()).toEqual([
      'add EndpointSlice default/d-1',
      'delete Service default/b',
    ]);
    // Each collection resumes on its own backoff: wait until all three watches are back.
    const resumedWatches = () =>
      harness.fake.requests.slice(requestsBefore).filter((r) => r.watch && r.status === 200);
    await waitFor(
      () => RESOURCES.every((resource) => resumedWatches().some((r) => r.resource === resource)),
      'every watch resumed',
    );
    expect(listCounts(harness.fake)).toEqual([1, 1, 1]);
    const resumed = resumedWatches();
    for (const resource of RESOURCES) {
      expect(resumed.find((r) => r.resource === resource)?.query.resourceVersion).toBe(dRv);
    }
  });
});

describe('expired resourceVersion (410)', () => {
  test.each(['http', 'event'] as const)(
    'as %s: relists, deletes what vanished, updates what changed, and repeats nothing unchanged',
    async (form) => {
      const harness = await started({ seed });
      await syncedWithOpenWatches(harness);
      const from = harness.events.length;
      const requestsBefore = harness.fake.requests.length;

      await harness.fake.refuse();
      harness.fake.remove('services', 'b');
      harness.fake.apply('services', service('c', '10.96.0.33'));
      harness.fake.apply('services', service('d', '10.96.0.4'));
      harness.fake.compact(form);
      await harness.fake.resume();

      await waitFor(() => listCounts(harness.fake).every((n) => n === 2), 'a relist of every collection');
      await waitFor(() => harness.store.service('default/d') !== null, 'd');
      await sleep(50);
      expect(harness.described(from).sort()).toEqual([
        'add Service default/d',
        'delete Service default/b',
        'update Service default/c',
      ]);
      expect(harness.store.service('default/c')?.clusterIPs.IPv4).toBe('10.96.0.33');
      expect(harness.store.serviceKeys()).toEqual(['default/a', 'default/c', 'default/d']);
      const after = harness.fake.requests.slice(requestsBefore);
      const gone = after.filter((r) => r.watch && r.status === 410);
      expect(gone.length).toBe(form === 'http' ? 3 : 0);
      expect(logged(harness, /resourceVersion expired \(410\); relisting/)).toBeGreaterThanOrEqual(3);
      // The watches continue from the relist's resourceVersion.
      await waitFor(() => harness.fake.openWatches === 3, 'three open watches');
      harness.fake.apply('services', service('e', '10.96.0.5'));
      await waitFor(() => harness.store.service('default/e') !== null, 'e');
    },
  );
});

describe('API server unavailable', () => {
  test('refusing connections at start: nothing is emitted, then the source syncs once it is up', async () => {
    const harness = await harnesses.create({ seed });
    await harness.fake.refuse();
    await harness.start();
    await sleep(300);
    expect(harness.syncedCount()).toBe(0);
    expect(harness.events).toEqual([]);
    expect(logged(harness, /list failed.*retrying after backoff/)).toBeGreaterThanOrEqual(3);
    await harness.fake.resume();
    await waitFor(() => harness.syncedCount() === 1, 'synced');
    expect(harness.store.serviceKeys()).toEqual(['default/a', 'default/b', 'default/c']);
    expect(logged(harness, /API server reachable again/)).toBeGreaterThanOrEqual(3);
  });

  test('connections reset at start are retried with backoff: a bounded number of attempts', async () => {
    const harness = await harnesses.create({ seed });
    harness.fake.resetConnections(true);
    await harness.start();
    await sleep(500);
    // Backoff 20 ms doubling to 100 ms (equal jitter: at least half of each step) allows at most
    // 13 attempts per collection in 500 ms; a loop without backoff makes hundreds.
    const attempts = harness.fake.resetCount;
    expect(attempts).toBeGreaterThanOrEqual(6);
    expect(attempts).toBeLessThanOrEqual(40);
    expect(harness.events).toEqual([]);
    harness.fake.resetConnections(false);
    await waitFor(() => harness.syncedCount() === 1, 'synced');
  });

  test('HTTP 503 at start is retried with backoff: a bounded number of requests, then recovery', async () => {
    const harness = await harnesses.create({ seed });
    harness.fake.failNext(1_000_000, 503);
    await harness.start();
    await sleep(500);
    const failed = harness.fake.requests.length;
    expect(failed).toBeGreaterThanOrEqual(6);
    expect(failed).toBeLessThanOrEqual(40);
    expect(harness.fake.requests.every((r) => r.status === 503 && !r.watch)).toBe(true);
    expect(harness.syncedCount()).toBe(0);
    harness.fake.failNext(0);
    await waitFor(() => harness.syncedCount() === 1, 'synced');
    expect(harness.store.serviceKeys()).toEqual(['default/a', 'default/b', 'default/c']);
  });

  test('HTTP 500 on watches: backoff, then the watches resume without a relist', async () => {
    const harness = await started({ seed });
    await syncedWithOpenWatches(harness);
    const requestsBefore = harness.fake.requests.length;
    harness.fake.failNext(6, 500);
    harness.fake.dropWatches();
    harness.fake.apply('services', service('d', '10.96.0.4'));
    await waitFor(() => harness.store.service('default/d') !== null, 'd');
    await waitFor(() => harness.fake.openWatches === 3, 'three open watches');
    const after = harness.fake.requests.slice(requestsBefore);
    expect(after.filter((r) => r.status === 500)).toHaveLength(6);
    expect(after.every((r) => r.watch)).toBe(true);
    expect(listCounts(harness.fake)).toEqual([1, 1, 1]);
    expect(logged(harness, /watch failed: .*HTTP 500.*retrying after backoff/)).toBeGreaterThanOrEqual(2);
  });

  test('a server that ends every watch at once is not hammered (upstream issue #1933)', async () => {
    const harness = await started({ seed });
    await syncedWithOpenWatches(harness);
    const before = harness.fake.requests.length;
    harness.fake.closeWatchesAtOnce(true);
    harness.fake.dropWatches();
    await sleep(500);
    const watches = harness.fake.requests.slice(before).filter((r) => r.watch).length;
    expect(watches).toBeGreaterThanOrEqual(6);
    expect(watches).toBeLessThanOrEqual(40);
    expect(logged(harness, /watch ended after \d+ ms without any event/)).toBeGreaterThan(0);
    harness.fake.closeWatchesAtOnce(false);
    harness.fake.apply('services', service('d', '10.96.0.4'));
    await waitFor(() => harness.store.service('default/d') !== null, 'd');
    expect(listCounts(harness.fake)).toEqual([1, 1, 1]);
  });
});

describe('dead connections', () => {
  test("the request timeout covers a watch's response headers only: a healthy watch outlives it", async () => {
    const harness = await started({ seed, timing: { requestTimeoutMs: 250, inactivityTimeoutMs: 2000 } });
    await syncedWithOpenWatches(harness);
    await sleep(700);
    expect(logged(harness, /retrying after backoff/)).toBe(0);
    expect(harness.fake.requests.filter((r) => r.watch)).toHaveLength(3);
    harness.fake.apply('services', service('d', '10.96.0.4'));
    await waitFor(() => harness.store.service('default/d') !== null, 'd');
  });

  test('a request that never gets its response headers times out and is retried', async () => {
    const harness = await started({ seed, timing: { requestTimeoutMs: 250 } });
    await syncedWithOpenWatches(harness);
    const before = harness.fake.requests.length;
    harness.fake.stall(true);
    harness.fake.dropWatches();
    harness.fake.apply('services', service('d', '10.96.0.4'));
    await waitFor(() => logged(harness, /watch failed: .*timeout/) >= 3, 'timeouts of all three watches');
    await waitFor(() => harness.fake.requests.length >= before + 6, 'retried watches');
    expect(harness.store.service('default/d')).toBeNull();
    harness.fake.stall(false);
    await waitFor(() => harness.store.service('default/d') !== null, 'd, once the server answers');
    expect(listCounts(harness.fake)).toEqual([1, 1, 1]);
  });

  test('a watch that falls silent is noticed by the inactivity timeout and restarted', async () => {
    const harness = await started({ seed, timing: { inactivityTimeoutMs: 300 } });
    await syncedWithOpenWatches(harness);
    await sleep(400);
    // Bookmarks every 50 ms keep healthy watches alive.
    expect(logged(harness, /no event or bookmark/)).toBe(0);
    const watchesBefore = harness.fake.requests.filter((r) => r.watch).length;

    harness.fake.silence(true);
    harness.fake.apply('services', service('d', '10.96.0.4'));
    await waitFor(
      () => logged(harness, /no event or bookmark for 300 ms/) >= 3,
      'inactivity on all three watches',
    );
    await waitFor(
      () => harness.fake.requests.filter((r) => r.watch).length >= watchesBefore + 3,
      'the watches restarted',
    );
    expect(harness.store.service('default/d')).toBeNull();

    harness.fake.silence(false);
    await waitFor(() => harness.store.service('default/d') !== null, 'd, once the server talks again');
    expect(listCounts(harness.fake)).toEqual([1, 1, 1]);
  });
});
