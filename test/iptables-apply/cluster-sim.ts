/**
 * A small cluster for applier tests: Services and their EndpointSlices built from short
 * specs, fed through the real ObjectStore and SnapshotBuilder (so unchanged services keep
 * their ServicePortState identity, as in production), with the change set a sync loop
 * would pass: services changed since the last successful sync.
 */
import { pino } from 'pino';
import type { IptablesOptions } from '../../src/backends/iptables/context.js';
import type { Logger } from '../../src/log.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import type { IPFamily, Snapshot } from '../../src/model/types.js';
import type { SyncRequest } from '../../src/sync/backend.js';

export const NODE_NAME = 'node-1';
export const NODE_IP = '192.168.0.2';
export const NODE_IP6 = 'fd00:192:168::2';

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

export interface EndpointSpec {
  ip: string;
  /** on this node */
  local?: boolean;
  ready?: boolean;
  terminating?: boolean;
}

export interface ServiceSpec {
  namespace?: string;
  name: string;
  type?: ServiceType;
  clusterIP: string;
  ports?: { name: string; port: number; protocol?: 'TCP' | 'UDP'; nodePort?: number; targetPort?: number }[];
  endpoints?: EndpointSpec[];
  externalTrafficPolicy?: 'Cluster' | 'Local';
  internalTrafficPolicy?: 'Cluster' | 'Local';
  loadBalancerIP?: string;
  loadBalancerSourceRanges?: string[];
  externalIPs?: string[];
  affinitySeconds?: number;
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Renderer options as kube-proxy's defaults give them, for a pod network of 10.244.0.0/16. */
export function testOptions(overrides: Partial<IptablesOptions> = {}): IptablesOptions {
  return {
    masqueradeAll: false,
    masqueradeBit: 14,
    localhostNodePorts: true,
    detectLocalMode: 'ClusterCIDR',
    clusterCIDR: '10.244.0.0/16,fd00:10:244::/48',
    bridgeInterface: '',
    interfaceNamePrefix: '',
    nodePortAddresses: [],
    interfaces: {},
    randomFully: true,
    nfacct: [],
    tcpBeLiberal: false,
    ...overrides,
  };
}

function serviceObject(spec: ServiceSpec, family: IPFamily, rv: number): unknown {
  const type = spec.type ?? 'ClusterIP';
  const ports = (spec.ports ?? [{ name: 'http', port: 80 }]).map((p) => ({
    name: p.name,
    port: p.port,
    protocol: p.protocol ?? 'TCP',
    targetPort: p.targetPort ?? 8080,
    ...(type !== 'ClusterIP' && p.nodePort ? { nodePort: p.nodePort } : {}),
  }));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: spec.name, namespace: spec.namespace ?? 'ns1', resourceVersion: String(rv) },
    spec: {
      type,
      clusterIP: spec.clusterIP,
      clusterIPs: [spec.clusterIP],
      ipFamilies: [family],
      ipFamilyPolicy: 'SingleStack',
      ports,
      internalTrafficPolicy: spec.internalTrafficPolicy ?? 'Cluster',
      ...(type !== 'ClusterIP' ? { externalTrafficPolicy: spec.externalTrafficPolicy ?? 'Cluster' } : {}),
      ...(type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local'
        ? { healthCheckNodePort: (ports[0]?.nodePort ?? 30000) + 1000 }
        : {}),
      ...(spec.loadBalancerSourceRanges ? { loadBalancerSourceRanges: spec.loadBalancerSourceRanges } : {}),
      ...(spec.externalIPs ? { externalIPs: spec.externalIPs } : {}),
      sessionAffinity: spec.affinitySeconds ? 'ClientIP' : 'None',
      ...(spec.affinitySeconds
        ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: spec.affinitySeconds } } }
        : {}),
    },
    status:
      type === 'LoadBalancer' && spec.loadBalancerIP
        ? { loadBalancer: { ingress: [{ ip: spec.loadBalancerIP, ipMode: 'VIP' }] } }
        : {},
  };
}

