/**
 * `npm run bench`: render and kernel apply benchmarks on synthetic clusters.
 *
 * Without a child flag it runs every scenario's render benchmark in a fresh child process
 * (`node --import tsx bench/render.bench.ts --scenario 10000x10`), so each one's peak RSS
 * is its own, then, per iptables backend, the kernel apply benchmark in another child
 * (`--kernel-scenario 10000x10 --backend nft`, see kernel-scenario.ts); then it prints
 * the tables, the targets and one JSON line per scenario and backend. A child prints
 * `RESULT <json>` (a kernel child after each phase, so a time-boxed run keeps its figures).
 *
 * After each scenario's render child, manifest loading: `switchboard render --from` a dump
 * of the scenario's cluster in kubectl's YAML and JSON, against a bare parse of the same
 * file (see manifest-load.ts). Then, per iptables backend, the `run` path benchmark in
 * another child (`--run-scenario 10000x10 --backend nft`, see run-scenario.ts): the proxy
 * with the API source (an in-process API double), first sync from an empty table, watch
 * event -> synced against the one-chain-restore floor, restart over its own rules,
 * takeover from kube-proxy-identical rules.
 *
 * Options: `--scenarios 1000x10,10000x10`; `--suites render,manifest,kernel,run` (default
 * all) picks the parts; `--compiled` runs the children on tsc output instead of tsx (see
 * compile.ts); `--manifest-rounds <n>` (default 3); `--max-old-space-size <MiB>` runs the
 * run path's proxy (and its `run --once` child) with that V8 heap cap, as the chart does
 * (`--max-semi-space-size <MiB>` likewise caps its young generation);
 * `--no-kernel` skips the kernel and run parts (skipped anyway, with the reason, without root
 * or `ip netns`); `--backends nft,legacy`; `--kernel-time-box <seconds>` (default 600) stops
 * one kernel or run child that takes longer; `--ipvs` adds the IPVS rows, measured in the VM
 * guest (see bench/ipvs.ts; it boots qemu, and 10000x10's cold start takes minutes there),
 * `--ipvs-time-box <seconds>` (default 2400) bounds that guest run. Exits non-zero when a
 * partial render or a partial apply does not write exactly what it should, or a child fails.
 */
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Backend } from '../src/kernel/backend.js';
import { compileBench, compiledCli } from './compile.js';
import { checkIpvsTargets, ipvsJsonLines, ipvsTable, ipvsUnavailableReason, runIpvsBench } from './ipvs.js';
import { type KernelResult, notMeasured, runKernelScenario } from './kernel-scenario.js';
import { type ManifestLoadResult, runManifestLoad } from './manifest-load.js';
import { backendUnavailableReason, kernelUnavailableReason, sweepNamespaces } from './netns.js';
import {
  checkKernelTargets,
  checkManifestTargets,
  checkRunPathTargets,
  checkTargets,
  jsonLines,
  kernelReportLines,
  kernelTable,
  manifestJsonLines,
  manifestTable,
  resultsTable,
  runPathTable,
  targetLines,
} from './report.js';
import { type RunPathResult, runPathNotMeasured, runRunPathScenario } from './run-scenario.js';
import { runScenario, type ScenarioResult } from './scenario.js';
import { DEFAULT_NODES, DEFAULT_SEED } from './synthetic-cluster.js';
import { parseScenarioName } from './world.js';

const DEFAULT_SCENARIOS = ['1000x10', '10000x10'];
const ALL_BACKENDS: readonly Backend[] = ['nft', 'legacy'];
const DEFAULT_TIME_BOX_S = 600;
const DEFAULT_MANIFEST_ROUNDS = 3;
const RESULT_PREFIX = 'RESULT ';
const SHAPE = { nodes: DEFAULT_NODES, seed: DEFAULT_SEED };
const thisFile = fileURLToPath(import.meta.url);
const repoRoot = resolve(dirname(thisFile), '..');

