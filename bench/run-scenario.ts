/**
 * The `run` path benchmark for one scenario and iptables backend (run-path.ts): the proxy
 * with the API source, as `switchboard run` starts it, in fresh network namespaces.
 *
 * 1. first sync from an empty table: from startProxy() to the end of the first sync
 *    (initial list of Services, EndpointSlices and the Node from the API double, store,
 *    snapshot, render, every restore);
 * 2. watch event -> synced: one endpoint of one service replaced through the API double,
 *    until the sync that applied it ended; changes are spaced more than minSyncPeriod
 *    after the previous sync started, so the figure is the proxy's latency, not its rate
 *    limit; one warm-up, then TIMED_RUNS on different services;
 * 3. the floor: a restore of one chain with one rule into the same table, measured right
 *    after, and the ratio event -> synced / floor (readable on a noisy machine);
 * 4. restart over its own, unchanged rules: the proxy stopped and a new one started on the
 *    same namespace (nothing should be written);
 * 5. takeover from kube-proxy-identical rules: a fresh namespace holding the same rules
 *    written the way kube-proxy writes them (jump rules and canaries first with the
 *    iptables tools, then the restore input, here in bounded transactions as a 10,000-
 *    service restore is not feasible in one with iptables-nft), then a proxy started on it.
 *
 * Every figure is published as soon as it exists, so a run stopped by the parent's time box
 * keeps what it measured.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { DEFAULT_CHUNKING, planTransactions } from '../src/backends/iptables/chunking.js';
import { buildRenderContext } from '../src/backends/iptables/context.js';
import { ensureCanaries, ensureJumpRules } from '../src/backends/iptables/jump-rules.js';
import { renderIptables } from '../src/backends/iptables/render.js';
import { formatRestore } from '../src/backends/iptables/restore-text.js';
import type { Backend } from '../src/kernel/backend.js';
import { type CommandRunner, ExecaRunner, inNetns } from '../src/kernel/exec.js';
import { Iptables } from '../src/kernel/iptables.js';
import { nodeInfoFrom, SnapshotBuilder } from '../src/model/snapshot.js';
import { ObjectStore } from '../src/model/store.js';
import type { SyncReport } from '../src/sync/backend.js';
import { iptablesOptions, topologyOptions } from '../src/sync/wiring.js';
import { oneRuleRestoreMs, usePrivateXtablesLock } from './kernel-scenario.js';
import { type BenchNetns, createNetns } from './netns.js';
import type { ProxyStart } from './run-path.js';
import { RunPath } from './run-path.js';
import { TIMED_RUNS } from './scenario.js';
import { median } from './stats.js';
import { type ClusterShape, clusterEvents } from './synthetic-cluster.js';
import { pickChangeTargets } from './world.js';

export interface StartFigures {
  /** startProxy() to the end of the first sync */
  ms: number;
  /** startProxy() to the start of the first sync (list and store) */
  listedMs: number;
  /** the first sync alone */
  syncMs: number;
  restoreLines: number;
  /** CPU over the same span, ms: this process (proxy and API double), and the commands it ran */
  cpuMs: number;
  childCpuMs: number;
}

export interface RunPathResult {
  scenario: string;
  backend: Backend;
  firstSync: StartFigures | null;
  /** medians over TIMED_RUNS endpoint changes */
  eventToSynced: { ms: number; minMs: number; maxMs: number; syncMs: number } | null;
  /** a restore of one chain with one rule into the same table (median of 3) */
  floorMs: number | null;
  restart: StartFigures | null;
  takeover: StartFigures | null;
  complete: boolean;
  loadAverage: [start: number, end: number];
  failures: string[];
}

/** Changes after a sync wait until this long after it started (minSyncPeriod is 1 s). */
const CHANGE_SPACING_MS = 1100;

function startFigures(start: ProxyStart): StartFigures {
  const lines = start.report.results.reduce((n, r) => n + r.restoreLines, 0);
  return {
    ms: start.ms,
    listedMs: start.listedMs,
    syncMs: start.report.durationMs,
    restoreLines: lines,
    cpuMs: start.cpu.selfMs,
    childCpuMs: start.cpu.childrenMs,
  };
}

function syncLines(report: SyncReport): number {
  return report.results.reduce((n, r) => n + r.restoreLines, 0);
}

