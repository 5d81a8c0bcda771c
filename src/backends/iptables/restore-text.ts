/**
 * iptables-restore input as data, and its text form.
 *
 * The renderer emits each table grouped by chain in the order kube-proxy's own tests
 * normalise to (spec §18): KUBE-NODEPORTS, KUBE-SERVICES, other KUBE-* chains, then the
 * rest, each alphabetically. Only the relative order of rules inside a chain matters to
 * iptables, so this is the same rule set kube-proxy writes, in a canonical layout: the
 * text of a render is its own normal form, and the golden files compare byte for byte.
 */

import { getOrCreate } from '../../model/collections.js';

export type TableName = 'filter' | 'nat';

export interface RestoreTable {
  name: TableName;
  /** chains declared (`:CHAIN - [0:0]`, i.e. flushed) by this input, with the rules appended to them */
  chains: Map<string, readonly string[]>;
  /** chains deleted (`-X`) after the rules */
  deleted: string[];
  /**
   * command lines written after the declared chains' rules and before the deletions:
   * rules appended to chains the input does not declare (`-A`, no flush), jump rules
   * inserted into built-in chains (`-I`). Only the applier's transactions use it.
   */
  commands?: string[];
}

export function emptyTable(name: TableName): RestoreTable {
  return { name, chains: new Map(), deleted: [] };
}

/** A chain's rules as lines, and the text they join to. */
export interface FlatRules {
  lines: readonly string[];
  text: string;
}

/**
 * The rules as one flat text, and as lines cut from it. A rule built from a template
 * literal is a rope (a tree of its pieces): hundreds of thousands of them cost more
 * memory and garbage collection than their text, and joining them into the restore text
 * later, once they are old and scattered over the heap, was the slowest step of a full
 * render. Joining a chain's rules right after rendering them is cheap, the lines split
 * from that text are slices that share its memory, and formatRestore can reuse the text.
 */
export function flattenRules(rules: readonly string[]): FlatRules {
  if (rules.length === 0) return { lines: [], text: '' };
  const text = rules.join('\n');
  return { lines: text.split('\n'), text };
}

function chainRank(chain: string): number {
  if (chain === 'KUBE-NODEPORTS') return 0;
  if (chain === 'KUBE-SERVICES') return 1;
  return chain.startsWith('KUBE-') ? 2 : 3;
}

export function compareChains(a: string, b: string): number {
  const d = chainRank(a) - chainRank(b);
  if (d !== 0) return d;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The chains in canonical order (the order of compareChains). Sorting each rank's group
 * with the default comparator is several times faster than a comparator call per
 * comparison, which matters with 100,000+ service chains.
 */
export function sortChains(chains: Iterable<string>): string[] {
  const groups: string[][] = [[], [], [], []];
  for (const chain of chains) groups[chainRank(chain)]!.push(chain);
  return groups.flatMap((group) => group.sort());
}

/**
 * The restore text for the given tables (tables in name order, chains in canonical
 * order). `joined` may give the text of rule lists whose text is known (see
 * flattenRules), so that the rules of 100,000 service chains are not joined again.
 */
export function formatRestore(
  tables: readonly RestoreTable[],
  joined: ReadonlyMap<readonly string[], string> = new Map(),
): string {
  return restorePieces(tables, joined).join('');
}

/**
 * formatRestore's text as the pieces it is made of (their concatenation, nothing added
 * between them), for writing to iptables-restore piece by piece: a chain's rules stay the
 * text the renderer made, and the whole input never exists as one string.
 */
export function restorePieces(
  tables: readonly RestoreTable[],
  joined: ReadonlyMap<readonly string[], string> = new Map(),
): string[] {
  const out: string[] = [];
  const line = (text: string) => out.push(text, '\n');
  for (const table of [...tables].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const names = sortChains(table.chains.keys());
    line(`*${table.name}`);
    // One join writes all the `:CHAIN - [0:0]` declarations.
    if (names.length > 0) line(`:${names.join(' - [0:0]\n:')} - [0:0]`);
    for (const c of names) {
      const rules = table.chains.get(c)!;
      if (rules.length > 0) line(joined.get(rules) ?? rules.join('\n'));
    }
    if (table.commands && table.commands.length > 0) line(table.commands.join('\n'));
    for (const c of table.deleted) line(`-X ${c}`);
    line('COMMIT');
  }
  return out;
}

/** The lines formatRestore writes for these tables, without writing them. */
export function restoreLineCount(tables: readonly RestoreTable[]): number {
  let n = 0;
  for (const table of tables) {
    n += 2 + table.chains.size + table.deleted.length + (table.commands?.length ?? 0); // *table, COMMIT
    for (const rules of table.chains.values()) n += rules.length;
  }
  return n;
}

export class RestoreParseError extends Error {}

/** A table while it is parsed: its rule lists still grow. */
interface ParsedTable extends RestoreTable {
  chains: Map<string, string[]>;
}

/**
 * Parses restore text (ours, kube-proxy's or a hand-written expectation) back into
 * tables. Rules appended to chains the text does not declare (built-in chains) are
 * kept under their chain as well.
 */
export function parseRestore(text: string): RestoreTable[] {
  const tables: RestoreTable[] = [];
  let current: ParsedTable | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const where = `line ${i + 1}`;
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      const name = line.slice(1);
      if (name !== 'filter' && name !== 'nat')
        throw new RestoreParseError(`${where}: unsupported table ${name}`);
      current = { name, chains: new Map(), deleted: [] };
      tables.push(current);
      return;
    }
    if (!current) throw new RestoreParseError(`${where}: ${JSON.stringify(line)} outside a table`);
    const table: ParsedTable = current;
    if (line === 'COMMIT') {
      current = null;
      return;
    }
    if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0]!;
      if (!table.chains.has(chain)) table.chains.set(chain, []);
      return;
    }
    const m = /^-([AXI]) (\S+)/.exec(line);
    if (!m) throw new RestoreParseError(`${where}: cannot read ${JSON.stringify(line)}`);
    const chain = m[2]!;
    if (m[1] === 'X') {
      table.deleted.push(chain);
      return;
    }
    if (m[1] === 'I') {
      table.commands ??= [];
      table.commands.push(line);
      return;
    }
    getOrCreate(table.chains, chain, () => []).push(line);
  });
  if (current) throw new RestoreParseError('missing COMMIT at end of input');
  return tables;
}

const LAST_RULE_MARK = 'must be the last rule';

function serviceNameOfRule(rule: string): string {
  const m = /--comment "?([^ :"]*)/.exec(rule);
  return m ? m[1]! : '';
}

/**
 * kube-proxy's test normalisation (spec §18): chains in canonical order, and the rules
 * of KUBE-NODEPORTS and KUBE-SERVICES stably sorted by the service name at the start of
 * their comment, the "must be the last rule" jump kept last.
 */
export function normalizeRestore(text: string): string {
  const tables = parseRestore(text);
  for (const table of tables) {
    for (const chain of ['KUBE-NODEPORTS', 'KUBE-SERVICES']) {
      const rules = table.chains.get(chain);
      if (!rules) continue;
      const last = rules.filter((r) => r.includes(LAST_RULE_MARK));
      const rest = rules.filter((r) => !r.includes(LAST_RULE_MARK));
      const keyed = rest.map((r) => [serviceNameOfRule(r), r] as const);
      keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      table.chains.set(chain, [...keyed.map((k) => k[1]), ...last]);
    }
  }
  return formatRestore(tables);
}
