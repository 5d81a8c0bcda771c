/**
 * One benchmark scenario, measured in this process: build the ObjectStore from events,
 * time full renders (fresh SnapshotBuilder and IptablesRenderer each time) and partial
 * renders after one endpoint change (the same long-lived builder and renderer, as the sync
 * loop uses them), verify every partial render, and read the process's peak RSS.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { buildRenderContext, type RenderContext } from '../src/backends/iptables/context.js';
import {
  FULL_SYNC,
  type IptablesRender,
  IptablesRenderer,
  type SyncScope,
} from '../src/backends/iptables/render.js';
import { formatRestore } from '../src/backends/iptables/restore-text.js';
import { SnapshotBuilder } from '../src/model/snapshot.js';
import type { Snapshot } from '../src/model/types.js';
import { iptablesOptions } from '../src/sync/wiring.js';
import { applyRestore, diffKernels, type KernelTables } from './kernel-model.js';
import { median } from './stats.js';
import type { ClusterMix, ClusterShape } from './synthetic-cluster.js';
import { checkPartialRender } from './verify-partial.js';
import { buildWorld, changeOneEndpoint, pickChangeTargets, type World } from './world.js';

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
  void result.text; // the restore input is made on first read
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

interface Env {
  world: World;
  ctx: RenderContext;
}

function measureFull(env: Env): { times: SyncTimes; restoreLines: number } {
  const run = () =>
    timedSync(
      () => new SnapshotBuilder('IPv4', env.world.topology).build(env.world.store, env.world.node),
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
  failures: string[],
): { times: SyncTimes; restoreLines: number; kernel: KernelTables } {
  const { world } = env;
  const builder = new SnapshotBuilder('IPv4', world.topology);
  const renderer = new IptablesRenderer();
  let previous = renderer.render(builder.build(world.store, world.node), env.ctx, FULL_SYNC);
  const kernel: KernelTables = new Map();
  applyRestore(kernel, [previous.filter, previous.nat]);

  const times: SyncTimes[] = [];
  const lines: number[] = [];
  // The first change is a warm-up of the partial path; the next TIMED_RUNS are measured.
  pickChangeTargets(world.cluster, TIMED_RUNS + 1).forEach((i, k) => {
    const change = changeOneEndpoint(world, i, k);
    if (change.problem) failures.push(change.problem);
    const scope: SyncScope = {
      full: false,
      changedServices: new Set([change.serviceKey]),
      existingChains: previous.activeChains,
    };
    const run = timedSync(
      () => builder.build(world.store, world.node),
      (s) => renderer.render(s, env.ctx, scope),
    );
    failures.push(...checkPartialRender(run.render, run.snapshot, change));
    applyRestore(kernel, [run.render.filter, run.render.nat]);
    previous = run.render;
    if (k > 0) {
      times.push(run.times);
      lines.push(run.render.stats.restoreLines);
    }
  });
  return { times: medianTimes(times), restoreLines: median(lines), kernel };
}

export function runScenario(
  name: string,
  shape: Omit<ClusterShape, 'services' | 'endpointsPerService'>,
): ScenarioResult {
  const rssStartMiB = process.memoryUsage().rss / 2 ** 20;
  const loadStart = loadavg()[0]!;
  const world = buildWorld(name, shape);
  const failures = [...world.problems];
  const { store, node } = world;
  const env: Env = {
    world,
    ctx: buildRenderContext(iptablesOptions(world.config, world.host), 'IPv4', node),
  };

  const full = measureFull(env);
  const partial = measurePartial(env, failures);
  const rssMiB = process.resourceUsage().maxRSS / 1024;

  // After the partial syncs the kernel must hold exactly what a full sync of the final state writes.
  const fresh = new IptablesRenderer().render(
    new SnapshotBuilder('IPv4', world.topology).build(store, node),
    env.ctx,
  );
  const expected: KernelTables = new Map();
  applyRestore(expected, [fresh.filter, fresh.nat]);
  for (const d of diffKernels(partial.kernel, expected)) failures.push(`kernel after partial syncs: ${d}`);

  return {
    scenario: name,
    services: world.cluster.services.length,
    endpoints: world.cluster.mix.endpoints,
    servicePorts: fresh.stats.servicePorts,
    mix: world.cluster.mix,
    generateMs: world.generateMs,
    storeBuildMs: world.storeBuildMs,
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
