/**
 * ClusterSource against the API double, through the real @kubernetes/client-node: the
 * initial sync, changes of each kind, server-side filtering, malformed objects, paging.
 */
import { describe, expect, test } from 'vitest';
import { formatProblem } from '../../src/errors.js';
import { PROXY_LABEL_SELECTOR } from '../../src/sources/cluster.js';
import { type Harness, harnessPerTest, NODE_NAME, node, service, sleep, slice, waitFor } from './harness.js';

const harnesses = harnessPerTest();
const started = harnesses.start;

function seedBasic(f: Harness['fake']) {
  f.apply('services', service('web', '10.96.0.10'));
  f.apply('services', service('api', '10.96.0.11'));
  f.apply('endpointslices', slice('web-abc', 'web', ['10.244.1.5', '10.244.2.7']));
  f.apply('endpointslices', slice('api-xyz', 'api', ['10.244.1.9']));
  f.apply('nodes', node(NODE_NAME, { 'topology.kubernetes.io/zone': 'a' }));
  f.apply('nodes', node('node-2'));
}

describe('initial sync', () => {
  test('delivers every object as an add, then reports synced exactly once', async () => {
    const { fake, store, described, syncedCount, events } = await started({ seed: seedBasic });
    await waitFor(() => syncedCount() === 1, 'synced');
    expect(described().sort()).toEqual([
      'add EndpointSlice default/api-xyz',
      'add EndpointSlice default/web-abc',
      `add Node ${NODE_NAME}`,
      'add Service default/api',
      'add Service default/web',
    ]);
    expect(store.serviceKeys()).toEqual(['default/api', 'default/web']);
    expect(store.slicesOf('default/web')[0]?.ports[0]?.endpoints.map((e) => e.ip)).toEqual([
      '10.244.1.5',
      '10.244.2.7',
    ]);
    expect((store.node as { metadata: { name: string } }).metadata.name).toBe(NODE_NAME);
    // List items come without kind/apiVersion; the source fills them in like watch events have them.
    expect(events.every((e) => (e.object as { kind?: string }).kind === e.kind)).toBe(true);

    // What the client asked for: selectors on lists, bookmarks/timeouts/RV on watches.
    const svcList = fake.requestsFor('services', 'list')[0]!;
    expect(svcList.query.labelSelector).toBe(PROXY_LABEL_SELECTOR);
    expect(fake.requestsFor('endpointslices', 'list')[0]!.query.labelSelector).toBe(PROXY_LABEL_SELECTOR);
    expect(fake.requestsFor('nodes', 'list')[0]!.query.fieldSelector).toBe(`metadata.name=${NODE_NAME}`);
    await waitFor(() => fake.requestsFor('services', 'watch').length === 1, 'the services watch');
    const watch = fake.requestsFor('services', 'watch')[0]!;
    expect(watch.query.allowWatchBookmarks).toBe('true');
    expect(watch.query.resourceVersion).toBe(fake.resourceVersion);
    expect(Number(watch.query.timeoutSeconds)).toBeGreaterThanOrEqual(300);
    expect(Number(watch.query.timeoutSeconds)).toBeLessThanOrEqual(600);
    expect(watch.query.labelSelector).toBe(PROXY_LABEL_SELECTOR);

    await sleep(100);
    expect(syncedCount()).toBe(1);
  });

  test('reports synced only after all three collections were listed', async () => {
    let eventsAtSync = -1;
    const harness = await harnesses.create({
      seed: (f) => {
        seedBasic(f);
        f.failNext(3, 500, 'nodes');
      },
    });
    await harness.source.start(
      (e) => harness.events.push(e),
      () => {
        eventsAtSync = harness.events.length;
      },
    );
    await waitFor(() => harness.events.length >= 4, 'services and slices');
    expect(eventsAtSync).toBe(-1);
    expect(harness.events.some((e) => e.kind === 'Node')).toBe(false);
    await waitFor(() => eventsAtSync !== -1, 'synced');
    // Synced came after the Node's list, with everything delivered before it.
    expect(eventsAtSync).toBe(5);
    expect(harness.fake.requestsFor('nodes', 'list').map((r) => r.status)).toEqual([500, 500, 500, 200]);
  });

  test('an empty cluster syncs too', async () => {
    const { syncedCount, events } = await started();
    await waitFor(() => syncedCount() === 1, 'synced');
    expect(events).toEqual([]);
  });
});

