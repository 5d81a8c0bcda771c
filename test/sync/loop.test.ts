import { describe, expect, it } from 'vitest';
import type { IPFamily } from '../../src/model/ip.js';
import { ObjectStore } from '../../src/model/store.js';
import type { SyncReport } from '../../src/sync/backend.js';
import { FULL_SYNC_INTERVAL_MS, retryDelayMs, SyncLoop, topologyLabelsKey } from '../../src/sync/loop.js';
import { collectingLogger, FakeClock, node, ScriptedBackend, service, settle, slice } from './helpers.js';

const SYNC_PERIOD = 30_000;
const MIN_SYNC_PERIOD = 1_000;

function setup(
  options: { families?: IPFamily[]; minSyncPeriodMs?: number; syncPeriodMs?: number; random?: number } = {},
) {
  const clock = new FakeClock();
  const store = new ObjectStore('node-1');
  const backends = (options.families ?? ['IPv4']).map((f) => new ScriptedBackend(f, clock));
  const { log, records } = collectingLogger();
  const reports: SyncReport[] = [];
  const queued: { atMs: number; changes: { services: number; endpoints: number } }[] = [];
  const loop = new SyncLoop({
    store,
    backends,
    syncPeriodMs: options.syncPeriodMs ?? SYNC_PERIOD,
    minSyncPeriodMs: options.minSyncPeriodMs ?? MIN_SYNC_PERIOD,
    topology: { preferSameNode: false },
    log,
    clock,
    random: () => options.random ?? 0,
    observers: [
      { queued: (atMs, changes) => queued.push({ atMs, changes }), synced: (r) => reports.push(r) },
    ],
  });
  const backend = backends[0]!;
  /** Loads two services, reports synced, starts, and runs the first sync; returns its time. */
  const startWithTwoServices = async (): Promise<number> => {
    for (const e of [
      node('node-1', { 'topology.kubernetes.io/zone': 'a' }),
      service('a', '10.96.0.1'),
      slice('a', ['10.0.0.1']),
      service('b', '10.96.0.2'),
    ]) {
      loop.handleEvent(e);
    }
    loop.sourceSynced();
    loop.start();
    await clock.advance(0);
    expect(backend.calls).toHaveLength(1);
    return clock.now();
  };
  const times = () => backend.calls.map((c) => c.atMs);
  const kinds = () => backend.calls.map((c) => (c.request.full ? 'full' : 'partial'));
  return {
    clock,
    store,
    backends,
    backend,
    loop,
    log,
    records,
    reports,
    queued,
    startWithTwoServices,
    times,
    kinds,
  };
}

