/**
 * Every golden `fixtures/<scenario>/ip{,6}tables.rules` must be something the real kernel
 * takes, with both iptables backends:
 *
 * 1. `restore --test --noflush` accepts it. This mostly parses in user space: nft does not
 *    even check that jump targets exist (legacy does, against the kernel), and neither
 *    backend lets the kernel check the rules.
 * 2. So it is also applied for real in a fresh scratch namespace (after creating the
 *    chains a partial sync jumps to without declaring them), and read back.
 * 3. `-m nfacct --nfacct-name X` needs counter X to exist in the namespace. Without
 *    counters the only failure allowed is exactly that one, and the input with the nfacct
 *    matches removed must apply. When the `nfacct` tool is installed the counters are
 *    created and the input must apply as it is.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import type { Backend } from '../../src/kernel/backend.js';
import { Iptables, listChains, RestoreError } from '../../src/kernel/iptables.js';
import type { IPFamily } from '../../src/model/ip.js';
import { type ScratchNetns, withScratchNetns } from './netns.js';
import { nfacctCounters, nfacctTool, withoutNfacct } from './nfacct.js';
import { describeKernel } from './require-root.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures', import.meta.url));
const BACKENDS: Backend[] = ['nft', 'legacy'];
const RULE_FILES: Array<[string, IPFamily]> = [
  ['iptables.rules', 'IPv4'],
  ['ip6tables.rules', 'IPv6'],
];

interface RuleFile {
  scenario: string;
  family: IPFamily;
  path: string;
}

function ruleFiles(): RuleFile[] {
  if (!existsSync(FIXTURES)) return [];
  const files: RuleFile[] = [];
  for (const scenario of readdirSync(FIXTURES).sort()) {
    for (const [file, family] of RULE_FILES) {
      const path = join(FIXTURES, scenario, file);
      if (existsSync(path)) files.push({ scenario, family, path });
    }
  }
  return files;
}

/* Pure helpers over restore input. */

interface TableSection {
  table: string;
  declared: string[];
  deleted: string[];
  rules: string[];
  jumpTargets: string[];
}

function sections(text: string): TableSection[] {
  const out: TableSection[] = [];
  let cur: TableSection | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      cur = { table: line.slice(1), declared: [], deleted: [], rules: [], jumpTargets: [] };
      out.push(cur);
    } else if (!cur || line === 'COMMIT') {
      cur = undefined;
    } else if (line.startsWith(':')) {
      cur.declared.push(line.slice(1).split(' ', 1)[0]!);
    } else if (line.startsWith('-X ')) {
      cur.deleted.push(line.slice(3).trim());
    } else if (line.startsWith('-A ')) {
      cur.rules.push(line);
      const m = / -[jg] (KUBE-\S+)/.exec(line);
      if (m) cur.jumpTargets.push(m[1]!);
    }
  }
  return out;
}

/** The lines of the table section whose COMMIT is at 1-based `commitLine`. */
function tableEndingAt(text: string, commitLine: number): string[] {
  const lines = text.split('\n').slice(0, commitLine);
  let start = lines.length - 1;
  while (start > 0 && !lines[start]!.startsWith('*')) start--;
  return lines.slice(start);
}

/** Chains a partial sync jumps to without declaring them: they exist in the kernel already. */
function preexistingChains(text: string): string {
  let out = '';
  for (const s of sections(text)) {
    const missing = [...new Set(s.jumpTargets.filter((t) => !s.declared.includes(t)))];
    if (missing.length > 0) out += `*${s.table}\n${missing.map((c) => `:${c} - [0:0]\n`).join('')}COMMIT\n`;
  }
  return out;
}

async function applyAndReadBack(iptables: Iptables, family: IPFamily, input: string, scratch: ScratchNetns) {
  const before = preexistingChains(input);
  if (before) await iptables.restore(family, before);
  await iptables.restore(family, input);
  for (const s of sections(input)) {
    const saved = await iptables.save(family, s.table);
    const chains = listChains(saved, s.table);
    const kept = s.declared.filter((c) => !s.deleted.includes(c));
    expect(chains, `${scratch.ns} ${s.table}: declared chains`).toEqual(expect.arrayContaining(kept));
    for (const gone of s.deleted) expect(chains, `${s.table}: -X ${gone}`).not.toContain(gone);
    const savedRules = saved.split('\n').filter((l) => /^-A KUBE-/.test(l));
    expect(savedRules.length, `${s.table}: rules read back`).toBe(s.rules.length);
  }
}

const files = ruleFiles();

