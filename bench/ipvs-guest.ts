/**
 * The IPVS kernel benchmark's guest side, run inside the VM guest (Debian's kernel, ip_vs),
 * bundled to dist/vm/bench/ipvs-guest.js by bench/ipvs.ts:
 *
 *   node dist/vm/bench/ipvs-guest.js SCENARIO...        (e.g. 1000x10 10000x10)
 *
 * Prints `REFERENCE <json>` (the reference workloads, for the guest/host slowdown), then for
 * each scenario, as each phase ends, `RESULT <json>` (an IpvsBenchResult): the production
 * applier (IpvsBackend) on the benchmark's synthetic cluster (bench/world.ts, IPv4) writing
 * into a fresh network namespace:
 * 1. cold start: the first full sync, end to end, split by tool (wall time of the ipvsadm,
 *    ipset, ip and iptables processes; the rest is reading, planning and rendering in node);
 * 2. one-endpoint changes as the iptables benchmark makes them (world.ts), each a partial
 *    sync naming the changed service: one warm-up, then TIMED_RUNS on different services;
 *    the kernel operations each issued, by tool.
 */
import { performance } from 'node:perf_hooks';
import { IpvsBackend } from '../src/backends/ipvs/backend.js';
import { desiredIpvsState } from '../src/backends/ipvs/desired.js';
import { type CommandRunner, ExecaRunner, type RunOptions, type RunResult } from '../src/kernel/exec.js';
import { createLogger } from '../src/log.js';
import { SnapshotBuilder } from '../src/model/snapshot.js';
import { ipvsOptions } from '../src/sync/wiring.js';
import { createScratchNetns } from '../test/kernel/netns.js';
import { measureReference } from './ipvs-reference.js';
import { TIMED_RUNS } from './scenario.js';
import { median } from './stats.js';
import { DEFAULT_NODES, DEFAULT_SEED } from './synthetic-cluster.js';
import { buildWorld, changeOneEndpoint, pickChangeTargets } from './world.js';

export type IpvsTool = 'ipvsadm' | 'ipset' | 'ip' | 'iptables' | 'other';
const TOOLS: readonly IpvsTool[] = ['ipvsadm', 'ipset', 'ip', 'iptables', 'other'];

export interface ToolSplit {
  /** processes run, per tool */
  operations: Record<IpvsTool, number>;
  /** their summed wall time, per tool (ms) */
  ms: Record<IpvsTool, number>;
}

export interface IpvsBenchResult {
  scenario: string;
  servicePorts: number;
  virtualServers: number;
  realServers: number;
  boundAddresses: number;
  /** one full sync into an empty namespace: wall ms, and the tools' share of it */
  cold: { totalMs: number; lines: Record<string, number>; tools: ToolSplit } | null;
  /** the one-endpoint changes: median, min, max wall ms, and each change's operations */
  change: { medianMs: number; minMs: number; maxMs: number; operations: Record<IpvsTool, number>[] } | null;
  /** world building in the guest (generate + store), ms: a JS-bound figure */
  worldMs: number;
  complete: boolean;
  failures: string[];
}

const toolOf = (cmd: string): IpvsTool => {
  if (cmd === 'ipvsadm' || cmd === 'ipset' || cmd === 'ip') return cmd;
  return /^ip6?tables/.test(cmd) ? 'iptables' : 'other';
};

/** Times every process by tool (wrapping the namespace's runner: `cmd` is the tool itself). */
class ToolTimer implements CommandRunner {
  split: ToolSplit = empty();
  constructor(private readonly inner: CommandRunner) {}
  async run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    const tool = toolOf(cmd);
    const t0 = performance.now();
    try {
      return await this.inner.run(cmd, args, options);
    } finally {
      this.split.operations[tool]++;
      this.split.ms[tool] += performance.now() - t0;
    }
  }
  take(): ToolSplit {
    const s = this.split;
    this.split = empty();
    return s;
  }
}

function empty(): ToolSplit {
  const zero = () => Object.fromEntries(TOOLS.map((t) => [t, 0])) as Record<IpvsTool, number>;
  return { operations: zero(), ms: zero() };
}

async function runScenario(name: string, report: (r: IpvsBenchResult) => void): Promise<IpvsBenchResult> {
  const w0 = performance.now();
  const world = buildWorld(name, { nodes: DEFAULT_NODES, seed: DEFAULT_SEED });
  const builder = new SnapshotBuilder('IPv4', world.topology);
  let snapshot = builder.build(world.store, world.node);
  const result: IpvsBenchResult = {
    scenario: name,
    servicePorts: snapshot.servicePorts.length,
    virtualServers: 0,
    realServers: 0,
    boundAddresses: 0,
    cold: null,
    change: null,
    worldMs: performance.now() - w0,
    complete: false,
    failures: [...world.problems],
  };
  report(result);
  const scratch = await createScratchNetns(new ExecaRunner());
  const timer = new ToolTimer(scratch.runner);
  const desired = desiredIpvsState(ipvsOptions(world.config, world.host), 'IPv4');
  const backend = new IpvsBackend({
    runner: timer,
    iptablesBackend: 'nft',
    family: 'IPv4',
    desired: (s) => {
      const state = desired(s);
      result.virtualServers = state.virtualServers.length;
      result.realServers = state.virtualServers.reduce((n, v) => n + v.realServers.length, 0);
      result.boundAddresses = state.boundAddresses.length;
      return state;
    },
    excludeCIDRs: world.config.ipvs.excludeCIDRs,
    log: createLogger('warn'),
    gracefulCheckPeriodMs: 3_600_000,
  });
  try {
    let seq = 0;
    const t0 = performance.now();
    await backend.sync(snapshot, { seq: ++seq, full: true, changedServices: new Set() });
    result.cold = {
      totalMs: performance.now() - t0,
      lines: { ...backend.lastSync!.lines },
      tools: timer.take(),
    };
    report(result);

    const targets = pickChangeTargets(world.cluster, TIMED_RUNS + 1);
    const times: number[] = [];
    const operations: Record<IpvsTool, number>[] = [];
    for (const [k, index] of targets.entries()) {
      const change = changeOneEndpoint(world, index, k);
      if (change.problem) result.failures.push(change.problem);
      snapshot = builder.build(world.store, world.node);
      timer.take();
      const c0 = performance.now();
      await backend.sync(snapshot, {
        seq: ++seq,
        full: false,
        changedServices: new Set([change.serviceKey]),
      });
      const ms = performance.now() - c0;
      const split = timer.take();
      if (k === 0) continue; // warm-up
      times.push(ms);
      operations.push(split.operations);
    }
    result.change = {
      medianMs: median(times),
      minMs: Math.min(...times),
      maxMs: Math.max(...times),
      operations,
    };
    result.complete = true;
  } catch (e) {
    result.failures.push(`${name}: ${(e as Error).message}`);
  } finally {
    backend.close();
    await scratch.teardown();
  }
  report(result);
  return result;
}

const scenarios = process.argv.slice(2);
process.stdout.write(`REFERENCE ${JSON.stringify(await measureReference())}\n`);
let failed = false;
for (const name of scenarios) {
  const r = await runScenario(name, (x) => process.stdout.write(`RESULT ${JSON.stringify(x)}\n`));
  failed ||= r.failures.length > 0;
}
process.exit(failed ? 1 : 0);
