/**
 * What the kernel holds after a sequence of `iptables-restore --noflush` inputs, modelled
 * on the renderer's tables: a declared chain is flushed and gets the input's rules, an
 * undeclared one keeps its rules, `-X` removes a chain. Used to check that full + partial
 * syncs leave exactly what one full sync of the final state would.
 */
import type { RestoreTable, TableName } from '../src/backends/iptables/restore-text.js';

export type KernelTables = Map<TableName, Map<string, readonly string[]>>;

export function applyRestore(kernel: KernelTables, tables: readonly RestoreTable[]): void {
  for (const table of tables) {
    const chains = kernel.get(table.name) ?? new Map<string, readonly string[]>();
    kernel.set(table.name, chains);
    for (const [chain, rules] of table.chains) chains.set(chain, rules);
    for (const chain of table.deleted) chains.delete(chain);
  }
}

/** Differences between two kernels' chains, at most `limit` of them. */
export function diffKernels(actual: KernelTables, expected: KernelTables, limit = 5): string[] {
  const out: string[] = [];
  for (const name of new Set([...actual.keys(), ...expected.keys()])) {
    const a = actual.get(name) ?? new Map<string, readonly string[]>();
    const e = expected.get(name) ?? new Map<string, readonly string[]>();
    for (const chain of new Set([...a.keys(), ...e.keys()])) {
      const ar = a.get(chain);
      const er = e.get(chain);
      if (ar === undefined) out.push(`${name} ${chain}: missing`);
      else if (er === undefined) out.push(`${name} ${chain}: should not exist`);
      else if (ar.length !== er.length || ar.some((r, i) => r !== er[i]))
        out.push(`${name} ${chain}: rules differ`);
      if (out.length >= limit) return out;
    }
  }
  return out;
}
