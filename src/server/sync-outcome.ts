/**
 * What one sync meant for each IP family. kube-proxy runs one proxier per family and keeps health
 * and metrics per family; Switchboard syncs every family's backend in one loop, so a SyncReport is
 * split back into per-family outcomes here.
 */
import type { IPFamily } from '../model/ip.js';
import type { BackendSyncResult, SyncReport } from '../sync/backend.js';

export interface FamilyOutcome {
  family: IPFamily;
  /** this family's backend applied its rules */
  ok: boolean;
  /** the family's sync was (or, when it failed, was meant to be) a full one */
  full: boolean;
  /** the backend's result, when it succeeded */
  result: BackendSyncResult | null;
}

/**
 * Splits a report by family. A backend that returned a result succeeded; one that did not, failed.
 * Results carry their family when the loop stamps it; unstamped results are matched to `families`
 * by position only when every backend returned one, since the loop lists results in backend order
 * and skips failed backends. When that is not possible every family counts as failed, which keeps
 * health conservative (a pending update stays pending).
 */
export function familyOutcomes(report: SyncReport, families: readonly IPFamily[]): FamilyOutcome[] {
  const byFamily = new Map<IPFamily, BackendSyncResult>();
  if (report.results.every((r) => r.family !== undefined)) {
    for (const r of report.results) byFamily.set(r.family!, r);
  } else if (report.results.length === families.length) {
    for (const [i, family] of families.entries()) byFamily.set(family, report.results[i]!);
  }
  const all = [...families, ...[...byFamily.keys()].filter((f) => !families.includes(f))];
  return all.map((family) => {
    const result = byFamily.get(family) ?? null;
    return { family, ok: result !== null, full: result?.full ?? report.full, result };
  });
}

/** When the sync finished, in milliseconds since the epoch. */
export function syncEndMs(report: SyncReport): number {
  return report.startedAtMs + report.durationMs;
}
