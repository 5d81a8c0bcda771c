/**
 * The `ipset` tool through a CommandRunner: read sets by name, apply `ipset restore -exist`
 * batches, test and destroy sets. Output formats and failure modes are ipset 7.17's, as
 * measured on this project's hosts (real ipset in a scratch network namespace):
 * - `ipset list -n` names every set (one per line); `ipset save NAME` prints
 *   `create NAME TYPE OPTIONS` and `add NAME ENTRY` lines, entries in hash order;
 *   `ipset list -t NAME` prints the header only (type, family, references, entry count).
 * - `ipset restore` is **not** atomic. It sends consecutive add/del lines of one set in one
 *   message: when the tool itself refuses a line (a syntax error, a set that does not
 *   exist), the lines sent before stay applied and those still buffered (of the set in
 *   hand) are lost; when the kernel refuses an element (a full set, a /0 net, a duplicate
 *   without -exist), the elements before it stay. Either way it stops at the first failure
 *   with `Error in line N: ...` and exit code 1: every add/del failure is reported.
 * - `-exist` ignores duplicate adds, missing dels and the `create` of an existing set of
 *   the same type, **whatever its family or sizes** (a `create` with another family is
 *   silently ignored); a `create` with another type fails.
 * - `swap` needs the same type and family; `destroy` of a set an iptables rule uses fails
 *   ("in use by a kernel component"); `destroy` without a name destroys *every* set, so
 *   this wrapper never sends one.
 */
import { CommandError, type CommandRunner } from './exec.js';
import { canonicalEntry, isKnownSetType, type SetFamily } from './ipset-entries.js';

export const IPSET_BINARY = 'ipset';
const TIMEOUT_MS = 120_000;

/** A set as `ipset save` prints it. */
export interface SavedIpset {
  name: string;
  type: string;
  /** null for types without a family (bitmap:port) */
  family: SetFamily | null;
  /** create options after the type, e.g. `{ hashsize: '1024', maxelem: '65536' }` */
  options: Readonly<Record<string, string>>;
  /** canonical text (see ipset-entries.ts), sorted byte-wise */
  entries: string[];
}

/** The header of `ipset list -t NAME`. */
export interface IpsetHeader {
  name: string;
  type: string;
  family: SetFamily | null;
  references: number;
  entries: number;
}

/** ipset refused a command or a restore line. */
export class IpsetError extends Error {
  override readonly name = 'IpsetError';
  constructor(
    message: string,
    readonly stderr: string,
    readonly exitCode: number,
    /** 1-based line of the restore input ipset blamed */
    readonly lineNumber?: number,
    /** that line of the input */
    readonly line?: string,
  ) {
    super(message);
  }

  /** "Set cannot be destroyed: it is in use by a kernel component" */
  get inUse(): boolean {
    return /in use by a kernel component/.test(this.stderr);
  }

  get missingSet(): boolean {
    return /set with the given name does not exist/.test(this.stderr);
  }
}

const SET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,30}$/;

function checkName(name: string): void {
  if (!SET_NAME.test(name))
    throw new Error(`ipset: ${JSON.stringify(name)} is not a set name Switchboard uses`);
}

/** Splits on whitespace, keeping a double-quoted word (a comment) whole. */
function words(line: string): string[] {
  return line.match(/"[^"]*"|\S+/g) ?? [];
}

const VALUED_OPTIONS = new Set([
  'family',
  'hashsize',
  'maxelem',
  'range',
  'bucketsize',
  'initval',
  'timeout',
  'netmask',
  'markmask',
  'size',
]);

/** Parses `ipset save` output (any number of sets). */
export function parseIpsetSave(text: string): SavedIpset[] {
  const sets = new Map<string, SavedIpset>();
  text.split('\n').forEach((raw, i) => {
    const w = words(raw.trim());
    if (w.length === 0) return;
    const where = `ipset save output, line ${i + 1}`;
    if (w[0] === 'create') {
      const [, name, type, ...rest] = w;
      if (!name || !type) throw new Error(`${where}: incomplete create line`);
      const options: Record<string, string> = {};
      for (let j = 0; j < rest.length; j++) {
        const key = rest[j]!;
        if (VALUED_OPTIONS.has(key) && rest[j + 1] !== undefined) options[key] = rest[++j]!;
        else options[key] = '';
      }
      const family = options['family'] === 'inet6' ? 'inet6' : options['family'] === 'inet' ? 'inet' : null;
      sets.set(name, {
        name,
        type,
        family: type === 'bitmap:port' ? null : (family ?? 'inet'),
        options,
        entries: [],
      });
      return;
    }
    if (w[0] === 'add') {
      const [, name, entry] = w;
      const set = name === undefined ? undefined : sets.get(name);
      if (!set || entry === undefined) throw new Error(`${where}: add line before its create line`);
      set.entries.push(isKnownSetType(set.type) ? canonicalEntry(shapeOf(set), entry) : entry);
      return;
    }
    throw new Error(`${where}: unexpected ${JSON.stringify(w[0])}`);
  });
  for (const set of sets.values()) set.entries.sort();
  return [...sets.values()];
}

function shapeOf(set: Pick<SavedIpset, 'type' | 'family' | 'options'>) {
  const range = /^(\d+)-(\d+)$/.exec(set.options['range'] ?? '');
  return {
    type: set.type,
    family: set.family,
    ...(range ? { range: [Number(range[1]), Number(range[2])] as const } : {}),
  };
}

