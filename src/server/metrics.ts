/**
 * kube-proxy's Prometheus metrics (pkg/proxy/metrics/metrics.go, iptables mode, 1.33+: the
 * `ip_family` label came with dual-stack metrics) and the metrics server on metricsBindAddress
 * (default 127.0.0.1:10249) with kube-proxy's paths: `/metrics`, `/healthz`, `/healthz/ping`,
 * `/proxyMode`, `/configz`.
 *
 * Names, types, help texts (with component-base's `[ALPHA] ` stability prefix), buckets and labels
 * are kube-proxy's. Process metrics come from prom-client's default collectors (`process_*` as
 * kube-proxy has them, plus `nodejs_*` instead of Go's `go_*`).
 *
 * IPVS mode: kube-proxy's IPVS proxier has no metric of its own (no `*_ipvs_*`); it shares the
 * sync durations, timestamps, change counters and network programming latency, which apply
 * unchanged. It exports no `kubeproxy_sync_proxy_rules_iptables_total` (IPVS backends report no
 * rules per table, so no series appears) and never black-holes a Local policy, so
 * `no_local_endpoints_total` is 0. `iptables_restore_failures_total` counts every failed sync,
 * as in iptables mode: kube-proxy's IPVS proxier counts only iptables-restore failures and just
 * logs failed ipvsadm/ipset calls, while Switchboard fails the sync for those too (and retries
 * in full), so they count, and an alert on the metric sees them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { IPFamily } from '../model/ip.js';
import type { SyncObserver, SyncReport } from '../sync/backend.js';
import type { NowClock, ProbeCounters } from './health.js';
import {
  type BindAddress,
  closeServer,
  hasQueryParameter,
  notFound,
  parseBindAddress,
  requestPath,
  respond,
  startListening,
} from './http.js';
import { familyOutcomes, syncEndMs } from './sync-outcome.js';

/** component-base prefixes every ALPHA metric's help with its stability level. */
const alpha = (help: string): string => `[ALPHA] ${help}`;

/** Go's prometheus.ExponentialBuckets: start, start×factor, ... (count values). */
export function goExponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(v);
  return out;
}

/** Go's prometheus.LinearBuckets: start, start+width, ... (count values). */
export function goLinearBuckets(start: number, width: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v += width) out.push(v);
  return out;
}

/** 1 ms to 16.384 s. */
export const SYNC_DURATION_BUCKETS = goExponentialBuckets(0.001, 2, 15);

/** 1 ms to ~524 s: the proxy's own share of the latency is mostly below kube-proxy's first 250 ms bucket. */
export const FIRST_SEEN_BUCKETS = goExponentialBuckets(0.001, 2, 20);

/** component-base's MergeBuckets starts from a 0 bucket, then 0.25 s, 0.5 s, 1-59 s, 60-115 s, 2-5 min. */
export const NETWORK_PROGRAMMING_BUCKETS = [
  0,
  ...goLinearBuckets(0.25, 0.25, 2),
  ...goLinearBuckets(1, 1, 59),
  ...goLinearBuckets(60, 5, 12),
  ...goLinearBuckets(120, 30, 7),
];

type Family = 'ip_family';

export interface ProxyMetricsOptions {
  /** add prom-client's process and Node.js collectors (default true) */
  processMetrics?: boolean;
}

/** kube-proxy's metrics in a registry of their own. */
export class ProxyMetrics {
  readonly registry = new Registry();

  readonly syncProxyRulesDuration: Histogram<Family>;
  readonly syncFullProxyRulesDuration: Histogram<Family>;
  readonly syncPartialProxyRulesDuration: Histogram<Family>;
  readonly syncProxyRulesLastTimestamp: Gauge<Family>;
  readonly syncProxyRulesLastQueuedTimestamp: Gauge<Family>;
  readonly networkProgrammingDuration: Histogram<Family>;
  /** Switchboard's own: from when it first saw a change until a sync applied it */
  readonly firstSeenToSyncedDuration: Histogram<Family>;
  readonly endpointChangesPending: Gauge;
  readonly endpointChangesTotal: Counter;
  readonly serviceChangesPending: Gauge;
  readonly serviceChangesTotal: Counter;
  readonly iptablesRestoreFailuresTotal: Counter<Family>;
  readonly iptablesPartialRestoreFailuresTotal: Counter<Family>;
  readonly iptablesRulesTotal: Gauge<'table' | Family>;
  readonly noLocalEndpointsTotal: Gauge<'traffic_policy' | Family>;
  readonly proxyHealthzTotal: Counter<'code'>;
  readonly proxyLivezTotal: Counter<'code'>;

  /** counts the health server's answers */
  readonly probeCounters: ProbeCounters = {
    healthz: (code) => this.proxyHealthzTotal.inc({ code: String(code) }),
    livez: (code) => this.proxyLivezTotal.inc({ code: String(code) }),
  };