/** Writes the current cluster's rules into a namespace the way kube-proxy does (see the file comment). */
async function writeLikeKubeProxy(run: RunPath, runner: CommandRunner, backend: Backend): Promise<void> {
  const store = new ObjectStore(run.nodeName);
  for (const event of clusterEvents(run.cluster)) store.apply(event);
  const node = nodeInfoFrom(run.nodeName, store.node, { nodeIPs: run.host.nodeIPs });
  const snapshot = new SnapshotBuilder('IPv4', topologyOptions(run.config)).build(store, node);
  const ctx = buildRenderContext(iptablesOptions(run.config, run.host), 'IPv4', node);
  const render = renderIptables(snapshot, ctx);
  const iptables = new Iptables(runner, backend);
  await ensureJumpRules(iptables, 'IPv4');
  await ensureCanaries(iptables, 'IPv4');
  const chunking =
    backend === 'legacy' ? { ...DEFAULT_CHUNKING, threshold: Number.POSITIVE_INFINITY } : DEFAULT_CHUNKING;
  const plan = planTransactions(render.filter, render.nat, chunking);
  for (const { table, chain } of plan.precreate) await iptables.ensureChain('IPv4', table, chain);
  for (const tables of plan.transactions)
    await iptables.restore('IPv4', formatRestore(tables, render.ruleTexts));
}

export function runPathNotMeasured(scenario: string, backend: Backend): RunPathResult {
  const load = loadavg()[0]!;
  return {
    scenario,
    backend,
    firstSync: null,
    eventToSynced: null,
    floorMs: null,
    restart: null,
    takeover: null,
    complete: false,
    loadAverage: [load, load],
    failures: [],
  };
}

export async function runRunPathScenario(
  name: string,
  backend: Backend,
  shape: Omit<ClusterShape, 'services' | 'endpointsPerService'>,
  report: (result: RunPathResult) => void,
): Promise<RunPathResult> {
  usePrivateXtablesLock();
  const result = runPathNotMeasured(name, backend);
  const publish = () => {
    result.loadAverage[1] = loadavg()[0]!;
    report(result);
  };
  const say = (msg: string) => process.stderr.write(`  [run ${name} ${backend}] ${msg}\n`);
  const root = new ExecaRunner();
  const namespaces: BenchNetns[] = [];
  let run: RunPath | undefined;
  try {
    run = await RunPath.create({ scenario: name, shape, backend, root });
    const ns = createNetns('run');
    namespaces.push(ns);

    say('first sync from an empty table, API source ...');
    result.firstSync = startFigures(await run.startProxy(ns.name));
    say(
      `first sync: ${Math.round(result.firstSync.ms)} ms (listed after ${Math.round(result.firstSync.listedMs)} ms)`,
    );
    publish();

    const samples: { ms: number; syncMs: number }[] = [];
    for (const [k, index] of pickChangeTargets(run.cluster, TIMED_RUNS + 1).entries()) {
      const last = run.lastSync();
      const wait = last ? last.startedAtMs + CHANGE_SPACING_MS - Date.now() : 0;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const change = await run.changeEndpoint(index, k);
      if (change.report.full) result.failures.push(`${change.serviceKey}: the sync was full`);
      if (k > 0) samples.push({ ms: change.ms, syncMs: change.report.durationMs });
      say(
        `${k === 0 ? 'warm-up ' : ''}event -> synced, ${change.serviceKey}: ${change.ms.toFixed(1)} ms ` +
          `(sync ${change.report.durationMs} ms, ${syncLines(change.report)} lines)`,
      );
    }
    const ms = samples.map((s) => s.ms);
    result.eventToSynced = {
      ms: median(ms),
      minMs: Math.min(...ms),
      maxMs: Math.max(...ms),
      syncMs: median(samples.map((s) => s.syncMs)),
    };
    result.floorMs = await oneRuleRestoreMs(inNetns(root, ns.name), backend);
    say(`floor (one chain, one rule): ${result.floorMs.toFixed(1)} ms`);
    publish();

    await run.stopProxy();
    say('restart over its own rules ...');
    result.restart = startFigures(await run.startProxy(ns.name));
    say(`restart: ${Math.round(result.restart.ms)} ms, ${result.restart.restoreLines} restore lines`);
    publish();
    await run.stopProxy();

    const other = createNetns('takeover');
    namespaces.push(other);
    say('takeover: writing the rules the way kube-proxy does ...');
    const t0 = performance.now();
    await writeLikeKubeProxy(run, inNetns(root, other.name), backend);
    say(`  written in ${Math.round(performance.now() - t0)} ms; starting the proxy on them ...`);
    result.takeover = startFigures(await run.startProxy(other.name));
    say(`takeover: ${Math.round(result.takeover.ms)} ms, ${result.takeover.restoreLines} restore lines`);
    result.complete = true;
  } catch (e) {
    result.failures.push(`stopped: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await run?.close().catch(() => undefined);
    for (const ns of namespaces) ns.remove();
  }
  publish();
  return result;
}
