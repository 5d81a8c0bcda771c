import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProxyHealthServer, ProxyHealthState } from '../../src/server/health.js';
import {
  MetricsObserver,
  MetricsServer,
  NETWORK_PROGRAMMING_BUCKETS,
  ProxyMetrics,
  SYNC_DURATION_BUCKETS,
} from '../../src/server/metrics.js';
import { backendResult, FakeClock, httpGet, memoryLogger, openTcpHandles, syncReport } from './helpers.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface MetricFamily {
  type: string;
  help: string;
  samples: Sample[];
}

/** A small parser for the Prometheus text format, enough for prom-client's output. */
function parseExposition(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const family = (name: string): MetricFamily => {
    let f = families.get(name);
    if (!f) {
      f = { type: '', help: '', samples: [] };
      families.set(name, f);
    }
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'HELP') family(meta[2]!).help = meta[3]!;
      else family(meta[2]!).type = meta[3]!;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    const name = sample[1]!;
    const base = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const value = sample[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample[3]);
    family(base).samples.push({ name, labels, value });
  }
  return families;
}

function value(
  families: Map<string, MetricFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = families.get(name.replace(/_(bucket|sum|count)$/, '')) ?? families.get(name);
  const found = family?.samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (!found) throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
  return found.value;
}

/** Name, type and help (without component-base's `[ALPHA] ` prefix) as kube-proxy registers them. */
const KUBE_PROXY_METRICS: Array<[string, string, string]> = [
  ['kubeproxy_sync_proxy_rules_duration_seconds', 'histogram', 'SyncProxyRules latency in seconds'],
  [
    'kubeproxy_sync_full_proxy_rules_duration_seconds',
    'histogram',
    'SyncProxyRules latency in seconds for full resyncs',
  ],
  [
    'kubeproxy_sync_partial_proxy_rules_duration_seconds',
    'histogram',
    'SyncProxyRules latency in seconds for partial resyncs',
  ],
  [
    'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
    'gauge',
    'The last time proxy rules were successfully synced',
  ],
  [
    'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
    'gauge',
    'The last time a sync of proxy rules was queued',
  ],
  [
    'kubeproxy_network_programming_duration_seconds',
    'histogram',
    'In Cluster Network Programming Latency in seconds',
  ],
  ['kubeproxy_sync_proxy_rules_endpoint_changes_pending', 'gauge', 'Pending proxy rules Endpoint changes'],
  ['kubeproxy_sync_proxy_rules_endpoint_changes_total', 'counter', 'Cumulative proxy rules Endpoint changes'],
  ['kubeproxy_sync_proxy_rules_service_changes_pending', 'gauge', 'Pending proxy rules Service changes'],
  ['kubeproxy_sync_proxy_rules_service_changes_total', 'counter', 'Cumulative proxy rules Service changes'],
  [
    'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
    'counter',
    'Cumulative proxy iptables restore failures',
  ],
  [
    'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total',
    'counter',
    'Cumulative proxy iptables partial restore failures',
  ],
  [
    'kubeproxy_sync_proxy_rules_iptables_total',
    'gauge',
    'Total number of iptables rules owned by kube-proxy',
  ],
  [
    'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
    'gauge',
    'Number of services with a Local traffic policy and no endpoints',
  ],
  ['kubeproxy_proxy_healthz_total', 'counter', 'Cumulative proxy healthz HTTP status'],
  ['kubeproxy_proxy_livez_total', 'counter', 'Cumulative proxy livez HTTP status'],
];

describe('bucket layouts', () => {
  it("are kube-proxy's: exponential 1 ms..16.384 s, and MergeBuckets' leading 0 for network programming", () => {
    expect(SYNC_DURATION_BUCKETS).toEqual([
      0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
      16.384,
    ]);
    expect(NETWORK_PROGRAMMING_BUCKETS.slice(0, 5)).toEqual([0, 0.25, 0.5, 1, 2]);
    expect(NETWORK_PROGRAMMING_BUCKETS).toHaveLength(1 + 2 + 59 + 12 + 7);
    expect(NETWORK_PROGRAMMING_BUCKETS.slice(60, 64)).toEqual([58, 59, 60, 65]);
    expect(NETWORK_PROGRAMMING_BUCKETS.slice(-8)).toEqual([115, 120, 150, 180, 210, 240, 270, 300]);
  });
});

