/**
 * How a large full sync is fed to the kernel: bounded iptables-restore transactions. No I/O.
 *
 * Why bounded: legacy rewrites the whole table on every commit (the backend makes one
 * transaction there), but iptables-nft 1.8.9 costs grow faster than linearly with one
 * input: for every line it inserts the chain names the line mentions into a sorted linked
 * list (nft_cache_level_set, walked from the smallest name), so an input that names k
 * chains costs ~k² string comparisons. Each commit also costs the kernel a walk over the
 * table's chains, which favours fewer transactions. Measured on a cold start of 10,000
 * services (CPU of all restores): 50 services per transaction 9.6 s, 100 9.5-9.8 s, 150
 * 10.4-10.9 s, 600 14.6 s. Laying an input out otherwise than the canonical sorted text
 * (descending names, chains declared on first use, or in random order) cost more, although
 * it shortens the sorted-list walks, so the canonical layout stays.
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
 * nothing jumps to them yet (a cold start on a fresh node: the backend adds the jump rules
 * from the built-in chains with the last transaction), their rules are appended (`-A`
 * without declaring the chain) by the early transactions, each rule with the group it
 * jumps to, in the render's order. Nothing is reachable before the last transaction, and
 * that transaction no longer names every service chain at once: at 10,000 services it
 * cost 3.4-4.4 s of CPU, appended 0.05 s (all restores: 13.0 s before, 9.5-10.4 s now).
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
  batchServicePorts: 100,
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
