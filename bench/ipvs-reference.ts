/**
 * Reference workloads measured the same way on the host and in the VM guest, so the IPVS
 * benchmark's guest figures can be read as host figures: the guest runs under TCG
 * emulation, where starting a process and JIT-compiled JavaScript slow down by different
 * factors (notes: ~50x and ~24x).
 * - spawn: one `ip -V` through the project's ExecaRunner (what every kernel operation costs
 *   before the tool does anything), median of SPAWN_RUNS;
 * - js: building a small synthetic cluster's store, snapshot and IPVS render (what planning
 *   costs), median of JS_RUNS.
 */
import { performance } from 'node:perf_hooks';
import { desiredIpvsState } from '../src/backends/ipvs/desired.js';
import { ExecaRunner } from '../src/kernel/exec.js';
import { SnapshotBuilder } from '../src/model/snapshot.js';
import { ipvsOptions } from '../src/sync/wiring.js';
import { median } from './stats.js';
import { DEFAULT_NODES, DEFAULT_SEED } from './synthetic-cluster.js';
import { buildWorld } from './world.js';

const SPAWN_RUNS = 15;
const JS_RUNS = 3;
const JS_SCENARIO = '200x10';

export interface ReferenceFigures {
  spawnMs: number;
  jsMs: number;
}

export async function measureReference(): Promise<ReferenceFigures> {
  const runner = new ExecaRunner();
  const spawns: number[] = [];
  for (let i = 0; i < SPAWN_RUNS; i++) {
    const t0 = performance.now();
    await runner.run('ip', ['-V']);
    spawns.push(performance.now() - t0);
  }
  const js: number[] = [];
  for (let i = 0; i < JS_RUNS; i++) {
    const t0 = performance.now();
    const world = buildWorld(JS_SCENARIO, { nodes: DEFAULT_NODES, seed: DEFAULT_SEED });
    const snapshot = new SnapshotBuilder('IPv4', world.topology).build(world.store, world.node);
    desiredIpvsState(ipvsOptions(world.config, world.host), 'IPv4')(snapshot);
    js.push(performance.now() - t0);
  }
  return { spawnMs: median(spawns), jsMs: median(js) };
}
