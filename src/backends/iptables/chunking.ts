/**
 * How a large full sync is fed to the kernel: bounded iptables-restore transactions, and
 * the layout of each restore input. No I/O.
 *
 * Why bounded: legacy rewrites the whole table on every commit (the backend makes one
 * transaction there), but iptables-nft 1.8.9 costs grow faster than linearly with one
 * input: for every line it inserts the chain names the line mentions into a sorted linked
 * list (nft_cache_level_set, a walk from the smallest name), so a transaction that names k
 * chains costs ~k² string comparisons (measured at 10,000 services: 600 services per
 * transaction spend 10.6 s in user space, 150 per transaction 3.8 s, 50 per transaction
 * 1.6 s). Each commit also costs a walk over the table's chains in the kernel, which
 * favours fewer transactions; ~150 services each is the balance.
 *
 * Every intermediate kernel state must be consistent, so the order is:
 *
 * 1. Before anything, the chains that early transactions jump to or append to without
 *    writing them (KUBE-MARK-MASQ; KUBE-SERVICES and KUBE-NODEPORTS when appending) are
 *    created empty if missing (`precreate`), never flushed.
 * 2. Each early transaction declares and fills whole groups of service chains: a group is
 *    closed under jumps (SVC/SVL/EXT/FW together with the SEP chains they jump to), so a
 *    chain is never written before a chain it jumps to.
 * 3. The last transaction writes the fixed chains of both tables and flushes and deletes
 *    the stale chains: only then do the entry points move to the new chains.
 *
 * Appending: when the kernel's KUBE-SERVICES and KUBE-NODEPORTS (nat) are empty and
 * nothing jumps to them from the built-in chains yet (a cold start on a fresh node), their
 * rules are appended (`-A` without declaring the chain) by the early transactions, each
 * with the groups its rules jump to, in the render's order. Nothing is reachable until the
 * jump rules are added after the last transaction, and the last transaction no longer names
 * every service chain at once (at 10,000 services that one input cost ~4 s of sorted-list
 * walks).
 *
 * Layout (formatTransaction): each chain is declared right before its rules (or before the
 * first rule that jumps to it); KUBE-SERVICES and KUBE-NODEPORTS come first, then the
 * KUBE-SEP chains, then the others, each in descending name order. A name then mostly
 * lands at the front of iptables-nft's sorted list: half the comparisons of the sorted
 * layout for a group transaction.
 */
import { isServiceChain } from './chain-names.js';
import { emptyTable, type RestoreTable, type TableName } from './restore-text.js';

export interface ChunkingOptions {
  /**
   * full syncs that write the chains of more service ports than this are split; below it
   * they stay one transaction (the backend defaults it to infinity for iptables-legacy)
   */
  threshold: number;
  /** groups (about one per service port) per early transaction */
  batchServicePorts: number;
  /** an early transaction is also closed once it holds this many rules (services with huge endpoint lists) */
  batchRules: number;
}

export const DEFAULT_CHUNKING: ChunkingOptions = {
  threshold: 1000,
  batchServicePorts: 150,
  batchRules: 20_000,
};

export interface ChainRef {
  table: TableName;
  chain: string;
}

/** What the kernel holds before the sync, as far as the plan needs it. */
export interface KernelChains {
  /** nat chains that exist */
  nat: ReadonlySet<string>;
  /**
   * nat KUBE-SERVICES and KUBE-NODEPORTS may be filled by appending: they are empty (or
   * missing) and no built-in chain jumps to them yet
   */
  appendEntryChains: boolean;
}

export interface TransactionPlan {
  /** chains to create (empty, without flushing) before the first transaction */
  precreate: ChainRef[];
  /** restore inputs in the order to apply them; each is one iptables-restore run */
  transactions: RestoreTable[][];
}

/** Nat chains whose rules the early transactions may append (see the file comment). */
export const ENTRY_CHAINS = ['KUBE-SERVICES', 'KUBE-NODEPORTS'] as const;

const JUMP = ' -j KUBE-';

/** The KUBE- chain a rule jumps to, if any. */
export function jumpTarget(rule: string): string | undefined {
  const at = rule.indexOf(JUMP);
  if (at === -1) return undefined;
  const start = at + 4;
  const end = rule.indexOf(' ', start);
  return end === -1 ? rule.slice(start) : rule.slice(start, end);
}

/** Union-find over chain names. */
class Groups {
  private readonly parent = new Map<string, string>();

  add(x: string): void {
    if (!this.parent.has(x)) this.parent.set(x, x);
  }

  find(x: string): string {
    let root = x;
    while (this.parent.get(root) !== root) root = this.parent.get(root)!;
    // Path compression keeps later finds flat.
    let cur = x;
    while (cur !== root) {
      const next = this.parent.get(cur)!;
      this.parent.set(cur, root);
      cur = next;
    }
    return root;
  }

  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(rb, ra);
  }
}

/**
 * The service chains a nat table writes, partitioned into groups closed under jumps, in
 * the order the table declares them (generation order: service by service).
 */
export function serviceChainGroups(nat: RestoreTable): string[][] {
  const deleted = new Set(nat.deleted);
  const written = [...nat.chains.keys()].filter((c) => isServiceChain(c) && !deleted.has(c));
  const writtenSet = new Set(written);
  const groups = new Groups();
  for (const chain of written) groups.add(chain);
  for (const chain of written) {
    for (const rule of nat.chains.get(chain)!) {
      const target = jumpTarget(rule);
      if (target !== undefined && writtenSet.has(target)) groups.union(chain, target);
    }
  }
  const byRoot = new Map<string, string[]>();
  for (const chain of written) {
    const root = groups.find(chain);
    let members = byRoot.get(root);
    if (!members) {
      members = [];
      byRoot.set(root, members);
    }
    members.push(chain);
  }
  return [...byRoot.values()];
}

