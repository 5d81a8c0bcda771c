/**
 * What a guest check is. A check is one file, `test/vm/guest/checks/<name>.ts`, whose default
 * export is an async function taking a CheckContext; it passes unless it throws. It runs as
 * root inside the VM guest (Debian's kernel: ip_vs, dummy, ipset, ... all there), with the
 * host's real tools; it imports the project's code from its sources (`../../../../src/...js`),
 * bundled with it into dist/vm/ (test/vm/guest-checks.ts). It may change
 * anything in the guest, but should keep to namespaces it creates (`t.scratchNetns()`,
 * `t.topology()`) so the checks after it start from a clean guest. Optional: export
 * `timeoutMs` (default DEFAULT_CHECK_TIMEOUT_MS).
 *
 *   import assert from 'node:assert/strict';
 *   import type { CheckContext } from '../check.js';
 *
 *   export default async function (t: CheckContext): Promise<void> {
 *     const { runner } = await t.scratchNetns();
 *     const { stdout } = await runner.run('ipvsadm', ['-Ln']);
 *     assert.match(stdout, /IP Virtual Server/);
 *     t.note('ipvsadm -Ln works');
 *   }
 */
import type { CommandRunner } from '../../../src/kernel/exec.js';
import type { ScratchNetns, Topology } from '../../kernel/netns.js';

export interface CheckContext {
  /** Runs a command in the guest's root namespace (execa; throws on a non-zero exit unless `reject: false`). */
  readonly sh: CommandRunner;
  /** The checkout (the host's, seen read-only through the overlay: writes stay in the guest). */
  readonly repoRoot: string;
  /** The bundled switchboard CLI: `node <cli> run ...` (built from the sources on every test run). */
  readonly cli: string;
  /** A line for the check's detail, shown in the test output (and on failure, with the error). */
  note(line: string): void;
  /** Runs after the check, whether it passed or not; the last registered runs first. */
  defer(cleanup: () => unknown): void;
  /** A fresh namespace with only `lo` up (its `runner` runs commands in it); deleted after the check. */
  scratchNetns(): Promise<ScratchNetns>;
  /**
   * test/kernel/netns.ts's topology: a node namespace (forwarding on), `pods` pod namespaces
   * behind veth pairs and an external host; echo servers and clients included. Torn down
   * after the check.
   */
  topology(pods: number): Promise<Topology>;
}

export type GuestCheck = (t: CheckContext) => Promise<void>;

/** One line of the guest's stdout per check. */
export interface CheckResult {
  name: string;
  ok: boolean;
  /** The notes, and on failure the error with its stack. */
  detail: string;
  ms: number;
}

export const DEFAULT_CHECK_TIMEOUT_MS = 120_000;

/** Whether a parsed stdout line is a CheckResult (the host ignores anything else). */
export function isCheckResult(value: unknown): value is CheckResult {
  const v = value as Partial<CheckResult> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.name === 'string' &&
    typeof v.ok === 'boolean' &&
    typeof v.detail === 'string' &&
    typeof v.ms === 'number'
  );
}
