/**
 * Plain Service / EndpointSlice / Node objects for the traffic tests, built from the
 * harness's pod addresses, as the API server would deliver them (ObjectEvents for the
 * ObjectStore). One Service may be dual-stack; each family gets its own slice.
 */
import type { IPFamily } from '../../src/model/ip.js';
import type { EventType, ObjectEvent } from '../../src/model/store.js';
import { NODE_IPV4, NODE_IPV6, POD_CIDR_IPV4, POD_CIDR_IPV6, type PodNs } from '../kernel/netns.js';

/** Namespace of every test object. */
export const NAMESPACE = 'traffic';
/** "This node": the node namespace of the topology. */
export const NODE_NAME = 'node-1';
/** Another node, whose endpoints are reachable pods that the local policies must avoid. */
export const OTHER_NODE = 'node-2';

export interface PortSpec {
  name: string;
  protocol: 'TCP' | 'UDP';
  port: number;
  /** the port the endpoints listen on */
  targetPort: number;
  nodePort?: number;
}

export interface ServiceSpec {
  name: string;
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  /** one per family, IPv4 first for dual-stack */
  clusterIPs: readonly string[];
  ports: readonly PortSpec[];
  externalIPs?: readonly string[];
  /** status.loadBalancer.ingress IPs */
  loadBalancerIPs?: readonly string[];
  loadBalancerSourceRanges?: readonly string[];
  externalTrafficPolicy?: 'Cluster' | 'Local';
  internalTrafficPolicy?: 'Cluster' | 'Local';
  /** sessionAffinity ClientIP with these timeout seconds */
  clientIPAffinitySeconds?: number;
}

export interface EndpointSpec {
  pod: PodNs;
  /** default NODE_NAME */
  nodeName?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export const familyOf = (ip: string): IPFamily => (ip.includes(':') ? 'IPv6' : 'IPv4');
export const podIP = (pod: PodNs, family: IPFamily): string => (family === 'IPv4' ? pod.ipv4 : pod.ipv6);

export function serviceObject(spec: ServiceSpec): Record<string, unknown> {
  const families = spec.clusterIPs.map(familyOf);
  if (new Set(families).size !== families.length) {
    throw new Error(`service ${spec.name}: clusterIPs ${spec.clusterIPs.join(', ')} repeat a family`);
  }
  const object: Record<string, unknown> = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: spec.name, namespace: NAMESPACE },
    spec: {
      type: spec.type ?? 'ClusterIP',
      clusterIP: spec.clusterIPs[0],
      clusterIPs: [...spec.clusterIPs],
      ipFamilies: families,
      ports: spec.ports.map((p) => ({
        name: p.name,
        protocol: p.protocol,
        port: p.port,
        targetPort: p.targetPort,
        ...(p.nodePort ? { nodePort: p.nodePort } : {}),
      })),
      ...(spec.externalIPs ? { externalIPs: [...spec.externalIPs] } : {}),
      ...(spec.loadBalancerSourceRanges
        ? { loadBalancerSourceRanges: [...spec.loadBalancerSourceRanges] }
        : {}),
      ...(spec.externalTrafficPolicy ? { externalTrafficPolicy: spec.externalTrafficPolicy } : {}),
      ...(spec.internalTrafficPolicy ? { internalTrafficPolicy: spec.internalTrafficPolicy } : {}),
      ...(spec.clientIPAffinitySeconds
        ? {
            sessionAffinity: 'ClientIP',
            sessionAffinityConfig: { clientIP: { timeoutSeconds: spec.clientIPAffinitySeconds } },
          }
        : {}),
    },
    status: {
      loadBalancer: { ingress: (spec.loadBalancerIPs ?? []).map((ip) => ({ ip, ipMode: 'VIP' })) },
    },
  };
  return object;
}

export function endpointSliceObject(
  spec: ServiceSpec,
  family: IPFamily,
  endpoints: readonly EndpointSpec[],
): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${spec.name}-${family === 'IPv4' ? 'v4' : 'v6'}`,
      namespace: NAMESPACE,
      labels: { 'kubernetes.io/service-name': spec.name },
    },
    addressType: family,
    endpoints: endpoints.map((e) => ({
      addresses: [podIP(e.pod, family)],
      nodeName: e.nodeName ?? NODE_NAME,
      conditions: {
        ready: e.ready ?? true,
        serving: e.serving ?? e.ready ?? true,
        terminating: e.terminating ?? false,
      },
    })),
    ports: spec.ports.map((p) => ({ name: p.name, protocol: p.protocol, port: p.targetPort })),
  };
}

/**
 * The Service and one slice per family of its clusterIPs, as add/update events. An empty
 * endpoint list still gets (empty) slices, like a Service whose selector matches nothing.
 */
export function serviceEvents(
  spec: ServiceSpec,
  endpoints: readonly EndpointSpec[],
  type: EventType = 'add',
): ObjectEvent[] {
  return [{ type, kind: 'Service', object: serviceObject(spec) }, ...sliceEvents(spec, endpoints, type)];
}

/** Only the slices (endpoint churn): one per family of the Service's clusterIPs. */
export function sliceEvents(
  spec: ServiceSpec,
  endpoints: readonly EndpointSpec[],
  type: EventType = 'update',
): ObjectEvent[] {
  return spec.clusterIPs.map((ip) => ({
    type,
    kind: 'EndpointSlice' as const,
    object: endpointSliceObject(spec, familyOf(ip), endpoints),
  }));
}

/** This node's Node object: its LAN addresses and pod CIDRs (see test/kernel/netns.ts). */
export function nodeObject(): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME } },
    spec: { podCIDR: POD_CIDR_IPV4, podCIDRs: [POD_CIDR_IPV4, POD_CIDR_IPV6] },
    status: {
      addresses: [
        { type: 'InternalIP', address: NODE_IPV4 },
        { type: 'InternalIP', address: NODE_IPV6 },
        { type: 'Hostname', address: NODE_NAME },
      ],
    },
  };
}