/**
 * Splits one full sync's tables into transactions (see the file comment). When the chains
 * of at most `threshold` service ports are written, the result is the single transaction
 * `[filter, nat]` and nothing to precreate. `kernel` (what the kernel holds) lets the plan
 * skip creating chains that exist and append to empty entry chains.
 */
export function planTransactions(
  filter: RestoreTable,
  nat: RestoreTable,
  options: ChunkingOptions = DEFAULT_CHUNKING,
  kernel?: KernelChains,
): TransactionPlan {
  const groups = serviceChainGroups(nat);
  if (groups.length <= options.threshold) return { precreate: [], transactions: [[filter, nat]] };
  if (options.batchServicePorts < 1 || options.batchRules < 1) {
    throw new Error(`chunking: batchServicePorts and batchRules must be >= 1 (${JSON.stringify(options)})`);
  }

  // Every group goes to an early transaction.
  const early: RestoreTable[] = [];
  const batchOf = new Map<string, number>();
  let current = emptyTable('nat');
  let groupsInCurrent = 0;
  let rulesInCurrent = 0;
  for (const group of groups) {
    for (const chain of group) {
      const rules = nat.chains.get(chain)!;
      current.chains.set(chain, rules);
      batchOf.set(chain, early.length);
      rulesInCurrent += rules.length;
    }
    groupsInCurrent++;
    if (groupsInCurrent >= options.batchServicePorts || rulesInCurrent >= options.batchRules) {
      early.push(current);
      current = emptyTable('nat');
      groupsInCurrent = 0;
      rulesInCurrent = 0;
    }
  }
  if (current.chains.size > 0) early.push(current);

  const lastNat = emptyTable('nat');
  for (const [chain, rules] of nat.chains) if (!batchOf.has(chain)) lastNat.chains.set(chain, rules);
  lastNat.deleted = [...nat.deleted];
  if (nat.commands) lastNat.commands = [...nat.commands];

  const appending = kernel?.appendEntryChains === true && ENTRY_CHAINS.every((c) => !nat.deleted.includes(c));
  if (appending) {
    for (const entry of ENTRY_CHAINS) {
      const rules = lastNat.chains.get(entry);
      if (!rules) continue;
      lastNat.chains.delete(entry);
      // In the render's order, each rule in the first transaction that has its target.
      let tx = 0;
      for (const rule of rules) {
        const target = jumpTarget(rule);
        tx = Math.max(tx, target === undefined ? 0 : (batchOf.get(target) ?? 0));
        const into = early[tx]!;
        into.commands ??= [];
        into.commands.push(rule);
      }
    }
  }

  // Early transactions may jump or append to chains that only the last one writes.
  const precreate = new Map<string, ChainRef>();
  const need = (chain: string) => {
    if (!kernel?.nat.has(chain)) precreate.set(chain, { table: 'nat', chain });
  };
  for (const table of early) {
    for (const rules of table.chains.values()) {
      for (const rule of rules) {
        const target = jumpTarget(rule);
        if (target !== undefined && !table.chains.has(target) && !isServiceChain(target)) need(target);
      }
    }
    for (const rule of table.commands ?? []) {
      need(rule.slice(3, rule.indexOf(' ', 3)));
      const target = jumpTarget(rule);
      if (target !== undefined && !isServiceChain(target)) need(target);
    }
  }

  return {
    precreate: [...precreate.values()].sort((a, b) => (a.chain < b.chain ? -1 : 1)),
    transactions: [...early.map((t) => [t]), [filter, lastNat]],
  };
}

/** The order chains are written in a restore input (see the file comment). */
function writeOrder(table: RestoreTable): string[] {
  const entries: string[] = [];
  const seps: string[] = [];
  const rest: string[] = [];
  for (const chain of table.chains.keys()) {
    if ((ENTRY_CHAINS as readonly string[]).includes(chain)) entries.push(chain);
    else if (chain.startsWith('KUBE-SEP-')) seps.push(chain);
    else rest.push(chain);
  }
  const descending = (a: string, b: string) => (a < b ? 1 : a > b ? -1 : 0);
  return [...entries.sort(), ...seps.sort(descending), ...rest.sort(descending)];
}

/**
 * The restore input of one transaction, laid out for iptables-nft (see the file comment).
 * It holds the same chains, rules, commands and deletions as formatRestore's canonical
 * text. `joined` may give the text of rule lists whose text is known (flattenRules).
 */
export function formatTransaction(
  tables: readonly RestoreTable[],
  joined: ReadonlyMap<readonly string[], string> = new Map(),
): string {
  const out: string[] = [];
  for (const table of [...tables].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    out.push(`*${table.name}`);
    const declared = new Set<string>();
    const declare = (chain: string) => {
      if (declared.has(chain)) return;
      declared.add(chain);
      out.push(`:${chain} - [0:0]`);
    };
    const declareTargets = (rules: readonly string[]) => {
      for (const rule of rules) {
        const target = jumpTarget(rule);
        if (target !== undefined && table.chains.has(target)) declare(target);
      }
    };
    for (const chain of writeOrder(table)) {
      const rules = table.chains.get(chain)!;
      declareTargets(rules);
      declare(chain);
      if (rules.length > 0) out.push(joined.get(rules) ?? rules.join('\n'));
    }
    if (table.commands && table.commands.length > 0) {
      declareTargets(table.commands);
      out.push(table.commands.join('\n'));
    }
    for (const c of table.deleted) out.push(`-X ${c}`);
    out.push('COMMIT');
  }
  out.push('');
  return out.join('\n');
}
