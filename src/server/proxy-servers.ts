/**
 * The servers around a running proxy, assembled for `run`: health (/healthz, /livez),
 * metrics (/metrics) and the health-check node ports of externalTrafficPolicy Local
 * load balancers. They watch the sync loop (observers) and the Node (object events).
 */
import type { KubeProxyConfiguration } from '../config/kubeproxy.js';
import type { Logger } from '../log.js';
import type { IPFamily } from '../model/ip.js';
import type { ObjectEvent } from '../model/store.js';
import type { SyncObserver } from '../sync/backend.js';
import { configzBody } from './configz.js';
import { ProxyHealthServer, ProxyHealthState } from './health.js';
import { MetricsObserver, MetricsServer, ProxyMetrics } from './metrics.js';
import { ServiceHealthServers } from './service-health.js';

export interface ProxyServersOptions {
  config: KubeProxyConfiguration;
  families: readonly IPFamily[];
  nodeName: string;
  /** empty = no health server (kube-proxy: an empty healthzBindAddress disables it) */
  healthzBindAddress: string;
  /** empty = no metrics server */
  metricsBindAddress: string;
  /** open the health-check node ports (not in dry-run: they are part of the data plane) */
  serviceHealthChecks: boolean;
  log: Logger;
}

export interface ProxyServers {
  observers: SyncObserver[];
  onObjectEvent(event: ObjectEvent): void;
  close(): Promise<void>;
}

function isOwnNode(event: ObjectEvent, nodeName: string): boolean {
  if (event.kind !== 'Node') return false;
  const meta = (event.object as { metadata?: { name?: unknown } } | null)?.metadata;
  return meta?.name === nodeName;
}

export async function startProxyServers(opts: ProxyServersOptions): Promise<ProxyServers> {
  const { config, families, log } = opts;
  const metrics = new ProxyMetrics();
  const health = new ProxyHealthState({ families, healthTimeoutMs: 2 * config.syncPeriodMs });
  const observers: SyncObserver[] = [health, new MetricsObserver(metrics, { families })];
  const closers: (() => Promise<void>)[] = [];
  try {
    if (opts.healthzBindAddress !== '') {
      const server = new ProxyHealthServer(health, {
        address: opts.healthzBindAddress,
        counters: metrics.probeCounters,
        log,
      });
      await server.start();
      closers.push(() => server.close());
    }
    if (opts.metricsBindAddress !== '') {
      const server = new MetricsServer(metrics, {
        address: opts.metricsBindAddress,
        proxyMode: config.mode,
        // The bind addresses in effect, which flags may have overridden.
        configz: configzBody({
          ...config,
          healthzBindAddress: opts.healthzBindAddress,
          metricsBindAddress: opts.metricsBindAddress,
        }),
        log,
      });
      await server.start();
      closers.push(() => server.close());
    }
  } catch (e) {
    await Promise.all(closers.map((c) => c()));
    throw e;
  }
  if (opts.serviceHealthChecks) {
    const serviceHealth = new ServiceHealthServers({ proxyHealth: health, log });
    observers.push({
      synced: (report) => {
        if (report.ok) void serviceHealth.update(report.snapshots);
      },
    });
    closers.push(() => serviceHealth.close());
  }
  return {
    observers,
    onObjectEvent: (event) => {
      if (isOwnNode(event, opts.nodeName)) health.setNode(event.type === 'delete' ? null : event.object);
    },
    close: async () => {
      await Promise.all(closers.map((c) => c()));
    },
  };
}