describe('SyncLoop timing', () => {
  it('does not sync before the source reported synced, then syncs fully at once', async () => {
    const { clock, loop, backend } = setup();
    loop.start();
    loop.handleEvent(service('a', '10.96.0.1'));
    loop.handleEvent(slice('a', ['10.0.0.1']));
    await clock.advance(5 * SYNC_PERIOD);
    expect(backend.calls).toHaveLength(0);

    loop.sourceSynced();
    await clock.advance(0);
    expect(backend.calls).toHaveLength(1);
    const first = backend.calls[0]!;
    expect(first.request).toMatchObject({ seq: 1, full: true });
    expect([...first.request.changedServices]).toEqual(['ns/a']);
    expect(first.snapshot.servicePorts.map((sp) => sp.port.nameString)).toEqual(['ns/a:http']);
  });

  it('coalesces a burst of changes into one partial sync, minSyncPeriod after the previous one', async () => {
    const { clock, loop, backend, startWithTwoServices, times, kinds } = setup();
    const t0 = await startWithTwoServices();
    await clock.advance(100);
    loop.handleEvent(slice('a', ['10.0.0.1', '10.0.0.2']));
    await clock.advance(200);
    loop.handleEvent(service('b', '10.96.0.2', { sessionAffinity: 'ClientIP' }));
    loop.handleEvent(service('c', '10.96.0.3'));
    await clock.advanceTo(t0 + MIN_SYNC_PERIOD - 1);
    expect(backend.calls).toHaveLength(1);
    await clock.advanceTo(t0 + MIN_SYNC_PERIOD);
    expect(times()).toEqual([t0, t0 + MIN_SYNC_PERIOD]);
    expect(kinds()).toEqual(['full', 'partial']);
    expect([...backend.calls[1]!.request.changedServices].sort()).toEqual(['ns/a', 'ns/b', 'ns/c']);
    await clock.advance(SYNC_PERIOD - 1);
    expect(backend.calls).toHaveLength(2);
  });

  it('syncs at once when the last sync is older than minSyncPeriod, and keeps syncs minSyncPeriod apart', async () => {
    const { clock, loop, startWithTwoServices, times } = setup();
    const t0 = await startWithTwoServices();
    await clock.advance(5_000);
    loop.handleEvent(service('c', '10.96.0.3'));
    await clock.advance(1);
    loop.handleEvent(service('d', '10.96.0.4'));
    await clock.advanceTo(t0 + 10_000);
    expect(times()).toEqual([t0, t0 + 5_000, t0 + 6_000]);
  });

  it('ignores events that change nothing', async () => {
    const { clock, loop, backend, startWithTwoServices, queued } = setup();
    await startWithTwoServices();
    await clock.advance(5_000);
    loop.handleEvent(service('a', '10.96.0.1'));
    loop.handleEvent(node('other-node', { x: 'y' }));
    await clock.advance(5_000);
    expect(backend.calls).toHaveLength(1);
    expect(queued).toHaveLength(0);
  });

  it('syncs every syncPeriod without changes, partially and with no changed services', async () => {
    const { clock, backend, startWithTwoServices, times, kinds } = setup();
    const t0 = await startWithTwoServices();
    await clock.advance(3 * SYNC_PERIOD);
    expect(times()).toEqual([t0, t0 + SYNC_PERIOD, t0 + 2 * SYNC_PERIOD, t0 + 3 * SYNC_PERIOD]);
    expect(kinds()).toEqual(['full', 'partial', 'partial', 'partial']);
    expect(backend.calls[3]!.request.changedServices.size).toBe(0);
  });

  it('makes the first sync after an hour since the last full sync full', async () => {
    const { clock, backend, startWithTwoServices } = setup();
    const t0 = await startWithTwoServices();
    await clock.advance(FULL_SYNC_INTERVAL_MS + SYNC_PERIOD);
    const full = backend.calls.filter((c) => c.request.full).map((c) => c.atMs - t0);
    expect(full).toEqual([0, FULL_SYNC_INTERVAL_MS]);
    expect(backend.calls).toHaveLength(FULL_SYNC_INTERVAL_MS / SYNC_PERIOD + 2);
  });
});

