/**
 * What both backends compute the same way from the configuration and the node: the
 * local-traffic detector (iptables spec §10), the masquerade mark, the family's
 * nodePortAddresses CIDRs and the validated interface addresses of the host facts.
 * Every value returned here has been parsed and re-printed, so a renderer may print it.
 */
import { InputError } from '../../errors.js';
import { type IPFamily, type ParsedCIDR, type ParsedIP, parseCIDR, parseIP } from '../../model/ip.js';
import type { NodeInfo } from '../../model/types.js';

export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';

/** The configuration fields the detector depends on. */
export interface LocalDetectorOptions {
  detectLocalMode: DetectLocalMode;
  /** comma-separated, at most one per family (KubeProxyConfiguration.clusterCIDR) */
  clusterCIDR: string;
  bridgeInterface: string;
  interfaceNamePrefix: string;
}

/** Match fragments for "from a pod on this node" and its negation, e.g. `-s 10.244.0.0/16`. */
export interface LocalDetector {
  ifLocal: string;
  ifNotLocal: string;
}

// Linux interface names: at most 15 bytes, no '/', whitespace or quotes. iptables adds
// its own limits; this set is what real interfaces use.
const IFNAME = /^[A-Za-z0-9_.@:-]{1,15}$/;

/** The list's CIDRs of `family`; any entry that is not a CIDR is an error naming `field[i]`. */
export function familyCIDRs(list: readonly string[], family: IPFamily, field: string): ParsedCIDR[] {
  return list.flatMap((text, i) => {
    const cidr = parseCIDR(text.trim());
    if (!cidr) throw new InputError(`${field}[${i}]: ${JSON.stringify(text)} is not a valid CIDR`);
    return cidr.family === family ? [cidr] : [];
  });
}

/** kube-proxy's LocalTrafficDetector for `family`; null when the mode has nothing for it (no CIDR). */
export function localDetector(
  opts: LocalDetectorOptions,
  family: IPFamily,
  node: NodeInfo,
): LocalDetector | null {
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

/** The node's IPs of `family`, in preference order; the first is the primary node IP. */
export function nodeIPsOf(node: NodeInfo, family: IPFamily): string[] {
  return node.ips.filter((ip) => parseIP(ip)?.family === family);
}

/**
 * kube-proxy's NodePortAddresses for one family: the CIDRs of the family (`primary` is the
 * primary node IP as a /32 or /128, nothing when there is none), and whether they match
 * every address (no CIDR of the family, or a zero-length prefix).
 */
export interface NodePortCIDRs {
  matchAll: boolean;
  cidrs: readonly ParsedCIDR[];
}

export function nodePortCIDRs(
  entries: readonly string[],
  family: IPFamily,
  primaryNodeIP: string | undefined,
): NodePortCIDRs {
  const cidrs: ParsedCIDR[] = [];
  entries.forEach((entry, i) => {
    if (entry.trim() === 'primary') {
      if (primaryNodeIP !== undefined)
        cidrs.push(parseCIDR(`${primaryNodeIP}/${family === 'IPv4' ? 32 : 128}`)!);
      return;
    }
    cidrs.push(...familyCIDRs([entry], family, `nodePortAddresses[${i}]`));
  });
  return { matchAll: cidrs.length === 0 || cidrs.some((c) => c.prefix === 0), cidrs };
}

export interface InterfaceAddress {
  /** the interface's name as given (never printed) */
  interface: string;
  ip: ParsedIP;
}

/**
 * Every address of the host facts' interfaces (`addr/prefix` entries), validated; only those
 * of `family`. A malformed entry is an error naming `interfaces.<name>[i]`.
 */
export function interfaceAddresses(
  interfaces: Readonly<Record<string, readonly string[]>>,
  family: IPFamily,
): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const [ifname, list] of Object.entries(interfaces)) {
    list.forEach((entry, i) => {
      const ip = parseCIDR(entry) ? parseIP(entry.slice(0, entry.indexOf('/'))) : null;
      if (!ip) {
        throw new InputError(`interfaces.${ifname}[${i}]: ${JSON.stringify(entry)} is not an address/prefix`);
      }
      if (ip.family === family) out.push({ interface: ifname, ip });
    });
  }
  return out;
}
