/**
 * The saved-form model against the real tools, with both iptables backends: every golden
 * `fixtures/<scenario>/ip{,6}tables.rules` (rule for rule what kube-proxy writes) is
 * restored into a scratch namespace and read back with iptables-save, and then
 *
 * 1. every rule's derived saved form is exactly the line iptables-save printed, and a
 *    saved line's saved form is itself;
 * 2. every chain the file writes compares equal to the kernel's (kernel-diff.ts);
 * 3. with one rule of several chains changed before the restore (a port, an address, a
 *    probability, a comment, a target; a rule dropped; two rules swapped), exactly those
 *    chains compare different.
 *
 * `-m nfacct` needs its counter in the namespace: created with the nfacct tool (CI has
 * it); without the tool those rules are left out.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import {
  chainMatches,
  isTextChain,
  parseSavedTables,
  savedRuleLines,
} from '../../src/backends/iptables/kernel-diff.js';
import { parseRestore, type RestoreTable } from '../../src/backends/iptables/restore-text.js';
import { savedForm } from '../../src/backends/iptables/saved-form.js';
import type { Backend } from '../../src/kernel/backend.js';
import { Iptables } from '../../src/kernel/iptables.js';
import type { IPFamily } from '../../src/model/ip.js';
import { withScratchNetns } from './netns.js';
import { describeKernel } from './require-root.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures', import.meta.url));
const BACKENDS: Backend[] = ['nft', 'legacy'];
const NFACCT = / -m nfacct --nfacct-name (\S+)/g;

function hasNfacctTool(): boolean {
  try {
    execFileSync('nfacct', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const nfacctTool = hasNfacctTool();

function ruleFiles(): Array<{ scenario: string; family: IPFamily; text: string }> {
  const out: Array<{ scenario: string; family: IPFamily; text: string }> = [];
  for (const scenario of readdirSync(FIXTURES).sort()) {
    for (const [file, family] of [
      ['iptables.rules', 'IPv4'],
      ['ip6tables.rules', 'IPv6'],
    ] as const) {
      const path = join(FIXTURES, scenario, file);
      if (existsSync(path)) {
        const text = readFileSync(path, 'utf8');
        out.push({ scenario, family, text: nfacctTool ? text : text.replace(NFACCT, '') });
      }
    }
  }
  return out;
}

/** Chains a partial render jumps to without declaring: they exist in the kernel already. */
function preexisting(tables: readonly RestoreTable[]): string {
  let out = '';
  for (const t of tables) {
    const missing = new Set<string>();
    for (const rules of t.chains.values()) {
      for (const rule of rules) {
        const target = / -j (KUBE-\S+)/.exec(rule)?.[1];
        if (target && !t.chains.has(target)) missing.add(target);
      }
    }
    if (missing.size > 0) out += `*${t.name}\n${[...missing].map((c) => `:${c} - [0:0]\n`).join('')}COMMIT\n`;
  }
  return out;
}

type Mutation = (rule: string) => string | null;

/** Changes that make a different kernel rule (each returns null when it does not apply). */
const MUTATIONS: Array<[string, Mutation]> = [
  [
    'port',
    (r) => (/--dport \d+/.test(r) ? r.replace(/--dport (\d+)/, (_, p) => `--dport ${Number(p) + 1}`) : null),
  ],
  [
    'DNAT port',
    (r) => (/--to-destination \S+:\d+/.test(r) ? r.replace(/:(\d+)$/, (_, p) => `:${Number(p) + 1}`) : null),
  ],
  [
    'probability',
    (r) =>
      r.includes('--probability') ? r.replace(/--probability \S+/, '--probability 0.1234567890') : null,
  ],
  ['comment', (r) => (r.includes('--comment "') ? r.replace('--comment "', '--comment "x') : null)],
  ['target', (r) => (/ -j KUBE-MARK-MASQ$/.test(r) ? r.replace(/ -j KUBE-MARK-MASQ$/, ' -j RETURN') : null)],
];