describe('SyncLoop full and partial syncs', () => {
  it('names the services changed since the last successful sync, and carries a failed sync’s changes', async () => {
    const { clock, loop, backend, startWithTwoServices, reports } = setup();
    const t0 = await startWithTwoServices();
    await clock.advance(5_000);
    backend.failures = 1;
    loop.handleEvent(slice('a', ['10.0.0.9']));
    await clock.advance(0);
    expect(reports.at(-1)).toMatchObject({ seq: 2, ok: false, full: false });
    expect([...backend.calls[1]!.request.changedServices]).toEqual(['ns/a']);

    await clock.advance(500);
    loop.handleEvent(service('b', '10.96.0.2', { sessionAffinity: 'ClientIP' }));
    await clock.advance(MIN_SYNC_PERIOD);
    const retry = backend.calls[2]!;
    expect(retry.request.full).toBe(true);
    expect([...retry.request.changedServices].sort()).toEqual(['ns/a', 'ns/b']);
    const report = reports.at(-1)!;
    expect(report.ok).toBe(true);
    expect(report.appliedChanges.sort((x, y) => (x.serviceKey < y.serviceKey ? -1 : 1))).toEqual([
      { serviceKey: 'ns/a', firstSeenMs: t0 + 5_000 },
      { serviceKey: 'ns/b', firstSeenMs: t0 + 5_500 },
    ]);

    await clock.advance(10_000);
    loop.handleEvent(service('c', '10.96.0.3'));
    await clock.advance(0);
    expect(backend.calls[3]!.request.full).toBe(false);
    expect([...backend.calls[3]!.request.changedServices]).toEqual(['ns/c']);
  });

  it('retries a failed sync fully with exponential backoff capped at syncPeriod; changes do not hurry it', async () => {
    const { clock, loop, backend, startWithTwoServices, times, kinds, records } = setup();
    const t0 = await startWithTwoServices();
    backend.failures = 7;
    await clock.advance(SYNC_PERIOD); // the periodic sync fails
    await clock.advance(500);
    loop.handleEvent(service('c', '10.96.0.3'));
    await clock.advance(200_000);
    const gaps = times()
      .slice(1)
      .map((t, i, all) => (i === 0 ? t - t0 : t - all[i - 1]!));
    expect(gaps.slice(0, 9)).toEqual([
      SYNC_PERIOD,
      1_000,
      2_000,
      4_000,
      8_000,
      16_000,
      30_000,
      30_000,
      30_000,
    ]);
    expect(kinds().slice(1, 9)).toEqual(['partial', 'full', 'full', 'full', 'full', 'full', 'full', 'full']);
    expect(kinds()[9]).toBe('partial');
    const errors = records.filter((r) => r.level === 50);
    expect(errors).toHaveLength(7);
    expect(JSON.stringify(errors[0])).toContain('line 7 failed');
    expect(errors[0]).toMatchObject({ failures: 1, retryInMs: 1_000 });
  });

  it('backs off from at least 1 s with jitter on top, never beyond syncPeriod', () => {
    expect(retryDelayMs(1, 0, 30_000, 0)).toBe(1_000);
    expect(retryDelayMs(1, 2_000, 30_000, 0)).toBe(2_000);
    expect(retryDelayMs(3, 2_000, 30_000, 0.5)).toBe(8_400);
    expect(retryDelayMs(5, 2_000, 30_000, 0.99)).toBe(30_000);
    expect(retryDelayMs(60, 1_000, 30_000, 0)).toBe(30_000);
    expect(retryDelayMs(1, 1_000, 500, 0)).toBe(500);
  });

  it('applies jitter to the retry delay', async () => {
    const { clock, backend, startWithTwoServices, times } = setup({ random: 0.5 });
    const t0 = await startWithTwoServices();
    backend.failures = 2;
    await clock.advance(SYNC_PERIOD + 5_000);
    expect(times().slice(1, 4)).toEqual([
      t0 + SYNC_PERIOD,
      t0 + SYNC_PERIOD + 1_050,
      t0 + SYNC_PERIOD + 1_050 + 2_100,
    ]);
  });

  it('forces a full sync when the node’s topology labels change, not for other node changes', async () => {
    const { clock, loop, startWithTwoServices, kinds } = setup();
    await startWithTwoServices();
    await clock.advance(5_000);
    loop.handleEvent(node('node-1', { 'topology.kubernetes.io/zone': 'a', team: 'blue' }, '192.168.0.3'));
    await clock.advance(5_000);
    loop.handleEvent(node('node-1', { 'topology.kubernetes.io/zone': 'b', team: 'blue' }, '192.168.0.3'));
    await clock.advance(5_000);
    loop.handleEvent(
      node('node-1', { 'topology.kubernetes.io/zone': 'b', 'topology.kubernetes.io/region': 'r' }),
    );
    await clock.advance(5_000);
    expect(kinds()).toEqual(['full', 'partial', 'full', 'full']);
  });

  it('forces a full sync when a backend lost its state', async () => {
    const { clock, backends, startWithTwoServices, kinds } = setup({ families: ['IPv4', 'IPv6'] });
    await startWithTwoServices();
    backends[1]!.lost = true;
    await clock.advance(2 * SYNC_PERIOD);
    expect(kinds()).toEqual(['full', 'full', 'partial']);
    expect(backends[1]!.calls.map((c) => c.request.full)).toEqual([true, true, false]);
  });

  it('checks for lost state at most once per syncPeriod, however many syncs changes cause', async () => {
    const { clock, backends, store, loop, startWithTwoServices } = setup();
    await startWithTwoServices();
    const checks = () => backends[0]!.lostChecks;
    const before = checks();
    for (let i = 0; i < 5; i++) {
      loop.handleEvent(service(`burst-${i}`, `10.96.9.${i + 1}`));
      await clock.advance(MIN_SYNC_PERIOD);
    }
    expect(backends[0]!.calls.length).toBeGreaterThanOrEqual(6);
    expect(checks() - before).toBeLessThanOrEqual(1);
    expect(store.serviceKeys()).toContain('ns/burst-4');
  });

  it('gives each family its own snapshot and the same request; one failing backend fails the sync for all', async () => {
    const { clock, loop, backends, reports, startWithTwoServices } = setup({ families: ['IPv4', 'IPv6'] });
    await startWithTwoServices();
    const [v4, v6] = backends as [ScriptedBackend, ScriptedBackend];
    expect(v4.calls[0]!.snapshot.family).toBe('IPv4');
    expect(v6.calls[0]!.snapshot.family).toBe('IPv6');
    expect(v4.calls[0]!.snapshot.servicePorts).toHaveLength(2);
    expect(v6.calls[0]!.snapshot.servicePorts).toHaveLength(0);
    expect(v6.calls[0]!.request).toBe(v4.calls[0]!.request);
    expect(reports[0]!.results.map((r) => r.family)).toEqual(['IPv4', 'IPv6']);

    await clock.advance(5_000);
    v6.failures = 1;
    loop.handleEvent(service('c', '10.96.0.3'));
    await clock.advance(0);
    expect(reports.at(-1)).toMatchObject({ ok: false });
    expect(reports.at(-1)!.error!.message).toContain('scripted IPv6: iptables-restore');
    expect(reports.at(-1)!.results.map((r) => r.family)).toEqual(['IPv4']);
    await clock.advance(MIN_SYNC_PERIOD);
    expect(v4.calls.map((c) => c.request.full)).toEqual([true, false, true]);
    expect(v6.calls.map((c) => c.request.full)).toEqual([true, false, true]);
  });

  it('keeps identity of unchanged services between snapshots', async () => {
    const { clock, loop, backend, startWithTwoServices } = setup();
    await startWithTwoServices();
    await clock.advance(5_000);
    loop.handleEvent(service('b', '10.96.0.2', { sessionAffinity: 'ClientIP' }));
    await clock.advance(0);
    const [first, second] = backend.calls.map((c) => c.snapshot.servicePorts);
    expect(second![0]).toBe(first![0]); // ns/a untouched
    expect(second![1]).not.toBe(first![1]);
  });
});

