/**
 * Running `switchboard` as a child process in tests: start it, wait for a log record, stop it
 * by its pid, and read its dry-run output and its logs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export const ROOT = new URL('../../', import.meta.url).pathname;

export interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartOptions {
  /**
   * A command that execs the CLI, e.g. `['ip', 'netns', 'exec', ns]` to run it in a network
   * namespace (the child's pid is then still the CLI's own, since it execs).
   */
  prefix?: readonly string[];
  /** the environment (default: this process's) */
  env?: NodeJS.ProcessEnv;
}

/** healthz and metrics on loopback, on ports the kernel picks (`listeningAddress` reads them) */
export const LOOPBACK_SERVERS = [
  '--healthz-bind-address',
  '127.0.0.1:0',
  '--metrics-bind-address',
  '127.0.0.1:0',
] as const;
/** no healthz or metrics server */
export const NO_SERVERS = ['--healthz-bind-address', '', '--metrics-bind-address', ''] as const;

/** The runs startCli started that have not exited yet (one set per test file: vitest isolates files). */
const going = new Set<Run>();

export function startCli(args: readonly string[], options: StartOptions = {}): Run {
  const argv = [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli.ts'), ...args];
  const [command = process.execPath, ...rest] = [...(options.prefix ?? []), ...argv];
  const child = spawn(command, rest, {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: options.env } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const run = { child, stdout: () => stdout, stderr: () => stderr, exit };
  going.add(run);
  void exit.then(() => going.delete(run));
  return run;
}

const ended = (run: Run) => run.child.exitCode !== null || run.child.signalCode !== null;

/**
 * Waits until `condition` holds (a log record in the run's stderr, say); fails at once, with
 * the run's stderr, when the run exits first.
 */
export async function waitForRun(
  run: Run,
  condition: () => boolean,
  what: string,
  timeoutMs?: number,
): Promise<void> {
  await waitFor(() => condition() || ended(run), what, timeoutMs);
  if (ended(run)) {
    throw new Error(
      `switchboard exited (${run.child.exitCode ?? run.child.signalCode}) before ${what}:\n${run.stderr()}`,
    );
  }
}

/** startCli, then waits for the first `synced` log record (the run is still going). */
export async function startSynced(
  args: readonly string[],
  options: StartOptions = {},
  timeoutMs?: number,
): Promise<Run> {
  const run = startCli(args, options);
  await waitForRun(run, () => syncedLogs(run.stderr()).length >= 1, 'the first sync', timeoutMs);
  return run;
}

/** Sends SIGTERM to the run's pid; resolves with how it exited. */
export function terminate(run: Run): Run['exit'] {
  run.child.kill('SIGTERM');
  return run.exit;
}

/** For afterEach: SIGKILL to every run of this file still going, and wait for their ends. */
export async function killRuns(): Promise<void> {
  const runs = [...going].filter((run) => !ended(run));
  for (const run of runs) run.child.kill('SIGKILL');
  await Promise.all(runs.map((run) => run.exit));
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The `# sync N kind family` blocks of dry-run output, by header. */
export function blocks(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of stdout.split(/^(?=# sync )/m)) {
    const newline = part.indexOf('\n');
    out.set(part.slice(0, newline), part.slice(newline + 1));
  }
  return out;
}

export interface LogRecord {
  msg: string;
  level: number;
  [field: string]: unknown;
}

/** The log records (JSON lines) of a run's stderr. */
export const logRecords = (stderr: string): LogRecord[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogRecord);

/** The `synced` log records of a run's stderr. */
export const syncedLogs = (stderr: string) =>
  logRecords(stderr).filter((r) => r.msg === 'synced') as (LogRecord & { seq?: number; full?: boolean })[];

/** The address a server logged as `<what> server listening`. */
export function listeningAddress(stderr: string, what: string): string | null {
  return new RegExp(`"address":"([^"]+)","msg":"${what} server listening"`).exec(stderr)?.[1] ?? null;
}
