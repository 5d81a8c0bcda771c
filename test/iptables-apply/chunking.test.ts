/**
 * The cold-start batching (pure): which chains go in which transaction, and that every
 * intermediate state of a modelled kernel stays consistent.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isServiceChain } from '../../src/backends/iptables/chain-names.js';
import {
  type ChunkingOptions,
  planTransactions,
  serviceChainGroups,
} from '../../src/backends/iptables/chunking.js';
import { buildRenderContext } from '../../src/backends/iptables/context.js';
import { renderIptables } from '../../src/backends/iptables/render.js';
import type { RestoreTable } from '../../src/backends/iptables/restore-text.js';
import { ClusterSim, testOptions } from './cluster-sim.js';

type Kernel = Map<string, Map<string, readonly string[]>>;

function applyModel(kernel: Kernel, tables: readonly RestoreTable[]): void {
  for (const t of tables) {
    let chains = kernel.get(t.name);
    if (!chains) {
      chains = new Map();
      kernel.set(t.name, chains);
    }
    for (const [c, rules] of t.chains) chains.set(c, rules);
    // Commands: rules appended to chains the input does not declare.
    for (const rule of t.commands ?? []) {
      const chain = rule.split(' ')[1]!;
      expect(rule.startsWith('-A '), rule).toBe(true);
      expect(chains.has(chain), `${rule}: appended to a missing chain`).toBe(true);
      chains.set(chain, [...chains.get(chain)!, rule]);
    }
    for (const c of t.deleted) chains.delete(c);
  }
}

/** Jumps to chains that do not exist: what iptables would refuse, or a black hole. */
function danglingJumps(kernel: Kernel): string[] {
  const out: string[] = [];
  for (const [table, chains] of kernel) {
    for (const [chain, rules] of chains) {
      for (const rule of rules) {
        const target = / -[jg] (KUBE-\S+)/.exec(rule)?.[1];
        if (target && !chains.has(target)) out.push(`${table} ${chain} -> ${target}`);
      }
    }
  }
  return out;
}

function cluster(services: number, seed = 0): ClusterSim {
  const sim = new ClusterSim();
  for (let i = 0; i < services; i++) {
    const n = i + seed;
    const kind = n % 4;
    sim.upsert({
      name: `svc-${i}`,
      namespace: `ns${i % 3}`,
      type: kind === 1 ? 'NodePort' : kind === 2 ? 'LoadBalancer' : 'ClusterIP',
      clusterIP: `172.30.${Math.floor(i / 250)}.${(i % 250) + 1}`,
      ports: [{ name: 'http', port: 80, nodePort: 30000 + i }],
      loadBalancerIP: `5.6.${Math.floor(i / 250)}.${(i % 250) + 1}`,
      ...(kind === 2 && n % 8 === 2
        ? { loadBalancerSourceRanges: ['203.0.113.0/24'], externalTrafficPolicy: 'Local' as const }
        : {}),
      ...(kind === 3 ? { affinitySeconds: 60 } : {}),
      endpoints: Array.from({ length: (n % 5) + (n % 7 === 0 ? 0 : 1) }, (_, e) => ({
        ip: `10.244.${(n + e) % 4}.${((n * 7 + e) % 250) + 2}`,
        local: e === 0,
      })),
    });
  }
  return sim;
}

const ctx = buildRenderContext(testOptions(), 'IPv4', {
  name: 'node-1',
  labels: {},
  ips: ['192.168.0.2'],
  podCIDRs: ['10.244.1.0/24'],
});

const OPTIONS: ChunkingOptions = { threshold: 10, batchServicePorts: 7, batchRules: 100_000 };

