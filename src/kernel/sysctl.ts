/**
 * Kernel parameters, read and written with `sysctl` through a CommandRunner, so that in
 * tests they are those of the test's network namespace (net.* sysctls are per namespace)
 * and never the host's.
 */
import type { Logger } from '../log.js';
import type { CommandRunner } from './exec.js';

// Dotted names only: interface names containing dots would need sysctl's `/` form.
const SYSCTL_NAME = /^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$/;
const VALUE = /^[A-Za-z0-9_.:-]+$/;

export const ROUTE_LOCALNET = 'net.ipv4.conf.all.route_localnet';
export const TCP_BE_LIBERAL = 'net.netfilter.nf_conntrack_tcp_be_liberal';

function checkName(name: string): void {
  if (!SYSCTL_NAME.test(name)) throw new Error(`sysctl: ${JSON.stringify(name)} is not a sysctl name`);
}

/** The value (trimmed), or undefined when the key does not exist or cannot be read. */
export async function readSysctl(runner: CommandRunner, name: string): Promise<string | undefined> {
  checkName(name);
  try {
    const r = await runner.run('sysctl', ['-n', name], { reject: false, timeoutMs: 10_000 });
    return r.exitCode === 0 ? r.stdout.trim() : undefined;
  } catch {
    // sysctl missing or hung: the same as unreadable.
    return undefined;
  }
}

/** Sets a value; throws a CommandError naming the key when the kernel refuses. */
export async function writeSysctl(runner: CommandRunner, name: string, value: string): Promise<void> {
  checkName(name);
  if (!VALUE.test(value)) throw new Error(`sysctl ${name}: ${JSON.stringify(value)} is not a plain value`);
  await runner.run('sysctl', ['-q', '-w', `${name}=${value}`], { timeoutMs: 10_000 });
}

/**
 * Sets `name` to `value` unless it already has it; returns whether it wrote. The value is
 * read back: procps' `sysctl -w` exits 0 even when the kernel refuses the write (a
 * read-only /proc/sys, a key this namespace may not set), so its exit code proves nothing.
 */
export async function ensureSysctl(
  runner: CommandRunner,
  name: string,
  value: string,
  log?: Logger,
): Promise<boolean> {
  const current = await readSysctl(runner, name);
  if (current === value) return false;
  await writeSysctl(runner, name, value);
  const after = await readSysctl(runner, name);
  if (after !== value) {
    throw new Error(
      `sysctl ${name}=${value} did not take effect (it reads ${after === undefined ? 'nothing' : JSON.stringify(after)}): is /proc/sys writable here?`,
    );
  }
  log?.info({ sysctl: name, from: current ?? null, to: value }, 'set sysctl');
  return true;
}
