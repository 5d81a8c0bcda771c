/**
 * Which endpoints each traffic path of a service port may use (spec §2.2 and §2.3,
 * kube-proxy's CategorizeEndpoints). Pure: the same answer for IPVS and iptables.
 */
import { filterShared, NONE } from './collections.js';
import type { Endpoint, EndpointSelection, NodeInfo, ServicePort } from './types.js';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

export interface TopologyOptions {
  /** the PreferSameTrafficDistribution feature gate (node hints) */
  preferSameNode: boolean;
}

/** nodePort, an LB VIP or an externalIP (the proxy-level definition, spec §1). */
export function isExternallyAccessible(sp: ServicePort): boolean {
  return sp.nodePort !== 0 || sp.loadBalancerVIPs.length > 0 || sp.externalIPs.length > 0;
}

/**
 * Narrows the ready endpoints by topology hints: node hints first (when every ready
 * endpoint has some and one names this node), then zone hints likewise. Returns null
 * when no filtering applies.
 */
function topologyFilter(
  ready: readonly Endpoint[],
  node: NodeInfo,
  opts: TopologyOptions,
): readonly Endpoint[] | null {
  if (ready.length === 0) return null;
  const zone = node.labels[ZONE_LABEL] ?? '';
  if (opts.preferSameNode && ready.every((ep) => ep.nodeHints !== null)) {
    const sameNode = filterShared(ready, (ep) => ep.nodeHints!.has(node.name));
    if (sameNode.length > 0) return sameNode;
  }
  if (zone !== '' && ready.every((ep) => ep.zoneHints !== null)) {
    const sameZone = filterShared(ready, (ep) => ep.zoneHints!.has(zone));
    if (sameZone.length > 0) return sameZone;
  }
  return null;
}

const servingTerminating = (ep: Endpoint) => ep.serving && ep.terminating;

export function categorizeEndpoints(
  sp: ServicePort,
  endpoints: readonly Endpoint[],
  node: NodeInfo,
  opts: TopologyOptions,
): EndpointSelection {
  const externallyAccessible = isExternallyAccessible(sp);
  const usesClusterEndpoints = !sp.internalPolicyLocal || externallyAccessible;
  const usesLocalEndpoints = sp.internalPolicyLocal || (sp.externalPolicyLocal && externallyAccessible);

  // Lists share storage (filterShared): the usual all-ready port's cluster list is its
  // endpoint list, and empty lists are all one.
  let cluster: readonly Endpoint[] = NONE;
  let local: readonly Endpoint[] = NONE;
  let hasEndpoints = false;
  let topologyFiltered = false;
  let localFromReady = false;

  if (usesClusterEndpoints) {
    const ready = filterShared(endpoints, (ep) => ep.ready);
    const filtered = topologyFilter(ready, node, opts);
    topologyFiltered = filtered !== null;
    cluster = filtered ?? ready;
    if (cluster.length === 0) cluster = filterShared(endpoints, servingTerminating);
    hasEndpoints = cluster.length > 0;
  }

  if (usesLocalEndpoints) {
    if (!hasEndpoints) hasEndpoints = endpoints.some((ep) => ep.ready || servingTerminating(ep));
    local = filterShared(endpoints, (ep) => ep.isLocal && ep.ready);
    localFromReady = local.length > 0;
    if (!localFromReady) local = filterShared(endpoints, (ep) => ep.isLocal && servingTerminating(ep));
  }

  let allReachable: readonly Endpoint[];
  if (!usesLocalEndpoints) allReachable = cluster;
  else if (!usesClusterEndpoints) allReachable = local;
  else if (!topologyFiltered && localFromReady) allReachable = cluster;
  else {
    const union = new Map<string, Endpoint>();
    for (const ep of cluster) union.set(ep.endpoint, ep);
    for (const ep of local) union.set(ep.endpoint, ep);
    // kube-proxy leaves this order to Go's map; sorted keeps the output deterministic.
    allReachable = [...union.values()].sort((a, b) => (a.endpoint < b.endpoint ? -1 : 1));
  }

  return {
    cluster,
    local,
    allReachable,
    hasEndpoints,
    usesClusterEndpoints,
    usesLocalEndpoints,
    topologyFiltered,
  };
}
