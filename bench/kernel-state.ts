/**
 * A namespace's Switchboard rules as read back with `iptables-save`, in a form two
 * namespaces can be compared in: the KUBE-* chains of the nat and filter tables and the
 * built-in chains' jumps into them, normalised with the renderer's own normalizeRestore
 * (chains in canonical order; iptables-save prints them in the kernel's order).
 */
import { normalizeRestore, parseRestore } from '../src/backends/iptables/restore-text.js';

const TABLES = new Set(['nat', 'filter']);
const JUMPS_TO_KUBE = / -[jg] KUBE-/;

export function kubeStateFromSave(saveText: string): string {
  const kept: string[] = [];
  let table: string | undefined;
  for (const raw of saveText.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) {
      table = TABLES.has(line.slice(1)) ? line.slice(1) : undefined;
      if (table) kept.push(line);
      continue;
    }
    if (table === undefined) continue;
    if (line === 'COMMIT') {
      kept.push(line);
      table = undefined;
    } else if (line.startsWith(':KUBE-') || line.startsWith('-A KUBE-') || JUMPS_TO_KUBE.test(line)) {
      kept.push(line);
    }
  }
  return normalizeRestore(`${kept.join('\n')}\n`);
}

export interface StateSummary {
  chains: number;
  rules: number;
}

/** Chains and rules in a normalised state (built-in chains counted with their jumps). */
export function summarizeState(state: string): StateSummary {
  let chains = 0;
  let rules = 0;
  for (const table of parseRestore(state)) {
    chains += table.chains.size;
    for (const r of table.chains.values()) rules += r.length;
  }
  return { chains, rules };
}

/** Up to `limit` lines describing how two normalised states differ; empty when equal. */
export function diffStates(actual: string, expected: string, limit = 6): string[] {
  if (actual === expected) return [];
  const a = actual.split('\n');
  const e = expected.split('\n');
  const aSet = new Set(a);
  const eSet = new Set(e);
  const extra = a.filter((l) => !eSet.has(l));
  const missing = e.filter((l) => !aSet.has(l));
  const out = [
    ...missing.slice(0, limit / 2).map((l) => `missing: ${l}`),
    ...extra.slice(0, limit / 2).map((l) => `unexpected: ${l}`),
  ];
  if (out.length === 0) out.push('the same lines in a different order');
  const more = missing.length + extra.length - out.length;
  if (more > 0) out.push(`... and ${more} more differing lines`);
  return out;
}
