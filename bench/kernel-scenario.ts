/**
 * One kernel apply scenario for one iptables backend, measured in this process with the
 * production applier (IptablesBackend, made by createIptablesBackends) writing into a
 * fresh network namespace:
 *
 * 1. cold start: the backend's first full sync of the whole snapshot, end to end (jump
 *    rules, canaries, iptables-save, render, every restore transaction);
 * 2. one-endpoint changes: one endpoint of one service replaced as the render benchmark
 *    does, the snapshot built by the same long-lived SnapshotBuilder (not timed), then
 *    `sync(snapshot, { full: false, changedServices: {that service} })` timed end to end
 *    (render + restore); one warm-up change, then TIMED_RUNS on different services;
 * 3. the floor: what a restore of one rule costs with these tables in place;
 * 4. for clusters of at most VERIFY_MAX_SERVICES services: the namespace's KUBE-* state
 *    after the partial syncs must equal one full sync of the final snapshot in another
 *    fresh namespace.
 *
 * Every figure is reported as soon as it exists (`report`), so a run stopped by the
 * parent's time box still shows what it measured.
 */
import { rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createIptablesBackends, type IptablesBackend } from '../src/backends/iptables/backend.js';
import { type Backend, iptablesBinary } from '../src/kernel/backend.js';
import {
  type CommandRunner,
  ExecaRunner,
  inNetns,
  type RunOptions,
  type RunResult,
} from '../src/kernel/exec.js';
import { createLogger } from '../src/log.js';
import { SnapshotBuilder } from '../src/model/snapshot.js';
import type { Snapshot } from '../src/model/types.js';
import { iptablesOptions } from '../src/sync/wiring.js';
import { diffStates, kubeStateFromSave, summarizeState } from './kernel-state.js';
import { type BenchNetns, createNetns } from './netns.js';
import { TIMED_RUNS } from './scenario.js';
import { median } from './stats.js';
import type { ClusterShape } from './synthetic-cluster.js';
import { buildWorld, changeOneEndpoint, pickChangeTargets, type World } from './world.js';

/** The kernel state check costs two more full syncs and two saves: done on small clusters only. */
export const VERIFY_MAX_SERVICES = 1000;

export interface ApplyFigures {
  /** the whole backend.sync call, wall clock */
  ms: number;
  /** iptables-restore runs in it, and their summed wall time (process start included) */
  restores: number;
  restoreMs: number;
  restoreLines: number;
}

export interface KernelResult {
  scenario: string;
  backend: Backend;
  servicePorts: number;
  /** cold start; null until measured */
  full: ApplyFigures | null;
  /** medians over TIMED_RUNS one-endpoint changes (ms also as min and max); null until measured */
  partial: (ApplyFigures & { minMs: number; maxMs: number }) | null;
  /**
   * the floor under any partial sync: a restore of one new chain with one rule into the
   * same tables (median of FLOOR_RUNS); null until measured
   */
  oneRuleRestoreMs: number | null;
  /** what the kernel state check found, or why it did not run */
  verification: string;
  /** all phases ran (false: a failure stopped it, or it is still running) */
  complete: boolean;
  loadAverage: [start: number, end: number];
  failures: string[];
}

/** Counts and times the iptables-restore runs that pass through it. */
class RestoreMeter implements CommandRunner {
  restores = 0;
  restoreMs = 0;

  constructor(private readonly inner: CommandRunner) {}

  async run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    if (!cmd.endsWith('-restore')) return this.inner.run(cmd, args, options);
    const t0 = performance.now();
    try {
      return await this.inner.run(cmd, args, options);
    } finally {
      this.restores++;
      this.restoreMs += performance.now() - t0;
    }
  }

  reset(): void {
    this.restores = 0;
    this.restoreMs = 0;
  }
}

/**
 * iptables-legacy serialises every writer on the host through one lock file, although
 * each namespace has its own tables. A private lock file keeps the benchmark's long legacy
 * restores from making other processes' iptables calls time out (and their locks from
 * inflating these figures); nft takes no such lock.
 */
