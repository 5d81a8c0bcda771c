/**
 * Host side of the guest checks: bundles them (with the project code they import, and the
 * switchboard CLI) into dist/vm/, boots the guest once, runs them all in sequence there and
 * parses their results.
 *
 * Why a bundle and not tsc's one-file-per-module output: under TCG node's module loader is
 * the bottleneck, not the code. Importing execa (~150 files) takes 13-22 s in the guest and
 * ~0.3 s as one bundled file; the CLI loads ~1,400 files. esbuild writes the guest entry, each
 * check and src/cli.ts as entry points sharing a few chunks, in about 2 s, so it runs on
 * every test run and dist/vm/ is never stale. Type checking stays with `npm run typecheck`.
 */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type CheckResult, isCheckResult } from './guest/check.js';
import { REPO_ROOT } from './kernel.js';
import { type GuestRunOptions, type GuestRunResult, runInGuest } from './runner.js';

export const CHECKS_DIR = join(REPO_ROOT, 'test', 'vm', 'guest', 'checks');
/** The bundle: `dist/vm/<path in the repo>.js` for each entry point, plus `dist/vm/chunks/`. */
export const GUEST_BUNDLE_DIR = join(REPO_ROOT, 'dist', 'vm');
export const GUEST_MAIN = join(GUEST_BUNDLE_DIR, 'test', 'vm', 'guest', 'main.js');
/** The switchboard CLI, bundled: `node dist/vm/src/cli.js --help` takes ~8 s in the guest (unbundled ~1 min). */
export const GUEST_CLI = join(GUEST_BUNDLE_DIR, 'src', 'cli.js');

/** The checks, by name (`checks/<name>.ts`), in the order they run: by name. */
export function listGuestChecks(dir: string = CHECKS_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -'.ts'.length))
    .sort();
}

/**
 * Bundles the guest entry, every check and the CLI into dist/vm/ (replacing what was there),
 * plus `extraEntries` (repository paths, e.g. the IPVS benchmark's guest side: each lands at
 * `dist/vm/<path>.js`). Throws with esbuild's messages on a syntax or resolution error.
 */
export async function buildGuestBundle(extraEntries: readonly string[] = []): Promise<void> {
  // esbuild comes with tsx (and vite); loaded only here, so nothing else depends on it.
  const { build } = await import('esbuild');
  const entryPoints = [
    join(REPO_ROOT, 'test', 'vm', 'guest', 'main.ts'),
    ...listGuestChecks().map((name) => join(CHECKS_DIR, `${name}.ts`)),
    join(REPO_ROOT, 'src', 'cli.ts'),
    ...extraEntries.map((path) => join(REPO_ROOT, path)),
  ];
  const staging = `${GUEST_BUNDLE_DIR}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    await build({
      entryPoints,
      outbase: REPO_ROOT,
      outdir: staging,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      chunkNames: 'chunks/[name]-[hash]',
      sourcemap: 'linked',
      // Bundled CommonJS packages call require(): give ESM output one.
      banner: {
        js: "import { createRequire as __sbVmCreateRequire } from 'node:module'; const require = __sbVmCreateRequire(import.meta.url);",
      },
      logLevel: 'silent',
    });
    rmSync(GUEST_BUNDLE_DIR, { recursive: true, force: true });
    renameSync(staging, GUEST_BUNDLE_DIR);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  if (!existsSync(GUEST_MAIN)) throw new Error(`esbuild did not write ${relative(REPO_ROOT, GUEST_MAIN)}`);
}

export interface GuestChecksRun {
  /** By check name; a check the guest never reported is absent. */
  results: Map<string, CheckResult>;
  /** Lines of the guest's stdout that were not results. */
  otherStdout: string[];
  run: GuestRunResult;
}

/** Bundles, boots once, runs `names` (default: every check) in the guest and parses the results. */
export async function runGuestChecks(
  names: readonly string[] = listGuestChecks(),
  options: Pick<GuestRunOptions, 'timeoutMs' | 'env' | 'onStderr' | 'onStdout'> = {},
): Promise<GuestChecksRun> {
  await buildGuestBundle();
  const run = await runInGuest({
    command: ['node', '--enable-source-maps', GUEST_MAIN, ...names],
    timeoutMs: options.timeoutMs ?? 10 * 60_000,
    env: options.env,
    onStdout: options.onStdout,
    onStderr: options.onStderr,
  });
  return { ...parseGuestStdout(run.stdout), run };
}

/** Splits the guest's stdout into check results (one JSON line each) and anything else. */
export function parseGuestStdout(stdout: string): Omit<GuestChecksRun, 'run'> {
  const results = new Map<string, CheckResult>();
  const otherStdout: string[] = [];
  for (const line of stdout.split('\n')) {
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
  return { results, otherStdout };
}