describe('SyncLoop reports', () => {
  it('reports the time of the first unsynced change as queued, and first-seen times as applied', async () => {
    const { clock, loop, reports, queued, startWithTwoServices } = setup();
    const t0 = await startWithTwoServices();
    expect(queued).toHaveLength(0); // changes before the source synced are part of the first sync
    expect(reports[0]!.appliedChanges.map((c) => c.serviceKey).sort()).toEqual(['ns/a', 'ns/b']);
    await clock.advance(100);
    loop.handleEvent(slice('a', ['10.0.0.5']));
    await clock.advance(100);
    loop.handleEvent(service('c', '10.96.0.3'));
    loop.handleEvent(slice('a', ['10.0.0.6']));
    expect(queued).toEqual([
      { atMs: t0 + 100, changes: { services: 0, endpoints: 1 } },
      { atMs: t0 + 100, changes: { services: 1, endpoints: 1 } },
      { atMs: t0 + 100, changes: { services: 1, endpoints: 1 } },
    ]);
    await clock.advanceTo(t0 + MIN_SYNC_PERIOD);
    const report = reports.at(-1)!;
    expect(report).toMatchObject({ seq: 2, ok: true, full: false, startedAtMs: t0 + MIN_SYNC_PERIOD });
    expect(report.appliedChanges).toEqual([
      { serviceKey: 'ns/a', firstSeenMs: t0 + 100 },
      { serviceKey: 'ns/c', firstSeenMs: t0 + 200 },
    ]);
    expect(report.results).toHaveLength(1);
  });

  it('keeps changes that arrive during a sync for the next one', async () => {
    const { clock, loop, backend, reports, startWithTwoServices } = setup();
    const t0 = await startWithTwoServices();
    await clock.advance(5_000);
    backend.hold();
    loop.handleEvent(service('c', '10.96.0.3'));
    await clock.advance(0);
    expect(backend.calls).toHaveLength(2);
    await clock.advance(300);
    loop.handleEvent(service('d', '10.96.0.4'));
    backend.release();
    await clock.advance(0);
    expect(reports.at(-1)!.appliedChanges.map((c) => c.serviceKey)).toEqual(['ns/c']);
    await clock.advanceTo(t0 + 6_000);
    expect(backend.calls).toHaveLength(3);
    expect([...backend.calls[2]!.request.changedServices]).toEqual(['ns/d']);
    expect(reports.at(-1)!.appliedChanges).toEqual([{ serviceKey: 'ns/d', firstSeenMs: t0 + 5_300 }]);
  });
});

