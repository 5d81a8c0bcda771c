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
 * 6. `run --once --from` a kubectl-shaped JSON dump of the same cluster, the CLI as a child
 *    process in a fresh namespace (manifest source, one full sync from an empty table).
 *
 * Memory (memory.ts; BENCH_HEAP_SNAPSHOTS=<dir> also writes a heap snapshot there at steady state): the peak RSS of this process during the first sync, the restart and
 * the takeover (true peaks: the kernel's high-water mark, reset before each phase after a
 * forced GC), its steady RSS and heap a few seconds after the endpoint changes, and the peak
 * RSS of the `run --once --from` child. The API double runs in a process of its own
 * (run-path.ts), so these are the proxy's figures; this process also holds the benchmark's
 * own bookkeeping (small) and the TypeScript loader unless run with --compiled.
 *
 * Every figure is published as soon as it exists, so a run stopped by the parent's time box
 * keeps what it measured.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeHeapSnapshot } from 'node:v8';
import type { Backend } from '../src/kernel/backend.js';
import { type CommandRunner, ExecaRunner, inNetns } from '../src/kernel/exec.js';
import { Iptables } from '../src/kernel/iptables.js';
import type { SyncReport } from '../src/sync/backend.js';
import { oneRuleRestoreMs, usePrivateXtablesLock } from './kernel-scenario.js';
import {
  collectGarbage,
  parseUsage,
  rssMiB,
  type SteadyFigures,
  startPeak,
  statusKiB,
  steadyFigures,
  usageReporter,
} from './memory.js';
import { type BenchNetns, createNetns } from './netns.js';
import type { ProxyStart } from './run-path.js';
import { cliCommand, RunPath } from './run-path.js';
import { TIMED_RUNS } from './scenario.js';
import { median } from './stats.js';
import type { ClusterShape } from './synthetic-cluster.js';

export interface StartFigures {
  /** startProxy() to the end of the first sync */
  ms: number;
  /** startProxy() to the start of the first sync (list and store) */
  listedMs: number;
  /** the first sync alone */
  syncMs: number;
  restoreLines: number;
  /** peak RSS of this process over the span, MiB */
  peakRssMiB: number;
  /** CPU over the same span, ms: this process (the proxy), and the commands it ran */
  cpuMs: number;
  childCpuMs: number;
}

export interface CliRunFigures {
  /** the child's RSS high-water mark when its first sync ended, MiB */
  firstSyncPeakMiB: number;
  /** median RSS over STEADY_WINDOW_MS, STEADY_AFTER_MS after the first sync, MiB */
  steadyRssMiB: number;
  /** the high-water mark at the end (periodic syncs included), MiB */
  peakMiB: number;
}

export interface RunPathResult {
  scenario: string;
  backend: Backend;
  firstSync: StartFigures | null;
  /** medians over TIMED_RUNS endpoint changes */
  eventToSynced: { ms: number; minMs: number; maxMs: number; syncMs: number } | null;
  /** a restore of one chain with one rule into the same table (median of 3) */
  floorMs: number | null;
  /**
   * one `iptables-save` of the same table, as the proxy's full sync reads it: the floor of a
   * restart over unchanged rules (which must read them all)
   */
  saveMs: number | null;
  /**
   * the same rules written into an empty namespace the way kube-proxy writes them, by the API
   * double's process (its render included): the floor of a first sync from an empty table
   */
  kernelWriteMs: number | null;
  restart: StartFigures | null;
  takeover: StartFigures | null;
  /** RSS before the proxy started (node, modules, the benchmark), MiB */
  baseRssMiB: number | null;
  /** STEADY_WINDOW_MS, starting STEADY_AFTER_MS after the last endpoint change */
  steady: SteadyFigures | null;
  /** `switchboard run` (API source) as a child process: the production process's own figures */
  cli: CliRunFigures | null;
  /** `run --once --from` the JSON dump: the CLI child's peak RSS (MiB), wall ms and CPU ms */
  onceFromManifest: { peakRssMiB: number; ms: number; cpuMs: number } | null;
  complete: boolean;
  loadAverage: [start: number, end: number];
  failures: string[];
}