describe('changes', () => {
  test('add, update and delete of Services, EndpointSlices and the Node arrive as events', async () => {
    const { fake, store, described, syncedCount, events } = await started({ seed: seedBasic });
    await waitFor(() => syncedCount() === 1, 'synced');
    const from = events.length;

    fake.apply('services', service('db', '10.96.0.12'));
    fake.apply('endpointslices', slice('db-1', 'db', ['10.244.3.3']));
    await waitFor(() => store.slicesOf('default/db').length === 1, 'db and its slice');

    fake.apply('services', service('db', '10.96.0.13'));
    fake.apply('endpointslices', slice('db-1', 'db', ['10.244.3.4']));
    fake.apply('nodes', node(NODE_NAME, { 'topology.kubernetes.io/zone': 'b' }));
    await waitFor(() => store.service('default/db')?.clusterIPs.IPv4 === '10.96.0.13', 'db update');
    await waitFor(
      () => store.slicesOf('default/db')[0]?.ports[0]?.endpoints[0]?.ip === '10.244.3.4',
      'slice update',
    );
    await waitFor(
      () =>
        (store.node as { metadata: { labels: Record<string, string> } }).metadata.labels[
          'topology.kubernetes.io/zone'
        ] === 'b',
      'node update',
    );

    fake.remove('endpointslices', 'db-1');
    fake.remove('services', 'db');
    fake.remove('nodes', NODE_NAME);
    await waitFor(() => store.node === null && store.service('default/db') === null, 'deletes');

    // Each kind has its own watch connection: the order holds within a kind, not across kinds.
    const ofKind = (kind: string) => described(from).filter((e) => e.split(' ')[1] === kind);
    expect(ofKind('Service')).toEqual([
      'add Service default/db',
      'update Service default/db',
      'delete Service default/db',
    ]);
    expect(ofKind('EndpointSlice')).toEqual([
      'add EndpointSlice default/db-1',
      'update EndpointSlice default/db-1',
      'delete EndpointSlice default/db-1',
    ]);
    expect(ofKind('Node')).toEqual([`update Node ${NODE_NAME}`, `delete Node ${NODE_NAME}`]);
    expect(described(from)).toHaveLength(8);
    // Other nodes never arrive (field selector), whatever happens to them.
    fake.apply('nodes', node('node-2', { changed: 'yes' }));
    fake.apply('services', service('late', '10.96.0.20'));
    await waitFor(() => store.service('default/late') !== null, 'late service');
    expect(events.some((e) => (e.object as { metadata: { name: string } }).metadata.name === 'node-2')).toBe(
      false,
    );
  });
});

