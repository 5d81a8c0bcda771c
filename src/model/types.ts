/**
 * The proxy's own view of the cluster, independent of any backend. Everything in here
 * has been validated and canonicalised: backends may print these values as they are.
 */
import type { IPFamily } from './ip.js';

export type { IPFamily } from './ip.js';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** One `spec.ports[]` entry of a Service, for one IP family. */
export interface ServicePort {
  namespace: string;
  /** the Service's name */
  name: string;
  /** `spec.ports[].name`, possibly '' */
  portName: string;
  protocol: Protocol;
  /** `namespace/name` — the unit of change tracking */
  serviceKey: string;
  /** `namespace/name:portName`, or `namespace/name` for an unnamed port (spec §1: `<N>`) */
  nameString: string;
  family: IPFamily;
  clusterIP: string;
  port: number;
  /** 0 = none */
  nodePort: number;
  externalIPs: readonly string[];
  loadBalancerVIPs: readonly string[];
  /** canonical networks */
  loadBalancerSourceRanges: readonly string[];
  /** ClientIP affinity timeout, or 0 when there is no affinity */
  stickySeconds: number;
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  /** 0 = none; set only for LoadBalancer Services with externalTrafficPolicy Local */
  healthCheckNodePort: number;
}

export interface Endpoint {
  /** canonical IP */
  ip: string;
  port: number;
  /** `IP:port` or `[IP]:port` */
  endpoint: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  isLocal: boolean;
  nodeName: string | null;
  zone: string | null;
  /** hints.forZones names; null when the endpoint has no zone hints */
  zoneHints: ReadonlySet<string> | null;
  /** hints.forNodes names; null when the endpoint has no node hints */
  nodeHints: ReadonlySet<string> | null;
}

/** Which endpoints each traffic path of a service port may use (spec §2.2). */
export interface EndpointSelection {
  /** endpoints for cluster-wide traffic (after topology and terminating fallback) */
  cluster: readonly Endpoint[];
  /** endpoints on this node (ready, else serving-and-terminating) */
  local: readonly Endpoint[];
  /** the union that needs per-endpoint chains, sorted by endpoint string */
  allReachable: readonly Endpoint[];
  /** some endpoint is usable somewhere in the cluster */
  hasEndpoints: boolean;
  usesClusterEndpoints: boolean;
  usesLocalEndpoints: boolean;
  /** topology hints narrowed the cluster list */
  topologyFiltered: boolean;
}

/** A service port with its endpoints and the selection computed for this node. */
export interface ServicePortState {
  port: ServicePort;
  /** all endpoints of the port, de-duplicated, sorted byte-wise by endpoint string */
  endpoints: readonly Endpoint[];
  selection: EndpointSelection;
  /** (spec §1) nodePort, any LB VIP or any externalIP */
  externallyAccessible: boolean;
}

/** Facts about this node that the model and the backends depend on. */
export interface NodeInfo {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** canonical node IPs, in preference order */
  ips: readonly string[];
  /** canonical spec.podCIDRs */
  podCIDRs: readonly string[];
}

/** Everything one family's backend needs for a sync. Immutable once built. */
export interface Snapshot {
  family: IPFamily;
  node: NodeInfo;
  /** sorted by nameString-compatible order (see sortKey in snapshot.ts) */
  servicePorts: readonly ServicePortState[];
  /** total endpoints over all service ports, before selection (large-cluster mode) */
  totalEndpoints: number;
}
