/**
 * Small builders for the model's types, so unit tests state only the fields they are about.
 */
import type { IptablesOptions } from '../../src/backends/iptables/context.js';
import { joinHostPort, parseIP } from '../../src/model/ip.js';
import type { Endpoint, NodeInfo, ServicePort } from '../../src/model/types.js';

export const NODE = 'node-1';

export function servicePort(overrides: Partial<ServicePort> = {}): ServicePort {
  const namespace = overrides.namespace ?? 'ns1';
  const name = overrides.name ?? 'svc1';
  const portName = overrides.portName ?? 'p80';
  const serviceKey = `${namespace}/${name}`;
  return {
    namespace,
    name,
    portName,
    protocol: 'TCP',
    serviceKey,
    nameString: portName === '' ? serviceKey : `${serviceKey}:${portName}`,
    family: 'IPv4',
    clusterIP: '172.30.0.41',
    port: 80,
    nodePort: 0,
    externalIPs: [],
    loadBalancerVIPs: [],
    loadBalancerSourceRanges: [],
    stickySeconds: 0,
    externalPolicyLocal: false,
    internalPolicyLocal: false,
    healthCheckNodePort: 0,
    ...overrides,
  };
}

export interface EndpointSpec {
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  /** the endpoint is on this node (NODE) */
  local?: boolean;
  zone?: string;
  zoneHints?: string[];
  nodeHints?: string[];
  port?: number;
}

/** An endpoint `ip:port` with kube-proxy's condition defaults (ready, serving, not terminating). */
export function endpoint(ip: string, spec: EndpointSpec = {}): Endpoint {
  const parsed = parseIP(ip);
  if (!parsed) throw new Error(`bad test IP ${ip}`);
  const port = spec.port ?? 80;
  return {
    ip: parsed.text,
    port,
    endpoint: joinHostPort(parsed, port),
    ready: spec.ready ?? true,
    serving: spec.serving ?? true,
    terminating: spec.terminating ?? false,
    isLocal: spec.local ?? false,
    nodeName: spec.local ? NODE : 'node-2',
    zone: spec.zone ?? null,
    zoneHints: spec.zoneHints ? new Set(spec.zoneHints) : null,
    nodeHints: spec.nodeHints ? new Set(spec.nodeHints) : null,
  };
}

/** The endpoint condition states of spec §2.1, by the names the spec's tables use. */
export const READY: EndpointSpec = { ready: true, serving: true, terminating: false };
export const SERVING_TERMINATING: EndpointSpec = { ready: false, serving: true, terminating: true };
export const NOT_SERVING_TERMINATING: EndpointSpec = { ready: false, serving: false, terminating: true };
export const NOT_READY: EndpointSpec = { ready: false, serving: false, terminating: false };

export function node(overrides: Partial<NodeInfo> = {}): NodeInfo {
  return { name: NODE, labels: {}, ips: ['192.168.0.2'], podCIDRs: ['10.244.1.0/24'], ...overrides };
}

export function iptablesOptions(overrides: Partial<IptablesOptions> = {}): IptablesOptions {
  return {
    masqueradeAll: false,
    masqueradeBit: 14,
    localhostNodePorts: true,
    detectLocalMode: 'ClusterCIDR',
    clusterCIDR: '',
    bridgeInterface: '',
    interfaceNamePrefix: '',
    nodePortAddresses: [],
    interfaces: {},
    randomFully: false,
    nfacct: [],
    tcpBeLiberal: false,
    ...overrides,
  };
}

export const endpointStrings = (list: readonly Endpoint[]) => list.map((e) => e.endpoint);
