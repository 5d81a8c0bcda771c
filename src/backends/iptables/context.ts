/**
 * Everything the iptables renderer needs besides the snapshot, resolved once per
 * configuration/node change: the mark, the local-traffic detector, the NodePort
 * addresses, the machine's iptables features. Building it validates every value that
 * will be printed (CIDRs, interface names), so the renderer can print without checks.
 */
import { InputError } from '../../errors.js';
import {
  cidrContains,
  type IPFamily,
  isLoopback,
  type ParsedCIDR,
  parseCIDR,
  parseIP,
} from '../../model/ip.js';
import type { NodeInfo } from '../../model/types.js';

export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';

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

export interface LocalDetector {
  ifLocal: string;
  ifNotLocal: string;
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

// Linux interface names: at most 15 bytes, no '/', whitespace or quotes. iptables adds
// its own limits; this set is what real interfaces use.
const IFNAME = /^[A-Za-z0-9_.@:-]{1,15}$/;

function familyCIDRs(list: readonly string[], family: IPFamily, field: string): ParsedCIDR[] {
  return list.flatMap((text, i) => {
    const cidr = parseCIDR(text.trim());
    if (!cidr) throw new InputError(`${field}[${i}]: ${JSON.stringify(text)} is not a valid CIDR`);
    return cidr.family === family ? [cidr] : [];
  });
}

function detector(opts: IptablesOptions, family: IPFamily, node: NodeInfo): LocalDetector | null {
  const bySource = (cidr: string | undefined) =>
    cidr === undefined ? null : { ifLocal: `-s ${cidr}`, ifNotLocal: `! -s ${cidr}` };
  switch (opts.detectLocalMode) {
    case 'ClusterCIDR': {
      const list = opts.clusterCIDR === '' ? [] : opts.clusterCIDR.split(',');
      return bySource(familyCIDRs(list, family, 'clusterCIDR')[0]?.text);
    }
    case 'NodeCIDR':
      return bySource(familyCIDRs(node.podCIDRs, family, 'node spec.podCIDRs')[0]?.text);
    case 'BridgeInterface': {
      const name = opts.bridgeInterface;
      if (!IFNAME.test(name)) {
        throw new InputError(`detectLocal.bridgeInterface: ${JSON.stringify(name)} is not an interface name`);
      }
      return { ifLocal: `-i ${name}`, ifNotLocal: `! -i ${name}` };
    }
    case 'InterfaceNamePrefix': {
      const prefix = opts.interfaceNamePrefix;
      if (!/^[A-Za-z0-9_.@:-]{1,14}$/.test(prefix)) {
        throw new InputError(
          `detectLocal.interfaceNamePrefix: ${JSON.stringify(prefix)} is not an interface prefix`,
        );
      }
      return { ifLocal: `-i ${prefix}+`, ifNotLocal: `! -i ${prefix}+` };
    }
  }
}

/** The mark as Go's `%#08x` prints it: `0x` + eight zero-padded hex digits. */
export function formatMark(bit: number): string {
  if (!Number.isInteger(bit) || bit < 0 || bit > 31)
    throw new InputError(`masqueradeBit: ${bit} is not in 0-31`);
  return `0x${(2 ** bit).toString(16).padStart(8, '0')}`;
}

export function buildRenderContext(opts: IptablesOptions, family: IPFamily, node: NodeInfo): RenderContext {
  const primaryNodeIPs = node.ips.filter((ip) => parseIP(ip)?.family === family);
  const cidrs: ParsedCIDR[] = [];
  opts.nodePortAddresses.forEach((entry, i) => {
    if (entry.trim() === 'primary') {
      for (const ip of primaryNodeIPs.slice(0, 1))
        cidrs.push(parseCIDR(`${ip}/${family === 'IPv4' ? 32 : 128}`)!);
      return;
    }
    cidrs.push(...familyCIDRs([entry], family, `nodePortAddresses[${i}]`));
  });
  const matchAll = cidrs.length === 0 || cidrs.some((c) => c.prefix === 0);
  const loopback4 = parseIP('127.0.0.0')!;
  const containsLoopback =
    matchAll || cidrs.some((c) => c.family === 'IPv4' && (c.bytes[0] === 127 || cidrContains(c, loopback4)));
  const localhostNodePorts = opts.localhostNodePorts && family === 'IPv4' && containsLoopback;

  let nodePorts: NodePortTarget = { matchAll: true };
  if (!matchAll) {
    const addresses = new Set<string>();
    for (const [ifname, list] of Object.entries(opts.interfaces)) {
      list.forEach((entry, i) => {
        const ip = parseCIDR(entry) ? parseIP(entry.slice(0, entry.indexOf('/'))) : null;
        if (!ip) {
          throw new InputError(
            `interfaces.${ifname}[${i}]: ${JSON.stringify(entry)} is not an address/prefix`,
          );
        }
        if (ip.family !== family) return;
        if (isLoopback(ip) && (family === 'IPv6' || !localhostNodePorts)) return;
        if (cidrs.some((c) => cidrContains(c, ip))) addresses.add(ip.text);
      });
    }
    nodePorts = { matchAll: false, addresses: [...addresses].sort() };
  }

  return {
    family,
    mark: formatMark(opts.masqueradeBit),
    masqueradeAll: opts.masqueradeAll,
    localDetector: detector(opts, family, node),
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