export function usePrivateXtablesLock(): void {
  const path = join(tmpdir(), `sbbench-${process.pid}.xtables.lock`);
  process.env['XTABLES_LOCKFILE'] = path;
  process.on('exit', () => rmSync(path, { force: true }));
}

async function newBackend(world: World, backend: Backend, runner: CommandRunner): Promise<IptablesBackend> {
  const [be] = await createIptablesBackends({
    runner,
    families: ['IPv4'],
    options: (facts) => iptablesOptions(world.config, facts),
    hostFacts: world.host,
    log: createLogger('warn'),
    backend,
  });
  return be!;
}

async function timedSync(
  be: IptablesBackend,
  meter: RestoreMeter,
  snapshot: Snapshot,
  seq: number,
  changedServices: ReadonlySet<string> | null,
): Promise<{ figures: ApplyFigures; full: boolean }> {
  meter.reset();
  const t0 = performance.now();
  const result = await be.sync(snapshot, {
    seq,
    full: changedServices === null,
    changedServices: changedServices ?? new Set(),
  });
  const figures = {
    ms: performance.now() - t0,
    restores: meter.restores,
    restoreMs: meter.restoreMs,
    restoreLines: result.restoreLines,
  };
  return { figures, full: result.full };
}

const FLOOR_RUNS = 3;
const PROBE_CHAIN = 'SBBENCH-PROBE';

/**
 * Times restores that add one chain with one rule to the nat table (then removes it, in an
 * untimed restore): what the iptables-restore binary costs with these tables loaded,
 * whatever the applier sends. Not a KUBE- chain, so the state check does not see it.
 */
export async function oneRuleRestoreMs(runner: CommandRunner, backend: Backend): Promise<number> {
  const restore = iptablesBinary(backend, 'IPv4', 'restore');
  const args = ['--noflush', '-w', '5'];
  const ms: number[] = [];
  for (let i = 0; i < FLOOR_RUNS; i++) {
    const t0 = performance.now();
    await runner.run(restore, args, {
      input: `*nat\n:${PROBE_CHAIN} - [0:0]\n-A ${PROBE_CHAIN} -j RETURN\nCOMMIT\n`,
    });
    ms.push(performance.now() - t0);
    await runner.run(restore, args, { input: `*nat\n:${PROBE_CHAIN} - [0:0]\n-X ${PROBE_CHAIN}\nCOMMIT\n` });
  }
  return median(ms);
}

export async function savedKubeState(runner: CommandRunner, backend: Backend): Promise<string> {
  const { stdout } = await runner.run(iptablesBinary(backend, 'IPv4', 'save'), [], { timeoutMs: 300_000 });
  return kubeStateFromSave(stdout);
}

/** The state check of step 4: one message, and failures when the states differ. */
async function verifyAgainstFreshFullSync(
  world: World,
  backend: Backend,
  afterPartials: string,
  finalSnapshot: Snapshot,
  root: CommandRunner,
): Promise<{ verification: string; failures: string[] }> {
  const fresh = createNetns('verify');
  try {
    const runner = inNetns(root, fresh.name);
    const be = await newBackend(world, backend, runner);
    await be.sync(finalSnapshot, { seq: 1, full: true, changedServices: new Set() });
    const expected = await savedKubeState(runner, backend);
    const diff = diffStates(afterPartials, expected);
    if (diff.length > 0) {
      return {
        verification: 'FAILED',
        failures: diff.map((d) => `kernel state after the partial syncs vs one full sync: ${d}`),
      };
    }
    const { chains, rules } = summarizeState(expected);
    return {
      verification: `identical to one full sync in a fresh namespace (${chains} chains, ${rules} rules)`,
      failures: [],
    };
  } finally {
    fresh.remove();
  }
}

