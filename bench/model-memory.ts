/**
 * What the model keeps for a synthetic cluster: the ObjectStore loaded with it and the
 * snapshots of both families built from it the way the sync loop builds them, after a
 * forced GC, with the raw objects gone (the steady `run` process holds nothing else of the
 * cluster). Also the time to load the store and to build the snapshots.
 *
 *   npx tsx bench/model-memory.ts [--scenario 10000x10] [--runs 3]
 *
 * The objects reach the store as the API source hands them over: parsed from JSON text
 * (JSON.parse shares short strings that a generator would build apart, e.g. node names).
 */
import { parseArgs } from 'node:util';
import { nodeInfoFrom, SnapshotBuilder } from '../src/model/snapshot.js';
import { type ObjectEvent, ObjectStore } from '../src/model/store.js';
import type { Snapshot } from '../src/model/types.js';
import { resolveNodeName, topologyOptions } from '../src/sync/wiring.js';
import { collectGarbage } from './memory.js';
import { DEFAULT_NODES, DEFAULT_SEED, syntheticCluster } from './synthetic-cluster.js';
import { syntheticConfig, syntheticHost } from './synthetic-config.js';
import { parseScenarioName } from './world.js';

const MiB = 2 ** 20;

function heapMiB(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed / MiB;
}

/** The cluster's add events, each kind parsed from one JSON list body as the API source does. */
function eventsFromJson(scenario: string) {
  const cluster = syntheticCluster({
    ...parseScenarioName(scenario),
    nodes: DEFAULT_NODES,
    seed: DEFAULT_SEED,
  });
  const asParsed = <T>(items: T[]): T[] => JSON.parse(JSON.stringify({ items })).items;
  const events: ObjectEvent[] = [
    { type: 'add', kind: 'Node', object: asParsed([cluster.node])[0] },
    ...asParsed(cluster.services).map((object): ObjectEvent => ({ type: 'add', kind: 'Service', object })),
    ...asParsed(cluster.slices).map(
      (object): ObjectEvent => ({ type: 'add', kind: 'EndpointSlice', object }),
    ),
  ];
  const config = syntheticConfig(cluster);
  const host = syntheticHost(cluster);
  return { events, config, host };
}

interface Model {
  store: ObjectStore;
  snapshots: Snapshot[];
  storeMs: number;
  snapshotMs: number;
}

/** Loads the store and builds both families' snapshots, as the sync loop does. */
function buildModel(scenario: string): Model {
  const input = eventsFromJson(scenario);
  const nodeName = resolveNodeName(input.config, input.host);
  const s0 = performance.now();
  const store = new ObjectStore(nodeName);
  for (const event of input.events) store.apply(event);
  const storeMs = performance.now() - s0;

  const b0 = performance.now();
  const node = nodeInfoFrom(store.name, store.node, { nodeIPs: input.host.nodeIPs });
  const topology = topologyOptions(input.config);
  const snapshots = (['IPv4', 'IPv6'] as const).map((family) =>
    new SnapshotBuilder(family, topology).build(store, node),
  );
  return { store, snapshots, storeMs, snapshotMs: performance.now() - b0 };
}

const { values } = parseArgs({
  options: { scenario: { type: 'string', default: '10000x10' }, runs: { type: 'string', default: '3' } },
});
const scenario = values.scenario!;
for (let run = 1; run <= Number(values.runs); run++) {
  let model: Model | null = buildModel(scenario);
  const { storeMs, snapshotMs } = model;
  // The raw objects are garbage by now: the heap with the model less the heap without it.
  const withModel = heapMiB();
  model = null;
  const withoutModel = heapMiB();
  console.log(
    `${scenario} run ${run}: model heap ${(withModel - withoutModel).toFixed(1)} MiB ` +
      `(process heap ${withModel.toFixed(1)} MiB with it, ${withoutModel.toFixed(1)} without), ` +
      `store load ${storeMs.toFixed(0)} ms, snapshots (IPv4+IPv6) ${snapshotMs.toFixed(0)} ms`,
  );
}
