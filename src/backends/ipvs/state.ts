/**
 * IPVS mode's state as data: what one IP family's proxier holds in the kernel — ipsets,
 * IPVS virtual servers with their real servers, addresses on `kube-ipvs0`, and the helper
 * iptables chains. The renderer produces the desired state in these types; the applier
 * reads the kernel into the same types and diffs the two. Every value in here has been
 * validated and canonicalised (addresses re-printed from parsed bytes), and every item has
 * a stable string key, so a diff is a comparison of maps.
 */
import { type IPFamily, joinHostPort, parseIP } from '../../model/ip.js';
import type { Protocol } from '../../model/types.js';
import type { RestoreTable } from '../iptables/restore-text.js';

/** The IPVS schedulers KubeProxyConfiguration accepts (`ipvs.scheduler`). */
export const IPVS_SCHEDULERS = [
  'rr',
  'wrr',
  'lc',
  'wlc',
  'lblc',
  'lblcr',
  'dh',
  'sh',
  'sed',
  'nq',
  'mh',
] as const;
export type Scheduler = (typeof IPVS_SCHEDULERS)[number];

/**
 * Scheduler flags (`ipvsadm -b`). kube-proxy sets only `mh-port` (IP_VS_SVC_F_SCHED_MH_PORT,
 * 0x10) with the mh scheduler; `ipvsadm -Sn` prints it as `mh-fallback,mh-port` when the
 * fallback flag is also set, so the reader keeps every flag it sees.
 */
export type SchedulerFlag = 'mh-port' | 'mh-fallback' | 'sh-port' | 'sh-fallback';

/** How IPVS forwards to a real server. kube-proxy always uses masquerade (NAT). */
export type Forwarding = 'masq' | 'gate' | 'ipip';

export interface RealServer {
  /** canonical IP */
  address: string;
  port: number;
  /** 1 for every desired real server; 0 while one drains (graceful termination) */
  weight: number;
  forwarding: Forwarding;
}

export interface VirtualServer {
  protocol: Protocol;
  /** canonical IP */
  address: string;
  port: number;
  scheduler: string;
  /** persistence timeout in seconds (ClientIP session affinity); 0 = not persistent */
  persistenceSeconds: number;
  /** sorted */
  flags: readonly SchedulerFlag[];
  /** sorted numerically by address, then by port */
  realServers: readonly RealServer[];
}

export type IpsetType = 'hash:ip,port' | 'hash:ip,port,ip' | 'hash:ip,port,net' | 'hash:ip' | 'bitmap:port';

export interface IpsetState {
  name: string;
  type: IpsetType;
  /** hash types carry a family; bitmap:port has none */
  family: 'inet' | 'inet6' | null;
  /** entries in `ipset save` form (`10.96.0.10,udp:53`, `30080`), sorted byte-wise */
  entries: readonly string[];
}

/** The helper chains kube-proxy's IPVS proxier writes, as iptables-restore input. */
export interface IpvsIptables {
  filter: RestoreTable;
  nat: RestoreTable;
}

/** One family's complete IPVS-mode state. */
export interface IpvsState {
  family: IPFamily;
  /** the family's sets, in name order */
  ipsets: readonly IpsetState[];
  /** sorted by protocol name, then address (numeric, IPv4 before IPv6), then port */
  virtualServers: readonly VirtualServer[];
  /** addresses bound to kube-ipvs0 (no prefix length), sorted numerically */
  boundAddresses: readonly string[];
  iptables: IpvsIptables;
}

/** `TCP 10.96.0.10:80`, `UDP [fd00::10]:53`: a virtual server's identity (IPVS's own key). */
export function virtualServerKey(vs: Pick<VirtualServer, 'protocol' | 'address' | 'port'>): string {
  return `${vs.protocol} ${hostPort(vs.address, vs.port)}`;
}

/** `10.244.1.5:8080`, `[fd00::5]:8080`: a real server's identity within its virtual server. */
export function realServerKey(rs: Pick<RealServer, 'address' | 'port'>): string {
  return hostPort(rs.address, rs.port);
}

/** `KUBE-CLUSTER-IP 10.96.0.10,udp:53`: a set entry's identity. */
export function ipsetEntryKey(set: string, entry: string): string {
  return `${set} ${entry}`;
}

// Addresses here are canonical already: a colon means IPv6, no parse needed.
function hostPort(address: string, port: number): string {
  return joinHostPort({ family: address.includes(':') ? 'IPv6' : 'IPv4', text: address }, port);
}

/** Orders addresses numerically, IPv4 before IPv6. */
export function compareAddresses(a: string, b: string): number {
  if (a === b) return 0;
  const pa = parseIP(a);
  const pb = parseIP(b);
  if (!pa || !pb) return a < b ? -1 : 1;
  if (pa.bytes.length !== pb.bytes.length) return pa.bytes.length - pb.bytes.length;
  for (let i = 0; i < pa.bytes.length; i++) {
    const d = pa.bytes[i]! - pb.bytes[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * A string whose native order is compareAddresses' for canonical addresses: `4` + 8 hex
 * digits or `6` + 32. Sorting by it parses each address once, not once per comparison.
 */
export function addressSortKey(address: string): string {
  let key: string;
  if (address.includes(':')) {
    key = '6';
    for (const b of parseIP(address)!.bytes) key += b.toString(16).padStart(2, '0');
  } else {
    // canonical IPv4 (four decimal octets): no parse needed
    key = '4';
    for (const octet of address.split('.')) key += Number(octet).toString(16).padStart(2, '0');
  }
  return key;
}

/** The ipvs section's order: protocol name (SCTP < TCP < UDP), address, port. */
export function compareVirtualServers(
  a: Pick<VirtualServer, 'protocol' | 'address' | 'port'>,
  b: Pick<VirtualServer, 'protocol' | 'address' | 'port'>,
): number {
  if (a.protocol !== b.protocol) return a.protocol < b.protocol ? -1 : 1;
  return compareAddresses(a.address, b.address) || a.port - b.port;
}

export function compareRealServers(
  a: Pick<RealServer, 'address' | 'port'>,
  b: Pick<RealServer, 'address' | 'port'>,
): number {
  return compareAddresses(a.address, b.address) || a.port - b.port;
}
