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
  chains: Map<string, string[]>;
  /** chains deleted (`-X`) after the rules */
  deleted: string[];
}

export function emptyTable(name: TableName): RestoreTable {
  return { name, chains: new Map(), deleted: [] };
}

export function compareChains(a: string, b: string): number {
  const rank = (c: string) =>
    c === 'KUBE-NODEPORTS' ? 0 : c === 'KUBE-SERVICES' ? 1 : c.startsWith('KUBE-') ? 2 : 3;
  const d = rank(a) - rank(b);
  if (d !== 0) return d;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The restore text for the given tables (tables in name order, chains in canonical order). */
export function formatRestore(tables: readonly RestoreTable[]): string {
  const out: string[] = [];
  for (const table of [...tables].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const names = [...table.chains.keys()].sort(compareChains);
    out.push(`*${table.name}`);
    for (const c of names) out.push(`:${c} - [0:0]`);
    for (const c of names) for (const r of table.chains.get(c)!) out.push(r);
    for (const c of table.deleted) out.push(`-X ${c}`);
    out.push('COMMIT');
  }
  out.push('');
  return out.join('\n');
}

export class RestoreParseError extends Error {}

/**
 * Parses restore text (ours, kube-proxy's or a hand-written expectation) back into
 * tables. Rules appended to chains the text does not declare (built-in chains) are
 * kept under their chain as well.
 */
export function parseRestore(text: string): RestoreTable[] {
  const tables: RestoreTable[] = [];
  let current: RestoreTable | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const where = `line ${i + 1}`;
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      const name = line.slice(1);
      if (name !== 'filter' && name !== 'nat')
        throw new RestoreParseError(`${where}: unsupported table ${name}`);
      current = emptyTable(name);
      tables.push(current);
      return;
    }
    if (!current) throw new RestoreParseError(`${where}: ${JSON.stringify(line)} outside a table`);
    const table: RestoreTable = current;
    if (line === 'COMMIT') {
      current = null;
      return;
    }
    if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0]!;
      if (!table.chains.has(chain)) table.chains.set(chain, []);
      return;
    }
    const m = /^-([AX]) (\S+)/.exec(line);
    if (!m) throw new RestoreParseError(`${where}: cannot read ${JSON.stringify(line)}`);
    const chain = m[2]!;
    if (m[1] === 'X') {
      table.deleted.push(chain);
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