describe('metrics over HTTP', () => {
  let clock: FakeClock;
  let metrics: ProxyMetrics;
  let observer: MetricsObserver;
  let state: ProxyHealthState;
  let metricsServer: MetricsServer;
  let healthServer: ProxyHealthServer;
  let metricsPort: number;
  let healthPort: number;

  beforeEach(async () => {
    clock = new FakeClock();
    metrics = new ProxyMetrics();
    observer = new MetricsObserver(metrics, { families: ['IPv4'], clock });
    state = new ProxyHealthState({ families: ['IPv4'], healthTimeoutMs: 60_000, clock });
    const { log } = memoryLogger();
    metricsServer = new MetricsServer(metrics, { address: '127.0.0.1:0', proxyMode: 'iptables', log });
    healthServer = new ProxyHealthServer(state, {
      address: '127.0.0.1:0',
      counters: metrics.probeCounters,
      log,
    });
    metricsPort = (await metricsServer.start()).port;
    healthPort = (await healthServer.start()).port;
  });

  afterEach(async () => {
    await metricsServer.close();
    await healthServer.close();
  });

  /** A full sync that applies two changes, then a partial sync that fails. */
  function observeTwoSyncs(): { fullEndMs: number } {
    const t0 = clock.now();
    observer.queued(t0, { services: 1, endpoints: 2 });
    clock.advance(100);
    observer.queued(t0, { services: 1, endpoints: 3 });
    const fullStart = clock.now() + 400;
    clock.advance(400 + 20);
    observer.synced(
      syncReport({
        seq: 1,
        full: true,
        ok: true,
        startedAtMs: fullStart,
        durationMs: 20,
        results: [
          backendResult({
            family: 'IPv4',
            full: true,
            rulesPerTable: { filter: 7, nat: 42 },
            noLocalEndpoints: { internal: 1, external: 2 },
          }),
        ],
        appliedChanges: [
          { serviceKey: 'ns/a', firstSeenMs: t0 },
          { serviceKey: 'ns/b', firstSeenMs: t0 + 100 },
        ],
        // the EndpointSlice controller's trigger times: ns/a's change happened before the proxy saw it
        triggerTimes: [
          { serviceKey: 'ns/a', family: 'IPv4', atMs: t0 - 200 },
          { serviceKey: 'ns/b', family: 'IPv4', atMs: t0 + 50 },
          { serviceKey: 'ns/b', family: 'IPv6', atMs: t0 },
        ],
      }),
    );
    const fullEndMs = fullStart + 20;
    clock.advance(1000);
    observer.queued(clock.now(), { services: 0, endpoints: 1 });
    const partialStart = clock.now() + 1000;
    clock.advance(1000 + 3);
    observer.synced(
      syncReport({ seq: 2, full: false, ok: false, startedAtMs: partialStart, durationMs: 3, results: [] }),
    );
    return { fullEndMs };
  }

  it('exposes every kube-proxy metric with its type, help, labels and sensible values', async () => {
    const { fullEndMs } = observeTwoSyncs();
    await httpGet(healthPort, '/healthz');
    await httpGet(healthPort, '/livez');

    const answer = await httpGet(metricsPort, '/metrics');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = parseExposition(answer.body);

    for (const [name, type, help] of KUBE_PROXY_METRICS) {
      const family = families.get(name);
      expect(family, name).toBeDefined();
      expect(family!.type, name).toBe(type);
      expect(family!.help, name).toBe(`[ALPHA] ${help}`);
      expect(family!.samples.length, `${name} has samples`).toBeGreaterThan(0);
    }
    expect(families.get('process_cpu_seconds_total')?.type).toBe('counter');
    expect(families.get('process_start_time_seconds')?.type).toBe('gauge');

    const v4 = { ip_family: 'IPv4' };
    // two syncs, one full and one partial
    expect(value(families, 'kubeproxy_sync_proxy_rules_duration_seconds_count', v4)).toBe(2);
    expect(value(families, 'kubeproxy_sync_proxy_rules_duration_seconds_sum', v4)).toBeCloseTo(0.023, 9);
    expect(value(families, 'kubeproxy_sync_full_proxy_rules_duration_seconds_count', v4)).toBe(1);
    expect(
      value(families, 'kubeproxy_sync_full_proxy_rules_duration_seconds_bucket', { ...v4, le: '0.016' }),
    ).toBe(0);
    expect(
      value(families, 'kubeproxy_sync_full_proxy_rules_duration_seconds_bucket', { ...v4, le: '0.032' }),
    ).toBe(1);
    expect(value(families, 'kubeproxy_sync_partial_proxy_rules_duration_seconds_count', v4)).toBe(1);
    // the failed partial sync counts as a restore failure and as a partial restore failure
    expect(value(families, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', v4)).toBe(1);
    expect(value(families, 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', v4)).toBe(1);
    // from the successful sync
    expect(value(families, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', v4)).toBe(fullEndMs / 1000);
    expect(value(families, 'kubeproxy_sync_proxy_rules_iptables_total', { table: 'nat', ...v4 })).toBe(42);
    expect(value(families, 'kubeproxy_sync_proxy_rules_iptables_total', { table: 'filter', ...v4 })).toBe(7);
    expect(
      value(families, 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', {
        traffic_policy: 'internal',
        ...v4,
      }),
    ).toBe(1);
    expect(
      value(families, 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', {
        traffic_policy: 'external',
        ...v4,
      }),
    ).toBe(2);
    // network programming: 720 ms and 470 ms after the changes were triggered; the IPv6 one is
    // not this proxy's family
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_count', v4)).toBe(2);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_sum', v4)).toBeCloseTo(1.19, 9);
    expect(
      value(families, 'kubeproxy_network_programming_duration_seconds_bucket', { ...v4, le: '0.25' }),
    ).toBe(0);
    expect(
      value(families, 'kubeproxy_network_programming_duration_seconds_bucket', { ...v4, le: '0.5' }),
    ).toBe(1);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_bucket', { ...v4, le: '1' })).toBe(
      2,
    );
    expect(() =>
      value(families, 'kubeproxy_network_programming_duration_seconds_count', { ip_family: 'IPv6' }),
    ).toThrow('no sample');
    // Switchboard's own share: 520 ms and 420 ms after the changes were first seen
    const firstSeen = 'switchboard_network_programming_first_seen_duration_seconds';
    expect(families.get(firstSeen)?.type).toBe('histogram');
    expect(value(families, `${firstSeen}_count`, v4)).toBe(2);
    expect(value(families, `${firstSeen}_sum`, v4)).toBeCloseTo(0.94, 9);
    expect(value(families, `${firstSeen}_bucket`, { ...v4, le: '0.256' })).toBe(0);
    expect(value(families, `${firstSeen}_bucket`, { ...v4, le: '0.512' })).toBe(1);
    expect(value(families, `${firstSeen}_bucket`, { ...v4, le: '1.024' })).toBe(2);
    // queued: the last one was after the full sync; the failed sync leaves its change pending
    expect(value(families, 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', v4)).toBe(
      (fullEndMs + 1000) / 1000,
    );
    expect(value(families, 'kubeproxy_sync_proxy_rules_service_changes_total')).toBe(1);
    expect(value(families, 'kubeproxy_sync_proxy_rules_endpoint_changes_total')).toBe(4);
    expect(value(families, 'kubeproxy_sync_proxy_rules_service_changes_pending')).toBe(0);
    expect(value(families, 'kubeproxy_sync_proxy_rules_endpoint_changes_pending')).toBe(1);
    // the probes
    expect(value(families, 'kubeproxy_proxy_healthz_total', { code: '200' })).toBe(1);
    expect(value(families, 'kubeproxy_proxy_livez_total', { code: '200' })).toBe(1);

    const syncBuckets = families
      .get('kubeproxy_sync_proxy_rules_duration_seconds')!
      .samples.filter((s) => s.name.endsWith('_bucket'))
      .map((s) => s.labels.le);
    expect(syncBuckets).toEqual([...SYNC_DURATION_BUCKETS.map(String), '+Inf']);
    const npBuckets = families
      .get('kubeproxy_network_programming_duration_seconds')!
      .samples.filter((s) => s.name.endsWith('_bucket'))
      .map((s) => s.labels.le);
    expect(npBuckets).toEqual([...NETWORK_PROGRAMMING_BUCKETS.map(String), '+Inf']);
  });

  it('resets the pending gauges after a successful sync that took them', async () => {
    observer.queued(clock.now(), { services: 2, endpoints: 1 });
    clock.advance(1000);
    observer.synced(syncReport({ startedAtMs: clock.now(), durationMs: 10 }));
    const families = parseExposition((await httpGet(metricsPort, '/metrics')).body);
    expect(value(families, 'kubeproxy_sync_proxy_rules_service_changes_pending')).toBe(0);
    expect(value(families, 'kubeproxy_sync_proxy_rules_endpoint_changes_pending')).toBe(0);
    expect(value(families, 'kubeproxy_sync_proxy_rules_service_changes_total')).toBe(2);
  });

  it("observes network programming per family, only for families whose sync succeeded (kube-proxy's rule)", async () => {
    const dual = new MetricsObserver(metrics, { families: ['IPv4', 'IPv6'], clock });
    const startedAtMs = clock.now();
    const triggerTimes = [
      { serviceKey: 'ns/a', family: 'IPv4' as const, atMs: startedAtMs - 1500 },
      { serviceKey: 'ns/a', family: 'IPv4' as const, atMs: startedAtMs - 300 },
      { serviceKey: 'ns/b', family: 'IPv6' as const, atMs: startedAtMs - 2500 },
    ];
    // IPv6's backend failed: its trigger time is dropped, not carried to a later sync.
    dual.synced(
      syncReport({
        ok: false,
        startedAtMs,
        durationMs: 100,
        results: [backendResult({ family: 'IPv4' })],
        triggerTimes,
      }),
    );
    dual.synced(syncReport({ ok: true, startedAtMs: startedAtMs + 5000, durationMs: 100 }));
    const families = parseExposition((await httpGet(metricsPort, '/metrics')).body);
    const name = 'kubeproxy_network_programming_duration_seconds';
    expect(value(families, `${name}_count`, { ip_family: 'IPv4' })).toBe(2);
    expect(value(families, `${name}_sum`, { ip_family: 'IPv4' })).toBeCloseTo(1.6 + 0.4, 9);
    expect(value(families, `${name}_bucket`, { ip_family: 'IPv4', le: '0.5' })).toBe(1);
    expect(value(families, `${name}_bucket`, { ip_family: 'IPv4', le: '2' })).toBe(2);
    expect(() => value(families, `${name}_count`, { ip_family: 'IPv6' })).toThrow('no sample');
  });

  it('keeps per-family series apart in dual-stack', async () => {
    const dual = new MetricsObserver(metrics, { families: ['IPv4', 'IPv6'], clock });
    dual.synced(
      syncReport({
        full: false,
        ok: false,
        results: [backendResult({ family: 'IPv4', full: false, rulesPerTable: { filter: 1, nat: 2 } })],
      }),
    );
    const families = parseExposition((await httpGet(metricsPort, '/metrics')).body);
    expect(
      value(families, 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', {
        ip_family: 'IPv6',
      }),
    ).toBe(1);
    expect(() =>
      value(families, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', { ip_family: 'IPv4' }),
    ).toThrow('no sample');
    expect(
      value(families, 'kubeproxy_sync_proxy_rules_iptables_total', { table: 'nat', ip_family: 'IPv4' }),
    ).toBe(2);
  });

  it("serves kube-proxy's /healthz, /healthz/ping and /proxyMode, and 404 elsewhere", async () => {
    const healthz = await httpGet(metricsPort, '/healthz');
    expect(healthz).toMatchObject({ status: 200, body: 'ok' });
    expect(healthz.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(healthz.headers['x-content-type-options']).toBe('nosniff');
    expect((await httpGet(metricsPort, '/healthz?verbose')).body).toBe('[+]ping ok\nhealthz check passed\n');
    expect((await httpGet(metricsPort, '/healthz/ping')).body).toBe('ok');
    expect(await httpGet(metricsPort, '/proxyMode')).toMatchObject({ status: 200, body: 'iptables' });
    expect(await httpGet(metricsPort, '/nothing')).toMatchObject({
      status: 404,
      body: '404 page not found\n',
    });
  });
});

describe('MetricsServer lifecycle', () => {
  it('leaves no open handles after close()', async () => {
    const before = openTcpHandles();
    const metrics = new ProxyMetrics({ processMetrics: false });
    const server = new MetricsServer(metrics, {
      address: '127.0.0.1:0',
      proxyMode: 'iptables',
      log: memoryLogger().log,
    });
    const { port } = await server.start();
    const keptAlive = await fetch(`http://127.0.0.1:${port}/metrics`);
    await keptAlive.text();
    await server.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openTcpHandles()).toBeLessThanOrEqual(before);
  });
});
