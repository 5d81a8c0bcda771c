/**
 * Glue between the configuration, the host facts and the backends: which node we are,
 * which options the iptables renderer gets, which topology features are on.
 */
import { hostname } from 'node:os';
import type { IptablesOptions } from '../backends/iptables/context.js';
import type { HostFacts } from '../config/host.js';
import { featureEnabled, type KubeProxyConfiguration } from '../config/kubeproxy.js';
import type { TopologyOptions } from '../model/categorize.js';

/** The node's name: host facts, then hostnameOverride, then the hostname (lower-cased, as kube-proxy does). */
export function resolveNodeName(config: KubeProxyConfiguration, host: HostFacts): string {
  const name = host.nodeName ?? (config.hostnameOverride.trim() || hostname());
  return name.trim().toLowerCase();
}

export function iptablesOptions(config: KubeProxyConfiguration, host: HostFacts): IptablesOptions {
  return {
    masqueradeAll: config.iptables.masqueradeAll,
    masqueradeBit: config.iptables.masqueradeBit,
    localhostNodePorts: config.iptables.localhostNodePorts,
    detectLocalMode: config.detectLocalMode,
    clusterCIDR: config.clusterCIDR,
    bridgeInterface: config.detectLocal.bridgeInterface,
    interfaceNamePrefix: config.detectLocal.interfaceNamePrefix,
    nodePortAddresses: config.nodePortAddresses,
    interfaces: host.interfaces,
    randomFully: host.iptables.randomFully,
    nfacct: host.iptables.nfacct,
    tcpBeLiberal: host.conntrack.tcpBeLiberal || config.conntrack.tcpBeLiberal,
  };
}

export function topologyOptions(config: KubeProxyConfiguration): TopologyOptions {
  return { preferSameNode: featureEnabled(config, 'PreferSameTrafficDistribution') };
}