/** Parses `ipset list -t NAME`. */
export function parseIpsetHeader(text: string): IpsetHeader {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const name = field('Name');
  const type = field('Type');
  const header = field('Header') ?? '';
  const references = Number(field('References'));
  const entries = Number(field('Number of entries'));
  if (!name || !type || !Number.isInteger(references) || !Number.isInteger(entries)) {
    throw new Error(`ipset list -t: cannot read ${JSON.stringify(text.trim())}`);
  }
  const family = /\bfamily (inet6?)\b/.exec(header)?.[1] as SetFamily | undefined;
  return { name, type, family: type === 'bitmap:port' ? null : (family ?? 'inet'), references, entries };
}

/** `ipset v7.17: Error in line 4: Syntax error: ...` → 4 and the message. */
export function parseIpsetError(stderr: string): { lineNumber?: number; message: string } {
  const text = stderr.trim();
  const m = /Error in line (\d+): (.*)/.exec(text);
  if (m) return { lineNumber: Number(m[1]), message: m[2]! };
  return { message: text.replace(/^ipset v[\d.]+:\s*/, '') || '(no message)' };
}

/** ipset's version (`ipset v7.17, protocol version: 7` → `7.17`). */
export function parseIpsetVersion(output: string): string {
  const m = /ipset v(\d+\.\d+(?:\.\d+)?)/.exec(output);
  if (!m) throw new Error(`ipset --version: cannot read ${JSON.stringify(output.trim())}`);
  return m[1]!;
}

export interface IpsetTool {
  /** `ipset --version` */
  version(): Promise<string>;
  /** `ipset list -n`: every set's name */
  listNames(): Promise<string[]>;
  /** `ipset save NAME`, or null when there is no such set */
  save(name: string): Promise<SavedIpset | null>;
  /** `ipset list -t NAME`, or null when there is no such set */
  header(name: string): Promise<IpsetHeader | null>;
  /** `ipset test NAME ENTRY` */
  test(name: string, entry: string): Promise<boolean>;
  /** `ipset restore -exist` of `text`; throws IpsetError naming the line ipset blamed */
  restore(text: string): Promise<void>;
  /** `ipset destroy NAME`; throws IpsetError (`inUse` when an iptables rule uses it) */
  destroy(name: string): Promise<void>;
}

export class Ipset implements IpsetTool {
  constructor(private readonly runner: CommandRunner) {}

  private run(args: string[], input?: string) {
    return this.runner.run(IPSET_BINARY, args, {
      reject: false,
      timeoutMs: TIMEOUT_MS,
      ...(input !== undefined ? { input } : {}),
    });
  }

  private fail(args: string[], r: { stderr: string; exitCode: number }, input?: string): IpsetError {
    const { lineNumber, message } = parseIpsetError(r.stderr);
    const line =
      lineNumber !== undefined && input !== undefined ? input.split('\n')[lineNumber - 1] : undefined;
    const where =
      lineNumber === undefined ? '' : ` at line ${lineNumber}${line === undefined ? '' : ` (${line})`}`;
    return new IpsetError(
      `ipset ${args.join(' ')} failed (exit ${r.exitCode})${where}: ${message}`,
      r.stderr,
      r.exitCode,
      lineNumber,
      line,
    );
  }

  async version(): Promise<string> {
    const r = await this.run(['--version']);
    if (r.exitCode !== 0) throw this.fail(['--version'], r);
    return parseIpsetVersion(r.stdout + r.stderr);
  }

  async listNames(): Promise<string[]> {
    const r = await this.run(['list', '-n']);
    if (r.exitCode !== 0) throw this.fail(['list', '-n'], r);
    return r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
  }

  async save(name: string): Promise<SavedIpset | null> {
    checkName(name);
    const r = await this.run(['save', name]);
    if (r.exitCode !== 0) {
      const err = this.fail(['save', name], r);
      if (err.missingSet) return null;
      throw err;
    }
    const sets = parseIpsetSave(r.stdout);
    return sets.find((s) => s.name === name) ?? null;
  }

  async header(name: string): Promise<IpsetHeader | null> {
    checkName(name);
    const r = await this.run(['list', '-t', name]);
    if (r.exitCode !== 0) {
      const err = this.fail(['list', '-t', name], r);
      if (err.missingSet) return null;
      throw err;
    }
    return parseIpsetHeader(r.stdout);
  }

  async test(name: string, entry: string): Promise<boolean> {
    checkName(name);
    const r = await this.run(['test', name, entry]);
    if (r.exitCode === 0) return true;
    if (/is NOT in set/.test(r.stderr + r.stdout)) return false;
    throw this.fail(['test', name, entry], r);
  }

  async restore(text: string): Promise<void> {
    const args = ['restore', '-exist'];
    const r = await this.run(args, text);
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw this.fail(args, r, text);
  }

  async destroy(name: string): Promise<void> {
    checkName(name);
    const r = await this.run(['destroy', name]);
    if (r.exitCode !== 0) throw this.fail(['destroy', name], r);
  }
}

/** True when `e` says the `ipset` binary could not be started. */
export function ipsetMissing(e: unknown): boolean {
  return e instanceof CommandError && e.reason === 'spawn';
}
