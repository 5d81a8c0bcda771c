/**
 * Memory figures of a benchmark process, for the phases it measures.
 *
 * Peaks are true peaks, not samples: Linux keeps the high-water mark of a process's RSS
 * (VmHWM in /proc/self/status, the same as getrusage's maxRSS), and writing 5 to
 * /proc/self/clear_refs resets it to the current RSS, so each phase gets its own peak.
 * Where that reset is not possible (not Linux, or not allowed) the peak is the process's
 * since its start, and says so.
 *
 * Steady figures are sampled: RSS every SAMPLE_MS over a window (its median: a sync or a GC
 * in the window moves single samples), V8's heap used at the end of the window (garbage not
 * yet collected included, as a heap dashboard shows it), and the live heap after a full GC
 * forced by the benchmark (what the process really holds; the production process never
 * forces one).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { median } from './stats.js';

const MiB = 2 ** 20;
const SAMPLE_MS = 50;

/** A memory field of /proc/<pid>/status (this process by default), KiB; null when unreadable. */
export function statusKiB(field: 'VmRSS' | 'VmHWM', pid: number | 'self' = 'self'): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** This process's RSS now, MiB. */
export function rssMiB(): number {
  return process.memoryUsage.rss() / MiB;
}

let forcedGc: (() => void) | null = null;

/** Runs a full garbage collection (V8's --expose-gc, turned on at run time). */
export function collectGarbage(): void {
  if (!forcedGc) {
    setFlagsFromString('--expose-gc');
    forcedGc = runInNewContext('gc') as () => void;
  }
  forcedGc();
}

export interface PeakMeter {
  /** the peak RSS since start() (or since the process started, when `sincePhase` is false), MiB */
  peakMiB(): number;
  sincePhase: boolean;
}

/** Starts measuring a phase's peak RSS. */
export function startPeak(): PeakMeter {
  let sincePhase = false;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    sincePhase = statusKiB('VmHWM') !== null;
  } catch {
    sincePhase = false;
  }
  return {
    sincePhase,
    peakMiB: () => (statusKiB('VmHWM') ?? process.resourceUsage().maxRSS) / 1024,
  };
}

export interface SteadyFigures {
  /** median RSS over the window, MiB */
  rssMiB: number;
  /** V8 heap used at the end of the window, MiB */
  heapUsedMiB: number;
  /** heap used after a forced full GC, MiB */
  liveHeapMiB: number;
  /** RSS a moment after that GC, MiB */
  rssAfterGcMiB: number;
}

/** Samples the process for `windowMs` while it idles (its timers keep running), then forces a GC. */
export async function steadyFigures(windowMs: number): Promise<SteadyFigures> {
  const samples: number[] = [];
  const end = performance.now() + windowMs;
  while (performance.now() < end) {
    samples.push(rssMiB());
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
  }
  const heapUsedMiB = process.memoryUsage().heapUsed / MiB;
  collectGarbage();
  const liveHeapMiB = process.memoryUsage().heapUsed / MiB;
  await new Promise((r) => setTimeout(r, 1000));
  return { rssMiB: median(samples), heapUsedMiB, liveHeapMiB, rssAfterGcMiB: rssMiB() };
}

const USAGE_MARK = 'BENCH_USAGE ';

/**
 * A module to preload into a child (`--import <url>`) that prints its peak RSS and CPU time on
 * exit to stderr; written into `dir`. Returns the node arguments that preload it.
 */
export function usageReporter(dir: string): string[] {
  const file = join(dir, 'report-usage.mjs');
  writeFileSync(
    file,
    `process.on('exit', () => { const u = process.resourceUsage(); process.stderr.write('\\n${USAGE_MARK}' + JSON.stringify({ maxRSS: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 }) + '\\n'); });\n`,
  );
  return ['--import', new URL(`file://${file}`).href];
}

/** What usageReporter's module printed: peak RSS (MiB) and CPU ms; null when it printed nothing. */
export function parseUsage(stderr: string): { peakMiB: number; cpuMs: number } | null {
  const line = stderr.split('\n').find((l) => l.startsWith(USAGE_MARK));
  if (!line) return null;
  const usage = JSON.parse(line.slice(USAGE_MARK.length)) as { maxRSS: number; cpuMs: number };
  return { peakMiB: usage.maxRSS / 1024, cpuMs: usage.cpuMs };
}
