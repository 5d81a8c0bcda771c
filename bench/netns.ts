/**
 * Network namespaces for the kernel benchmark, so that every iptables command it runs
 * lands in a namespace it made, never in the host's (the root namespace's) rules.
 *
 * Names are `sbbench-<pid>-<n>`. Each one is registered before `ip netns add` and
 * deleted at the end; if the process ends early (an error, ctrl-C, the parent's time
 * box sending SIGTERM) an exit hook deletes what is left, and a later run deletes the
 * namespaces of benchmark processes that no longer exist (a SIGKILL leaves them).
 * Adapted from the kernel tests' harness (test/kernel/netns.ts), reduced to what a
 * lone namespace needs.
 */
import { execFileSync } from 'node:child_process';
import type { Backend } from '../src/kernel/backend.js';
import { iptablesBinary } from '../src/kernel/backend.js';

const PREFIX = 'sbbench';
const live = new Set<string>();
let hooksInstalled = false;
let counter = 0;

/** Runs a command in the root namespace for namespace bookkeeping only; throws with its stderr. */
function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

function deleteQuietly(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 30_000 });
  } catch {
    // already gone
  }
  live.delete(name);
}

function deleteAllLive(): void {
  for (const name of [...live]) deleteQuietly(name);
}

const SIGNAL_EXIT_CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', deleteAllLive);
  for (const [signal, code] of Object.entries(SIGNAL_EXIT_CODES)) {
    process.on(signal, () => {
      process.stderr.write(`${signal}: deleting the benchmark's network namespaces\n`);
      deleteAllLive();
      process.exit(code);
    });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function benchNamespaces(): { name: string; pid: number }[] {
  const out: { name: string; pid: number }[] = [];
  for (const line of ip(['netns', 'list']).split('\n')) {
    const name = line.split(/\s/, 1)[0] ?? '';
    const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(name);
    if (m) out.push({ name, pid: Number(m[1]) });
  }
  return out;
}

/** Deletes the namespaces of one benchmark process (after it ended) or of every dead one. */
export function sweepNamespaces(ofPid?: number): string[] {
  const removed: string[] = [];
  for (const { name, pid } of benchNamespaces()) {
    const stale = ofPid === undefined ? pid !== process.pid && !pidAlive(pid) : pid === ofPid;
    if (!stale) continue;
    deleteQuietly(name);
    removed.push(name);
  }
  return removed;
}

export interface BenchNetns {
  name: string;
  /** deletes the namespace (and everything in it); safe to call twice */
  remove(): void;
}

export function createNetns(label: string): BenchNetns {
  installHooks();
  counter += 1;
  const name = `${PREFIX}-${process.pid}-${counter}-${label}`;
  live.add(name);
  ip(['netns', 'add', name]);
  return { name, remove: () => deleteQuietly(name) };
}

/**
 * Why the kernel benchmark cannot run here, or undefined when it can: root and a
 * working `ip netns`.
 */
export function kernelUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not running as root (the kernel part needs root for ip netns)';
  const probe = `${PREFIX}-${process.pid}-probe`;
  try {
    ip(['netns', 'add', probe]);
    try {
      ip(['netns', 'exec', probe, 'true']);
    } finally {
      deleteQuietly(probe);
    }
  } catch (e) {
    return `ip netns is unavailable: ${(e as Error).message}`;
  }
  return undefined;
}

/** Why one iptables backend cannot be measured (its iptables-restore does not run), or undefined. */
export function backendUnavailableReason(backend: Backend): string | undefined {
  const restore = iptablesBinary(backend, 'IPv4', 'restore');
  try {
    execFileSync(restore, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return undefined;
  } catch (e) {
    return `${restore} does not run: ${(e as Error).message}`;
  }
}
