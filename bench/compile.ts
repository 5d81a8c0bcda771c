/**
 * Compiles the benchmark and the sources it imports with tsc, the way production code is
 * built, for `--compiled` runs. Under tsx every named closure is wrapped in esbuild's
 * `__name(...)` (keepNames), which costs real time in hot paths; tsc output has no wrapper.
 * Type checking is left to `npm run typecheck` (--noCheck), so the build takes seconds.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export const BUILD_DIR = join('dist', 'bench-build');

/** The compiled CLI (built along with the benchmark, for the children that run it). */
export function compiledCli(repoRoot: string): string {
  return join(repoRoot, BUILD_DIR, 'src', 'cli.js');
}

/** Builds the benchmark and the CLI into <repoRoot>/dist/bench-build and returns the compiled entry point. */
export function compileBench(repoRoot: string, entry: string): string {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const outDir = join(repoRoot, BUILD_DIR);
  const args = [
    tsc,
    entry,
    join(repoRoot, 'src', 'cli.ts'),
    // forked by the run path benchmark, not imported
    join(repoRoot, 'bench', 'api-double-process.ts'),
    '--outDir',
    outDir,
    '--rootDir',
    repoRoot,
    '--module',
    'nodenext',
    '--moduleResolution',
    'nodenext',
    '--target',
    'es2022',
    '--types',
    'node',
    '--skipLibCheck',
    '--noCheck',
  ];
  const result = spawnSync(process.execPath, args, { cwd: repoRoot, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`tsc failed (exit ${result.status ?? result.signal}):\n${result.stdout}${result.stderr}`);
  }
  return join(outDir, 'bench', 'render.bench.js');
}
