/**
 * Synthetic clusters for the benchmarks: plain Kubernetes objects (Services,
 * EndpointSlices, this node's Node), as a source would deliver them.
 *
 * The mix follows what large clusters look like: mostly ClusterIP, some NodePort and
 * LoadBalancer services (some with source ranges, some externalTrafficPolicy Local with a
 * health-check node port), a few with ClientIP affinity, ~10% with two ports (DNS-like
 * UDP+TCP), endpoints spread over many nodes with a few not ready or terminating. A seeded
 * PRNG makes every run generate the same cluster, so figures compare between runs.
 */
import type { V1EndpointSlice, V1Node, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { ObjectEvent } from '../src/model/store.js';
import { Prng } from './prng.js';

export interface ClusterShape {
  services: number;
  endpointsPerService: number;
  /** nodes the endpoints are spread over; the first one is this node */
  nodes: number;
  seed: number;
}

export const DEFAULT_NODES = 100;
export const DEFAULT_SEED = 20240611;

/** How many services/endpoints of each kind were generated (for the report and tests). */
export interface ClusterMix {
  clusterIP: number;
  nodePort: number;
  loadBalancer: number;
  lbSourceRanges: number;
  lbLocalWithHealthCheck: number;
  clientIPAffinity: number;
  multiPort: number;
  servicePorts: number;
  endpoints: number;
  notReadyEndpoints: number;
  terminatingEndpoints: number;
  localEndpoints: number;
}

export interface SyntheticCluster {
  shape: ClusterShape;
  nodeName: string;
  nodeIP: string;
  clusterCIDR: string;
  node: V1Node;
  services: V1Service[];
  /** slices[i] holds the endpoints of services[i] (one slice per service) */
  slices: V1EndpointSlice[];
  mix: ClusterMix;
  /** the highest resourceVersion handed out; later updates must use larger ones */
  lastResourceVersion: number;
}

const NAMESPACES = 50;
const ZONES = ['zone-a', 'zone-b', 'zone-c'];
const CLUSTER_CIDR = '10.0.0.0/8';
const SERVICE_CIDR_BASE = ipToInt('172.16.0.0');
const LB_VIP_BASE = ipToInt('198.18.0.0');
// The default apiserver range (30000-32767) holds fewer node ports than a 10,000-service
// cluster with this mix needs; such clusters widen it, so allocation simply counts up.
const FIRST_NODE_PORT = 30000;

const DNS_PORTS: V1ServicePort[] = [
  { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
  { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
];
const WEB_PORTS = [80, 443, 8080, 9090];

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIP(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function nodeNameOf(index: number): string {
  return `node-${String(index + 1).padStart(3, '0')}`;
}

/** Pod IPs of node i live in 10.(i+1).0.0/16. */
export function podIP(nodeIndex: number, podNumber: number): string {
  return intToIP(ipToInt(`10.${nodeIndex + 1}.0.0`) + podNumber);
}

function suffix(prng: Prng): string {
  const chars = 'bcdfghjklmnpqrstvwxz2456789';
  let out = '';
  for (let i = 0; i < 5; i++) out += prng.pick([...chars]);
  return out;
}

function emptyMix(): ClusterMix {
  return {
    clusterIP: 0,
    nodePort: 0,
    loadBalancer: 0,
    lbSourceRanges: 0,
    lbLocalWithHealthCheck: 0,
    clientIPAffinity: 0,
    multiPort: 0,
    servicePorts: 0,
    endpoints: 0,
    notReadyEndpoints: 0,
    terminatingEndpoints: 0,
    localEndpoints: 0,
  };
}

export function syntheticCluster(shape: ClusterShape): SyntheticCluster {
  if (shape.services < 1 || shape.endpointsPerService < 1 || shape.nodes < 1) {
    throw new Error(
      `synthetic cluster: services, endpointsPerService and nodes must be >= 1 (${JSON.stringify(shape)})`,
    );
  }
  const prng = new Prng(shape.seed);
  const mix = emptyMix();
  let rv = 1000;
  let nextNodePort = FIRST_NODE_PORT;
  let lbCount = 0;
  const podsPerNode = new Array<number>(shape.nodes).fill(0);
  const nodeName = nodeNameOf(0);
  const nodeIP = '192.168.0.10';

  const node: V1Node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: nodeName,
      resourceVersion: String(++rv),
      labels: {
        'kubernetes.io/hostname': nodeName,
        'kubernetes.io/os': 'linux',
        'topology.kubernetes.io/zone': ZONES[0]!,
      },
    },
    spec: { podCIDR: '10.1.0.0/16', podCIDRs: ['10.1.0.0/16'] },
    status: {
      addresses: [
        { type: 'InternalIP', address: nodeIP },
        { type: 'Hostname', address: nodeName },
      ],
    },
  };

  const services: V1Service[] = [];
  const slices: V1EndpointSlice[] = [];
  for (let i = 0; i < shape.services; i++) {
    const namespace = `ns-${String(i % NAMESPACES).padStart(2, '0')}`;
    const name = `svc-${String(i).padStart(5, '0')}`;

    const r = prng.next();
    const type = r < 0.15 ? 'NodePort' : r < 0.25 ? 'LoadBalancer' : 'ClusterIP';
    const multiPort = prng.chance(0.1);
    const affinity = prng.chance(0.05);
    let ports: V1ServicePort[];
    if (multiPort) ports = DNS_PORTS.map((p) => ({ ...p }));
    else {
      const port = prng.pick(WEB_PORTS);
      // A single port may be unnamed; its chains are then named after the service alone.
      ports = [
        { ...(prng.chance(0.7) ? { name: 'http' } : {}), port, protocol: 'TCP', targetPort: port + 8000 },
      ];
    }
    if (type !== 'ClusterIP') for (const p of ports) p.nodePort = nextNodePort++;

    const clusterIP = intToIP(SERVICE_CIDR_BASE + 10 + i);
    const svc: V1Service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace, resourceVersion: String(++rv), labels: { app: name } },
      spec: {
        type,
        clusterIP,
        clusterIPs: [clusterIP],
        ipFamilies: ['IPv4'],
        ipFamilyPolicy: 'SingleStack',
        internalTrafficPolicy: 'Cluster',
        selector: { app: name },
        ports,
        sessionAffinity: affinity ? 'ClientIP' : 'None',
        ...(affinity ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } } } : {}),
      },
      status: {},
    };
    const spec = svc.spec!;
    if (type !== 'ClusterIP') spec.externalTrafficPolicy = 'Cluster';
    if (type === 'LoadBalancer') {
      mix.loadBalancer++;
      svc.status = { loadBalancer: { ingress: [{ ip: intToIP(LB_VIP_BASE + ++lbCount), ipMode: 'VIP' }] } };
      if (prng.chance(0.4)) {
        mix.lbSourceRanges++;
        // Some ranges contain the node's own IP, which adds the hairpin rules (spec §14).
        spec.loadBalancerSourceRanges = prng.chance(0.2)
          ? ['203.0.113.0/24', '192.168.0.0/16']
          : ['203.0.113.0/24', `198.51.100.${prng.int(32) * 8}/29`];
      }
      if (prng.chance(0.4)) {
        mix.lbLocalWithHealthCheck++;
        spec.externalTrafficPolicy = 'Local';
        spec.healthCheckNodePort = nextNodePort++;
      }
    } else if (type === 'NodePort') mix.nodePort++;
    else mix.clusterIP++;
    if (affinity) mix.clientIPAffinity++;
    if (multiPort) mix.multiPort++;
    mix.servicePorts += ports.length;

    const endpoints: V1EndpointSlice['endpoints'] = [];
    for (let e = 0; e < shape.endpointsPerService; e++) {
      const nodeIndex = prng.int(shape.nodes);
      const ip = podIP(nodeIndex, 2 + podsPerNode[nodeIndex]!++);
      const c = prng.next();
      const conditions =
        c < 0.02
          ? { ready: false, serving: false, terminating: false }
          : c < 0.03
            ? { ready: false, serving: true, terminating: true }
            : { ready: true, serving: true, terminating: false };
      if (c < 0.02) mix.notReadyEndpoints++;
      else if (c < 0.03) mix.terminatingEndpoints++;
      if (nodeIndex === 0) mix.localEndpoints++;
      mix.endpoints++;
      endpoints.push({
        addresses: [ip],
        conditions,
        nodeName: nodeNameOf(nodeIndex),
        zone: ZONES[nodeIndex % ZONES.length]!,
        targetRef: { kind: 'Pod', namespace, name: `${name}-${suffix(prng)}` },
      });
    }
    services.push(svc);
    slices.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${name}-${suffix(prng)}`,
        namespace,
        resourceVersion: String(++rv),
        labels: {
          'kubernetes.io/service-name': name,
          'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        },
      },
      addressType: 'IPv4',
      endpoints,
      ports: ports.map((p) => ({ name: p.name ?? '', port: Number(p.targetPort), protocol: p.protocol! })),
    });
  }

  return {
    shape,
    nodeName,
    nodeIP,
    clusterCIDR: CLUSTER_CIDR,
    node,
    services,
    slices,
    mix,
    lastResourceVersion: rv,
  };
}

/** The add events a source would deliver for the cluster: the Node, then Services, then slices. */
export function clusterEvents(cluster: SyntheticCluster): ObjectEvent[] {
  return [
    { type: 'add', kind: 'Node', object: cluster.node },
    ...cluster.services.map((object): ObjectEvent => ({ type: 'add', kind: 'Service', object })),
    ...cluster.slices.map((object): ObjectEvent => ({ type: 'add', kind: 'EndpointSlice', object })),
  ];
}
