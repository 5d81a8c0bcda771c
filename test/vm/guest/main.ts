/**
 * The guest-side entry (bundled to dist/vm/test/vm/guest/main.js, run by plain node in the VM):
 * runs the named checks one after another and prints one JSON line per check
 * (CheckResult: {name, ok, detail, ms}) on stdout as each ends. Anything else the checks
 * print goes to stderr, so stdout stays parseable.
 *
 *   node dist/vm/test/vm/guest/main.js CHECK...     (names of files in test/vm/guest/checks/)
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExecaRunner } from '../../../src/kernel/exec.js';
import { createScratchNetns, Topology } from '../../kernel/netns.js';
import { type CheckContext, type CheckResult, DEFAULT_CHECK_TIMEOUT_MS, type GuestCheck } from './check.js';

// This file is dist/vm/test/vm/guest/main.js; the bundle mirrors the repository's layout.
const BUNDLE_DIR = fileURLToPath(new URL('../../../', import.meta.url));
const REPO_ROOT = dirname(dirname(BUNDLE_DIR));
const GUEST_CLI = join(BUNDLE_DIR, 'src', 'cli.js');

interface CheckModule {
  default?: GuestCheck;
  timeoutMs?: number;
}

const emit = (r: CheckResult) => process.stdout.write(`${JSON.stringify(r)}\n`);
// Checks log with console.log now and then; keep stdout for results.
console.log = console.error;
console.info = console.error;

function errorText(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

async function runCheck(name: string): Promise<CheckResult> {
  const started = performance.now();
  const notes: string[] = [];
  const cleanups: Array<() => unknown> = [];
  const t: CheckContext = {
    sh: new ExecaRunner(),
    repoRoot: REPO_ROOT,
    cli: GUEST_CLI,
    note: (line) => notes.push(line),
    defer: (cleanup) => cleanups.push(cleanup),
    scratchNetns: async () => {
      const scratch = await createScratchNetns();
      cleanups.push(() => scratch.teardown());
      return scratch;
    },
    topology: async (pods) => {
      const topo = await Topology.create({ pods });
      cleanups.push(() => topo.teardown());
      return topo;
    },
  };
  let error: unknown;
  try {
    if (!/^[\w.-]+$/.test(name)) throw new Error(`bad check name ${JSON.stringify(name)}`);
    // A URL, not a literal template: the bundler must leave this import to run time.
    const mod = (await import(new URL(`./checks/${name}.js`, import.meta.url).href)) as CheckModule;
    if (typeof mod.default !== 'function') {
      throw new Error(`test/vm/guest/checks/${name}.ts has no default export function`);
    }
    const timeoutMs = mod.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      mod.default(t),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  } catch (e) {
    error = e;
  }
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (e) {
      notes.push(`cleanup failed: ${errorText(e)}`);
      error ??= e;
    }
  }
  const detail = [...notes, ...(error === undefined ? [] : [errorText(error)])].join('\n');
  return { name, ok: error === undefined, detail, ms: Math.round(performance.now() - started) };
}

const names = process.argv.slice(2);
if (names.length === 0) {
  process.stderr.write('usage: node dist/vm/test/vm/guest/main.js CHECK...\n');
  process.exit(2);
}
let failed = 0;
for (const name of names) {
  const result = await runCheck(name);
  if (!result.ok) failed += 1;
  emit(result);
}
// Exit now rather than when the event loop drains: a check that leaked a handle must not hang
// the guest (netns.ts's exit hook still kills its servers and deletes its namespaces).
process.exit(failed === 0 ? 0 : 1);
