/**
 * An in-memory iptables (1.8.9, either backend, both families), enough for the IPVS
 * applier and cleanup to be tested without root: `iptables-restore [--noflush]`,
 * `iptables-save [-t T]` and `iptables -N/-X/-F/-C/-I/-A/-D/-L`. Rules are held as
 * iptables-save prints them (iptables/saved-form.ts, checked against real iptables in
 * test/kernel/saved-form.test.ts and test/ipvs-apply/save-form.test.ts), so `-C` and `-D`
 * match a rule given as an argument vector against one written by restore. A rule that
 * model does not know is held as given.
 *
 * What the kernel checks is checked: a jump to a chain that does not exist, a
 * `--match-set` of a set that does not exist (the ipset double answers), `-X` of a chain
 * still jumped to, `-D` of a rule that is not there. A restore input is one transaction
 * (as with the nft backend): it all applies or none of it does. Messages and exit codes
 * follow iptables-nft 1.8.9 as measured (2 for a parse-time refusal with "Error occurred at
 * line: N", 4 for a commit-time one with "line N: ...").
 */
import { splitRuleWords } from '../../backends/iptables/cleanup.js';
import { savedForm } from '../../backends/iptables/saved-form.js';
import type { IPFamily } from '../../model/ip.js';
import type { Backend } from '../backend.js';
import type { RunResult } from '../exec.js';

const BUILTIN: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};
const TABLE_ORDER = ['raw', 'mangle', 'nat', 'filter'];
const TARGETS = new Set([
  'ACCEPT',
  'DROP',
  'RETURN',
  'REJECT',
  'MASQUERADE',
  'MARK',
  'DNAT',
  'SNAT',
  'LOG',
  'CONNMARK',
  'NOTRACK',
  'CT',
  'QUEUE',
  'NFLOG',
  'TRACE',
]);

interface Chain {
  builtin: boolean;
  rules: string[];
}

type Table = Map<string, Chain>;
type Tables = Map<string, Table> & { family?: IPFamily };

/** A rule's text as iptables-save prints it (without `-A CHAIN`); as given when saved-form.ts does not model it. */
function canonical(chain: string, words: readonly string[], family: IPFamily): string {
  const given = saveForm(words);
  const saved = savedForm(`-A ${chain} ${given}`, family);
  return saved === null ? given : saved.slice(`-A ${chain} `.length);
}

class Refusal extends Error {
  constructor(
    message: string,
    readonly phase: 'parse' | 'commit',
    readonly lineNumber?: number,
  ) {
    super(message);
  }
}

