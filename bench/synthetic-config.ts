/**
 * The configuration and host facts the benchmarks render with: kube-proxy's defaults
 * plus a cluster CIDR (so the local-traffic detector adds its masquerade rules, as on a
 * real node) and the node's own addresses.
 */
import { type HostFacts, neutralHostFacts } from '../src/config/host.js';
import { defaultKubeProxyConfiguration, type KubeProxyConfiguration } from '../src/config/kubeproxy.js';
import type { SyntheticCluster } from './synthetic-cluster.js';

/** What the configuration and host facts depend on. */
export type ClusterAddressing = Pick<SyntheticCluster, 'nodeName' | 'nodeIP' | 'clusterCIDR'>;

export function syntheticConfig(cluster: ClusterAddressing): KubeProxyConfiguration {
  return {
    ...defaultKubeProxyConfiguration(),
    hostnameOverride: cluster.nodeName,
    clusterCIDR: cluster.clusterCIDR,
    clusterCIDRs: [cluster.clusterCIDR],
  };
}

export function syntheticHost(cluster: ClusterAddressing): HostFacts {
  const host = neutralHostFacts();
  return {
    ...host,
    nodeName: cluster.nodeName,
    nodeIPs: [cluster.nodeIP],
    interfaces: { lo: ['127.0.0.1/8', '::1/128'], eth0: [`${cluster.nodeIP}/24`] },
    iptables: { ...host.iptables, randomFully: true },
  };
}