describe('filtering', () => {
  const proxyName = { 'service.kubernetes.io/service-proxy-name': 'other-proxy' };
  const headless = { 'service.kubernetes.io/headless': '' };

  test('objects of another proxy and slices of headless Services never arrive', async () => {
    const { fake, store, described, syncedCount } = await started({
      seed: (f) => {
        seedBasic(f);
        f.apply(
          'services',
          service('theirs', '10.96.1.1', { metadata: { name: 'theirs', labels: proxyName } }),
        );
        f.apply('endpointslices', slice('theirs-1', 'theirs', ['10.244.5.5'], proxyName));
        f.apply('services', service('dns', 'None'));
        f.apply('endpointslices', slice('dns-1', 'dns', ['10.244.6.6'], headless));
      },
    });
    await waitFor(() => syncedCount() === 1, 'synced');
    fake.apply(
      'services',
      service('theirs2', '10.96.1.2', { metadata: { name: 'theirs2', labels: proxyName } }),
    );
    fake.apply('endpointslices', slice('dns-2', 'dns', ['10.244.6.7'], headless));
    fake.apply('services', service('marker', '10.96.1.3'));
    await waitFor(() => store.service('default/marker') !== null, 'the marker service');

    const names = described().join('\n');
    expect(names).not.toMatch(/theirs|dns-/);
    // The headless Service itself is delivered (no label says so) and ignored by the model.
    expect(store.service('default/dns')?.ignored).toBe(true);
  });

  test('a Service handed to another proxy leaves as a delete, and comes back as an add', async () => {
    const { fake, store, described, syncedCount, events } = await started({ seed: seedBasic });
    await waitFor(() => syncedCount() === 1, 'synced');
    const from = events.length;
    fake.apply('services', service('web', '10.96.0.10', { metadata: { name: 'web', labels: proxyName } }));
    await waitFor(() => store.service('default/web') === null, 'web gone');
    fake.apply('services', service('web', '10.96.0.10'));
    await waitFor(() => store.service('default/web') !== null, 'web back');
    expect(described(from)).toEqual(['delete Service default/web', 'add Service default/web']);
  });
});

describe('malformed objects', () => {
  test('are reported by the store and skipped while the others are present', async () => {
    const { fake, store, syncedCount } = await started({
      seed: (f) => {
        seedBasic(f);
        f.apply('services', service('broken', '10.0.0.999'));
        // Structurally wrong: a number where a list belongs. It must not fail the list.
        f.apply('services', {
          metadata: { name: 'weird', namespace: 'default' },
          spec: { clusterIP: '10.96.0.50', ports: 5 },
        });
      },
    });
    await waitFor(() => syncedCount() === 1, 'synced');
    expect(store.serviceKeys()).toEqual(['default/api', 'default/broken', 'default/web', 'default/weird']);
    expect(store.service('default/broken')).toBeNull();
    expect(store.service('default/weird')).toBeNull();
    expect(store.service('default/web')).not.toBeNull();
    const problems = store.currentProblems().map(formatProblem).sort();
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^Service default\/broken: spec\.clusterIPs?(\[0\])?: .*10\.0\.0\.999/);
    expect(problems[1]).toMatch(/^Service default\/weird: spec\.ports: /);

    // A good Service turned bad through the watch is reported too; the others stay.
    fake.apply('services', service('api', '10.96.0.300'));
    await waitFor(() => store.currentProblems().length === 3, 'the third problem');
    expect(store.service('default/api')).toBeNull();
    expect(store.service('default/web')).not.toBeNull();
    // Fixed again: the problem goes away.
    fake.apply('services', service('broken', '10.0.0.99'));
    await waitFor(() => store.service('default/broken') !== null, 'broken fixed');
    expect(store.currentProblems()).toHaveLength(2);
  });
});

describe('paging', () => {
  test('a list split into pages is followed to the end before anything is reported synced', async () => {
    // Without a watch cache: with one, the server answers resourceVersion=0 in one piece.
    const { fake, store, syncedCount } = await started({
      fake: { watchCache: false },
      timing: { listPageSize: 2 },
      seed: (f) => {
        for (let i = 0; i < 5; i++) f.apply('services', service(`svc-${i}`, `10.96.0.${20 + i}`));
      },
    });
    await waitFor(() => syncedCount() === 1, 'synced');
    expect(store.serviceKeys()).toHaveLength(5);
    const lists = fake.requestsFor('services', 'list');
    expect(lists).toHaveLength(3);
    expect(lists.map((r) => r.query.limit)).toEqual(['2', '2', '2']);
    expect(lists[0]!.query.continue).toBeUndefined();
    expect(lists[1]!.query.continue).toBeDefined();
  });
});
