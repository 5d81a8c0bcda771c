/**
 * Glue between the configuration, the host facts and the backends: which node we are,
 * which options each backend's renderer gets, which topology features are on.
 */
import { hostname } from 'node:os';
import type { IptablesOptions } from '../backends/iptables/context.js';
import type { IpvsOptions } from '../backends/ipvs/context.js';
import type { HostFacts } from '../config/host.js';
import { featureEnabled, type KubeProxyConfiguration } from '../config/kubeproxy.js';
import type { TopologyOptions } from '../model/categorize.js';

/** The node's name: host facts, then hostnameOverride, then the hostname (lower-cased, as kube-proxy does). */
export function resolveNodeName(config: KubeProxyConfiguration, host: HostFacts): string {
  const name = host.nodeName ?? (config.hostnameOverride.trim() || hostname());
  return name.trim().toLowerCase();
}

/** What both modes take alike: masquerading, local-traffic detection, NodePort addresses, the host's interfaces. */
function sharedOptions(config: KubeProxyConfiguration, host: HostFacts) {
  return {
    masqueradeAll: config.iptables.masqueradeAll,
    masqueradeBit: config.iptables.masqueradeBit,
    detectLocalMode: config.detectLocalMode,
    clusterCIDR: config.clusterCIDR,
    bridgeInterface: config.detectLocal.bridgeInterface,
    interfaceNamePrefix: config.detectLocal.interfaceNamePrefix,
    nodePortAddresses: config.nodePortAddresses,
    interfaces: host.interfaces,
    randomFully: host.iptables.randomFully,
  };
}

export function iptablesOptions(config: KubeProxyConfiguration, host: HostFacts): IptablesOptions {
  return {
    ...sharedOptions(config, host),
    localhostNodePorts: config.iptables.localhostNodePorts,
    nfacct: host.iptables.nfacct,
    tcpBeLiberal: host.conntrack.tcpBeLiberal || config.conntrack.tcpBeLiberal,
  };
}

/** What IPVS mode takes from the configuration and the host facts (the ipvs block and the shared fields). */
export function ipvsOptions(config: KubeProxyConfiguration, host: HostFacts): IpvsOptions {
  return {
    ...sharedOptions(config, host),
    scheduler: config.ipvs.scheduler,
    excludeCIDRs: config.ipvs.excludeCIDRs,
    strictARP: config.ipvs.strictARP,
    tcpTimeoutMs: config.ipvs.tcpTimeoutMs,
    tcpFinTimeoutMs: config.ipvs.tcpFinTimeoutMs,
    udpTimeoutMs: config.ipvs.udpTimeoutMs,
  };
}

export function topologyOptions(config: KubeProxyConfiguration): TopologyOptions {
  return { preferSameNode: featureEnabled(config, 'PreferSameTrafficDistribution') };
}
