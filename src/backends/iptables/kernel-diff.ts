/**
 * What the kernel already holds, read from one `iptables-save`, compared with a render
 * chain by chain (spec §17): a full sync writes only the chains whose rules differ, so a
 * restart over our own rules, or a takeover from kube-proxy's identical rules, writes
 * (almost) nothing. No I/O.
 *
 * A chain is unchanged when the kernel has it with exactly the rendered rules in the same
 * order, compared through their saved form (saved-form.ts). A rule the saved-form model
 * does not know makes its chain differ: it is rewritten, the safe default.
 */
import type { IPFamily } from '../../model/ip.js';
import type { RestoreTable } from './restore-text.js';
import { savedForm } from './saved-form.js';

export interface SavedChain {
  /** a built-in chain (it has a policy) */
  builtin: boolean;
  /** the chain's `-A` lines as iptables-save printed them, joined with `\n` ('' when empty) */
  rules: string;
  /** how many rules */
  count: number;
}

/** table name -> chain name -> chain, as read from iptables-save. */
export type SavedTables = Map<string, Map<string, SavedChain>>;

interface ChainBuilder {
  builtin: boolean;
  /** offsets of the chain's rule block in the text while its rules come in one run */
  start: number;
  end: number;
  count: number;
  /** set when the chain's rules do not come in one run (iptables-save prints them so; be safe) */
  lines: string[] | null;
}

/**
 * Parses iptables-save output (any number of tables). Fast on tens of megabytes: one
 * pass, and a chain's rules stay one slice of the text.
 */
export function parseSavedTables(text: string): SavedTables {
  const tables: SavedTables = new Map();
  let chains: Map<string, ChainBuilder> | null = null;
  let building = new Map<string, ChainBuilder>();
  let last: ChainBuilder | null = null;
  let tableName = '';
  const finish = () => {
    if (chains === null) return;
    const out = new Map<string, SavedChain>();
    for (const [name, c] of chains) {
      const rules = c.lines ? c.lines.join('\n') : c.count === 0 ? '' : text.slice(c.start, c.end);
      out.set(name, { builtin: c.builtin, rules, count: c.count });
    }
    tables.set(tableName, out);
    chains = null;
  };
  let pos = 0;
  while (pos < text.length) {
    let eol = text.indexOf('\n', pos);
    if (eol === -1) eol = text.length;
    const c0 = text.charCodeAt(pos);
    if (c0 === 45 /* - */ && text.startsWith('-A ', pos) && chains !== null) {
      const space = text.indexOf(' ', pos + 3);
      const name = text.slice(pos + 3, space === -1 || space > eol ? eol : space);
      let chain = building.get(name);
      if (!chain) {
        // A rule for a chain without a declaration: keep it, as a user chain.
        chain = { builtin: false, start: pos, end: pos, count: 0, lines: null };
        building.set(name, chain);
      }
      if (chain.lines) chain.lines.push(text.slice(pos, eol));
      else if (chain.count === 0) {
        chain.start = pos;
        chain.end = eol;
      } else if (chain === last && chain.end + 1 === pos) {
        chain.end = eol;
      } else {
        chain.lines = [...text.slice(chain.start, chain.end).split('\n'), text.slice(pos, eol)];
      }
      chain.count++;
      last = chain;
    } else if (c0 === 58 /* : */ && chains !== null) {
      const line = text.slice(pos + 1, eol);
      const [name = '', policy = '-'] = line.split(' ', 2);
      building.set(name, { builtin: policy !== '-', start: pos, end: pos, count: 0, lines: null });
    } else if (c0 === 42 /* * */) {
      finish();
      tableName = text.slice(pos + 1, eol).trim();
      building = new Map();
      chains = building;
      last = null;
    } else if (text.startsWith('COMMIT', pos)) {
      finish();
    }
    pos = eol + 1;
  }
  finish();
  return tables;
}

/** A user chain as `iptables -S CHAIN` lists it: a `-N` line, then its rules as iptables-save prints them. */
export function savedChainFromListing(listing: string): SavedChain {
  const rules = listing.split('\n').filter((line) => line.startsWith('-A '));
  return { builtin: false, rules: rules.join('\n'), count: rules.length };
}

/** A saved chain's rules as lines. */
export function savedRuleLines(chain: SavedChain): string[] {
  return chain.count === 0 ? [] : chain.rules.split('\n');
}

/**
 * Whether the kernel's chain holds exactly these rendered rules. The saved text is first
 * compared whole with the saved form of the render (one string comparison when equal, the
 * common case); on a mismatch each saved line is normalised too, in case iptables printed
 * an equal rule differently from our derivation.
 */
export function chainMatches(rendered: readonly string[], saved: SavedChain, family: IPFamily): boolean {
  if (rendered.length !== saved.count) return false;
  if (rendered.length === 0) return true;
  const forms: string[] = [];
  for (const rule of rendered) {
    const form = savedForm(rule, family);
    if (form === null) return false;
    forms.push(form);
  }
  if (forms.join('\n') === saved.rules) return true;
  const lines = savedRuleLines(saved);
  return forms.every((form, i) => savedForm(lines[i]!, family) === form);
}

/**
 * Removes from `table` every declared chain the kernel already holds with exactly the
 * rendered rules, so the restore input leaves it alone. Chains being deleted (`-X`) stay.
 * Returns how many chains were removed.
 */
export function dropChainsTheKernelHolds(table: RestoreTable, saved: SavedTables, family: IPFamily): number {
  const kernel = saved.get(table.name);
  if (!kernel) return 0;
  const deleted = new Set(table.deleted);
  // A new map of what stays: usually few chains, where deleting 100,000 entries is slow.
  const kept = new Map<string, readonly string[]>();
  for (const [chain, rules] of table.chains) {
    const held = deleted.has(chain) ? undefined : kernel.get(chain);
    if (!held || held.builtin || !chainMatches(rules, held, family)) kept.set(chain, rules);
  }
  const dropped = table.chains.size - kept.size;
  table.chains = kept;
  return dropped;
}
