/**
 * Cold start at scale: a very large full sync split into bounded iptables-restore
 * transactions, so no single transaction holds the xtables lock (legacy) or builds one
 * huge nf_tables batch (nft) for seconds. No I/O.
 *
 * Every intermediate kernel state must be consistent, so the order is:
 *
 * 1. Before anything, the fixed chains that service chains jump to (KUBE-MARK-MASQ) are
 *    created empty if missing (`precreate`), never flushed: a chain that exists keeps
 *    its rules until the last transaction rewrites it.
 * 2. Each early transaction declares and fills whole groups of service chains: a group
 *    is closed under jumps (SVC/SVL/EXT/FW together with the SEP chains they jump to),
 *    so a chain is never written before a chain it jumps to. Nothing reachable from the
 *    built-in chains jumps to a new chain yet, and a chain that already existed and is
 *    rewritten only jumps to chains written in the same transaction or already there.
 * 3. The last transaction writes the fixed chains of both tables (KUBE-SERVICES,
 *    KUBE-NODEPORTS, the filter chains...), the remaining groups, and flushes and
 *    deletes the stale chains: only then do the entry points move to the new chains.
 */
import { isServiceChain } from './chain-names.js';
import { emptyTable, type RestoreTable, type TableName } from './restore-text.js';

export interface ChunkingOptions {
  /**
   * full syncs of more service ports than this are split; below it they stay one
   * transaction (the backend defaults it to infinity for iptables-legacy)
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

export interface TransactionPlan {
  /** chains to create (empty, without flushing) before the first transaction */
  precreate: ChainRef[];
  /** restore inputs in the order to apply them; each is one iptables-restore run */
  transactions: RestoreTable[][];
}

const JUMP = / -[jg] (KUBE-[A-Z0-9-]+)/g;

function jumpTargets(rule: string): string[] {
  const out: string[] = [];
  for (const m of rule.matchAll(JUMP)) out.push(m[1]!);
  return out;
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
      for (const target of jumpTargets(rule)) if (writtenSet.has(target)) groups.union(chain, target);
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
 * Splits one full sync's tables into transactions (see the file comment). With
 * `servicePorts` at or below the threshold the result is the single transaction
 * `[filter, nat]` and nothing to precreate.
 */
export function planTransactions(
  filter: RestoreTable,
  nat: RestoreTable,
  servicePorts: number,
  options: ChunkingOptions = DEFAULT_CHUNKING,
): TransactionPlan {
  if (servicePorts <= options.threshold) return { precreate: [], transactions: [[filter, nat]] };
  if (options.batchServicePorts < 1 || options.batchRules < 1) {
    throw new Error(`chunking: batchServicePorts and batchRules must be >= 1 (${JSON.stringify(options)})`);
  }

  const early: RestoreTable[] = [];
  let current = emptyTable('nat');
  let groupsInCurrent = 0;
  let rulesInCurrent = 0;
  const inEarly = new Set<string>();
  for (const group of serviceChainGroups(nat)) {
    for (const chain of group) {
      const rules = nat.chains.get(chain)!;
      current.chains.set(chain, rules);
      rulesInCurrent += rules.length;
      inEarly.add(chain);
    }
    groupsInCurrent++;
    if (groupsInCurrent >= options.batchServicePorts || rulesInCurrent >= options.batchRules) {
      early.push(current);
      current = emptyTable('nat');
      groupsInCurrent = 0;
      rulesInCurrent = 0;
    }
  }
  // The remainder rides with the fixed chains in the last transaction.
  const lastNat = emptyTable('nat');
  for (const chain of current.chains.keys()) inEarly.delete(chain);
  for (const [chain, rules] of nat.chains) if (!inEarly.has(chain)) lastNat.chains.set(chain, rules);
  lastNat.deleted = [...nat.deleted];

  // Early transactions may jump to fixed chains that only the last one writes.
  const precreate = new Map<string, ChainRef>();
  for (const table of early) {
    for (const rules of table.chains.values()) {
      for (const rule of rules) {
        for (const target of jumpTargets(rule)) {
          if (!table.chains.has(target) && !isServiceChain(target)) {
            precreate.set(target, { table: 'nat', chain: target });
          }
        }
      }
    }
  }

  return {
    precreate: [...precreate.values()].sort((a, b) => (a.chain < b.chain ? -1 : 1)),
    transactions: [...early.map((t) => [t]), [filter, lastNat]],
  };
}