describe('SyncLoop stop and runOnce', () => {
  it('stop() waits for a running sync, then nothing runs any more', async () => {
    const { clock, loop, backend, startWithTwoServices } = setup();
    await startWithTwoServices();
    backend.hold();
    await clock.advance(SYNC_PERIOD);
    expect(backend.calls).toHaveLength(2);
    let stopped = false;
    const stopping = loop.stop().then(() => {
      stopped = true;
    });
    await settle();
    expect(stopped).toBe(false);
    backend.release();
    await stopping;
    expect(stopped).toBe(true);
    loop.handleEvent(service('c', '10.96.0.3'));
    await clock.advance(10 * SYNC_PERIOD);
    expect(backend.calls).toHaveLength(2);
    expect(clock.pendingTimers()).toEqual([]);
  });

  it('runOnce waits for the source to be synced and runs exactly one full sync', async () => {
    const { clock, loop, backend } = setup();
    loop.handleEvent(service('a', '10.96.0.1'));
    const once = loop.runOnce();
    await settle();
    expect(backend.calls).toHaveLength(0);
    loop.sourceSynced();
    const report = await once;
    expect(report).toMatchObject({ seq: 1, ok: true, full: true });
    await clock.advance(10 * SYNC_PERIOD);
    expect(backend.calls).toHaveLength(1);
  });

  it('runOnce reports a failure', async () => {
    const { loop, backend } = setup();
    backend.failures = 1;
    loop.sourceSynced();
    const report = await loop.runOnce();
    expect(report.ok).toBe(false);
    expect(report.error?.message).toContain('line 7 failed');
  });
});

describe('topologyLabelsKey', () => {
  it('looks only at topology.kubernetes.io/ labels, in any order', () => {
    const a = topologyLabelsKey({
      'topology.kubernetes.io/zone': 'z',
      'topology.kubernetes.io/region': 'r',
      x: '1',
    });
    const b = topologyLabelsKey({
      x: '2',
      'topology.kubernetes.io/region': 'r',
      'topology.kubernetes.io/zone': 'z',
    });
    expect(a).toBe(b);
    expect(topologyLabelsKey({ 'topology.kubernetes.io/zone': 'y' })).not.toBe(a);
  });
});
