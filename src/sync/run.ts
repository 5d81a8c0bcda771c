/**
 * Assembles a running proxy: source -> store -> sync loop -> one backend per IP family.
 * The source, the backends (through a factory) and the observers are parameters, so the
 * CLI picks manifests or the cluster, real iptables or dry-run, and adds health/metrics.
 */
import { buildRenderContext } from '../backends/iptables/context.js';
import { buildIpvsRenderContext } from '../backends/ipvs/context.js';
import type { HostFacts } from '../config/host.js';
import type { KubeProxyConfiguration } from '../config/kubeproxy.js';
import { formatProblem } from '../errors.js';
import type { Logger } from '../log.js';
import type { IPFamily } from '../model/ip.js';
import { nodeInfoFrom } from '../model/snapshot.js';
import { type ObjectEvent, ObjectStore } from '../model/store.js';
import type { ObjectSource, ProxyBackend, SyncObserver, SyncReport } from './backend.js';
import type { Clock } from './clock.js';
import { DryRunBackend, IpvsDryRunBackend, type TextSink } from './dry-run-backend.js';
import { SyncLoop } from './loop.js';
import { iptablesOptions, ipvsOptions, resolveNodeName, topologyOptions } from './wiring.js';

export interface BackendFactoryInput {
  families: readonly IPFamily[];
  config: KubeProxyConfiguration;
  host: HostFacts;
  nodeName: string;
  log: Logger;
}

/** Makes the backends, one per family, in the order given. */
export type BackendFactory = (input: BackendFactoryInput) => ProxyBackend[] | Promise<ProxyBackend[]>;

/** Backends that print what every sync would apply to `out` (`run --dry-run`), in the configuration's mode. */
export function dryRunBackends(out: TextSink): BackendFactory {
  return ({ families, config, host }) =>
    families.map((family) =>
      config.mode === 'ipvs'
        ? new IpvsDryRunBackend(family, ipvsOptions(config, host), out)
        : new DryRunBackend(family, iptablesOptions(config, host), out),
    );
}

export interface ProxyOptions {
  config: KubeProxyConfiguration;
  host: HostFacts;
  families: readonly IPFamily[];
  source: ObjectSource;
  createBackends: BackendFactory;
  observers?: readonly SyncObserver[];
  /** sees every event before the store does (e.g. the health server watching the Node) */
  onObjectEvent?: (event: ObjectEvent) => void;
  log: Logger;
  clock?: Clock;
}

export interface RunningProxy {
  readonly nodeName: string;
  readonly store: ObjectStore;
  readonly loop: SyncLoop;
  /** stops the source, then the loop (waiting for a running sync); the rules stay in place */
  stop(): Promise<void>;
}

/** Logs each skipped object once, when it first appears (and again if its problem changes). */
function problemLogger(store: ObjectStore, log: Logger): SyncObserver {
  let reported = new Set<string>();
  return {
    synced: () => {
      const current = new Set<string>();
      for (const p of store.currentProblems()) {
        const text = formatProblem(p);
        current.add(text);
        if (!reported.has(text)) log.warn({ object: p.ref, field: p.field }, `skipped: ${text}`);
      }
      reported = current;
    },
  };
}

/** Warns once if, after a sync, the store still has no Node object for this node. */
function missingNodeWarning(store: ObjectStore, log: Logger): SyncObserver {
  let warned = false;
  return {
    synced: () => {
      if (warned || store.node !== null) return;
      warned = true;
      log.warn(`no Node object named ${JSON.stringify(store.name)}: no topology labels or node IPs from it`);
    },
  };
}

/**
 * Checks the configuration against each family's renderer before anything starts, so a bad
 * CIDR or interface name is an error at startup rather than a sync failing forever.
 */
function validateRenderOptions(input: BackendFactoryInput): void {
  const { config, host } = input;
  const node = nodeInfoFrom(input.nodeName, null, { nodeIPs: host.nodeIPs });
  for (const family of input.families) {
    if (config.mode === 'ipvs') buildIpvsRenderContext(ipvsOptions(config, host), family, node);
    else buildRenderContext(iptablesOptions(config, host), family, node);
  }
}

async function assemble(opts: ProxyOptions, loopStarts: boolean): Promise<RunningProxy> {
  const { config, host, log } = opts;
  const nodeName = resolveNodeName(config, host);
  const factoryInput: BackendFactoryInput = { families: opts.families, config, host, nodeName, log };
  validateRenderOptions(factoryInput);
  const backends = await opts.createBackends(factoryInput);
  const store = new ObjectStore(nodeName);
  const loop = new SyncLoop({
    store,
    backends,
    syncPeriodMs: config.syncPeriodMs,
    minSyncPeriodMs: config.minSyncPeriodMs,
    topology: topologyOptions(config),
    nodeOverrides: { nodeIPs: host.nodeIPs },
    observers: [problemLogger(store, log), missingNodeWarning(store, log), ...(opts.observers ?? [])],
    log,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  log.info(
    {
      node: nodeName,
      backends: backends.map((b) => b.description),
      syncPeriodMs: config.syncPeriodMs,
      minSyncPeriodMs: config.minSyncPeriodMs,
    },
    'starting',
  );
  if (loopStarts) loop.start();
  for (const b of backends) b.starting?.();
  try {
    await opts.source.start(
      (event) => {
        opts.onObjectEvent?.(event);
        loop.handleEvent(event);
      },
      () => loop.sourceSynced(),
    );
  } catch (e) {
    await loop.stop();
    throw e;
  }
  return {
    nodeName,
    store,
    loop,
    stop: async () => {
      await opts.source.stop();
      await loop.stop();
    },
  };
}

/** Starts the proxy: it syncs on its own until `stop()`. */
export function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  return assemble(opts, true);
}

/** One sync (`run --once`): waits for the source's initial state, syncs, stops. */
export async function runProxyOnce(opts: ProxyOptions): Promise<SyncReport> {
  const proxy = await assemble(opts, false);
  try {
    return await proxy.loop.runOnce();
  } finally {
    await proxy.stop();
  }
}