  constructor(opts: ProxyMetricsOptions = {}) {
    const registers = [this.registry];
    const family = ['ip_family'] as const;
    const histogram = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      buckets: number[],
    ) => new Histogram<L>({ name, help: alpha(help), labelNames, buckets, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Gauge<L>({ name, help: alpha(help), labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Counter<L>({ name, help: alpha(help), labelNames, registers });

    this.syncProxyRulesDuration = histogram(
      'kubeproxy_sync_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds',
      family,
      SYNC_DURATION_BUCKETS,
    );
    this.syncFullProxyRulesDuration = histogram(
      'kubeproxy_sync_full_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds for full resyncs',
      family,
      SYNC_DURATION_BUCKETS,
    );
    this.syncPartialProxyRulesDuration = histogram(
      'kubeproxy_sync_partial_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds for partial resyncs',
      family,
      SYNC_DURATION_BUCKETS,
    );
    this.syncProxyRulesLastTimestamp = gauge(
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'The last time proxy rules were successfully synced',
      family,
    );
    this.networkProgrammingDuration = histogram(
      'kubeproxy_network_programming_duration_seconds',
      'In Cluster Network Programming Latency in seconds',
      family,
      NETWORK_PROGRAMMING_BUCKETS,
    );
    // Not kube-proxy's, so no stability prefix: the proxy's own share of the latency above,
    // measured on one clock (no controller lag, no clock skew between nodes).
    this.firstSeenToSyncedDuration = new Histogram<Family>({
      name: 'switchboard_network_programming_first_seen_duration_seconds',
      help: 'Time from when Switchboard first saw a change to a Service or its EndpointSlices until a successful sync applied it, in seconds',
      labelNames: family,
      buckets: FIRST_SEEN_BUCKETS,
      registers,
    });
    this.endpointChangesPending = gauge(
      'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
      'Pending proxy rules Endpoint changes',
      [],
    );
    this.endpointChangesTotal = counter(
      'kubeproxy_sync_proxy_rules_endpoint_changes_total',
      'Cumulative proxy rules Endpoint changes',
      [],
    );
    this.serviceChangesPending = gauge(
      'kubeproxy_sync_proxy_rules_service_changes_pending',
      'Pending proxy rules Service changes',
      [],
    );
    this.serviceChangesTotal = counter(
      'kubeproxy_sync_proxy_rules_service_changes_total',
      'Cumulative proxy rules Service changes',
      [],
    );
    this.iptablesRestoreFailuresTotal = counter(
      'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
      'Cumulative proxy iptables restore failures',
      family,
    );
    this.iptablesPartialRestoreFailuresTotal = counter(
      'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total',
      'Cumulative proxy iptables partial restore failures',
      family,
    );
    this.iptablesRulesTotal = gauge(
      'kubeproxy_sync_proxy_rules_iptables_total',
      'Total number of iptables rules owned by kube-proxy',
      ['table', 'ip_family'] as const,
    );
    this.proxyHealthzTotal = counter(
      'kubeproxy_proxy_healthz_total',
      'Cumulative proxy healthz HTTP status',
      ['code'] as const,
    );
    this.proxyLivezTotal = counter('kubeproxy_proxy_livez_total', 'Cumulative proxy livez HTTP status', [
      'code',
    ] as const);
    this.syncProxyRulesLastQueuedTimestamp = gauge(
      'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
      'The last time a sync of proxy rules was queued',
      family,
    );
    this.noLocalEndpointsTotal = gauge(
      'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
      'Number of services with a Local traffic policy and no endpoints',
      ['traffic_policy', 'ip_family'] as const,
    );

    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }
}

// ---------------------------------------------------------------------------------------------------
// Feeding them from the sync loop

export interface MetricsObserverOptions {
  /** the families the proxy serves, in backend order */
  families: readonly IPFamily[];
  clock?: NowClock;
}

/**
 * Updates the metrics from what the sync loop reports. Where kube-proxy measures per proxier,
 * Switchboard's one loop gives each family the whole sync's duration; failures of any kind count as
 * restore failures (and as partial restore failures when the sync was partial, as kube-proxy counts
 * them). Network programming latency is kube-proxy's: from each EndpointSlice change's
 * last-change-trigger-time annotation to the end of the sync that applied it, per family, only
 * when that family's sync succeeded (see sync/trigger-times.ts); the time from when Switchboard
 * first saw a change has its own histogram.
 */
export class MetricsObserver implements SyncObserver {
  private readonly families: readonly IPFamily[];
  private readonly clock: NowClock;
  /** pending counts last reported, to turn the loop's pending sets into cumulative totals */
  private lastPending = { services: 0, endpoints: 0 };
  private lastQueuedMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly metrics: ProxyMetrics,
    opts: MetricsObserverOptions,
  ) {
    if (opts.families.length === 0) throw new Error('MetricsObserver: no IP families given');
    this.families = opts.families;
    this.clock = opts.clock ?? { now: () => Date.now() };
    // kube-proxy synthesizes a "queued" time as its loops start, while the informers sync.
    const nowSeconds = this.clock.now() / 1000;
    for (const family of this.families)
      metrics.syncProxyRulesLastQueuedTimestamp.set({ ip_family: family }, nowSeconds);
  }

  queued(_atMs: number, changes: { services: number; endpoints: number }): void {
    const now = this.clock.now();
    this.lastQueuedMs = now;
    for (const family of this.families) {
      this.metrics.syncProxyRulesLastQueuedTimestamp.set({ ip_family: family }, now / 1000);
    }
    // The loop reports the size of its pending sets; they only grow until a sync takes them, so a
    // smaller number means a new set was started.
    const grown = (current: number, before: number): number =>
      current >= before ? current - before : current;
    const services = grown(changes.services, this.lastPending.services);
    const endpoints = grown(changes.endpoints, this.lastPending.endpoints);
    if (services > 0) this.metrics.serviceChangesTotal.inc(services);
    if (endpoints > 0) this.metrics.endpointChangesTotal.inc(endpoints);
    this.lastPending = { ...changes };
    this.metrics.serviceChangesPending.set(changes.services);
    this.metrics.endpointChangesPending.set(changes.endpoints);
  }

  synced(report: SyncReport): void {
    const m = this.metrics;
    const seconds = report.durationMs / 1000;
    const endMs = syncEndMs(report);
    for (const { family, ok, full, result } of familyOutcomes(report, this.families)) {
      const ip_family = family;
      m.syncProxyRulesDuration.observe({ ip_family }, seconds);
      (full ? m.syncFullProxyRulesDuration : m.syncPartialProxyRulesDuration).observe({ ip_family }, seconds);
      if (!ok || result === null) {
        m.iptablesRestoreFailuresTotal.inc({ ip_family });
        if (!full) m.iptablesPartialRestoreFailuresTotal.inc({ ip_family });
        continue;
      }
      for (const [table, rules] of Object.entries(result.rulesPerTable)) {
        m.iptablesRulesTotal.set({ table, ip_family }, rules);
      }
      m.noLocalEndpointsTotal.set(
        { traffic_policy: 'internal', ip_family },
        result.noLocalEndpoints.internal,
      );
      m.noLocalEndpointsTotal.set(
        { traffic_policy: 'external', ip_family },
        result.noLocalEndpoints.external,
      );
      for (const trigger of report.triggerTimes ?? []) {
        if (trigger.family !== family) continue;
        m.networkProgrammingDuration.observe({ ip_family }, Math.max(0, endMs - trigger.atMs) / 1000);
      }
      for (const change of report.appliedChanges) {
        m.firstSeenToSyncedDuration.observe({ ip_family }, Math.max(0, endMs - change.firstSeenMs) / 1000);
      }
      m.syncProxyRulesLastTimestamp.set({ ip_family }, endMs / 1000);
    }
    // A successful sync took every change pending when it started; changes queued since then
    // already reported their own (new) pending counts. A failed sync's changes stay pending.
    if (report.ok && this.lastQueuedMs < report.startedAtMs) {
      this.lastPending = { services: 0, endpoints: 0 };
      m.serviceChangesPending.set(0);
      m.endpointChangesPending.set(0);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Server

export interface MetricsServerOptions {
  /** metricsBindAddress: `ip:port` or `[ip]:port` */
  address: string;
  /** what `/proxyMode` answers, e.g. `iptables` */
  proxyMode: string;
  /** what `/configz` answers (configz.ts); absent: 404 */
  configz?: string;
  log: Logger;
}

const TEXT_HEADERS = { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' };
const JSON_HEADERS = { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' };

/** The HTTP server for `/metrics`, `/healthz`, `/healthz/ping`, `/proxyMode` and `/configz`. */
export class MetricsServer {
  private readonly server: Server;
  private readonly address: BindAddress;

  constructor(
    private readonly metrics: ProxyMetrics,
    private readonly opts: MetricsServerOptions,
  ) {
    this.address = parseBindAddress(opts.address, 'metricsBindAddress');
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        opts.log.error({ err }, 'metrics request failed');
        if (!res.headersSent) respond(res, 500, TEXT_HEADERS, 'internal server error\n');
        else res.destroy();
      });
    });
    this.server.on('error', (err) => opts.log.error({ err }, 'metrics server error'));
  }

  /** Starts listening; rejects (naming the address) when the address cannot be bound. */
  start(): Promise<AddressInfo> {
    return startListening(this.server, this.address, 'metrics', this.opts.log);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    switch (requestPath(req)) {
      case '/metrics': {
        const text = await this.metrics.exposition();
        respond(res, 200, { 'Content-Type': this.metrics.registry.contentType }, text);
        return;
      }
      // k8s.io/apiserver's healthz handler with its single "ping" check.
      case '/healthz':
        respond(
          res,
          200,
          TEXT_HEADERS,
          hasQueryParameter(req, 'verbose') ? '[+]ping ok\nhealthz check passed\n' : 'ok',
        );
        return;
      case '/healthz/ping':
        respond(res, 200, { 'Content-Type': 'text/plain; charset=utf-8' }, 'ok');
        return;
      case '/proxyMode':
        respond(res, 200, TEXT_HEADERS, this.opts.proxyMode);
        return;
      case '/configz':
        if (this.opts.configz === undefined) break;
        respond(res, 200, JSON_HEADERS, this.opts.configz);
        return;
    }
    notFound(res);
  }
}
