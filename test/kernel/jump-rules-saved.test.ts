/**
 * The jump rules from the built-in chains (spec §16) against the real tools, both
 * backends, both families: a full sync decides from one iptables-save which of them are
 * missing and inserts those with its last restore (`-I CHAIN 1 ...`). That must find every
 * rule the tools made (never add one twice), and give the same chains as the commands
 * (`-N`, `-C`, `-I`) ensureJumpRules runs.
 */
import { expect, it } from 'vitest';
import {
  ensureJumpRules,
  JUMP_RULES,
  jumpRuleInsert,
  missingJumpRules,
} from '../../src/backends/iptables/jump-rules.js';
import { parseSavedTables } from '../../src/backends/iptables/kernel-diff.js';
import type { Backend } from '../../src/kernel/backend.js';
import { Iptables } from '../../src/kernel/iptables.js';
import type { IPFamily } from '../../src/model/ip.js';
import { withScratchNetns } from './netns.js';
import { describeKernel } from './require-root.js';

/** The built-in chains' rules, per table and chain, as saved. */
function builtinRules(save: string): string[] {
  const out: string[] = [];
  for (const [table, chains] of parseSavedTables(save)) {
    for (const [name, chain] of chains) {
      if (chain.builtin && chain.count > 0) out.push(`${table} ${name}`, chain.rules);
    }
  }
  return out;
}

describeKernel('jump rules: what iptables-save shows, and inserting the missing ones by restore', () => {
  for (const backend of ['nft', 'legacy'] as const satisfies readonly Backend[]) {
    for (const family of ['IPv4', 'IPv6'] as const satisfies readonly IPFamily[]) {
      it(`${backend} ${family}`, async () => {
        const byCommands = await withScratchNetns(async ({ runner }) => {
          const iptables = new Iptables(runner, backend);
          expect(await ensureJumpRules(iptables, family)).toBe(JUMP_RULES.length);
          const save = await iptables.save(family);
          expect(missingJumpRules(parseSavedTables(save), family)).toEqual([]);
          return builtinRules(save);
        });

        const byRestore = await withScratchNetns(async ({ runner }) => {
          const iptables = new Iptables(runner, backend);
          expect(missingJumpRules(parseSavedTables(await iptables.save(family)), family)).toEqual(JUMP_RULES);
          for (const rule of JUMP_RULES) await iptables.ensureChain(family, rule.table, rule.to);
          const text = ['filter', 'nat']
            .map((t) =>
              [`*${t}`, ...JUMP_RULES.filter((r) => r.table === t).map(jumpRuleInsert), 'COMMIT'].join('\n'),
            )
            .join('\n');
          await iptables.restore(family, `${text}\n`);
          const save = await iptables.save(family);
          expect(missingJumpRules(parseSavedTables(save), family)).toEqual([]);
          return builtinRules(save);
        });
        expect(byRestore).toEqual(byCommands);
      });
    }
  }
});
