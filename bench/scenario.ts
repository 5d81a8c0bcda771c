/**
 * One benchmark scenario, measured in this process: build the ObjectStore from events,
 * time full renders (fresh SnapshotBuilder and IptablesRenderer each time) and partial
 * renders after one endpoint change (the same long-lived builder and renderer, as the sync
 * loop uses them), verify every partial render, and read the process's peak RSS.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { buildRenderContext, type RenderContext } from '../src/backends/iptables/context.js';
import {
  FULL_SYNC,
  type IptablesRender,
  IptablesRenderer,
  type SyncScope,
} from '../src/backends/iptables/render.js';
import { formatRestore } from '../src/backends/iptables/restore-text.js';
import { formatProblem } from '../src/errors.js';
import type { TopologyOptions } from '../src/model/categorize.js';
import { nodeInfoFrom, SnapshotBuilder } from '../src/model/snapshot.js';
import { ObjectStore } from '../src/model/store.js';
import type { NodeInfo, Snapshot } from '../src/model/types.js';
import { iptablesOptions, resolveNodeName, topologyOptions } from '../src/sync/wiring.js';
import { firstReadyEndpoint, replaceEndpointIP } from './endpoint-change.js';
import { applyRestore, diffKernels, type KernelTables } from './kernel-model.js';
import { median } from './stats.js';
import {
  type ClusterMix,
  type ClusterShape,
  clusterEvents,
  podIP,
  type SyntheticCluster,
  syntheticCluster,
} from './synthetic-cluster.js';
import { syntheticConfig, syntheticHost } from './synthetic-config.js';
import { checkPartialRender } from './verify-partial.js';

export const TIMED_RUNS = 5;

/**
 * Where the time of one sync goes; formatMs is part of renderMs (the restore-text step,
 * timed apart). cpuMs is the process's CPU time over the sync (all its threads, GC
 * helpers included): on a shared machine it moves less than wall time when others run.
 */
export interface SyncTimes {
  totalMs: number;
  cpuMs: number;
  snapshotMs: number;
  renderMs: number;
  formatMs: number;
}

export interface ScenarioResult {
  scenario: string;
  services: number;
  endpoints: number;
  servicePorts: number;
  mix: ClusterMix;
  generateMs: number;
  storeBuildMs: number;
  /** medians over TIMED_RUNS */
  full: SyncTimes;
  partial: SyncTimes;
  restoreLinesFull: number;
  restoreLinesPartial: number;
  /** peak RSS of the whole child process */
  rssMiB: number;
  /** RSS before the cluster was generated: node, the TypeScript loader, the modules */
  rssStartMiB: number;
  /** 1-minute load averages at the start and the end: figures from a busy machine are not comparable */
  loadAverage: [start: number, end: number];
  failures: string[];
}

export function parseScenarioName(name: string): { services: number; endpointsPerService: number } {
  const m = /^(\d+)x(\d+)$/.exec(name);
  if (!m)
    throw new Error(
      `scenario ${JSON.stringify(name)}: expected <services>x<endpoints per service>, e.g. 10000x10`,
    );
  return { services: Number(m[1]), endpointsPerService: Number(m[2]) };
}

interface Timed {
  render: IptablesRender;
  snapshot: Snapshot;
  times: SyncTimes;
}

function timedSync(build: () => Snapshot, render: (s: Snapshot) => IptablesRender): Timed {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const snapshot = build();
  const t1 = performance.now();
  const result = render(snapshot);
  const t2 = performance.now();
  const cpu = process.cpuUsage(c0);
  // Formatting again, alone, shows its share of the render.
  formatRestore([result.filter, result.nat]);
  const t3 = performance.now();
  return {
    render: result,
    snapshot,
    times: {
      totalMs: t2 - t0,
      cpuMs: (cpu.user + cpu.system) / 1000,
      snapshotMs: t1 - t0,
      renderMs: t2 - t1,
      formatMs: t3 - t2,
    },
  };
}

function medianTimes(list: readonly SyncTimes[]): SyncTimes {
  return {
    totalMs: median(list.map((t) => t.totalMs)),
    cpuMs: median(list.map((t) => t.cpuMs)),
    snapshotMs: median(list.map((t) => t.snapshotMs)),
    renderMs: median(list.map((t) => t.renderMs)),
    formatMs: median(list.map((t) => t.formatMs)),
  };
}

/**
 * Services whose endpoint changes: spread over the key space, and covering a two-port
 * service (two stale SEP chains), an eTP=Local load balancer and a ClientIP-affinity one.
 */
export function pickChangeTargets(cluster: SyntheticCluster, count: number): number[] {
  const n = cluster.services.length;
  const wanted: ((i: number) => boolean)[] = [
    (i) => (cluster.services[i]!.spec?.ports?.length ?? 0) > 1,
    (i) => cluster.services[i]!.spec?.externalTrafficPolicy === 'Local',
    (i) => cluster.services[i]!.spec?.sessionAffinity === 'ClientIP',
  ];
  const picked: number[] = [];
  for (let k = 0; k < count; k++) {
    const start = Math.floor(((k + 0.5) * n) / count);
    const predicate = wanted[k - 1] ?? (() => true);
    let index = start;
    for (let step = 0; step < n; step++) {
      const i = (start + step) % n;
      if (predicate(i) && !picked.includes(i)) {
        index = i;
        break;
      }
    }
    if (!picked.includes(index)) picked.push(index);
  }
  return picked;
}