describe('planTransactions', () => {
  it('keeps a sync at or below the threshold in one transaction', () => {
    const r = renderIptables(cluster(10).snapshot(), ctx);
    const plan = planTransactions(r.filter, r.nat, OPTIONS);
    expect(plan.precreate).toEqual([]);
    expect(plan.transactions).toEqual([[r.filter, r.nat]]);
  });

  it('writes whole service groups first and the fixed chains and deletions last', () => {
    const before = renderIptables(cluster(60, 3).snapshot(), ctx);
    const snap = cluster(60).snapshot();
    const r = renderIptables(snap, ctx, {
      full: true,
      changedServices: new Set(),
      existingChains: before.activeChains,
    });
    expect(r.staleChains.length).toBeGreaterThan(0);
    const plan = planTransactions(r.filter, r.nat, OPTIONS);
    const early = plan.transactions.slice(0, -1);
    const last = plan.transactions.at(-1)!;

    expect(early.length).toBeGreaterThanOrEqual(Math.floor(60 / 7) - 1);
    for (const tx of early) {
      expect(tx.map((t) => t.name)).toEqual(['nat']);
      expect(tx[0]!.deleted).toEqual([]);
      expect([...tx[0]!.chains.keys()].every(isServiceChain)).toBe(true);
      expect(serviceChainGroups(tx[0]!).length).toBeLessThanOrEqual(OPTIONS.batchServicePorts);
    }
    expect(last.map((t) => t.name)).toEqual(['filter', 'nat']);
    expect(last[0]).toBe(r.filter);
    const lastNat = last[1]!;
    for (const fixed of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']) {
      expect(lastNat.chains.has(fixed), fixed).toBe(true);
    }
    expect(lastNat.deleted).toEqual(r.staleChains);
    for (const stale of r.staleChains) expect(lastNat.chains.get(stale)).toEqual([]);
    expect(plan.precreate).toEqual([{ table: 'nat', chain: 'KUBE-MARK-MASQ' }]);

    // Every chain is written exactly once, with the same rules.
    const seen = new Map<string, readonly string[]>();
    for (const tx of plan.transactions) {
      for (const t of tx) {
        if (t.name !== 'nat') continue;
        for (const [c, rules] of t.chains) {
          expect(seen.has(c), `${c} written twice`).toBe(false);
          seen.set(c, rules);
        }
      }
    }
    expect(new Map([...seen].sort())).toEqual(new Map([...r.nat.chains].sort()));
  });

  it('closes each group under jumps: an SVC chain travels with its SEP chains', () => {
    const r = renderIptables(cluster(40).snapshot(), ctx);
    for (const group of serviceChainGroups(r.nat)) {
      const members = new Set(group);
      for (const c of group) {
        for (const rule of r.nat.chains.get(c)!) {
          const target = / -j (KUBE-\S+)/.exec(rule)?.[1];
          if (target && isServiceChain(target)) expect(members.has(target), `${c} -> ${target}`).toBe(true);
        }
      }
    }
  });

  it('never leaves a dangling jump in any intermediate state, from empty or from an older rule set', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 11, max: 70 }),
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 5, max: 400 }),
        fc.boolean(),
        fc.boolean(),
        (services, seed, batchServicePorts, batchRules, fromOld, append) => {
          const kernel: Kernel = new Map();
          let existing: Set<string> | null = null;
          if (fromOld) {
            const old = renderIptables(cluster(services, seed + 1).snapshot(), ctx);
            applyModel(kernel, [old.filter, old.nat]);
            existing = old.activeChains;
          }
          const snap = cluster(services, seed).snapshot();
          const r = renderIptables(snap, ctx, {
            full: true,
            changedServices: new Set(),
            existingChains: existing,
          });
          const options = { threshold: 10, batchServicePorts, batchRules };
          // From empty, the entry chains may be filled by appending (nothing jumps to them).
          const kernelNat = new Set(kernel.get('nat')?.keys() ?? []);
          const plan = planTransactions(r.filter, r.nat, options, {
            nat: kernelNat,
            appendEntryChains: append && !fromOld,
          });
          // A cluster whose services without endpoints leave at most `threshold` groups is
          // not split at all, so there is nothing to append.
          if (append && !fromOld && plan.transactions.length > 1) {
            expect(plan.transactions.at(-1)![1]!.chains.has('KUBE-SERVICES')).toBe(false);
            expect(plan.transactions.slice(0, -1).some((tx) => (tx[0]!.commands ?? []).length > 0)).toBe(
              true,
            );
          }
          for (const { table, chain } of plan.precreate) {
            let chains = kernel.get(table);
            if (!chains) {
              chains = new Map();
              kernel.set(table, chains);
            }
            if (!chains.has(chain)) chains.set(chain, []);
          }
          for (const tx of plan.transactions) {
            applyModel(kernel, tx);
            expect(danglingJumps(kernel)).toEqual([]);
          }
          const oneShot: Kernel = new Map();
          if (fromOld) {
            const old = renderIptables(cluster(services, seed + 1).snapshot(), ctx);
            applyModel(oneShot, [old.filter, old.nat]);
          }
          applyModel(oneShot, [r.filter, r.nat]);
          expect(kernel).toEqual(oneShot);
        },
      ),
      { numRuns: 40, examples: [[11, 0, 1, 5, false, true]] },
    );
  });

  it('rejects batch sizes below 1', () => {
    const r = renderIptables(cluster(12).snapshot(), ctx);
    expect(() => planTransactions(r.filter, r.nat, { ...OPTIONS, batchServicePorts: 0 })).toThrow(/>= 1/);
  });
});