describeKernel('golden rule files are accepted by the kernel', () => {
  if (files.length === 0) {
    it.todo('no fixtures/*/ip{,6}tables.rules exist yet');
    return;
  }

  for (const file of files) {
    const input = readFileSync(file.path, 'utf8');
    const counters = nfacctCounters(input);

    for (const backend of BACKENDS) {
      const label = `${file.scenario} ${file.family} ${backend}`;

      it(`${label}: restore --test --noflush accepts it`, async () => {
        await withScratchNetns(async ({ runner }) => {
          const iptables = new Iptables(runner, backend);
          // legacy --test resolves jump targets against the kernel (nft --test does not).
          const before = preexistingChains(input);
          if (before) await iptables.restore(file.family, before);
          await iptables.restore(file.family, input, { test: true, counters: false });
        });
      });

      if (counters.length === 0) {
        it(`${label}: applies in a scratch namespace and reads back`, async () => {
          await withScratchNetns(async (scratch) => {
            await applyAndReadBack(new Iptables(scratch.runner, backend), file.family, input, scratch);
          });
        });
        continue;
      }

      it(`${label}: without nfacct counters only the nfacct rules fail; the rest applies`, async () => {
        await withScratchNetns(async (scratch) => {
          const iptables = new Iptables(scratch.runner, backend);
          const before = preexistingChains(input);
          if (before) await iptables.restore(file.family, before);
          const error = await iptables.restore(file.family, input).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(RestoreError);
          const re = error as RestoreError;
          if (backend === 'nft') {
            // nft blames the rule itself: the kernel cannot find the counter.
            expect(re.line).toMatch(/ -m nfacct --nfacct-name /);
            expect(re.stderr).toMatch(/RULE_APPEND failed \(No such file or directory\)/);
          } else {
            // legacy checks matches at commit and blames the COMMIT of that table.
            expect(re.line).toBe('COMMIT');
            expect(tableEndingAt(input, re.lineNumber!).some((l) => / -m nfacct /.test(l))).toBe(true);
          }
          await applyAndReadBack(iptables, file.family, withoutNfacct(input), scratch);
        });
      });

      it.skipIf(!nfacctTool)(`${label}: applies as it is once the nfacct counters exist`, async () => {
        await withScratchNetns(async (scratch) => {
          for (const c of counters) await scratch.runner.run('nfacct', ['add', c]);
          await applyAndReadBack(new Iptables(scratch.runner, backend), file.family, input, scratch);
        });
      });
    }
  }
});

describeKernel('kernel features the renderer relies on', () => {
  const features: Record<string, (family: IPFamily) => string> = {
    'MASQUERADE --random-fully': () =>
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    'statistic (probabilities)': () =>
      '-A KUBE-POSTROUTING -m statistic --mode random --probability 0.3333333333 -j RETURN',
    'recent (session affinity)': (family) =>
      '-A KUBE-POSTROUTING -m recent --name KUBE-SEP-TEST --rcheck --seconds 10800 --reap -j RETURN\n' +
      `-A KUBE-POSTROUTING -m recent --name KUBE-SEP-TEST --set -m tcp -p tcp -j DNAT --to-destination ${
        family === 'IPv4' ? '10.180.0.1:80' : '[fd00:10:180::1]:80'
      }`,
  };
  for (const backend of BACKENDS) {
    for (const family of ['IPv4', 'IPv6'] as const) {
      for (const [feature, rule] of Object.entries(features)) {
        it(`${backend} ${family}: ${feature}`, async () => {
          await withScratchNetns(async ({ runner }) => {
            const iptables = new Iptables(runner, backend);
            await iptables.restore(family, `*nat\n:KUBE-POSTROUTING - [0:0]\n${rule(family)}\nCOMMIT\n`);
            const saved = await iptables.save(family, 'nat');
            expect(saved.split('\n').filter((l) => l.startsWith('-A KUBE-POSTROUTING')).length).toBe(
              rule(family).split('\n').length,
            );
          });
        });
      }
      it.skipIf(!nfacctTool)(`${backend} ${family}: nfacct with an existing counter`, async () => {
        await withScratchNetns(async ({ runner }) => {
          await runner.run('nfacct', ['add', 'ct_state_invalid_dropped_pkts']);
          const iptables = new Iptables(runner, backend);
          await iptables.restore(
            family,
            '*filter\n:KUBE-FORWARD - [0:0]\n' +
              '-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP\n' +
              'COMMIT\n',
          );
          // iptables-save prints this match with two spaces: `--nfacct-name  <name>`.
          expect(await iptables.save(family, 'filter')).toMatch(
            /--nfacct-name {2}ct_state_invalid_dropped_pkts /,
          );
        });
      });
    }
  }
});
