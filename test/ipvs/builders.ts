/**
 * Builders for IPVS renderer tests: options, contexts, service-port states and snapshots,
 * and lookups into a rendered state.
 */
import { buildIpvsRenderContext, type IpvsOptions } from '../../src/backends/ipvs/context.js';
import { type IpsetId, ipsetName } from '../../src/backends/ipvs/ipsets.js';
import { type IpvsRender, renderIpvs } from '../../src/backends/ipvs/render.js';
import type { IpvsState, VirtualServer } from '../../src/backends/ipvs/state.js';
import { categorizeEndpoints, isExternallyAccessible } from '../../src/model/categorize.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { Endpoint, NodeInfo, ServicePort, ServicePortState, Snapshot } from '../../src/model/types.js';
import { node, servicePort } from '../unit/builders.js';

export function ipvsOptions(overrides: Partial<IpvsOptions> = {}): IpvsOptions {
  return {
    scheduler: '',
    masqueradeAll: false,
    masqueradeBit: 14,
    detectLocalMode: 'ClusterCIDR',
    clusterCIDR: '10.244.0.0/16',
    bridgeInterface: '',
    interfaceNamePrefix: '',
    nodePortAddresses: [],
    interfaces: { lo: ['127.0.0.1/8', '::1/128'], eth0: ['192.168.0.2/24', 'fd00::2/64'] },
    randomFully: false,
    excludeCIDRs: [],
    strictARP: false,
    tcpTimeoutMs: 0,
    tcpFinTimeoutMs: 0,
    udpTimeoutMs: 0,
    ...overrides,
  };
}

export function context(
  overrides: Partial<IpvsOptions> = {},
  family: IPFamily = 'IPv4',
  n: NodeInfo = node(),
) {
  return buildIpvsRenderContext(ipvsOptions(overrides), family, n);
}

/** A service port with its endpoints, categorised for node-1 as the snapshot builder would. */
export function portState(
  overrides: Partial<ServicePort> = {},
  endpoints: Endpoint[] = [],
  n: NodeInfo = node(),
): ServicePortState {
  const port = servicePort(overrides);
  return {
    port,
    endpoints,
    selection: categorizeEndpoints(port, endpoints, n, { preferSameNode: false }),
    externallyAccessible: isExternallyAccessible(port),
  };
}

export function snapshot(
  ports: ServicePortState[],
  family: IPFamily = 'IPv4',
  n: NodeInfo = node(),
): Snapshot {
  return {
    family,
    node: n,
    servicePorts: ports,
    totalEndpoints: ports.reduce((sum, p) => sum + p.endpoints.length, 0),
  };
}

export function render(
  ports: ServicePortState[],
  overrides: Partial<IpvsOptions> = {},
  family: IPFamily = 'IPv4',
  n: NodeInfo = node(),
): IpvsRender {
  return renderIpvs(snapshot(ports, family, n), context(overrides, family, n));
}

/** A set's entries, by its IPv4 id (the family's name is looked up). */
export function entries(state: IpvsState, id: IpsetId, family: IPFamily = state.family): readonly string[] {
  const set = state.ipsets.find((s) => s.name === ipsetName(id, family));
  if (!set) throw new Error(`no set ${id}`);
  return set.entries;
}

export function rules(state: IpvsState, table: 'filter' | 'nat', chain: string): readonly string[] {
  const list = state.iptables[table].chains.get(chain);
  if (!list) throw new Error(`chain ${table}/${chain} not declared`);
  return list;
}

/** `TCP 10.96.0.1:80 -> [10.244.1.1:8080]`-style summary of the virtual servers, for compact assertions. */
export function servers(state: IpvsState): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const vs of state.virtualServers)
    out[vsName(vs)] = vs.realServers.map((rs) => `${rs.address}:${rs.port}`);
  return out;
}

export function vsName(vs: Pick<VirtualServer, 'protocol' | 'address' | 'port'>): string {
  return `${vs.protocol} ${vs.address.includes(':') ? `[${vs.address}]` : vs.address}:${vs.port}`;
}