/** How a child is started: the TypeScript source through tsx, or a compiled entry point. */
type ChildCommand = readonly string[];

interface ChildRun<T> {
  /** the last RESULT the child printed */
  result: T | null;
  ok: boolean;
  timedOut: boolean;
  /** ended by ctrl-C or a kill from outside (the whole run stops then) */
  interrupted: boolean;
  pid: number | undefined;
  describe: string;
}

/**
 * Runs a child to its end (or its time box: SIGTERM, on which it deletes its namespaces).
 * `liveStderr` shows a kernel child's progress as it goes.
 */
function runChild<T>(
  command: ChildCommand,
  args: string[],
  options: { timeoutMs?: number; liveStderr?: boolean } = {},
): ChildRun<T> {
  const child = spawnSync(process.execPath, [...command, ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', options.liveStderr ? 'inherit' : 'pipe'],
    killSignal: 'SIGTERM',
    ...(options.timeoutMs ? { timeout: options.timeoutMs } : {}),
  });
  const lines = (child.stdout ?? '').split('\n').filter((l) => l.startsWith(RESULT_PREFIX));
  const last = lines.at(-1);
  const timedOut = (child.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (!last && !options.liveStderr) process.stderr.write(child.stderr ?? '');
  // A kernel child catches the signal to delete its namespaces, then exits 128 + signal number.
  const signalled = child.signal !== null || [129, 130, 143].includes(child.status ?? 0);
  return {
    result: last ? (JSON.parse(last.slice(RESULT_PREFIX.length)) as T) : null,
    ok: child.status === 0,
    timedOut,
    interrupted: signalled && !timedOut,
    pid: child.pid,
    describe: child.error && !timedOut ? child.error.message : `exit ${child.status ?? child.signal}`,
  };
}

interface KernelPlan {
  backends: Backend[];
  /** printed when the kernel part, or a backend of it, is left out */
  notes: string[];
}

function kernelPlan(noKernel: boolean, backends: Backend[]): KernelPlan {
  if (noKernel) return { backends: [], notes: ['kernel apply benchmark skipped: --no-kernel'] };
  const reason = kernelUnavailableReason();
  if (reason) return { backends: [], notes: [`kernel apply benchmark skipped: ${reason}`] };
  const notes: string[] = [];
  const usable = backends.filter((b) => {
    const why = backendUnavailableReason(b);
    if (why) notes.push(`kernel apply benchmark skipped for ${b}: ${why}`);
    return !why;
  });
  const swept = sweepNamespaces();
  if (swept.length > 0) notes.push(`deleted namespaces left by earlier benchmark runs: ${swept.join(' ')}`);
  return { backends: usable, notes };
}

/** A measuring child of one suite: its name in progress lines and messages, its flag, its empty row. */
interface ScenarioChild<R> {
  label: string;
  flag: string;
  notMeasured: (scenario: string, backend: Backend) => R;
}

const KERNEL_CHILD: ScenarioChild<KernelResult> = {
  label: 'kernel',
  flag: '--kernel-scenario',
  notMeasured: (scenario, backend) => notMeasured(scenario, backend, 'not reached (time box)'),
};

const RUN_PATH_CHILD: ScenarioChild<RunPathResult> = {
  label: 'run path',
  flag: '--run-scenario',
  notMeasured: runPathNotMeasured,
};

/**
 * Runs one scenario of a kernel-backed suite in a child under the time box; a child stopped
 * by the time box keeps the figures it reported before.
 */
function runScenarioChild<R>(
  suite: ScenarioChild<R>,
  command: ChildCommand,
  scenario: string,
  backend: Backend,
  timeBoxS: number,
  messages: string[],
): { result: R | null; failed: boolean; interrupted: boolean } {
  process.stderr.write(`${suite.label} ${scenario} ${backend} ...\n`);
  const run = runChild<R>(command, [suite.flag, scenario, '--backend', backend], {
    timeoutMs: timeBoxS * 1000,
    liveStderr: true,
  });
  // A child killed hard cannot clean up after itself.
  const leftovers = run.pid === undefined ? [] : sweepNamespaces(run.pid);
  if (leftovers.length > 0) messages.push(`deleted namespaces the child left: ${leftovers.join(' ')}`);
  if (run.timedOut) {
    messages.push(
      `TIME BOX ${suite.label} ${scenario} ${backend}: stopped after ${timeBoxS} s (--kernel-time-box <seconds> changes it); ` +
        'figures measured before are kept, the rest shows as -',
    );
    return { result: run.result ?? suite.notMeasured(scenario, backend), failed: false, interrupted: false };
  }
  if (!run.result && !run.interrupted) {
    messages.push(
      `FAIL ${suite.label} ${scenario} ${backend}: the child produced no result (${run.describe})`,
    );
  }
  return { result: run.result, failed: !run.ok, interrupted: run.interrupted };
}

const ALL_SUITES = ['render', 'manifest', 'kernel', 'run'] as const;
type Suite = (typeof ALL_SUITES)[number];

function parseSuites(text: string | undefined): Suite[] {
  if (text === undefined) return [...ALL_SUITES];
  return text.split(',').map((s) => {
    const name = s.trim();
    if (!(ALL_SUITES as readonly string[]).includes(name)) {
      throw new Error(`--suites: unknown suite ${JSON.stringify(name)} (known: ${ALL_SUITES.join(', ')})`);
    }
    return name as Suite;
  });
}

function parseBackend(name: string, option: string): Backend {
  if (!(ALL_BACKENDS as readonly string[]).includes(name)) {
    throw new Error(`${option}: unknown backend ${JSON.stringify(name)} (known: ${ALL_BACKENDS.join(', ')})`);
  }
  return name as Backend;
}

function parseTimeBox(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TIME_BOX_S;
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0) throw new Error(`--kernel-time-box: expected seconds > 0, got ${text}`);
  return s;
}

