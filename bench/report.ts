/**
 * Benchmark results as text: a table for people, the targets with met/MISSED, and one
 * JSON line per scenario for machines (stable keys, rounded figures).
 */
import type { ScenarioResult, SyncTimes } from './scenario.js';
import { round } from './stats.js';

export const TARGETS = {
  fullMs: 1000,
  partialShareOfFull: 0.02,
  rssMiB: 256,
};

export interface TargetCheck {
  scenario: string;
  what: string;
  figure: string;
  met: boolean;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const ms = (v: number) => round(v, 1).toFixed(1);

function phases(t: SyncTimes): string {
  return `${ms(t.snapshotMs)} + ${ms(t.renderMs)} (fmt ${ms(t.formatMs)}), cpu ${ms(t.cpuMs)}`;
}

export function resultsTable(results: readonly ScenarioResult[]): string {
  const main = table(
    [
      'scenario',
      'services',
      'endpoints',
      'svc ports',
      'store ms',
      'full ms',
      'partial ms',
      'lines full',
      'lines partial',
      'RSS MiB',
      'RSS at start',
    ],
    results.map((r) => [
      r.scenario,
      String(r.services),
      String(r.endpoints),
      String(r.servicePorts),
      ms(r.storeBuildMs),
      ms(r.full.totalMs),
      ms(r.partial.totalMs),
      String(r.restoreLinesFull),
      String(r.restoreLinesPartial),
      String(round(r.rssMiB, 0)),
      String(round(r.rssStartMiB, 0)),
    ]),
  );
  const breakdown = table(
    ['scenario', 'full: snapshot + render (fmt), cpu', 'partial: snapshot + render (fmt), cpu', 'load avg'],
    results.map((r) => [
      r.scenario,
      phases(r.full),
      phases(r.partial),
      r.loadAverage.map((l) => l.toFixed(2)).join(' -> '),
    ]),
  );
  const mix = results.map((r) => {
    const m = r.mix;
    return (
      `${r.scenario}: ClusterIP ${m.clusterIP}, NodePort ${m.nodePort}, LoadBalancer ${m.loadBalancer} ` +
      `(source ranges ${m.lbSourceRanges}, eTP=Local ${m.lbLocalWithHealthCheck}), ClientIP affinity ${m.clientIPAffinity}, ` +
      `two ports ${m.multiPort}; endpoints not ready ${m.notReadyEndpoints}, terminating ${m.terminatingEndpoints}, ` +
      `on this node ${m.localEndpoints}`
    );
  });
  return [
    main,
    '',
    'medians of 5, wall-clock ms; fmt = the restore-text formatting part of render; cpu = process CPU ms;',
    'load avg = 1-minute load at start -> end of the scenario (the bench itself adds ~1; on 2 cores, above ~2 others compete and figures are inflated)',
    breakdown,
    '',
    'mix:',
    ...mix.map((m) => `  ${m}`),
  ].join('\n');
}

export function checkTargets(results: readonly ScenarioResult[]): TargetCheck[] {
  return results.flatMap((r) => {
    const share = r.partial.totalMs / r.full.totalMs;
    return [
      {
        scenario: r.scenario,
        what: `full render < ${TARGETS.fullMs} ms`,
        figure: `${ms(r.full.totalMs)} ms`,
        met: r.full.totalMs < TARGETS.fullMs,
      },
      {
        scenario: r.scenario,
        what: `partial render <= ${TARGETS.partialShareOfFull * 100}% of full`,
        figure: `${ms(r.partial.totalMs)} ms = ${round(share * 100, 1)}%`,
        met: share <= TARGETS.partialShareOfFull,
      },
      {
        scenario: r.scenario,
        what: `peak RSS <= ${TARGETS.rssMiB} MiB`,
        figure: `${round(r.rssMiB, 0)} MiB`,
        met: r.rssMiB <= TARGETS.rssMiB,
      },
    ];
  });
}

export function targetLines(checks: readonly TargetCheck[]): string[] {
  return checks.map((c) => `target ${c.scenario}: ${c.what}: ${c.figure}: ${c.met ? 'met' : 'MISSED'}`);
}

export function jsonLine(r: ScenarioResult): string {
  return JSON.stringify({
    scenario: r.scenario,
    services: r.services,
    endpoints: r.endpoints,
    renderFullMs: round(r.full.totalMs, 1),
    renderPartialMs: round(r.partial.totalMs, 1),
    restoreLinesFull: r.restoreLinesFull,
    restoreLinesPartial: r.restoreLinesPartial,
    rssMiB: round(r.rssMiB, 0),
  });
}
