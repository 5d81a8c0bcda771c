/**
 * A benchmark scenario's cluster as the proxy sees it: the synthetic objects, fed through
 * the ObjectStore, with the configuration and host facts they render with. Both the
 * render and the kernel benchmarks start here, and change endpoints the same way.
 */
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import type { HostFacts } from '../src/config/host.js';
import type { KubeProxyConfiguration } from '../src/config/kubeproxy.js';
import { formatProblem } from '../src/errors.js';
import type { TopologyOptions } from '../src/model/categorize.js';
import { nodeInfoFrom } from '../src/model/snapshot.js';
import { type ObjectEvent, ObjectStore } from '../src/model/store.js';
import type { NodeInfo } from '../src/model/types.js';
import { resolveNodeName, topologyOptions } from '../src/sync/wiring.js';
import { type EndpointChange, firstReadyEndpoint, replaceEndpointIP } from './endpoint-change.js';
import {
  type ClusterShape,
  clusterEvents,
  podIP,
  type SyntheticCluster,
  syntheticCluster,
} from './synthetic-cluster.js';
import { syntheticConfig, syntheticHost } from './synthetic-config.js';

export interface World {
  cluster: SyntheticCluster;
  config: KubeProxyConfiguration;
  host: HostFacts;
  store: ObjectStore;
  node: NodeInfo;
  topology: TopologyOptions;
  generateMs: number;
  storeBuildMs: number;
  /** what the store refused or warned about (a correct generator produces none) */
  problems: string[];
}

export function parseScenarioName(name: string): { services: number; endpointsPerService: number } {
  const m = /^(\d+)x(\d+)$/.exec(name);
  if (!m)
    throw new Error(
      `scenario ${JSON.stringify(name)}: expected <services>x<endpoints per service>, e.g. 10000x10`,
    );
  return { services: Number(m[1]), endpointsPerService: Number(m[2]) };
}

export function buildWorld(
  name: string,
  shape: Omit<ClusterShape, 'services' | 'endpointsPerService'>,
): World {
  const g0 = performance.now();
  const cluster = syntheticCluster({ ...shape, ...parseScenarioName(name) });
  const events = clusterEvents(cluster);
  const generateMs = performance.now() - g0;
  return { ...worldOf(cluster, events), generateMs };
}

/** What the proxy makes of `cluster`: its configuration and host facts, its objects in a store. */
export function worldOf(
  cluster: SyntheticCluster,
  events: Iterable<ObjectEvent> = clusterEvents(cluster),
): Omit<World, 'generateMs'> {
  const config = syntheticConfig(cluster);
  const host = syntheticHost(cluster);
  const nodeName = resolveNodeName(config, host);
  const s0 = performance.now();
  const store = new ObjectStore(nodeName);
  for (const event of events) store.apply(event);
  const storeBuildMs = performance.now() - s0;

  return {
    cluster,
    config,
    host,
    store,
    node: nodeInfoFrom(nodeName, store.node, { nodeIPs: host.nodeIPs }),
    topology: topologyOptions(config),
    storeBuildMs,
    problems: store.currentProblems().map((p) => `store: ${formatProblem(p)}`),
  };
}

/**
 * Services whose endpoint changes: spread over the key space, and covering a two-port
 * service (two stale SEP chains), an eTP=Local load balancer and a ClientIP-affinity one.
 */
export function pickChangeTargets(cluster: SyntheticCluster, count: number): number[] {
  const n = cluster.services.length;
  const wanted: ((i: number) => boolean)[] = [
    (i) => (cluster.services[i]!.spec?.ports?.length ?? 0) > 1,
    (i) => cluster.services[i]!.spec?.externalTrafficPolicy === 'Local',
    (i) => cluster.services[i]!.spec?.sessionAffinity === 'ClientIP',
  ];
  const picked: number[] = [];
  for (let k = 0; k < count; k++) {
    const start = Math.floor(((k + 0.5) * n) / count);
    const predicate = wanted[k - 1] ?? (() => true);
    let index = start;
    for (let step = 0; step < n; step++) {
      const i = (start + step) % n;
      if (predicate(i) && !picked.includes(i)) {
        index = i;
        break;
      }
    }
    if (!picked.includes(index)) picked.push(index);
  }
  return picked;
}

function nodeIndexOf(slice: V1EndpointSlice, index: number): number {
  const name = slice.endpoints[index]?.nodeName ?? 'node-001';
  return Number(name.slice('node-'.length)) - 1;
}

/**
 * Replaces the first ready endpoint of service `serviceIndex` in `cluster` with a new pod on
 * the same node; the k-th change gets an address from a range the generator never uses.
 */
export function changeClusterEndpoint(
  cluster: SyntheticCluster,
  serviceIndex: number,
  k: number,
): EndpointChange & { serviceKey: string } {
  const svc = cluster.services[serviceIndex]!;
  const slice = cluster.slices[serviceIndex]!;
  const index = firstReadyEndpoint(slice);
  const change = replaceEndpointIP(
    slice,
    index,
    podIP(nodeIndexOf(slice, index), 200 * 256 + k),
    ++cluster.lastResourceVersion,
  );
  cluster.slices[serviceIndex] = change.slice;
  return { ...change, serviceKey: `${svc.metadata!.namespace}/${svc.metadata!.name}` };
}

export interface AppliedChange extends EndpointChange {
  serviceKey: string;
  /** a message when the store did not report exactly this service as changed */
  problem?: string;
}

/** changeClusterEndpoint, and the updated slice delivered to the world's store. */
export function changeOneEndpoint(world: World, serviceIndex: number, k: number): AppliedChange {
  const change = changeClusterEndpoint(world.cluster, serviceIndex, k);
  const applied = world.store.apply({ type: 'update', kind: 'EndpointSlice', object: change.slice });
  const reported = applied.changedServices.join(', ');
  return reported === change.serviceKey
    ? change
    : { ...change, problem: `${change.serviceKey}: store.apply reported changed services [${reported}]` };
}
