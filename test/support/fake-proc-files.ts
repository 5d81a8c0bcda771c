/**
 * An in-memory /proc and /sys for the conntrack and OOM settings, with the kernel's quirks:
 *
 * - outside the initial network namespace (`namespace: 'other'`) the global
 *   nf_conntrack_max and nf_conntrack_buckets are read-only (0444: EACCES), and the hash size
 *   module parameter refuses writes (EOPNOTSUPP);
 * - in the initial namespace, writing the hash size resizes the table, which
 *   nf_conntrack_buckets then reports;
 * - `readOnlyMount` makes every write fail with EROFS (a container's read-only /proc/sys);
 * - a file that does not exist cannot be written (ENOENT), a sysctl rejects a non-integer (EINVAL).
 *
 * Every successful write is recorded in order.
 */
import { NotWritableError, type ProcFiles } from '../../src/kernel/proc-files.js';

const GLOBAL_READ_ONLY_OUTSIDE_INIT = new Set([
  '/proc/sys/net/netfilter/nf_conntrack_max',
  '/proc/sys/net/netfilter/nf_conntrack_buckets',
]);
const HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize';
const BUCKETS = '/proc/sys/net/netfilter/nf_conntrack_buckets';

export interface FakeProcFilesOptions {
  /** initial file contents by path */
  files?: Record<string, string>;
  namespace?: 'initial' | 'other';
  readOnlyMount?: boolean;
  cpus?: number;
}

export function errnoError(code: string, path: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: ${path}`) as NodeJS.ErrnoException;
  error.code = code;
  return error;
}

export class FakeProcFiles implements ProcFiles {
  readonly files: Map<string, string>;
  readonly writes: { path: string; value: string }[] = [];
  namespace: 'initial' | 'other';
  readOnlyMount: boolean;
  cpus: number;

  constructor(options: FakeProcFilesOptions = {}) {
    this.files = new Map(Object.entries(options.files ?? {}));
    this.namespace = options.namespace ?? 'initial';
    this.readOnlyMount = options.readOnlyMount ?? false;
    this.cpus = options.cpus ?? 2;
  }

  async read(path: string): Promise<string | undefined> {
    return this.files.get(path)?.trim();
  }

  async write(path: string, value: string): Promise<void> {
    if (!this.files.has(path)) throw errnoError('ENOENT', path);
    if (this.readOnlyMount) throw new NotWritableError(path, 'EROFS');
    if (this.namespace === 'other' && GLOBAL_READ_ONLY_OUTSIDE_INIT.has(path))
      throw new NotWritableError(path, 'EACCES');
    if (this.namespace === 'other' && path === HASHSIZE) throw new NotWritableError(path, 'EOPNOTSUPP');
    if (!/^-?\d+$/.test(value.trim())) throw errnoError('EINVAL', path);
    this.files.set(path, value);
    if (path === HASHSIZE && this.files.has(BUCKETS)) this.files.set(BUCKETS, value);
    this.writes.push({ path, value });
  }

  async onlineCpus(): Promise<number> {
    return this.cpus;
  }
}