/** A result with nothing measured yet. */
export function notMeasured(scenario: string, backend: Backend, verification: string): KernelResult {
  const load = loadavg()[0]!;
  return {
    scenario,
    backend,
    servicePorts: 0,
    full: null,
    partial: null,
    oneRuleRestoreMs: null,
    verification,
    complete: false,
    loadAverage: [load, load],
    failures: [],
  };
}

function partialFigures(samples: readonly ApplyFigures[]): NonNullable<KernelResult['partial']> {
  const ms = samples.map((s) => s.ms);
  return {
    ms: median(ms),
    minMs: Math.min(...ms),
    maxMs: Math.max(...ms),
    restores: median(samples.map((s) => s.restores)),
    restoreMs: median(samples.map((s) => s.restoreMs)),
    restoreLines: median(samples.map((s) => s.restoreLines)),
  };
}

export async function runKernelScenario(
  name: string,
  backend: Backend,
  shape: Omit<ClusterShape, 'services' | 'endpointsPerService'>,
  report: (result: KernelResult) => void,
): Promise<KernelResult> {
  usePrivateXtablesLock();
  const loadStart = loadavg()[0]!;
  const world = buildWorld(name, shape);
  const services = world.cluster.services.length;
  const result = notMeasured(
    name,
    backend,
    services <= VERIFY_MAX_SERVICES
      ? 'not reached'
      : `skipped: only done for clusters of at most ${VERIFY_MAX_SERVICES} services, to keep the run short`,
  );
  result.loadAverage[0] = loadStart;
  result.failures.push(...world.problems);
  const publish = () => {
    result.loadAverage[1] = loadavg()[0]!;
    report(result);
  };
  const say = (msg: string) => process.stderr.write(`  [${name} ${backend}] ${msg}\n`);

  const root = new ExecaRunner();
  let ns: BenchNetns | undefined;
  try {
    ns = createNetns(backend);
    const runner = inNetns(root, ns.name);
    const meter = new RestoreMeter(runner);
    const be = await newBackend(world, backend, meter);
    const builder = new SnapshotBuilder('IPv4', world.topology);

    let snapshot = builder.build(world.store, world.node);
    result.servicePorts = snapshot.servicePorts.length;
    publish();
    say(`cold start: full sync of ${result.servicePorts} service ports into a fresh namespace ...`);
    const { figures: cold } = await timedSync(be, meter, snapshot, 1, null);
    result.full = cold;
    say(
      `cold start: ${Math.round(cold.ms)} ms (${cold.restores} restores, ${Math.round(cold.restoreMs)} ms)`,
    );
    publish();

    const samples: ApplyFigures[] = [];
    const targets = pickChangeTargets(world.cluster, TIMED_RUNS + 1);
    for (const [k, index] of targets.entries()) {
      const change = changeOneEndpoint(world, index, k);
      if (change.problem) result.failures.push(change.problem);
      snapshot = builder.build(world.store, world.node);
      const { figures, full } = await timedSync(be, meter, snapshot, k + 2, new Set([change.serviceKey]));
      if (full) result.failures.push(`${change.serviceKey}: the partial sync was upgraded to a full one`);
      // The first change warms up the partial path.
      if (k > 0) samples.push(figures);
      say(`${k === 0 ? 'warm-up ' : ''}partial sync, ${change.serviceKey}: ${figures.ms.toFixed(1)} ms`);
    }
    result.partial = partialFigures(samples);
    publish();
    result.oneRuleRestoreMs = await oneRuleRestoreMs(runner, backend);
    say(`a restore of one chain with one rule: ${result.oneRuleRestoreMs.toFixed(1)} ms`);

    if (services <= VERIFY_MAX_SERVICES) {
      const afterPartials = await savedKubeState(runner, backend);
      const check = await verifyAgainstFreshFullSync(world, backend, afterPartials, snapshot, root);
      result.verification = check.verification;
      result.failures.push(...check.failures);
      say(`kernel state check: ${check.verification}`);
    }
    result.complete = true;
  } catch (e) {
    result.failures.push(`stopped: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    ns?.remove();
  }
  publish();
  return result;
}
