/**
 * Benchmark results as text: tables for people, the targets with met/MISSED, and one
 * JSON line per scenario and iptables backend for machines (stable keys, rounded figures).
 */
import type { Backend } from '../src/kernel/backend.js';
import type { KernelResult } from './kernel-scenario.js';
import type { ManifestLoadResult } from './manifest-load.js';
import type { RunPathResult, StartFigures } from './run-scenario.js';
import { type ScenarioResult, type SyncTimes, TIMED_RUNS } from './scenario.js';
import { round } from './stats.js';

export const TARGETS = {
  fullMs: 1000,
  partialShareOfFull: 0.02,
  rssMiB: 256,
  /** kernel apply with iptables-nft, end to end; legacy figures are reported without a target */
  nftApplyFullMs: 15_000,
  nftApplyPartialMs: 50,
  /** `render --from` a 10k x 10 dump (issue 9: a 12 MB YAML dump; ours is kubectl-shaped and larger) */
  manifestYamlMs: 3000,
  manifestJsonMs: 2000,
  manifestJsonRssMiB: 300,
  /** the `run` path with the API source, nft (issue 9 §1) */
  nftRunFirstSyncMs: 10_000,
  nftRunRestartMs: 8_000,
  nftRunEventToSyncedMs: 350,
  /** the `run` path's memory (issue 9 §2): steady RSS, and the peak of every start */
  runSteadyRssMiB: 200,
  runPeakRssMiB: 300,
};

export interface TargetCheck {
  scenario: string;
  what: string;
  figure: string;
  met: boolean;
}

