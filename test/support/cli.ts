/**
 * Running `switchboard` as a child process in tests, and reading its dry-run output.
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

export function startCli(args: string[], options: StartOptions = {}): Run {
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
  return { child, stdout: () => stdout, stderr: () => stderr, exit };
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

/** The `synced` log records of a run's stderr. */
export const syncedLogs = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; seq?: number; full?: boolean })
    .filter((r) => r.msg === 'synced');

/** The address a server logged as `<what> server listening`. */
export function listeningAddress(stderr: string, what: string): string | null {
  return new RegExp(`"address":"([^"]+)","msg":"${what} server listening"`).exec(stderr)?.[1] ?? null;
}