/**
 * `--max-old-space-size <MiB>` (the V8 heap cap the run path's proxy runs with: the chart sets
 * one) and `--max-semi-space-size <MiB>` (its young generation's): the node flag, or none.
 */
function v8SizeFlag(flag: 'max-old-space-size' | 'max-semi-space-size', text: string | undefined): string[] {
  if (text === undefined) return [];
  const mib = Number(text);
  if (!Number.isInteger(mib) || mib <= 0) throw new Error(`--${flag}: expected MiB > 0, got ${text}`);
  return [`--${flag}=${mib}`];
}

function parseRounds(text: string | undefined): number {
  if (text === undefined) return DEFAULT_MANIFEST_ROUNDS;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--manifest-rounds: expected a whole number >= 0, got ${text}`);
  return n;
}

interface RunAllOptions {
  scenarios: readonly string[];
  suites: readonly Suite[];
  compiled: boolean;
  noKernel: boolean;
  backends: Backend[];
  timeBoxS: number;
  manifestRounds: number;
  /** node flags of the run path's child (and the CLI it starts), e.g. the chart's heap cap */
  runNodeFlags: string[];
}

interface Collected {
  results: ScenarioResult[];
  kernel: KernelResult[];
  manifests: ManifestLoadResult[];
  runPath: RunPathResult[];
  /** printed after the figures: time boxes, child failures */
  messages: string[];
  failed: boolean;
  interrupted: boolean;
}

function runChildren(
  o: RunAllOptions,
  command: ChildCommand,
  cli: ChildCommand,
  backends: readonly Backend[],
): Collected {
  const c: Collected = {
    results: [],
    kernel: [],
    manifests: [],
    runPath: [],
    messages: [],
    failed: false,
    interrupted: false,
  };
  for (const scenario of o.scenarios) {
    if (o.suites.includes('render')) {
      process.stderr.write(`running ${scenario} ...\n`);
      const render = runChild<ScenarioResult>(command, ['--scenario', scenario]);
      c.interrupted = render.interrupted;
      if (render.result) c.results.push(render.result);
      else if (!render.interrupted) {
        c.failed = true;
        c.messages.push(`FAIL ${scenario}: the child process produced no result (${render.describe})`);
      }
    }
    if (!c.interrupted && o.suites.includes('manifest') && o.manifestRounds > 0) {
      process.stderr.write(`manifest loading ${scenario} ...\n`);
      const loads = runManifestLoad(
        scenario,
        { ...SHAPE, ...parseScenarioName(scenario) },
        cli,
        repoRoot,
        o.manifestRounds,
      );
      c.manifests.push(...loads);
      c.failed ||= loads.some((l) => l.failures.length > 0);
    }
    for (const backend of c.interrupted ? [] : backends) {
      if (o.suites.includes('kernel')) {
        const k = runScenarioChild(KERNEL_CHILD, command, scenario, backend, o.timeBoxS, c.messages);
        if (k.result) c.kernel.push(k.result);
        c.failed ||= k.failed;
        c.interrupted = k.interrupted;
        if (c.interrupted) break;
      }
      if (o.suites.includes('run')) {
        const r = runScenarioChild(
          RUN_PATH_CHILD,
          [...o.runNodeFlags, ...command],
          scenario,
          backend,
          o.timeBoxS,
          c.messages,
        );
        if (r.result) c.runPath.push(r.result);
        c.failed ||= r.failed;
        c.interrupted = r.interrupted;
        if (c.interrupted) break;
      }
    }
    if (c.interrupted) break;
  }
  return c;
}

function printReport(c: Collected, notes: readonly string[]): void {
  if (c.results.length > 0) {
    console.log(resultsTable(c.results));
    console.log('');
  }
  for (const note of notes) console.log(note);
  if (c.kernel.length > 0) {
    console.log(kernelTable(c.kernel));
    console.log('');
  }
  if (c.manifests.length > 0) {
    console.log(manifestTable(c.manifests));
    console.log('');
  }
  if (c.runPath.length > 0) {
    console.log(runPathTable(c.runPath));
    console.log('');
  }
  const checks = [
    ...checkTargets(c.results),
    ...checkKernelTargets(c.kernel),
    ...checkManifestTargets(c.manifests),
    ...checkRunPathTargets(c.runPath),
  ];
  for (const line of targetLines(checks)) console.log(line);
  for (const line of kernelReportLines(c.kernel)) console.log(line);
  console.log('');
  for (const r of c.results) {
    if (r.failures.length === 0) {
      console.log(
        `verified ${r.scenario}: partial renders write exactly the expected chains; kernel model matches a full render`,
      );
    }
    for (const f of r.failures) console.log(`FAIL ${r.scenario}: ${f}`);
  }
  for (const k of c.kernel) for (const f of k.failures) console.log(`FAIL ${k.scenario} ${k.backend}: ${f}`);
  for (const m of c.manifests)
    for (const f of m.failures) console.log(`FAIL ${m.scenario} ${m.format}: ${f}`);
  for (const r of c.runPath)
    for (const f of r.failures) console.log(`FAIL run ${r.scenario} ${r.backend}: ${f}`);
  for (const m of c.messages) console.log(m);
  for (const r of c.results) for (const line of jsonLines(r, c.kernel, c.runPath)) console.log(line);
  for (const line of manifestJsonLines(c.manifests)) console.log(line);
}

function runAll(o: RunAllOptions): number {
  const command = o.compiled ? [compileBench(repoRoot, thisFile)] : ['--import', 'tsx', thisFile];
  const cli = o.compiled ? [compiledCli(repoRoot)] : ['--import', 'tsx', resolve(repoRoot, 'src', 'cli.ts')];
  console.log(
    `runtime: ${o.compiled ? 'tsc output (--compiled)' : 'tsx (esbuild keepNames wrappers included; --compiled for tsc output)'}, node ${process.version}` +
      (o.runNodeFlags.length > 0 ? `; run path with ${o.runNodeFlags.join(' ')}` : ''),
  );
  const plan = kernelPlan(o.noKernel, o.backends);
  const c = runChildren(o, command, cli, plan.backends);
  printReport(c, plan.notes);
  if (c.interrupted) {
    console.log('INTERRUPTED: the run was stopped; the figures above are incomplete');
    return 130;
  }
  const failures = [...c.results, ...c.kernel, ...c.runPath].some((r) => r.failures.length > 0);
  return c.failed || failures ? 1 : 0;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string' },
      'kernel-scenario': { type: 'string' },
      'run-scenario': { type: 'string' },
      suites: { type: 'string' },
      backend: { type: 'string' },
      scenarios: { type: 'string' },
      compiled: { type: 'boolean' },
      'no-kernel': { type: 'boolean' },
      backends: { type: 'string' },
      'kernel-time-box': { type: 'string' },
      'manifest-rounds': { type: 'string' },
      'max-semi-space-size': { type: 'string' },
      ipvs: { type: 'boolean' },
      'ipvs-time-box': { type: 'string' },
      'max-old-space-size': { type: 'string' },
    },
    strict: true,
  });
  if (values.scenario !== undefined) {
    const result = runScenario(values.scenario, SHAPE);
    console.log(RESULT_PREFIX + JSON.stringify(result));
    return result.failures.length > 0 ? 1 : 0;
  }
  if (values['kernel-scenario'] !== undefined) {
    const backend = parseBackend(values.backend ?? '', '--backend');
    const result = await runKernelScenario(values['kernel-scenario'], backend, SHAPE, (r) =>
      console.log(RESULT_PREFIX + JSON.stringify(r)),
    );
    return result.failures.length > 0 ? 1 : 0;
  }
  if (values['run-scenario'] !== undefined) {
    const backend = parseBackend(values.backend ?? '', '--backend');
    const result = await runRunPathScenario(values['run-scenario'], backend, SHAPE, (r) =>
      console.log(RESULT_PREFIX + JSON.stringify(r)),
    );
    return result.failures.length > 0 ? 1 : 0;
  }
  const scenarios = values.scenarios ? values.scenarios.split(',') : DEFAULT_SCENARIOS;
  const code = runAll({
    scenarios,
    suites: parseSuites(values.suites),
    compiled: values.compiled === true,
    noKernel: values['no-kernel'] === true,
    backends: (values.backends?.split(',') ?? ALL_BACKENDS).map((b) => parseBackend(b.trim(), '--backends')),
    timeBoxS: parseTimeBox(values['kernel-time-box']),
    manifestRounds: parseRounds(values['manifest-rounds']),
    runNodeFlags: [
      ...v8SizeFlag('max-old-space-size', values['max-old-space-size']),
      ...v8SizeFlag('max-semi-space-size', values['max-semi-space-size']),
    ],
  });
  if (!values.ipvs || code === 130) return code;
  return Math.max(code, await runIpvsRows(scenarios, parseTimeBox(values['ipvs-time-box'] ?? '2400')));
}

/** The IPVS rows (`--ipvs`): in the VM guest; printed after everything else. */
async function runIpvsRows(scenarios: readonly string[], timeBoxS: number): Promise<number> {
  const reason = ipvsUnavailableReason();
  if (reason) {
    console.log(`IPVS benchmark skipped: ${reason}`);
    return 0;
  }
  process.stderr.write(`ipvs ${scenarios.join(',')} in the VM guest ...\n`);
  const run = await runIpvsBench(scenarios, timeBoxS);
  console.log('');
  console.log(ipvsTable(run));
  console.log('');
  for (const line of targetLines(checkIpvsTargets(run.results))) console.log(line);
  for (const m of run.messages) console.log(m);
  for (const line of ipvsJsonLines(run)) console.log(line);
  return run.failed ? 1 : 0;
}

process.exitCode = await main();