export function table(header: string[], rows: string[][]): string {
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

const kernelMs = (v: number | undefined) => (v === undefined ? '-' : String(Math.round(v)));

export function kernelTable(results: readonly KernelResult[]): string {
  const main = table(
    [
      'scenario',
      'backend',
      'svc ports',
      'cold start ms',
      'restores',
      'restore ms',
      'lines',
      'partial ms',
      'min-max',
      'restore ms',
      'lines',
      '1-rule restore',
      'load avg',
    ],
    results.map((r) => [
      r.scenario,
      r.backend,
      String(r.servicePorts),
      kernelMs(r.full?.ms),
      r.full ? String(r.full.restores) : '-',
      kernelMs(r.full?.restoreMs),
      r.full ? String(r.full.restoreLines) : '-',
      r.partial ? ms(r.partial.ms) : '-',
      r.partial ? `${ms(r.partial.minMs)}-${ms(r.partial.maxMs)}` : '-',
      r.partial ? ms(r.partial.restoreMs) : '-',
      r.partial ? String(r.partial.restoreLines) : '-',
      r.oneRuleRestoreMs === null ? '-' : ms(r.oneRuleRestoreMs),
      r.loadAverage.map((l) => l.toFixed(2)).join(' -> '),
    ]),
  );
  return [
    'kernel apply: IptablesBackend into a fresh network namespace, wall-clock ms, end to end.',
    'cold start = the first full sync (jump rules, canaries, iptables-save, render, every restore);',
    `partial = sync after one endpoint change (render + restore; snapshot build not included), median of ${TIMED_RUNS} changes on different services;`,
    'restore ms = the iptables-restore processes alone (started through `ip netns exec`, ~2 ms each);',
    '1-rule restore = a restore of one new chain with one rule into the same tables: the floor under any partial sync',
    main,
    ...results.map((r) => `  ${r.scenario} ${r.backend}: kernel state check: ${r.verification}`),
  ].join('\n');
}

function kernelCheck(what: string, value: number | undefined, limit: number): Omit<TargetCheck, 'scenario'> {
  return {
    what: `${what} <= ${limit} ms`,
    figure: value === undefined ? 'not measured' : `${ms(value)} ms`,
    met: value !== undefined && value <= limit,
  };
}

/** nft has targets; legacy figures are only reported (it rewrites the whole table on every restore). */
export function checkKernelTargets(results: readonly KernelResult[]): TargetCheck[] {
  return results
    .filter((r) => r.backend === 'nft')
    .flatMap((r) => [
      { scenario: `${r.scenario} nft`, ...kernelCheck('cold start', r.full?.ms, TARGETS.nftApplyFullMs) },
      {
        scenario: `${r.scenario} nft`,
        ...kernelCheck('one-endpoint change', r.partial?.ms, TARGETS.nftApplyPartialMs),
      },
    ]);
}

export function kernelReportLines(results: readonly KernelResult[]): string[] {
  return results
    .filter((r) => r.backend !== 'nft')
    .map(
      (r) =>
        `report ${r.scenario} ${r.backend}: cold start ${kernelMs(r.full?.ms)} ms, one-endpoint change ` +
        `${r.partial ? ms(r.partial.ms) : '-'} ms (no target: legacy rewrites the whole table on every restore)`,
    );
}

const start = (f: StartFigures | null) =>
  f ? `${kernelMs(f.ms)} (${kernelMs(f.listedMs)} + ${kernelMs(f.syncMs)})` : '-';
const cpu = (f: StartFigures | null) =>
  f ? `${(f.cpuMs / 1000).toFixed(1)} + ${(f.childCpuMs / 1000).toFixed(1)}` : '-';

export function runPathTable(results: readonly RunPathResult[]): string {
  const main = table(
    [
      'scenario',
      'backend',
      'first sync ms',
      'cpu s',
      'lines',
      'write floor ms',
      'event->synced ms',
      'min-max',
      'sync ms',
      '1-chain floor ms',
      'ratio',
      'restart ms',
      'cpu s',
      'lines',
      'save floor ms',
      'takeover ms',
      'cpu s',
      'lines',
      'load avg',
    ],
    results.map((r) => [
      r.scenario,
      r.backend,
      start(r.firstSync),
      cpu(r.firstSync),
      r.firstSync ? String(r.firstSync.restoreLines) : '-',
      r.kernelWriteMs === null ? '-' : kernelMs(r.kernelWriteMs),
      r.eventToSynced ? ms(r.eventToSynced.ms) : '-',
      r.eventToSynced ? `${ms(r.eventToSynced.minMs)}-${ms(r.eventToSynced.maxMs)}` : '-',
      r.eventToSynced ? ms(r.eventToSynced.syncMs) : '-',
      r.floorMs === null ? '-' : ms(r.floorMs),
      r.eventToSynced && r.floorMs ? (r.eventToSynced.ms / r.floorMs).toFixed(2) : '-',
      start(r.restart),
      cpu(r.restart),
      r.restart ? String(r.restart.restoreLines) : '-',
      r.saveMs === null ? '-' : kernelMs(r.saveMs),
      start(r.takeover),
      cpu(r.takeover),
      r.takeover ? String(r.takeover.restoreLines) : '-',
      r.loadAverage.map((l) => l.toFixed(2)).join(' -> '),
    ]),
  );
  return [
    'run path: the proxy as `switchboard run` starts it, with the API source (an API double in another process), into fresh',
    'network namespaces; wall-clock ms. first sync / restart / takeover: start to the end of the first sync, as',
    '"total (list + sync)"; cpu s = CPU seconds over that span, this process (the proxy) + the commands it',
    'ran (iptables-*, ip): steadier than wall time on a shared machine; lines = restore lines written (restart: over',
    'its own rules; takeover: over the same rules',
    `written the way kube-proxy writes them). event->synced: an EndpointSlice change handed to the API double to the`,
    `end of the sync that applied it, median of ${TIMED_RUNS}; floor: one restore of one chain with one rule into the same`,
    'table, measured in the same run; ratio = event->synced / floor. write floor: the same rules written into an empty',
    "namespace the way kube-proxy writes them (bounded restores, by the API double's process, its render included), the",
    'floor of a first sync; save floor: one iptables-save of the whole table, which a restart must read.',
    main,
    '',
    runPathMemoryTable(results),
  ].join('\n');
}

const mibOrDash = (v: number | null | undefined) =>
  v === null || v === undefined ? '-' : String(Math.round(v));

function runPathMemoryTable(results: readonly RunPathResult[]): string {
  const main = table(
    [
      'scenario',
      'backend',
      'base RSS',
      'first sync peak',
      'steady RSS',
      'heap used',
      'live heap',
      'RSS after GC',
      'restart peak',
      'takeover peak',
      'run child: first sync peak',
      'steady',
      'run --once --from peak',
      'ms',
    ],
    results.map((r) => [
      r.scenario,
      r.backend,
      mibOrDash(r.baseRssMiB),
      mibOrDash(r.firstSync?.peakRssMiB),
      mibOrDash(r.steady?.rssMiB),
      mibOrDash(r.steady?.heapUsedMiB),
      mibOrDash(r.steady?.liveHeapMiB),
      mibOrDash(r.steady?.rssAfterGcMiB),
      mibOrDash(r.restart?.peakRssMiB),
      mibOrDash(r.takeover?.peakRssMiB),
      mibOrDash(r.cli?.firstSyncPeakMiB),
      mibOrDash(r.cli?.steadyRssMiB),
      mibOrDash(r.onceFromManifest?.peakRssMiB),
      r.onceFromManifest ? String(Math.round(r.onceFromManifest.ms)) : '-',
    ]),
  );
  return [
    'run path memory, MiB: the proxy process (the API double runs apart). base = RSS before the proxy started;',
    "peaks are the kernel's high-water mark of RSS over each start (reset before it, after a forced GC);",
    `steady = median RSS over 5 s, 35 s after the last endpoint change (after a periodic sync); heap used = V8's at its end, live heap = after`,
    'a forced full GC, RSS after GC = a second after it. run child = `switchboard run` (API source) as a process of its',
    'own, the process the DaemonSet runs: its peak RSS to the end of its first sync and its steady RSS, sampled the same way.',
    'run --once --from = the CLI as a child process, the JSON dump, into a fresh namespace (its peak RSS).',
    main,
  ].join('\n');
}

/** A check's figure followed by its ratio to a floor measured in the same run, when both exist. */
function withRatio(
  check: TargetCheck,
  value: number | undefined,
  floor: number | null,
  what: string,
): TargetCheck {
  if (value === undefined || floor === null || floor <= 0) return check;
  return {
    ...check,
    figure: `${check.figure} (${(value / floor).toFixed(2)}x ${what}, ${kernelMs(floor)} ms)`,
  };
}

/** nft has targets; legacy figures are only reported. */
export function checkRunPathTargets(results: readonly RunPathResult[]): TargetCheck[] {
  return results
    .filter((r) => r.backend === 'nft')
    .flatMap((r) => {
      const scenario = `${r.scenario} nft run`;
      const lines = (f: StartFigures | null, what: string): TargetCheck => ({
        scenario,
        what: `${what} writes nothing`,
        figure: f ? `${f.restoreLines} restore lines` : 'not measured',
        met: f !== null && f.restoreLines === 0,
      });
      const floor =
        r.eventToSynced && r.floorMs ? ` (${(r.eventToSynced.ms / r.floorMs).toFixed(2)}x the floor)` : '';
      return [
        withRatio(
          {
            scenario,
            ...kernelCheck('first sync from empty, API source', r.firstSync?.ms, TARGETS.nftRunFirstSyncMs),
          },
          r.firstSync?.ms,
          r.kernelWriteMs,
          'the write floor',
        ),
        withRatio(
          { scenario, ...kernelCheck('restart over its own rules', r.restart?.ms, TARGETS.nftRunRestartMs) },
          r.restart?.ms,
          r.saveMs,
          'the save floor',
        ),
        lines(r.restart, 'restart over its own rules'),
        lines(r.takeover, 'takeover from kube-proxy-identical rules'),
        {
          scenario,
          ...kernelCheck('watch event -> synced', r.eventToSynced?.ms, TARGETS.nftRunEventToSyncedMs),
          ...(r.eventToSynced ? { figure: `${ms(r.eventToSynced.ms)} ms${floor}` } : {}),
        },
        memoryCheck(scenario, 'steady RSS', r.steady?.rssMiB, TARGETS.runSteadyRssMiB),
        memoryCheck(scenario, 'first sync peak RSS', r.firstSync?.peakRssMiB, TARGETS.runPeakRssMiB),
        memoryCheck(
          scenario,
          'switchboard run child steady RSS',
          r.cli?.steadyRssMiB,
          TARGETS.runSteadyRssMiB,
        ),
        memoryCheck(
          scenario,
          'switchboard run child first sync peak RSS',
          r.cli?.firstSyncPeakMiB,
          TARGETS.runPeakRssMiB,
        ),
        memoryCheck(scenario, 'restart peak RSS', r.restart?.peakRssMiB, TARGETS.runPeakRssMiB),
        memoryCheck(scenario, 'takeover peak RSS', r.takeover?.peakRssMiB, TARGETS.runPeakRssMiB),
        memoryCheck(
          scenario,
          'run --once --from peak RSS',
          r.onceFromManifest?.peakRssMiB,
          TARGETS.runPeakRssMiB,
        ),
      ];
    });
}

function memoryCheck(scenario: string, what: string, value: number | undefined, limit: number): TargetCheck {
  return {
    scenario,
    what: `${what} <= ${limit} MiB`,
    figure: value === undefined ? 'not measured' : `${Math.round(value)} MiB`,
    met: value !== undefined && value <= limit,
  };
}

export function targetLines(checks: readonly TargetCheck[]): string[] {
  return checks.map((c) => `target ${c.scenario}: ${c.what}: ${c.figure}: ${c.met ? 'met' : 'MISSED'}`);
}

interface ApplyFields {
  backend: Backend | null;
  applyFullMs: number | null;
  applyPartialMs: number | null;
  runFirstSyncMs: number | null;
  runRestartMs: number | null;
  runTakeoverMs: number | null;
  runEventToSyncedMs: number | null;
  runFloorMs: number | null;
  runSaveFloorMs: number | null;
  runWriteFloorMs: number | null;
  runFirstSyncPeakRssMiB: number | null;
  runSteadyRssMiB: number | null;
  runSteadyHeapUsedMiB: number | null;
  runRestartPeakRssMiB: number | null;
  runTakeoverPeakRssMiB: number | null;
  runOnceFromPeakRssMiB: number | null;
  runChildFirstSyncPeakRssMiB: number | null;
  runChildSteadyRssMiB: number | null;
}

/**
 * One line per backend measured for the scenario (the render fields repeated on each),
 * or one line with a null backend when the kernel part did not run.
 */
export function jsonLines(
  r: ScenarioResult,
  kernel: readonly KernelResult[],
  runPath: readonly RunPathResult[] = [],
): string[] {
  const mine = kernel.filter((k) => k.scenario === r.scenario);
  const runs = runPath.filter((p) => p.scenario === r.scenario);
  const backends = [...new Set([...mine.map((k) => k.backend), ...runs.map((p) => p.backend)])];
  const rounded = (v: number | undefined | null) => (v === undefined || v === null ? null : round(v, 0));
  const applies: ApplyFields[] = (backends.length > 0 ? backends : [null]).map((backend) => {
    const k = mine.find((x) => x.backend === backend);
    const p = runs.find((x) => x.backend === backend);
    return {
      backend,
      applyFullMs: k?.full ? round(k.full.ms, 0) : null,
      applyPartialMs: k?.partial ? round(k.partial.ms, 1) : null,
      runFirstSyncMs: rounded(p?.firstSync?.ms),
      runRestartMs: rounded(p?.restart?.ms),
      runTakeoverMs: rounded(p?.takeover?.ms),
      runEventToSyncedMs: p?.eventToSynced ? round(p.eventToSynced.ms, 1) : null,
      runFloorMs: p?.floorMs ? round(p.floorMs, 1) : null,
      runSaveFloorMs: rounded(p?.saveMs),
      runWriteFloorMs: rounded(p?.kernelWriteMs),
      runFirstSyncPeakRssMiB: rounded(p?.firstSync?.peakRssMiB),
      runSteadyRssMiB: rounded(p?.steady?.rssMiB),
      runSteadyHeapUsedMiB: rounded(p?.steady?.heapUsedMiB),
      runRestartPeakRssMiB: rounded(p?.restart?.peakRssMiB),
      runTakeoverPeakRssMiB: rounded(p?.takeover?.peakRssMiB),
      runOnceFromPeakRssMiB: rounded(p?.onceFromManifest?.peakRssMiB),
      runChildFirstSyncPeakRssMiB: rounded(p?.cli?.firstSyncPeakMiB),
      runChildSteadyRssMiB: rounded(p?.cli?.steadyRssMiB),
    };
  });
  return applies.map((a) =>
    JSON.stringify({
      scenario: r.scenario,
      backend: a.backend,
      services: r.services,
      endpoints: r.endpoints,
      renderFullMs: round(r.full.totalMs, 1),
      renderPartialMs: round(r.partial.totalMs, 1),
      restoreLinesFull: r.restoreLinesFull,
      restoreLinesPartial: r.restoreLinesPartial,
      rssMiB: round(r.rssMiB, 0),
      applyFullMs: a.applyFullMs,
      applyPartialMs: a.applyPartialMs,
      runFirstSyncMs: a.runFirstSyncMs,
      runRestartMs: a.runRestartMs,
      runTakeoverMs: a.runTakeoverMs,
      runEventToSyncedMs: a.runEventToSyncedMs,
      runFloorMs: a.runFloorMs,
      runSaveFloorMs: a.runSaveFloorMs,
      runWriteFloorMs: a.runWriteFloorMs,
      runFirstSyncPeakRssMiB: a.runFirstSyncPeakRssMiB,
      runSteadyRssMiB: a.runSteadyRssMiB,
      runSteadyHeapUsedMiB: a.runSteadyHeapUsedMiB,
      runRestartPeakRssMiB: a.runRestartPeakRssMiB,
      runTakeoverPeakRssMiB: a.runTakeoverPeakRssMiB,
      runOnceFromPeakRssMiB: a.runOnceFromPeakRssMiB,
      runChildFirstSyncPeakRssMiB: a.runChildFirstSyncPeakRssMiB,
      runChildSteadyRssMiB: a.runChildSteadyRssMiB,
    }),
  );
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export function manifestTable(results: readonly ManifestLoadResult[]): string {
  const main = table(
    [
      'scenario',
      'format',
      'file MiB',
      'render ms',
      'cpu ms',
      'floor ms',
      'cpu ms',
      'ratio',
      'peak RSS MiB',
      'floor RSS',
      'ratio',
      'load avg',
    ],
    results.map((r) => [
      r.scenario,
      r.format,
      mib(r.bytes),
      String(Math.round(r.wallMs)),
      String(Math.round(r.cpuMs)),
      String(Math.round(r.floorMs)),
      String(Math.round(r.floorCpuMs)),
      r.timeRatio.toFixed(2),
      String(Math.round(r.peakRssMiB)),
      String(Math.round(r.floorRssMiB)),
      r.rssRatio.toFixed(2),
      r.loadAverage.map((l) => l.toFixed(2)).join(' -> '),
    ]),
  );
  return [
    'manifest loading: `switchboard render --from FILE` (kubectl-shaped dump of the scenario) as a child process: wall ms, its CPU ms and its peak RSS;',
    `floor = a bare node reading and parsing the same file (JSON.parse; js-yaml for YAML); medians of ${results[0]?.rounds ?? 0} interleaved rounds, wall and RSS ratios per round`,
    main,
  ].join('\n');
}

export function checkManifestTargets(results: readonly ManifestLoadResult[]): TargetCheck[] {
  return results.flatMap((r) => {
    const scenario = `${r.scenario} ${r.format} (${mib(r.bytes)} MiB)`;
    const limit = r.format === 'json' ? TARGETS.manifestJsonMs : TARGETS.manifestYamlMs;
    const checks: TargetCheck[] = [
      {
        scenario,
        what: `render --from <= ${limit} ms`,
        figure: `${Math.round(r.wallMs)} ms (${r.timeRatio.toFixed(2)}x the floor)`,
        met: r.wallMs <= limit,
      },
    ];
    if (r.format === 'json') {
      checks.push({
        scenario,
        what: `render --from peak RSS <= ${TARGETS.manifestJsonRssMiB} MiB`,
        figure: `${Math.round(r.peakRssMiB)} MiB (${r.rssRatio.toFixed(2)}x the floor)`,
        met: r.peakRssMiB <= TARGETS.manifestJsonRssMiB,
      });
    }
    return checks;
  });
}

export function manifestJsonLines(results: readonly ManifestLoadResult[]): string[] {
  return results.map((r) =>
    JSON.stringify({
      scenario: r.scenario,
      manifest: r.format,
      bytes: r.bytes,
      renderFromMs: Math.round(r.wallMs),
      renderFromCpuMs: Math.round(r.cpuMs),
      renderFromRssMiB: Math.round(r.peakRssMiB),
      floorMs: Math.round(r.floorMs),
      floorCpuMs: Math.round(r.floorCpuMs),
      floorRssMiB: Math.round(r.floorRssMiB),
      timeRatio: round(r.timeRatio, 2),
      rssRatio: round(r.rssRatio, 2),
    }),
  );
}
