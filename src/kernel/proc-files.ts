/**
 * Kernel settings that live in files under /proc and /sys (sysctls in /proc/sys, module
 * parameters in /sys/module, a process's own oom_score_adj), read and written directly, as
 * kube-proxy does, behind one small interface so the decisions built on them are unit-tested
 * with a fake (test/support/fake-proc-files.ts) and never against this host's global values.
 *
 * Why files and not the `sysctl` tool: procps-ng 4.0.2's `sysctl -w` exits 0 when the kernel
 * refuses the write, so only the write's own error says whether it happened; and whether
 * a file is read-only in the current network namespace is exactly that error.
 *
 * Which files a process sees is the kernel's business: /proc/sys/net/* belongs to the
 * network namespace of the process that opens it, so `switchboard run` started in a test's
 * namespace (`ip netns exec`) reads and writes that namespace's per-namespace values.
 */

import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

/** The kernel (or a read-only mount) does not let this process write the file here. */
export class NotWritableError extends Error {
  override readonly name = 'NotWritableError';
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`${path}: not writable here (${code})`);
  }
}

/**
 * errno values that mean "not writable from here" rather than "bad value": EACCES/EPERM for
 * a read-only sysctl (nf_conntrack_max is 0444 outside the initial network namespace),
 * EROFS for /proc/sys or /sys mounted read-only (unprivileged containers), EOPNOTSUPP for
 * the conntrack hash size written from outside the initial network namespace.
 */
const NOT_WRITABLE_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'EOPNOTSUPP', 'ENOTSUP']);

export interface ProcFiles {
  /** The file's content, trimmed; undefined when it does not exist or cannot be read. */
  read(path: string): Promise<string | undefined>;
  /** Writes `value`; throws NotWritableError when it may not be written here, else the error. */
  write(path: string, value: string): Promise<void>;
  /** The node's online CPUs (not the process's cpuset, which a static CPU policy narrows). */
  onlineCpus(): Promise<number>;
}

/** `net.netfilter.nf_conntrack_max` → `/proc/sys/net/netfilter/nf_conntrack_max`. */
export function sysctlPath(name: string): string {
  if (!/^[a-z0-9_]+(\.[a-z0-9_]+)+$/.test(name))
    throw new Error(`${JSON.stringify(name)} is not a sysctl name`);
  return `/proc/sys/${name.replaceAll('.', '/')}`;
}

/** Counts the CPUs of a kernel CPU list such as `0-3,8,10-11`; undefined when it is not one. */
export function countCpuList(text: string): number | undefined {
  let count = 0;
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return undefined;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) return undefined;
    count += last - first + 1;
  }
  return count > 0 ? count : undefined;
}

/** The real files. */
export class HostProcFiles implements ProcFiles {
  async read(path: string): Promise<string | undefined> {
    try {
      return (await readFile(path, 'utf8')).trim();
    } catch {
      return undefined;
    }
  }

  async write(path: string, value: string): Promise<void> {
    try {
      // No O_CREAT|O_TRUNC surprises on procfs/sysfs: 'r+' opens an existing file for writing.
      await writeFile(path, value, { flag: 'r+' });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== undefined && NOT_WRITABLE_CODES.has(code)) throw new NotWritableError(path, code);
      throw e;
    }
  }

  async onlineCpus(): Promise<number> {
    const online = await this.read('/sys/devices/system/cpu/online');
    return (online === undefined ? undefined : countCpuList(online)) ?? availableParallelism();
  }
}
