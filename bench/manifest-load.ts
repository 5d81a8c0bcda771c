/**
 * Manifest loading benchmark: `switchboard render --from FILE` as a child process on a
 * scenario's cluster dumped the way kubectl prints it (YAML and JSON, see manifest-dump.ts),
 * wall time and peak RSS, next to a floor measured in the same run on the same file: a bare
 * `node` that reads it and parses it (JSON.parse; js-yaml for YAML), nothing else. The
 * ratio to the floor is what compares between runs on a shared, noisy machine; rounds are
 * interleaved (render, floor, render, floor, ...) so each ratio's two halves saw the same load.
 *
 * Peak RSS and CPU time come from the child itself: a preloaded module prints
 * `process.resourceUsage()`'s maxRSS and CPU time on exit (portable, no GNU time needed).
 * CPU time moves less than wall time when other processes compete for the cores.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeManifestDumps } from './manifest-dump.js';
import { parseUsage, usageReporter } from './memory.js';
import { median } from './stats.js';
import { type ClusterShape, syntheticCluster } from './synthetic-cluster.js';

export const MANIFEST_FORMATS = ['yaml', 'json'] as const;
export type ManifestFormat = (typeof MANIFEST_FORMATS)[number];

export interface ManifestLoadResult {
  scenario: string;
  format: ManifestFormat;
  bytes: number;
  /** medians over the rounds */
  wallMs: number;
  cpuMs: number;
  peakRssMiB: number;
  floorMs: number;
  floorCpuMs: number;
  floorRssMiB: number;
  /** median over the rounds of wall / floor wall, and of peak RSS / floor peak RSS */
  timeRatio: number;
  rssRatio: number;
  rounds: number;
  loadAverage: [start: number, end: number];
  failures: string[];
}

interface Measured {
  ms: number;
  cpuMs: number;
  rssMiB: number;
  ok: boolean;
  stderr: string;
}

/** Run one child; its wall time, its own CPU time and peak RSS, and stderr for failures. */
function measure(args: string[], cwd: string): Measured {
  const t0 = performance.now();
  const child = spawnSync(process.execPath, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  const ms = performance.now() - t0;
  const stderr = child.stderr ?? '';
  const usage = parseUsage(stderr);
  return {
    ms,
    cpuMs: usage?.cpuMs ?? Number.NaN,
    rssMiB: usage?.peakMiB ?? Number.NaN,
    ok: child.status === 0 && usage !== null,
    stderr,
  };
}

/**
 * `cli` runs the CLI (`['--import', 'tsx', 'src/cli.ts']`, or a compiled cli.js).
 */
export function runManifestLoad(
  scenario: string,
  shape: ClusterShape,
  cli: readonly string[],
  repoRoot: string,
  rounds: number,
): ManifestLoadResult[] {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-manifests-'));
  try {
    const cluster = syntheticCluster(shape);
    const dumps = writeManifestDumps(cluster, dir);
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
        'kind: KubeProxyConfiguration',
        `hostnameOverride: ${cluster.nodeName}`,
        `clusterCIDR: ${cluster.clusterCIDR}`,
        '',
      ].join('\n'),
    );
    const preload = usageReporter(dir);
    const jsYaml = createRequire(import.meta.url).resolve('js-yaml');
    const floorScript: Record<ManifestFormat, string> = {
      json: 'JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"))',
      yaml: `const y = require(${JSON.stringify(jsYaml)}); y.loadAll(require("node:fs").readFileSync(process.argv[1], "utf8"), null, { schema: y.CORE_SCHEMA })`,
    };
    return MANIFEST_FORMATS.map((format) => {
      const file = format === 'json' ? dumps.json : dumps.yaml;
      const loadStart = loadavg()[0]!;
      const runs: Measured[] = [];
      const floors: Measured[] = [];
      const failures: string[] = [];
      for (let i = 0; i < rounds && failures.length === 0; i++) {
        const run = measure([...preload, ...cli, 'render', '--config', config, '--from', file], repoRoot);
        const floor = measure([...preload, '-e', floorScript[format], file], repoRoot);
        if (!run.ok) failures.push(`render --from ${format} failed: ${run.stderr.slice(-2000)}`);
        if (!floor.ok) failures.push(`the ${format} floor failed: ${floor.stderr.slice(-2000)}`);
        runs.push(run);
        floors.push(floor);
      }
      return {
        scenario,
        format,
        bytes: format === 'json' ? dumps.jsonBytes : dumps.yamlBytes,
        wallMs: median(runs.map((r) => r.ms)),
        cpuMs: median(runs.map((r) => r.cpuMs)),
        peakRssMiB: median(runs.map((r) => r.rssMiB)),
        floorMs: median(floors.map((r) => r.ms)),
        floorCpuMs: median(floors.map((r) => r.cpuMs)),
        floorRssMiB: median(floors.map((r) => r.rssMiB)),
        timeRatio: median(runs.map((r, i) => r.ms / floors[i]!.ms)),
        rssRatio: median(runs.map((r, i) => r.rssMiB / floors[i]!.rssMiB)),
        rounds: runs.length,
        loadAverage: [loadStart, loadavg()[0]!],
        failures,
      };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
