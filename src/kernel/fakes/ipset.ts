/**
 * An in-memory `ipset` (7.17): the sets, and the command line and `restore` input the real
 * tool takes, with the behaviour measured on real ipset (see src/kernel/ipset.ts):
 * - restore sends consecutive add/del lines of one set in one message: a failure in
 *   userspace (a syntax error, a set that does not exist) drops the lines still buffered
 *   and stops; a kernel failure while sending (a full set) keeps the elements before the
 *   failing one. Either way: `Error in line N: ...`, exit 1, nothing after it runs.
 * - Without `-exist`, a duplicate add or a missing del fails like any kernel refusal.
 * - Some element errors come from the kernel, not the tool (a /0 net, a port out of a
 *   bitmap's range): the lines before them in the same batch are kept.
 * - `-exist` ignores a `create` of an existing set of the same type, whatever its family or
 *   sizes; another type fails. `swap` needs the same type and family. A set used by an
 *   iptables rule (see `references`) cannot be destroyed or renamed. `destroy` without a
 *   name destroys every set.
 * - `save` prints entries in hash order, not the order they were added.
 */
import type { RunResult } from '../exec.js';
import { canonicalEntry, IpsetEntryError, type SetFamily } from '../ipset-entries.js';

interface FakeSet {
  name: string;
  type: string;
  family: SetFamily | null;
  options: Record<string, string>;
  entries: Set<string>;
}

class IpsetFailure extends Error {}

const HASH_TYPES = new Set(['hash:ip,port', 'hash:ip,port,ip', 'hash:ip,port,net', 'hash:ip', 'hash:net']);
const VERSION = 'ipset v7.17';

