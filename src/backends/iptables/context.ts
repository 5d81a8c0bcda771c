/**
 * Everything the iptables renderer needs besides the snapshot, resolved once per
 * configuration/node change: the mark, the local-traffic detector, the NodePort
 * addresses, the machine's iptables features. Building it validates every value that
 * will be printed (CIDRs, interface names), so the renderer can print without checks.
 */

import { cidrContains, type IPFamily, isLoopback, parseIP } from '../../model/ip.js';
import type { NodeInfo } from '../../model/types.js';
import {
  type DetectLocalMode,
  formatMark,
  interfaceAddresses,
  type LocalDetector,
  localDetector,
  nodeIPsOf,
  nodePortCIDRs,
} from '../common/local-traffic.js';

/** The subset of the configuration and host facts the renderer depends on. */
export interface IptablesOptions {
  masqueradeAll: boolean;
  masqueradeBit: number;
  localhostNodePorts: boolean;
  detectLocalMode: DetectLocalMode;
  /** comma-separated, at most one per family (KubeProxyConfiguration.clusterCIDR) */
  clusterCIDR: string;
  bridgeInterface: string;
  interfaceNamePrefix: string;
  /** CIDRs or the keyword `primary`; empty = all addresses */
  nodePortAddresses: readonly string[];
  /** interface name -> `addr/prefix` list (host facts) */
  interfaces: Readonly<Record<string, readonly string[]>>;
  randomFully: boolean;
  /** nfacct counters that exist on this machine */
  nfacct: readonly string[];
  tcpBeLiberal: boolean;
}

export type NodePortTarget = { matchAll: true } | { matchAll: false; addresses: readonly string[] };

export interface RenderContext {
  family: IPFamily;
  /** `0x00004000`: Go's `%#08x`, as kube-proxy writes it */
  mark: string;
  masqueradeAll: boolean;
  localDetector: LocalDetector | null;
  /** effective value (spec §13) */
  localhostNodePorts: boolean;
  nodePorts: NodePortTarget;
  randomFully: boolean;
  nfacctInvalid: boolean;
  nfacctLocalhost: boolean;
  tcpBeLiberal: boolean;
  /** primary node IP of the family (LB source-range hairpin) */
  nodeIP: string;
}

export const NFACCT_INVALID = 'ct_state_invalid_dropped_pkts';
export const NFACCT_LOCALHOST = 'localhost_nps_accepted_pkts';
export const LARGE_CLUSTER_ENDPOINTS = 1000;

export function buildRenderContext(opts: IptablesOptions, family: IPFamily, node: NodeInfo): RenderContext {
  const primaryNodeIPs = nodeIPsOf(node, family);
  const { matchAll, cidrs } = nodePortCIDRs(opts.nodePortAddresses, family, primaryNodeIPs[0]);
  const loopback4 = parseIP('127.0.0.0')!;
  const containsLoopback =
    matchAll || cidrs.some((c) => c.family === 'IPv4' && (c.bytes[0] === 127 || cidrContains(c, loopback4)));
  const localhostNodePorts = opts.localhostNodePorts && family === 'IPv4' && containsLoopback;

  let nodePorts: NodePortTarget = { matchAll: true };
  if (!matchAll) {
    const addresses = new Set<string>();
    for (const { ip } of interfaceAddresses(opts.interfaces, family)) {
      if (isLoopback(ip) && (family === 'IPv6' || !localhostNodePorts)) continue;
      if (cidrs.some((c) => cidrContains(c, ip))) addresses.add(ip.text);
    }
    nodePorts = { matchAll: false, addresses: [...addresses].sort() };
  }

  return {
    family,
    mark: formatMark(opts.masqueradeBit),
    masqueradeAll: opts.masqueradeAll,
    localDetector: localDetector(opts, family, node),
    localhostNodePorts,
    nodePorts,
    randomFully: opts.randomFully,
    nfacctInvalid: opts.nfacct.includes(NFACCT_INVALID),
    nfacctLocalhost: opts.nfacct.includes(NFACCT_LOCALHOST),
    tcpBeLiberal: opts.tcpBeLiberal,
    // Without a known node IP kube-proxy falls back to the loopback address of the family.
    nodeIP: primaryNodeIPs[0] ?? (family === 'IPv4' ? '127.0.0.1' : '::1'),
  };
}