function nodeIndexOf(slice: V1EndpointSlice, index: number): number {
  const name = slice.endpoints[index]?.nodeName ?? 'node-001';
  return Number(name.slice('node-'.length)) - 1;
}

interface Env {
  store: ObjectStore;
  node: NodeInfo;
  ctx: RenderContext;
  topology: TopologyOptions;
}

function measureFull(env: Env): { times: SyncTimes; restoreLines: number } {
  const run = () =>
    timedSync(
      () => new SnapshotBuilder('IPv4', env.topology).build(env.store, env.node),
      (s) => new IptablesRenderer().render(s, env.ctx, FULL_SYNC),
    );
  run(); // warm-up
  // Keep only the figures: holding on to five renders would inflate the peak RSS.
  const times: SyncTimes[] = [];
  let restoreLines = 0;
  for (let i = 0; i < TIMED_RUNS; i++) {
    const { render, times: t } = run();
    times.push(t);
    restoreLines = render.stats.restoreLines;
  }
  return { times: medianTimes(times), restoreLines };
}

function measurePartial(
  env: Env,
  cluster: SyntheticCluster,
  failures: string[],
): { times: SyncTimes; restoreLines: number; kernel: KernelTables } {
  const builder = new SnapshotBuilder('IPv4', env.topology);
  const renderer = new IptablesRenderer();
  let previous = renderer.render(builder.build(env.store, env.node), env.ctx, FULL_SYNC);
  const kernel: KernelTables = new Map();
  applyRestore(kernel, [previous.filter, previous.nat]);

  let rv = cluster.lastResourceVersion;
  const times: SyncTimes[] = [];
  const lines: number[] = [];
  // The first change is a warm-up of the partial path; the next TIMED_RUNS are measured.
  pickChangeTargets(cluster, TIMED_RUNS + 1).forEach((i, k) => {
    const svc = cluster.services[i]!;
    const serviceKey = `${svc.metadata!.namespace}/${svc.metadata!.name}`;
    const slice = cluster.slices[i]!;
    const index = firstReadyEndpoint(slice);
    // A new pod on the same node, from an address range the generator never uses.
    const change = replaceEndpointIP(slice, index, podIP(nodeIndexOf(slice, index), 200 * 256 + k), ++rv);
    cluster.slices[i] = change.slice;
    const applied = env.store.apply({ type: 'update', kind: 'EndpointSlice', object: change.slice });
    if (applied.changedServices.join() !== serviceKey) {
      failures.push(
        `${serviceKey}: store.apply reported changed services [${applied.changedServices.join(', ')}]`,
      );
    }
    const scope: SyncScope = {
      full: false,
      changedServices: new Set([serviceKey]),
      existingChains: previous.activeChains,
    };
    const run = timedSync(
      () => builder.build(env.store, env.node),
      (s) => renderer.render(s, env.ctx, scope),
    );
    failures.push(...checkPartialRender(run.render, run.snapshot, { serviceKey, ...change }));
    applyRestore(kernel, [run.render.filter, run.render.nat]);
    previous = run.render;
    if (k > 0) {
      times.push(run.times);
      lines.push(run.render.stats.restoreLines);
    }
  });
  cluster.lastResourceVersion = rv;
  return { times: medianTimes(times), restoreLines: median(lines), kernel };
}

export function runScenario(
  name: string,
  shape: Omit<ClusterShape, 'services' | 'endpointsPerService'>,
): ScenarioResult {
  const { services, endpointsPerService } = parseScenarioName(name);
  const failures: string[] = [];
  const rssStartMiB = process.memoryUsage().rss / 2 ** 20;
  const loadStart = loadavg()[0]!;

  const g0 = performance.now();
  const cluster = syntheticCluster({ ...shape, services, endpointsPerService });
  const events = clusterEvents(cluster);
  const generateMs = performance.now() - g0;

  const config = syntheticConfig(cluster);
  const host = syntheticHost(cluster);
  const nodeName = resolveNodeName(config, host);
  const s0 = performance.now();
  const store = new ObjectStore(nodeName);
  for (const event of events) store.apply(event);
  const storeBuildMs = performance.now() - s0;
  failures.push(...store.currentProblems().map((p) => `store: ${formatProblem(p)}`));

  const node = nodeInfoFrom(nodeName, store.node, { nodeIPs: host.nodeIPs });
  const env: Env = {
    store,
    node,
    ctx: buildRenderContext(iptablesOptions(config, host), 'IPv4', node),
    topology: topologyOptions(config),
  };

  const full = measureFull(env);
  const partial = measurePartial(env, cluster, failures);
  const rssMiB = process.resourceUsage().maxRSS / 1024;

  // After the partial syncs the kernel must hold exactly what a full sync of the final state writes.
  const fresh = new IptablesRenderer().render(
    new SnapshotBuilder('IPv4', env.topology).build(store, node),
    env.ctx,
  );
  const expected: KernelTables = new Map();
  applyRestore(expected, [fresh.filter, fresh.nat]);
  for (const d of diffKernels(partial.kernel, expected)) failures.push(`kernel after partial syncs: ${d}`);

  return {
    scenario: name,
    services,
    endpoints: cluster.mix.endpoints,
    servicePorts: fresh.stats.servicePorts,
    mix: cluster.mix,
    generateMs,
    storeBuildMs,
    full: full.times,
    partial: partial.times,
    restoreLinesFull: full.restoreLines,
    restoreLinesPartial: partial.restoreLines,
    rssMiB,
    rssStartMiB,
    loadAverage: [loadStart, loadavg()[0]!],
    failures,
  };
}
