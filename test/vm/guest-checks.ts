/**
 * Host side of the guest checks: compiles them (with the project code they import) into
 * dist/, boots the guest once, runs them all in sequence there and parses their results.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type CheckResult, isCheckResult } from './guest/check.js';
import { REPO_ROOT } from './kernel.js';
import { type GuestRunOptions, type GuestRunResult, runInGuest } from './runner.js';

export const CHECKS_DIR = join(REPO_ROOT, 'test', 'vm', 'guest', 'checks');
const GUEST_TSCONFIG = join(REPO_ROOT, 'test', 'vm', 'guest', 'tsconfig.json');
export const GUEST_MAIN = join(REPO_ROOT, 'dist', 'test', 'vm', 'guest', 'main.js');

/** The checks, by name (`checks/<name>.ts`), in the order they run: by name. */
export function listGuestChecks(dir: string = CHECKS_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -'.ts'.length))
    .sort();
}

/**
 * Compiles the guest entry, its checks and the project code they import into dist/
 * (incremental: quick when nothing changed). Throws with tsc's output on a type error.
 */
export function buildGuestCode(): void {
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', GUEST_TSCONFIG], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      stdio: 'pipe',
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `compiling the guest checks (tsc -p ${GUEST_TSCONFIG}) failed:\n${err.stdout ?? ''}${err.stderr ?? err.message}`,
    );
  }
  if (!existsSync(GUEST_MAIN)) throw new Error(`tsc -p ${GUEST_TSCONFIG} did not write ${GUEST_MAIN}`);
}

export interface GuestChecksRun {
  /** By check name; a check the guest never reported is absent. */
  results: Map<string, CheckResult>;
  /** Lines of the guest's stdout that were not results. */
  otherStdout: string[];
  run: GuestRunResult;
}

/** Builds, boots once, runs `names` (default: every check) in the guest and parses the results. */
export async function runGuestChecks(
  names: readonly string[] = listGuestChecks(),
  options: Pick<GuestRunOptions, 'timeoutMs' | 'env' | 'onStderr' | 'onStdout'> = {},
): Promise<GuestChecksRun> {
  buildGuestCode();
  const run = await runInGuest({
    command: ['node', GUEST_MAIN, ...names],
    timeoutMs: options.timeoutMs ?? 10 * 60_000,
    env: options.env,
    onStdout: options.onStdout,
    onStderr: options.onStderr,
  });
  const results = new Map<string, CheckResult>();
  const otherStdout: string[] = [];
  for (const line of run.stdout.split('\n')) {
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    if (isCheckResult(parsed)) results.set(parsed.name, parsed);
    else otherStdout.push(line);
  }
  return { results, otherStdout, run };
}