/** Re-joins words, quoting those that need it to stay one word (iptables-save's own quoting is saved-form.ts's). */
function saveForm(words: readonly string[]): string {
  return words.map((w) => (w === '' || /[\s"]/.test(w) ? `"${w.replace(/"/g, '\\"')}"` : w)).join(' ');
}

function newTable(name: string): Table {
  return new Map((BUILTIN[name] ?? []).map((c) => [c, { builtin: true, rules: [] }]));
}

function cloneTables(tables: Tables): Tables {
  return new Map(
    [...tables].map(([name, t]) => [
      name,
      new Map([...t].map(([c, ch]) => [c, { builtin: ch.builtin, rules: [...ch.rules] }])),
    ]),
  );
}

function targetOf(words: readonly string[]): string | undefined {
  for (let i = 0; i < words.length - 1; i++) if (words[i] === '-j' || words[i] === '-g') return words[i + 1];
  return undefined;
}

function setsOf(words: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length - 1; i++) if (words[i] === '--match-set') out.push(words[i + 1]!);
  return out;
}

export class FakeIptables {
  /** whether an ipset exists (wired to the ipset double); every set exists by default */
  setExists: (name: string) => boolean = () => true;
  private readonly states = new Map<string, Tables>();

  private tables(backend: Backend, family: IPFamily): Tables {
    const key = `${backend} ${family}`;
    let t = this.states.get(key);
    if (!t) {
      t = new Map() as Tables;
      t.family = family;
      this.states.set(key, t);
    }
    return t;
  }

  /** Whether `binary` is one of the iptables binaries this double answers for. */
  static handles(binary: string): boolean {
    return /^ip6?tables(-nft|-legacy)?(-restore|-save)?$/.test(binary);
  }

  run(binary: string, args: readonly string[], input = ''): RunResult {
    const m = /^(ip6?tables)(?:-(nft|legacy))?(?:-(restore|save))?$/.exec(binary);
    if (!m) throw new Error(`fake iptables: not an iptables binary: ${binary}`);
    const family: IPFamily = m[1] === 'ip6tables' ? 'IPv6' : 'IPv4';
    const backend: Backend = m[2] === 'legacy' ? 'legacy' : 'nft';
    const tool = m[3] ?? 'iptables';
    const version = `${m[1]}${tool === 'iptables' ? '' : `-${tool}`} v1.8.9 (${backend === 'nft' ? 'nf_tables' : 'legacy'})`;
    if (args.includes('--version') || args.includes('-V'))
      return { stdout: `${version}\n`, stderr: '', exitCode: 0 };
    const state = this.tables(backend, family);
    if (tool === 'save') {
      const t = args.indexOf('-t');
      return {
        stdout: this.save(state, t === -1 ? undefined : args[t + 1], version),
        stderr: '',
        exitCode: 0,
      };
    }
    if (tool === 'restore') return this.restore(state, input, !args.includes('--noflush'), version, m[1]!);
    return this.command(state, args, version, m[1]!);
  }

  private save(state: Tables, only: string | undefined, version: string): string {
    const out = [`# Generated by ${version.replace(/^ip6?tables/, (x) => `${x}-save`)}`];
    for (const name of TABLE_ORDER) {
      const table = state.get(name);
      if (!table || (only !== undefined && only !== name)) continue;
      out.push(`*${name}`);
      const chains = [
        ...(BUILTIN[name] ?? []),
        ...[...table.keys()].filter((c) => !table.get(c)!.builtin).sort(),
      ];
      for (const c of chains) out.push(`:${c} ${table.get(c)!.builtin ? 'ACCEPT' : '-'} [0:0]`);
      for (const c of chains) for (const r of table.get(c)!.rules) out.push(`-A ${c} ${r}`);
      out.push('COMMIT');
    }
    out.push('# Completed');
    return `${out.join('\n')}\n`;
  }

  private tableOf(state: Tables, name: string): Table {
    let t = state.get(name);
    if (!t) {
      if (!BUILTIN[name]) throw new Refusal(`can't initialize ${name} table: Table does not exist`, 'parse');
      t = newTable(name);
      state.set(name, t);
    }
    return t;
  }

  private checkRule(table: Table, words: readonly string[]): void {
    for (const set of setsOf(words)) {
      if (!this.setExists(set)) throw new Refusal(`Set ${set} doesn't exist.`, 'parse');
    }
    const target = targetOf(words);
    if (target !== undefined && !TARGETS.has(target) && !table.has(target)) {
      throw new Refusal(`Chain '${target}' does not exist`, 'parse');
    }
  }

  private referenced(table: Table, chain: string): boolean {
    for (const c of table.values())
      for (const r of c.rules) if (targetOf(splitRuleWords(r)) === chain) return true;
    return false;
  }

  /** Applies one operation to `table`. */
  private apply(
    table: Table,
    op: string,
    chain: string,
    rest: string[],
    check: boolean,
    family: IPFamily,
  ): void {
    const ch = table.get(chain);
    switch (op) {
      case '-N':
        if (ch) throw new Refusal('Chain already exists.', 'commit');
        table.set(chain, { builtin: false, rules: [] });
        return;
      case '-F':
        if (!ch) throw new Refusal('No chain/target/match by that name.', 'commit');
        ch.rules = [];
        return;
      case '-X':
        if (!ch || ch.builtin)
          throw new Refusal(`CHAIN_DEL failed (No such file or directory): chain ${chain}`, 'commit');
        if (ch.rules.length > 0 || this.referenced(table, chain)) {
          throw new Refusal(`CHAIN_DEL failed (Device or resource busy): chain ${chain}`, 'commit');
        }
        table.delete(chain);
        return;
      case '-A':
      case '-I': {
        if (!ch) throw new Refusal(`Chain '${chain}' does not exist`, 'parse');
        let position = 0;
        if (op === '-I' && /^\d+$/.test(rest[0] ?? '')) position = Number(rest.shift()) - 1;
        if (check) this.checkRule(table, rest);
        const text = canonical(chain, rest, family);
        if (op === '-A') ch.rules.push(text);
        else ch.rules.splice(Math.max(0, position), 0, text);
        return;
      }
      case '-D': {
        const text = canonical(chain, rest, family);
        const at = ch ? ch.rules.indexOf(text) : -1;
        if (!ch || at === -1)
          throw new Refusal(
            `RULE_DELETE failed (No such file or directory): rule in chain ${chain}`,
            'commit',
          );
        ch.rules.splice(at, 1);
        return;
      }
      default:
        throw new Refusal(`unknown command ${op}`, 'parse');
    }
  }

  private restore(state: Tables, input: string, flush: boolean, version: string, tool: string): RunResult {
    const work = cloneTables(state);
    let table: Table | null = null;
    let tableName = '';
    const lines = input.split('\n');
    const fail = (e: Refusal, lineNumber: number): RunResult =>
      e.phase === 'parse'
        ? {
            stdout: '',
            stderr: `${version}: ${e.message}\nError occurred at line: ${lineNumber}\nTry \`${tool}-restore -h' or '${tool}-restore --help' for more information.\n`,
            exitCode: 2,
          }
        : { stdout: '', stderr: `${version}: \nline ${lineNumber}: ${e.message}\n`, exitCode: 4 };
    const pendingRules: { table: Table; words: string[]; lineNumber: number }[] = [];
    for (const [i, raw] of lines.entries()) {
      const lineNumber = i + 1;
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      try {
        if (line.startsWith('*')) {
          tableName = line.slice(1);
          table = this.tableOf(work, tableName);
          if (flush) {
            for (const [c, ch] of table) {
              if (ch.builtin) ch.rules = [];
              else table.delete(c);
            }
          }
          continue;
        }
        if (!table) throw new Refusal(`no table given for ${JSON.stringify(line)}`, 'parse');
        if (line === 'COMMIT') {
          for (const p of pendingRules.splice(0)) {
            try {
              this.checkRule(p.table, p.words);
            } catch (e) {
              if (e instanceof Refusal) return fail(e, p.lineNumber);
              throw e;
            }
          }
          table = null;
          continue;
        }
        if (line.startsWith(':')) {
          const name = line.slice(1).split(/\s+/)[0]!;
          const existing = table.get(name);
          if (existing && !existing.builtin) existing.rules = [];
          else if (!existing) table.set(name, { builtin: false, rules: [] });
          continue;
        }
        const words = splitRuleWords(line);
        const [op, chain, ...rest] = words;
        if (!op || !chain) throw new Refusal(`cannot read ${JSON.stringify(line)}`, 'parse');
        const ruleWords = op === '-I' && /^\d+$/.test(rest[0] ?? '') ? rest.slice(1) : rest.slice();
        this.apply(table, op, chain, rest, false, state.family ?? 'IPv4');
        if (op === '-A' || op === '-I') pendingRules.push({ table, words: ruleWords, lineNumber });
      } catch (e) {
        if (e instanceof Refusal) return fail(e, lineNumber);
        throw e;
      }
    }
    if (table) return fail(new Refusal('COMMIT expected', 'parse'), lines.length);
    state.clear();
    for (const [k, v] of work) state.set(k, v);
    return { stdout: '', stderr: '', exitCode: 0 };
  }

  private command(state: Tables, argv: readonly string[], version: string, tool: string): RunResult {
    const args = [...argv];
    let tableName = 'filter';
    const rest: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a === '-w' || a === '-W') {
        if (/^\d+$/.test(args[i + 1] ?? '')) i++;
      } else if (a === '-t') tableName = args[++i] ?? '';
      else if (a === '-n' || a === '--numeric') continue;
      else rest.push(a);
    }
    const [op, chain, ...ruleArgs] = rest;
    const err = (message: string, exitCode = 1): RunResult => ({
      stdout: '',
      stderr: `${message}\n`,
      exitCode,
    });
    let table: Table;
    try {
      table = this.tableOf(state, tableName);
    } catch (e) {
      return err(`${version}: ${(e as Error).message}`, 3);
    }
    if (!op || !chain) return err(`${version}: no command specified`, 2);
    if (op === '-L' || op === '-S') {
      if (!table.has(chain)) {
        return err(`${version}: chain \`${chain}' in table \`${tableName}' is incompatible, use 'nft' tool.`);
      }
      return { stdout: `Chain ${chain}\n`, stderr: '', exitCode: 0 };
    }
    if (op === '-C') {
      const ch = table.get(chain);
      if (ch?.rules.includes(canonical(chain, ruleArgs, state.family ?? 'IPv4')))
        return { stdout: '', stderr: '', exitCode: 0 };
      return err(`${tool}: Bad rule (does a matching rule exist in that chain?).`);
    }
    try {
      const work = cloneTables(new Map([[tableName, table]]));
      const t = work.get(tableName)!;
      this.apply(t, op, chain, ruleArgs, true, state.family ?? 'IPv4');
      state.set(tableName, t);
      return { stdout: '', stderr: '', exitCode: 0 };
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      if (op === '-D') return err(`${tool}: Bad rule (does a matching rule exist in that chain?).`);
      if (op === '-N') return err(`${tool}: Chain already exists.`);
      return err(`${version}: ${e.message}`);
    }
  }

  /** How many rules (any backend, family, table) use `set` with `--match-set`. */
  setReferences(set: string): number {
    let n = 0;
    for (const tables of this.states.values()) {
      for (const table of tables.values()) {
        for (const chain of table.values()) {
          for (const r of chain.rules) if (setsOf(splitRuleWords(r)).includes(set)) n++;
        }
      }
    }
    return n;
  }

  // ------------------------------------------------------------------------------------------
  // For tests

  /** The chain's rules as saved (without `-A CHAIN`), or undefined when it does not exist. */
  rules(backend: Backend, family: IPFamily, table: string, chain: string): string[] | undefined {
    return this.states.get(`${backend} ${family}`)?.get(table)?.get(chain)?.rules.slice();
  }

  /** The user-defined chains of a table. */
  chains(backend: Backend, family: IPFamily, table: string): string[] {
    const t = this.states.get(`${backend} ${family}`)?.get(table);
    return t
      ? [...t]
          .filter(([, c]) => !c.builtin)
          .map(([n]) => n)
          .sort()
      : [];
  }
}
