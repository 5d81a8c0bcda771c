/**
 * The real-IPVS-kernel checks, run in a qemu guest booted ONCE for the whole file: beforeAll
 * compiles the guest checks (test/vm/guest/checks/*.ts), boots Debian's kernel and runs them
 * all in sequence; each check then gets its own `it` here, failing with the guest's detail.
 * SB_VM_CHECKS=name,name runs only those (the others are skipped). See "VM tests" in the README.
 */
import { beforeAll, expect, it } from 'vitest';
import { type GuestChecksRun, listGuestChecks, runGuestChecks } from './guest-checks.js';
import { describeVm } from './require-vm.js';

const ALL = listGuestChecks();
const only = process.env['SB_VM_CHECKS']
  ?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const unknown = (only ?? []).filter((n) => !ALL.includes(n));
if (unknown.length > 0)
  throw new Error(`SB_VM_CHECKS names unknown checks: ${unknown.join(', ')} (known: ${ALL.join(', ')})`);
const SELECTED = only ?? ALL;
const GUEST_TIMEOUT_MS = 10 * 60_000;

const tail = (text: string, lines: number) => text.trimEnd().split('\n').slice(-lines).join('\n');

describeVm('real IPVS kernel in a VM guest', () => {
  let guest: GuestChecksRun;

  beforeAll(
    async () => {
      guest = await runGuestChecks(SELECTED, { timeoutMs: GUEST_TIMEOUT_MS });
      const { run, results } = guest;
      // each passing check's notes too: what it measured is worth reading in a CI log
      const indent = (text: string) => (text === '' ? '' : `\n    ${text.replace(/\n/g, '\n    ')}`);
      const perCheck = [...results.values()].map(
        (r) => `${r.name} ${r.ok ? 'ok' : 'FAILED'} ${r.ms} ms${r.ok ? indent(r.detail) : ''}`,
      );
      console.info(
        `[vm] boot ${run.bootMs} ms, checks ${run.runMs} ms (exit code ${run.exitCode}):\n  ${perCheck.join('\n  ')}`,
      );
    },
    GUEST_TIMEOUT_MS + 3 * 60_000,
  );

  for (const name of ALL) {
    it.skipIf(!SELECTED.includes(name))(name, () => {
      const result = guest.results.get(name);
      if (!result) {
        throw new Error(
          `the guest never reported check ${name} (it stopped early?)\n--- guest stderr ---\n${tail(guest.run.stderr, 40)}`,
        );
      }
      if (!result.ok) throw new Error(`${name} failed in the guest (${result.ms} ms):\n${result.detail}`);
      expect(result.ok).toBe(true);
    });
  }

  it('the guest reported every check, printed nothing else on stdout and exited 0', () => {
    const { results, otherStdout, run } = guest;
    const problems: string[] = [];
    const missing = SELECTED.filter((n) => !results.has(n));
    if (missing.length > 0) problems.push(`no result for ${missing.join(', ')}`);
    if (otherStdout.length > 0) problems.push(`stray stdout lines:\n${otherStdout.slice(0, 20).join('\n')}`);
    const failed = [...results.values()].filter((r) => !r.ok).length;
    if (run.exitCode !== (failed > 0 ? 1 : 0))
      problems.push(`guest exit code ${run.exitCode} with ${failed} failed`);
    if (problems.length > 0) {
      throw new Error(`${problems.join('\n')}\n--- guest stderr ---\n${tail(run.stderr, 40)}`);
    }
  });
});