/** Applies each mutation to the first rule it fits (one chain each); returns the changed chains. */
function mutate(tables: RestoreTable[]): Set<string> {
  const changed = new Set<string>();
  for (const [, fn] of MUTATIONS) {
    found: for (const t of tables) {
      for (const [chain, rules] of t.chains) {
        const key = `${t.name} ${chain}`;
        if (changed.has(key)) continue;
        for (const [i, rule] of rules.entries()) {
          const next = fn(rule);
          if (next === null) continue;
          t.chains.set(
            chain,
            rules.map((r, j) => (j === i ? next : r)),
          );
          changed.add(key);
          break found;
        }
      }
    }
  }
  // A rule dropped, and two different rules swapped.
  for (const t of tables) {
    for (const [chain, rules] of t.chains) {
      const key = `${t.name} ${chain}`;
      if (changed.has(key) || rules.length < 2 || rules[0] === rules[1]) continue;
      if (![...changed].some((c) => c.endsWith('(drop)'))) {
        t.chains.set(chain, rules.slice(1));
        changed.add(key).add(`${key} (drop)`);
      } else if (![...changed].some((c) => c.endsWith('(swap)'))) {
        t.chains.set(chain, [rules[1]!, rules[0]!, ...rules.slice(2)]);
        changed.add(key).add(`${key} (swap)`);
      }
    }
  }
  return changed;
}

function restoreText(tables: readonly RestoreTable[]): string {
  return tables
    .map((t) => {
      const chains = [...t.chains];
      return [
        `*${t.name}`,
        ...chains.map(([c]) => `:${c} - [0:0]`),
        ...chains.flatMap(([, rules]) => rules),
        ...t.deleted.map((c) => `-X ${c}`),
        'COMMIT',
      ].join('\n');
    })
    .join('\n')
    .concat('\n');
}

async function restoreAndSave(
  backend: Backend,
  family: IPFamily,
  tables: RestoreTable[],
  counters: string[],
) {
  return withScratchNetns(async ({ runner }) => {
    for (const c of counters) await runner.run('nfacct', ['add', c]);
    const iptables = new Iptables(runner, backend);
    const before = preexisting(tables);
    if (before) await iptables.restore(family, before);
    await iptables.restore(family, restoreText(tables));
    const save = await iptables.save(family);
    // Every chain's lines, and as the sync reads them (service chains as digests only).
    return { lines: parseSavedTables(save, { digestOnly: () => false }), synced: parseSavedTables(save) };
  });
}

describeKernel('the saved form of every golden rule is what iptables-save prints', () => {
  for (const file of ruleFiles()) {
    const counters = [...new Set([...file.text.matchAll(NFACCT)].map((m) => m[1]!))];
    for (const backend of BACKENDS) {
      const label = `${file.scenario} ${file.family} ${backend}`;

      it(`${label}: every rule and chain compares equal`, async () => {
        const tables = parseRestore(file.text);
        const { lines: saved, synced } = await restoreAndSave(backend, file.family, tables, counters);
        let rules = 0;
        for (const t of tables) {
          const deleted = new Set(t.deleted);
          for (const [chain, rendered] of t.chains) {
            if (deleted.has(chain)) continue;
            const held = saved.get(t.name)?.get(chain);
            expect(held, `${t.name} ${chain} read back`).toBeDefined();
            if (!isTextChain(held!)) throw new Error(`${t.name} ${chain}: kept as a digest`);
            const lines = savedRuleLines(held!);
            expect(lines.length, `${t.name} ${chain}`).toBe(rendered.length);
            rendered.forEach((rule, i) => {
              expect(savedForm(rule, file.family), rule).toBe(lines[i]);
              expect(savedForm(lines[i]!, file.family), lines[i]).toBe(lines[i]);
            });
            expect(chainMatches(rendered, held!, file.family), `${t.name} ${chain}`).toBe(true);
            const digested = synced.get(t.name)!.get(chain)!;
            expect(
              chainMatches(rendered, digested, file.family),
              `${t.name} ${chain} as read by a sync`,
            ).toBe(true);
            rules += rendered.length;
          }
        }
        expect(rules).toBeGreaterThan(0);
      });

      it(`${label}: a changed rule makes exactly its chain differ`, async () => {
        const original = parseRestore(file.text);
        const mutated = parseRestore(file.text);
        const changed = mutate(mutated);
        expect(changed.size).toBeGreaterThan(0);
        const read = await restoreAndSave(backend, file.family, mutated, counters);
        for (const saved of [read.lines, read.synced]) {
          for (const t of original) {
            const deleted = new Set(t.deleted);
            for (const [chain, rendered] of t.chains) {
              if (deleted.has(chain)) continue;
              const held = saved.get(t.name)?.get(chain);
              const same = held !== undefined && chainMatches(rendered, held, file.family);
              expect(same, `${t.name} ${chain}`).toBe(!changed.has(`${t.name} ${chain}`));
            }
          }
        }
      });
    }
  }
});