/** Changes after a sync wait until this long after it started (minSyncPeriod is 1 s). */
const CHANGE_SPACING_MS = 1100;
/**
 * Steady: a quiet proxy after its periodic sync (syncPeriod 30 s), when V8 has collected the
 * first sync's garbage and given back what it could; sampled over STEADY_WINDOW_MS.
 */
const STEADY_AFTER_MS = 35_000;
const STEADY_WINDOW_MS = 5000;
/** A stopped proxy's watch sockets close an event-loop turn or two later; until then they hold it. */
const STOPPED_SETTLE_MS = 500;

/** Starts a proxy with its own peak RSS: after a GC (the previous proxy's garbage), from a reset high-water mark. */
async function measuredStart(run: RunPath, ns: string): Promise<StartFigures> {
  await new Promise((r) => setTimeout(r, STOPPED_SETTLE_MS));
  collectGarbage();
  const peak = startPeak();
  const start = await run.startProxy(ns);
  return startFigures(start, peak.peakMiB());
}

function startFigures(start: ProxyStart, peakRssMiB: number): StartFigures {
  const lines = start.report.results.reduce((n, r) => n + r.restoreLines, 0);
  return {
    ms: start.ms,
    listedMs: start.listedMs,
    syncMs: start.report.durationMs,
    restoreLines: lines,
    peakRssMiB,
    cpuMs: start.cpu.selfMs,
    childCpuMs: start.cpu.childrenMs,
  };
}

/** One iptables-save of every table of the family, as a full sync reads the kernel. */
async function saveMs(runner: CommandRunner, backend: Backend): Promise<number> {
  const t0 = performance.now();
  await new Iptables(runner, backend).save('IPv4');
  return performance.now() - t0;
}

function syncLines(report: SyncReport): number {
  return report.results.reduce((n, r) => n + r.restoreLines, 0);
}

/** The configuration and host files a `switchboard run` child of the benchmark is given. */
function writeCliFiles(run: RunPath, dir: string): { config: string; host: string } {
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
      'kind: KubeProxyConfiguration',
      `hostnameOverride: ${run.nodeName}`,
      `clusterCIDR: ${run.config.clusterCIDR}`,
      // leave the host's conntrack table size and this child's OOM score alone
      'conntrack: {maxPerCore: 0}',
      'oomScoreAdj: 0',
      '',
    ].join('\n'),
  );
  const host = join(dir, 'host.json');
  writeFileSync(host, JSON.stringify(run.host));
  return { config, host };
}

/** The V8 heap flags this process runs with, as the chart gives them to the proxy. */
function heapFlags(): string[] {
  return process.execArgv.filter(
    (a) => a.startsWith('--max-old-space-size') || a.startsWith('--max-semi-space-size'),
  );
}

/**
 * `switchboard run --once --from <dump.json>` as a child process in namespace `ns`, with its
 * peak RSS and CPU from the child itself.
 */
function runOnceFromManifest(run: RunPath, dir: string, dump: string, ns: string) {
  const { config, host } = writeCliFiles(run, dir);
  const args = [
    ...usageReporter(dir),
    ...heapFlags(),
    ...cliCommand(),
    'run',
    '--once',
    '--from',
    dump,
    '--config',
    config,
    '--host',
    host,
    '--family',
    'ipv4',
  ];
  const t0 = performance.now();
  const child = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  const ms = performance.now() - t0;
  const usage = parseUsage(child.stderr ?? '');
  if (child.status !== 0 || !usage) {
    throw new Error(
      `run --once --from failed (exit ${child.status ?? child.signal}): ${(child.stderr ?? '').slice(-2000)}`,
    );
  }
  return { peakRssMiB: usage.peakMiB, ms, cpuMs: usage.cpuMs };
}

/** How long a `switchboard run` child may take to its first sync (10,000 services: ~20 s here). */
const CLI_FIRST_SYNC_TIMEOUT_MS = 300_000;

function procStatusMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  const kib = statusKiB(field, pid);
  return kib === null ? null : kib / 1024;
}

/**
 * `switchboard run` (API source) as a child process in namespace `ns`, the process the
 * DaemonSet runs: its peak RSS up to the end of its first sync (the kernel's high-water mark
 * of the child), and its steady RSS sampled as for the in-process proxy. Ended by SIGTERM.
 */
async function runCliSteady(run: RunPath, dir: string, ns: string): Promise<CliRunFigures> {
  const { config, host } = writeCliFiles(run, dir);
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, run.kubeConfigText());
  const log = join(dir, 'run.log');
  const out = openSync(log, 'w');
  // The API double listens on this process's loopback, which the namespace does not reach; a
  // path-named unix socket does (it is not bound to a network namespace), so the bytes go
  // namespace loopback -> unix socket -> here -> the double.
  const bridge = await bridgeIntoNetns(run.apiPort, ns, dir);
  const args = [...heapFlags(), ...cliCommand(), 'run', '--kubeconfig', kubeconfig, '--config', config];
  args.push('--host', host, '--family', 'ipv4');
  // `ip netns exec` execs the command: the child's pid is the proxy's.
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], {
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    const pid = child.pid!;
    const t0 = performance.now();
    while (!/"msg":"synced"/.test(readFileSync(log, 'utf8'))) {
      if (
        child.exitCode !== null ||
        child.signalCode !== null ||
        performance.now() - t0 > CLI_FIRST_SYNC_TIMEOUT_MS
      )
        throw new Error(
          `switchboard run did not finish a first sync: ${readFileSync(log, 'utf8').slice(-2000)}`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
    const firstSyncPeakMiB = procStatusMiB(pid, 'VmHWM') ?? Number.NaN;
    await new Promise((r) => setTimeout(r, STEADY_AFTER_MS));
    const samples: number[] = [];
    const end = performance.now() + STEADY_WINDOW_MS;
    while (performance.now() < end) {
      const rss = procStatusMiB(pid, 'VmRSS');
      if (rss !== null) samples.push(rss);
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      firstSyncPeakMiB,
      steadyRssMiB: median(samples),
      peakMiB: procStatusMiB(pid, 'VmHWM') ?? Number.NaN,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await bridge.close();
  }
}

/**
 * Makes 127.0.0.1:`port` inside namespace `ns` reach 127.0.0.1:`port` here: a forwarder
 * process in the namespace (its pid is ours to end) connects to a unix socket in `dir`
 * that this process relays to the port.
 */
async function bridgeIntoNetns(port: number, ns: string, dir: string): Promise<{ close(): Promise<void> }> {
  spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'], { stdio: 'inherit' });
  const path = join(dir, 'api.sock');
  const relay = createServer((c) => {
    const up = connect(port, '127.0.0.1');
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await new Promise<void>((r) => relay.listen(path, r));
  const forwarder = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      process.execPath,
      '-e',
      `const net = require('node:net');
       net.createServer((c) => { const up = net.connect(${JSON.stringify(path)}); c.pipe(up).pipe(c);
         c.on('error', () => up.destroy()); up.on('error', () => c.destroy()); })
         .listen(${port}, '127.0.0.1', () => process.stdout.write('listening\\n'));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    forwarder.stdout!.once('data', () => resolve());
    forwarder.once('exit', (code) => reject(new Error(`the namespace forwarder exited (${code})`)));
  });
  return {
    async close() {
      forwarder.kill('SIGTERM');
      await new Promise<void>((r) => relay.close(() => r()));
    },
  };
}

export function runPathNotMeasured(scenario: string, backend: Backend): RunPathResult {
  const load = loadavg()[0]!;
  return {
    scenario,
    backend,
    firstSync: null,
    eventToSynced: null,
    floorMs: null,
    saveMs: null,
    kernelWriteMs: null,
    restart: null,
    takeover: null,
    baseRssMiB: null,
    steady: null,
    cli: null,
    onceFromManifest: null,
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
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-run-'));
  let run: RunPath | undefined;
  try {
    run = await RunPath.create({ scenario: name, shape, backend, root });
    const ns = createNetns('run');
    namespaces.push(ns);
    collectGarbage();
    result.baseRssMiB = rssMiB();

    say('first sync from an empty table, API source ...');
    result.firstSync = await measuredStart(run, ns.name);
    say(
      `first sync: ${Math.round(result.firstSync.ms)} ms (listed after ${Math.round(result.firstSync.listedMs)} ms), ` +
        `peak RSS ${Math.round(result.firstSync.peakRssMiB)} MiB`,
    );
    publish();

    const samples: { ms: number; syncMs: number }[] = [];
    for (const [k, index] of (await run.changeTargets(TIMED_RUNS + 1)).entries()) {
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
    await new Promise((r) => setTimeout(r, STEADY_AFTER_MS));
    result.steady = await steadyFigures(STEADY_WINDOW_MS);
    const snapshots = process.env['BENCH_HEAP_SNAPSHOTS'];
    if (snapshots)
      say(
        `heap snapshot: ${writeHeapSnapshot(join(snapshots, `run-${name}-${backend}-steady.heapsnapshot`))}`,
      );
    say(
      `steady: RSS ${Math.round(result.steady.rssMiB)} MiB, heap used ${Math.round(result.steady.heapUsedMiB)} MiB ` +
        `(live ${Math.round(result.steady.liveHeapMiB)} MiB, RSS ${Math.round(result.steady.rssAfterGcMiB)} MiB after a forced GC)`,
    );
    result.floorMs = await oneRuleRestoreMs(inNetns(root, ns.name), backend);
    say(`floor (one chain, one rule): ${result.floorMs.toFixed(1)} ms`);
    result.saveMs = await saveMs(inNetns(root, ns.name), backend);
    say(`iptables-save of the whole table: ${Math.round(result.saveMs)} ms`);
    publish();

    await run.stopProxy();
    say('restart over its own rules ...');
    result.restart = await measuredStart(run, ns.name);
    say(
      `restart: ${Math.round(result.restart.ms)} ms, ${result.restart.restoreLines} restore lines, ` +
        `peak RSS ${Math.round(result.restart.peakRssMiB)} MiB`,
    );
    publish();
    await run.stopProxy();

    const other = createNetns('takeover');
    namespaces.push(other);
    say('takeover: writing the rules the way kube-proxy does ...');
    const t0 = performance.now();
    await run.writeLikeKubeProxy(other.name);
    result.kernelWriteMs = performance.now() - t0;
    say(`  written in ${Math.round(result.kernelWriteMs)} ms; starting the proxy on them ...`);
    result.takeover = await measuredStart(run, other.name);
    say(
      `takeover: ${Math.round(result.takeover.ms)} ms, ${result.takeover.restoreLines} restore lines, ` +
        `peak RSS ${Math.round(result.takeover.peakRssMiB)} MiB`,
    );
    publish();
    await run.stopProxy();

    const cliNs = createNetns('cli');
    namespaces.push(cliNs);
    say('switchboard run as a child process (API source): first sync, then steady ...');
    result.cli = await runCliSteady(run, dir, cliNs.name);
    say(
      `switchboard run: peak RSS ${Math.round(result.cli.firstSyncPeakMiB)} MiB at its first sync, ` +
        `steady RSS ${Math.round(result.cli.steadyRssMiB)} MiB`,
    );
    publish();

    const once = createNetns('once');
    namespaces.push(once);
    say('run --once --from the JSON dump ...');
    const dump = await run.writeDump(dir);
    result.onceFromManifest = runOnceFromManifest(run, dir, dump, once.name);
    say(
      `run --once --from: ${Math.round(result.onceFromManifest.ms)} ms, peak RSS ${Math.round(result.onceFromManifest.peakRssMiB)} MiB`,
    );
    result.complete = true;
  } catch (e) {
    result.failures.push(`stopped: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await run?.close().catch(() => undefined);
    for (const ns of namespaces) ns.remove();
    rmSync(dir, { recursive: true, force: true });
  }
  publish();
  return result;
}