/** FNV-1a, for a stable "hash order" that is not insertion order. */
function fnv(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function words(line: string): string[] {
  return line.match(/"[^"]*"|\S+/g) ?? [];
}

interface Pending {
  command: 'add' | 'del';
  set: FakeSet;
  /** `refusal`: an element the kernel refuses when it arrives */
  items: { lineNumber: number; entry: string; refusal?: string }[];
}

export class FakeIpset {
  private readonly sets = new Map<string, FakeSet>();
  /** how many iptables rules use a set (wired to the iptables double) */
  references: (name: string) => number = () => 0;

  run(args: readonly string[], input = ''): RunResult {
    let exist = false;
    let terse = false;
    let namesOnly = false;
    const rest: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a === '-exist' || a === '-!') exist = true;
      else if (a === '-t' || a === '-terse') terse = true;
      else if (a === '-n' || a === '-name') namesOnly = true;
      else if (a === '-o' || a === '-output') i++;
      else if (a === '-q' || a === '-quiet' || a === '-s' || a === '-sorted') continue;
      else rest.push(a);
    }
    const [command, ...operands] = rest;
    try {
      switch (command) {
        case '--version':
        case '-v':
        case 'version':
          return { stdout: `${VERSION}, protocol version: 7\n`, stderr: '', exitCode: 0 };
        case 'restore':
          return this.restore(input, exist);
        case 'save':
          return { stdout: this.save(operands[0]), stderr: '', exitCode: 0 };
        case 'list':
          return { stdout: this.list(operands[0], { terse, namesOnly }), stderr: '', exitCode: 0 };
        case 'test': {
          const message = this.test(operands);
          return message.present
            ? { stdout: '', stderr: `Warning: ${message.text}\n`, exitCode: 0 }
            : { stdout: '', stderr: `${message.text}\n`, exitCode: 1 };
        }
        case undefined:
          throw new IpsetFailure('No command specified.');
        default:
          this.execute(command, operands, exist);
          return { stdout: '', stderr: '', exitCode: 0 };
      }
    } catch (e) {
      if (e instanceof IpsetFailure || e instanceof IpsetEntryError) {
        return { stdout: '', stderr: `${VERSION}: ${e.message}\n`, exitCode: 1 };
      }
      throw e;
    }
  }

  private get(name: string | undefined): FakeSet {
    const set = name === undefined ? undefined : this.sets.get(name);
    if (!set) throw new IpsetFailure('The set with the given name does not exist');
    return set;
  }

  private restore(input: string, exist: boolean): RunResult {
    let pending: Pending | null = null;
    const flush = () => {
      if (!pending) return;
      const batch: Pending = pending;
      pending = null;
      for (const item of batch.items) {
        try {
          if (item.refusal !== undefined) throw new IpsetFailure(item.refusal);
          this.change(batch.command, batch.set, item.entry, exist);
        } catch (e) {
          if (e instanceof IpsetFailure) throw Object.assign(e, { lineNumber: item.lineNumber });
          throw e;
        }
      }
    };
    const lines = input.split('\n');
    try {
      for (const [i, raw] of lines.entries()) {
        const lineNumber = i + 1;
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) continue;
        const [command, ...operands] = words(line);
        try {
          if (command === 'add' || command === 'del') {
            const set = this.get(operands[0]);
            let item: Pending['items'][number];
            try {
              item = { lineNumber, entry: canonicalEntry(this.shape(set), operands[1] ?? '') };
            } catch (e) {
              if (!(e instanceof IpsetEntryError && e.byKernel)) throw e;
              item = { lineNumber, entry: '', refusal: e.message };
            }
            const open = pending as Pending | null;
            if (open && (open.command !== command || open.set !== set)) flush();
            pending ??= { command, set, items: [] };
            pending.items.push(item);
            continue;
          }
          if (command === 'test') {
            flush();
            const result = this.test(operands);
            if (!result.present) return { stdout: '', stderr: `${result.text}\n`, exitCode: 1 };
            continue;
          }
          flush();
          this.execute(command ?? '', operands, exist);
        } catch (e) {
          if (!(e instanceof IpsetFailure || e instanceof IpsetEntryError)) throw e;
          const at = (e as { lineNumber?: number }).lineNumber ?? lineNumber;
          pending = null;
          return { stdout: '', stderr: `${VERSION}: Error in line ${at}: ${e.message}\n`, exitCode: 1 };
        }
      }
      flush();
    } catch (e) {
      if (!(e instanceof IpsetFailure)) throw e;
      const at = (e as { lineNumber?: number }).lineNumber ?? lines.length;
      return { stdout: '', stderr: `${VERSION}: Error in line ${at}: ${e.message}\n`, exitCode: 1 };
    }
    return { stdout: '', stderr: '', exitCode: 0 };
  }

  private shape(set: FakeSet) {
    const range = /^(\d+)-(\d+)$/.exec(set.options['range'] ?? '');
    return {
      type: set.type,
      family: set.family,
      ...(range ? { range: [Number(range[1]), Number(range[2])] as const } : {}),
    };
  }

  private change(command: 'add' | 'del', set: FakeSet, entry: string, tolerant: boolean): void {
    if (command === 'add') {
      if (set.entries.has(entry)) {
        if (!tolerant) throw new IpsetFailure("Element cannot be added to the set: it's already added");
        return;
      }
      if (set.entries.size >= Number(set.options['maxelem'] ?? '65536')) {
        throw new IpsetFailure('Hash is full, cannot add more elements');
      }
      set.entries.add(entry);
    } else if (!set.entries.delete(entry) && !tolerant) {
      throw new IpsetFailure("Element cannot be deleted from the set: it's not added");
    }
  }

  private execute(command: string, operands: string[], exist: boolean): void {
    switch (command) {
      case 'create':
      case 'n':
        this.create(operands, exist);
        return;
      case 'add':
      case 'del': {
        const set = this.get(operands[0]);
        this.change(command, set, canonicalEntry(this.shape(set), operands[1] ?? ''), exist);
        return;
      }
      case 'destroy':
      case 'x': {
        if (operands[0] === undefined) {
          if ([...this.sets.keys()].some((n) => this.references(n) > 0)) {
            throw new IpsetFailure('Set cannot be destroyed: it is in use by a kernel component');
          }
          this.sets.clear();
          return;
        }
        if (!this.sets.has(operands[0])) {
          if (exist) return;
          throw new IpsetFailure('The set with the given name does not exist');
        }
        if (this.references(operands[0]) > 0) {
          throw new IpsetFailure('Set cannot be destroyed: it is in use by a kernel component');
        }
        this.sets.delete(operands[0]);
        return;
      }
      case 'flush':
      case 'f':
        if (operands[0] === undefined) for (const s of this.sets.values()) s.entries.clear();
        else this.get(operands[0]).entries.clear();
        return;
      case 'swap':
      case 'w': {
        const a = this.get(operands[0]);
        const b = this.get(operands[1]);
        if (a.type !== b.type || a.family !== b.family) {
          throw new IpsetFailure('The sets cannot be swapped: their type does not match');
        }
        const { options, entries } = a;
        a.options = b.options;
        a.entries = b.entries;
        b.options = options;
        b.entries = entries;
        return;
      }
      case 'rename':
      case 'e': {
        const a = this.get(operands[0]);
        const to = operands[1];
        if (!to) throw new IpsetFailure('Missing second mandatory argument to command rename');
        if (this.sets.has(to)) throw new IpsetFailure('A set with the new name already exists');
        if (this.references(a.name) > 0)
          throw new IpsetFailure('Set cannot be renamed: it is in use by a kernel component');
        this.sets.delete(a.name);
        a.name = to;
        this.sets.set(to, a);
        return;
      }
      default:
        throw new IpsetFailure(`Syntax error: unknown command ${command}`);
    }
  }

  private create(operands: string[], exist: boolean): void {
    const [name, type, ...rest] = operands;
    if (!name || !type) throw new IpsetFailure('Missing mandatory argument to command create');
    if (name.length > 31)
      throw new IpsetFailure(`Syntax error: setname '${name}' is longer than 31 characters`);
    if (!HASH_TYPES.has(type) && type !== 'bitmap:port') {
      throw new IpsetFailure(`Syntax error: Typename '${type}' is unknown`);
    }
    const options: Record<string, string> = {};
    for (let i = 0; i < rest.length; i++) {
      const key = rest[i]!;
      if (key === 'comment' || key === 'counters') options[key] = '';
      else options[key] = rest[++i] ?? '';
    }
    const existing = this.sets.get(name);
    if (existing) {
      if (exist && existing.type === type) return;
      throw new IpsetFailure('Set cannot be created: set with the same name already exists');
    }
    let family: SetFamily | null = null;
    if (type === 'bitmap:port') {
      if (!/^\d+-\d+$/.test(options['range'] ?? ''))
        throw new IpsetFailure('Syntax error: Missing mandatory option: range');
    } else {
      family = options['family'] === 'inet6' ? 'inet6' : 'inet';
      options['family'] = family;
      options['hashsize'] ??= '1024';
      options['maxelem'] ??= '65536';
    }
    this.sets.set(name, { name, type, family, options, entries: new Set() });
  }

  private test(operands: string[]): { present: boolean; text: string } {
    const set = this.get(operands[0]);
    const entry = canonicalEntry(this.shape(set), operands[1] ?? '');
    const present = set.entries.has(entry);
    return { present, text: `${entry} is ${present ? '' : 'NOT '}in set ${set.name}.` };
  }

  private createLine(set: FakeSet): string {
    if (set.type === 'bitmap:port') return `create ${set.name} bitmap:port range ${set.options['range']}`;
    const initval = `0x${fnv(set.name).toString(16).padStart(8, '0')}`;
    return `create ${set.name} ${set.type} family ${set.family} hashsize ${set.options['hashsize']} maxelem ${set.options['maxelem']} bucketsize 12 initval ${initval}`;
  }

  private hashOrder(set: FakeSet): string[] {
    return [...set.entries].sort((a, b) => fnv(a) - fnv(b));
  }

  private save(name?: string): string {
    const sets = name === undefined ? [...this.sets.values()] : [this.get(name)];
    const out: string[] = [];
    for (const set of sets) {
      out.push(this.createLine(set));
      for (const e of this.hashOrder(set)) out.push(`add ${set.name} ${e}`);
    }
    return out.map((l) => `${l}\n`).join('');
  }

  private list(name: string | undefined, opts: { terse: boolean; namesOnly: boolean }): string {
    if (opts.namesOnly) {
      const names = name === undefined ? [...this.sets.keys()] : [this.get(name).name];
      return names.map((n) => `${n}\n`).join('');
    }
    const sets = name === undefined ? [...this.sets.values()] : [this.get(name)];
    return sets
      .map((set) => {
        const header = this.createLine(set).split(' ').slice(3).join(' ');
        const lines = [
          `Name: ${set.name}`,
          `Type: ${set.type}`,
          `Revision: ${set.type === 'bitmap:port' ? 3 : 7}`,
          `Header: ${header}`,
          `Size in memory: ${264 + 16 * set.entries.size}`,
          `References: ${this.references(set.name)}`,
          `Number of entries: ${set.entries.size}`,
        ];
        if (!opts.terse) lines.push('Members:', ...this.hashOrder(set));
        return `${lines.join('\n')}\n`;
      })
      .join('\n');
  }

  // ------------------------------------------------------------------------------------------
  // For tests

  /** The set's entries (canonical, sorted), or undefined when it does not exist. */
  entries(name: string): string[] | undefined {
    const set = this.sets.get(name);
    return set ? [...set.entries].sort() : undefined;
  }

  /** Whether the set exists (what iptables checks for `--match-set`). */
  has(name: string): boolean {
    return this.sets.has(name);
  }

  names(): string[] {
    return [...this.sets.keys()];
  }

  typeOf(name: string): { type: string; family: SetFamily | null } | undefined {
    const set = this.sets.get(name);
    return set ? { type: set.type, family: set.family } : undefined;
  }
}
