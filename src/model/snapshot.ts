/**
 * ObjectStore -> Snapshot for one IP family: service ports with their merged endpoints
 * and the endpoint selection for this node.
 *
 * The builder keeps the previous result per Service and reuses it while neither the
 * Service's version nor the node's topology changed. Unchanged services therefore keep
 * the *same* ServicePortState objects from one snapshot to the next, which is what lets
 * the renderers cache per-service output by identity and makes a partial sync cheap.
 */
import {
  categorizeEndpoints,
  isExternallyAccessible,
  type TopologyOptions,
  ZONE_LABEL,
} from './categorize.js';
import { mergeSlices, portKey } from './endpoint-slice.js';
import { type IPFamily, parseCIDR, parseIP } from './ip.js';
import { isRecord } from './raw.js';
import { servicePortsForFamily } from './service.js';
import type { ObjectStore } from './store.js';
import type { NodeInfo, ServicePortState, Snapshot } from './types.js';

export interface NodeOverrides {
  /** node IPs known from the host, used instead of the Node object's addresses */
  nodeIPs?: readonly string[] | undefined;
}

/** NodeInfo from the Node object (may be absent: then only the name is known). */
export function nodeInfoFrom(nodeName: string, node: unknown, overrides: NodeOverrides = {}): NodeInfo {
  const labels: Record<string, string> = {};
  const ips: string[] = [];
  const podCIDRs: string[] = [];
  if (isRecord(node)) {
    const meta = isRecord(node.metadata) ? node.metadata : {};
    if (isRecord(meta.labels)) {
      for (const [k, v] of Object.entries(meta.labels)) if (typeof v === 'string') labels[k] = v;
    }
    const spec = isRecord(node.spec) ? node.spec : {};
    const cidrs = Array.isArray(spec.podCIDRs) ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : [];
    for (const c of cidrs) {
      const parsed = typeof c === 'string' ? parseCIDR(c) : null;
      if (parsed) podCIDRs.push(parsed.text);
    }
    const status = isRecord(node.status) ? node.status : {};
    const addresses = Array.isArray(status.addresses) ? status.addresses : [];
    // kube-proxy prefers InternalIP, then ExternalIP (GetNodeHostIPs).
    for (const type of ['InternalIP', 'ExternalIP']) {
      for (const a of addresses) {
        if (!isRecord(a) || a.type !== type || typeof a.address !== 'string') continue;
        const ip = parseIP(a.address);
        if (ip && !ips.includes(ip.text)) ips.push(ip.text);
      }
    }
  }
  const overrideIPs = overrides.nodeIPs
    ?.map((t) => parseIP(t)?.text)
    .filter((t): t is string => t !== undefined);
  return { name: nodeName, labels, ips: overrideIPs?.length ? overrideIPs : ips, podCIDRs };
}

interface CachedService {
  version: number;
  ports: ServicePortState[];
}

export class SnapshotBuilder {
  private cache = new Map<string, CachedService>();
  private topologyKey = '';

  constructor(
    readonly family: IPFamily,
    private readonly topology: TopologyOptions,
  ) {}

  build(store: ObjectStore, node: NodeInfo): Snapshot {
    // The store decided each endpoint's isLocal for its node when it parsed the slice.
    if (node.name !== store.name) {
      throw new Error(`snapshot for node ${node.name} from the store of node ${store.name}`);
    }
    // Selections depend on the node's name, zone and the gates: if they move, start over.
    const topologyKey = JSON.stringify([node.name, node.labels[ZONE_LABEL] ?? '', this.topology]);
    if (topologyKey !== this.topologyKey) {
      this.cache.clear();
      this.topologyKey = topologyKey;
    }
    const servicePorts: ServicePortState[] = [];
    let totalEndpoints = 0;
    const keys = store.serviceKeys();
    for (const key of keys) {
      const version = store.version(key);
      let entry = this.cache.get(key);
      if (!entry || entry.version !== version) {
        entry = { version, ports: this.buildService(store, key, node) };
        this.cache.set(key, entry);
      }
      for (const sp of entry.ports) {
        servicePorts.push(sp);
        totalEndpoints += sp.endpoints.length;
      }
    }
    // Every current service is cached now, so more entries means some services are gone.
    if (this.cache.size > keys.length) {
      const current = new Set(keys);
      for (const key of this.cache.keys()) if (!current.has(key)) this.cache.delete(key);
    }
    return { family: this.family, node, servicePorts, totalEndpoints };
  }

  private buildService(store: ObjectStore, key: string, node: NodeInfo): ServicePortState[] {
    const svc = store.service(key);
    if (!svc) return [];
    const ports = servicePortsForFamily(svc, this.family);
    if (ports.length === 0) return [];
    const merged = mergeSlices(store.slicesOf(key), this.family);
    return ports
      .sort((a, b) =>
        a.portName < b.portName ? -1 : a.portName > b.portName ? 1 : a.protocol < b.protocol ? -1 : 1,
      )
      .map((port) => {
        const endpoints = merged.get(portKey(port.portName, port.protocol)) ?? [];
        return {
          port,
          endpoints,
          selection: categorizeEndpoints(port, endpoints, node, this.topology),
          externallyAccessible: isExternallyAccessible(port),
        };
      });
  }
}