function sliceObject(spec: ServiceSpec, family: IPFamily, rv: number): unknown {
  const ports = (spec.ports ?? [{ name: 'http', port: 80 }]).map((p) => ({
    name: p.name,
    port: p.targetPort ?? 8080,
    protocol: p.protocol ?? 'TCP',
  }));
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${spec.name}-abcde`,
      namespace: spec.namespace ?? 'ns1',
      resourceVersion: String(rv),
      labels: { 'kubernetes.io/service-name': spec.name },
    },
    addressType: family,
    endpoints: (spec.endpoints ?? []).map((e) => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? !e.terminating,
        serving: e.ready ?? true,
        terminating: e.terminating ?? false,
      },
      nodeName: e.local ? NODE_NAME : 'node-2',
    })),
    ports,
  };
}

export class ClusterSim {
  private readonly store = new ObjectStore(NODE_NAME);
  private readonly builder: SnapshotBuilder;
  private readonly pending = new Set<string>();
  private readonly specs = new Map<string, ServiceSpec>();
  private rv = 100;
  private seq = 0;

  constructor(
    readonly family: IPFamily = 'IPv4',
    nodeIP: string = family === 'IPv4' ? NODE_IP : NODE_IP6,
  ) {
    this.builder = new SnapshotBuilder(family, { preferSameNode: false });
    this.setNode(nodeIP, family === 'IPv4' ? '10.244.1.0/24' : 'fd00:10:244:1::/64');
  }

  /** Adds or updates this node's Node object. */
  setNode(ip: string, podCIDR: string): this {
    this.store.apply({
      type: 'update',
      kind: 'Node',
      object: {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name: NODE_NAME,
          resourceVersion: String(++this.rv),
          labels: { 'kubernetes.io/hostname': NODE_NAME },
        },
        spec: { podCIDRs: [podCIDR] },
        status: { addresses: [{ type: 'InternalIP', address: ip }] },
      },
    });
    return this;
  }

  /** Adds or replaces a service and its endpoints. */
  upsert(spec: ServiceSpec): this {
    const key = `${spec.namespace ?? 'ns1'}/${spec.name}`;
    const type = this.specs.has(key) ? 'update' : 'add';
    this.specs.set(key, spec);
    this.store.apply({ type, kind: 'Service', object: serviceObject(spec, this.family, ++this.rv) });
    this.store.apply({ type, kind: 'EndpointSlice', object: sliceObject(spec, this.family, ++this.rv) });
    this.pending.add(key);
    return this;
  }

  delete(key: string): this {
    const spec = this.specs.get(key);
    if (!spec) throw new Error(`ClusterSim: no service ${key}`);
    this.specs.delete(key);
    this.store.apply({
      type: 'delete',
      kind: 'Service',
      object: serviceObject(spec, this.family, ++this.rv),
    });
    this.store.apply({
      type: 'delete',
      kind: 'EndpointSlice',
      object: sliceObject(spec, this.family, ++this.rv),
    });
    this.pending.add(key);
    return this;
  }

  get(key: string): ServiceSpec {
    const spec = this.specs.get(key);
    if (!spec) throw new Error(`ClusterSim: no service ${key}`);
    return spec;
  }

  keys(): string[] {
    return [...this.specs.keys()].sort();
  }

  snapshot(): Snapshot {
    return this.builder.build(this.store, nodeInfoFrom(NODE_NAME, this.store.node));
  }

  /** The next sync request: services changed since the last `synced()`. */
  request(full = false): SyncRequest {
    return { seq: ++this.seq, full, changedServices: new Set(this.pending) };
  }

  /** The last sync succeeded: its changes are applied. */
  synced(): void {
    this.pending.clear();
  }
}

/** A golden-like mix: ClusterIP, NodePort, LoadBalancer with source ranges and Local policy, affinity, no endpoints. */
export function richCluster(family: IPFamily = 'IPv4'): ClusterSim {
  const v4 = family === 'IPv4';
  const ip = (v4text: string, v6text: string) => (v4 ? v4text : v6text);
  const pod = (n: number) => ip(`10.244.1.${n}`, `fd00:10:244:1::${n.toString(16)}`);
  const remote = (n: number) => ip(`10.244.2.${n}`, `fd00:10:244:2::${n.toString(16)}`);
  return new ClusterSim(family)
    .upsert({
      name: 'web',
      clusterIP: ip('172.30.0.10', 'fd00:172:30::10'),
      endpoints: [{ ip: pod(2), local: true }, { ip: remote(3) }, { ip: remote(4) }],
    })
    .upsert({
      name: 'dns',
      namespace: 'kube-system',
      clusterIP: ip('172.30.0.53', 'fd00:172:30::53'),
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      ],
      endpoints: [{ ip: pod(6), local: true }, { ip: remote(7) }],
    })
    .upsert({
      name: 'np',
      type: 'NodePort',
      clusterIP: ip('172.30.0.20', 'fd00:172:30::20'),
      ports: [{ name: 'http', port: 80, nodePort: 30080 }],
      endpoints: [{ ip: remote(10) }, { ip: remote(11), terminating: true, ready: false }],
    })
    .upsert({
      name: 'lb',
      type: 'LoadBalancer',
      clusterIP: ip('172.30.0.30', 'fd00:172:30::30'),
      ports: [{ name: 'https', port: 443, nodePort: 30443 }],
      loadBalancerIP: ip('5.6.7.8', 'fd00:5:6::8'),
      loadBalancerSourceRanges: [ip('203.0.113.0/24', 'fd00:203::/64')],
      externalTrafficPolicy: 'Local',
      endpoints: [{ ip: pod(14), local: true }, { ip: remote(15) }],
    })
    .upsert({
      name: 'sticky',
      clusterIP: ip('172.30.0.40', 'fd00:172:30::40'),
      affinitySeconds: 600,
      externalIPs: [ip('192.0.2.40', 'fd00:192:0:2::40')],
      endpoints: [{ ip: remote(18) }, { ip: remote(19) }],
    })
    .upsert({ name: 'empty', clusterIP: ip('172.30.0.50', 'fd00:172:30::50'), endpoints: [] });
}
