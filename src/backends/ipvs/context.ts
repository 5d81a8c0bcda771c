/**
 * Everything the IPVS renderer needs besides the snapshot, resolved once per
 * configuration/node change (spec kube-proxy-ipvs.md §1, §3): the scheduler and its flags,
 * the mark, the local-traffic detector, the node's addresses and the NodePort addresses,
 * the primary node IP. Building it validates every value that will be printed, so the
 * renderer can print without checks. The applier's settings (excludeCIDRs, strictARP,
 * timeouts) are validated here too and carried along.
 */
import { InputError } from '../../errors.js';
import { KUBE_IPVS0 } from '../../kernel/ip-link.js';
import {
  cidrContains,
  type IPFamily,
  isLoopback,
  type ParsedIP,
  parseCIDR,
  parseIP,
} from '../../model/ip.js';
import type { NodeInfo } from '../../model/types.js';
import {
  familyCIDRs,
  formatMark,
  type InterfaceAddress,
  interfaceAddresses,
  type LocalDetector,
  type LocalDetectorOptions,
  localDetector,
  nodeIPsOf,
  nodePortCIDRs,
} from '../common/local-traffic.js';
import { IPSET_DEFINITIONS, type IpsetId, ipsetName } from './ipsets.js';
import { compareAddresses, IPVS_SCHEDULERS, type Scheduler, type SchedulerFlag } from './state.js';

/** The configuration and host facts IPVS mode depends on (built by `ipvsOptions` in sync/wiring.ts). */
export interface IpvsOptions extends LocalDetectorOptions {
  /** `ipvs.scheduler`; blank means rr */
  scheduler: string;
  masqueradeAll: boolean;
  masqueradeBit: number;
  /** CIDRs or the keyword `primary`; empty = all addresses */
  nodePortAddresses: readonly string[];
  /** interface name -> `addr/prefix` list (host facts); kube-ipvs0's own addresses may be listed */
  interfaces: Readonly<Record<string, readonly string[]>>;
  randomFully: boolean;
  /** `ipvs.excludeCIDRs`: virtual servers inside them survive the applier's stale sweep */
  excludeCIDRs: readonly string[];
  /** `ipvs.strictARP`: the applier sets arp_ignore=1 and arp_announce=2 */
  strictARP: boolean;
  /** `ipvs.tcpTimeout`, `tcpFinTimeout`, `udpTimeout` in ms (`ipvsadm --set`); 0 keeps the system's value */
  tcpTimeoutMs: number;
  tcpFinTimeoutMs: number;
  udpTimeoutMs: number;
}

export interface IpvsRenderContext {
  family: IPFamily;
  scheduler: Scheduler;
  /** the scheduler flags of every virtual server (`mh-port` with mh), sorted */
  schedulerFlags: readonly SchedulerFlag[];
  /** `0x00004000`: Go's `%#08x`, as kube-proxy writes it */
  mark: string;
  masqueradeAll: boolean;
  localDetector: LocalDetector | null;
  /**
   * kube-proxy's nodeAddressSet: the family's addresses on every interface but kube-ipvs0,
   * without loopback and IPv6 link-local. An externalIP or LB IP among them is not bound
   * to kube-ipvs0.
   */
  nodeAddresses: ReadonlySet<string>;
  /** the addresses NodePort virtual servers listen on (kube-proxy's nodeIPs), sorted */
  nodePortAddresses: readonly string[];
  /** the family's primary node IP, null when the node has none (LB source ranges, spec §6) */
  primaryNodeIP: string | null;
  randomFully: boolean;
  /** the family's name of each of the 17 sets (`KUBE-6-…` for IPv6) */
  setNames: Readonly<Record<IpsetId, string>>;
  /** the family's excludeCIDRs, canonical (for the applier) */
  excludeCIDRs: readonly string[];
}

/** `ipvs.scheduler` as kube-proxy runs it: blank means rr; anything unknown is an error. */
export function resolveScheduler(value: string): Scheduler {
  const name = value.trim();
  if (name === '') return 'rr';
  if (!(IPVS_SCHEDULERS as readonly string[]).includes(name)) {
    throw new InputError(
      `ipvs.scheduler: ${JSON.stringify(value)} is not one of ${IPVS_SCHEDULERS.join(', ')} (or blank for rr)`,
    );
  }
  return name as Scheduler;
}

function isLinkLocalV6(ip: ParsedIP): boolean {
  return ip.family === 'IPv6' && ip.bytes[0] === 0xfe && (ip.bytes[1]! & 0xc0) === 0x80;
}

function checkTimeouts(opts: IpvsOptions): void {
  for (const field of ['tcpTimeoutMs', 'tcpFinTimeoutMs', 'udpTimeoutMs'] as const) {
    const ms = opts[field];
    if (!Number.isFinite(ms) || ms < 0) {
      throw new InputError(`ipvs.${field.slice(0, -2)}: ${ms} ms must be greater than or equal to 0`);
    }
  }
}

/**
 * The family's interface addresses. When the host facts list no interfaces at all, the
 * node's IPs stand in for them (on one unnamed interface), as kube-proxy's own unit tests
 * do with their fake netlink: a render without host facts still gets NodePort virtual
 * servers on the node's addresses.
 */
function hostAddresses(opts: IpvsOptions, family: IPFamily, node: NodeInfo): InterfaceAddress[] {
  if (Object.keys(opts.interfaces).length > 0) return interfaceAddresses(opts.interfaces, family);
  return nodeIPsOf(node, family).map((text) => ({ interface: '', ip: parseIP(text)! }));
}

function sortedTexts(ips: Iterable<ParsedIP>): string[] {
  const unique = new Set<string>();
  for (const ip of ips) unique.add(ip.text);
  return [...unique].sort(compareAddresses);
}

export function buildIpvsRenderContext(
  opts: IpvsOptions,
  family: IPFamily,
  node: NodeInfo,
): IpvsRenderContext {
  const scheduler = resolveScheduler(opts.scheduler);
  checkTimeouts(opts);
  const excludeCIDRs = familyCIDRs(opts.excludeCIDRs, family, 'ipvs.excludeCIDRs').map((c) => c.text);
  const primaryNodeIP = nodeIPsOf(node, family)[0] ?? null;

  const addresses = hostAddresses(opts, family, node);
  // kube-ipvs0's addresses are never node addresses (spec §3).
  const nodeAddressIPs = addresses
    .filter((a) => a.interface !== KUBE_IPVS0 && !isLoopback(a.ip) && !isLinkLocalV6(a.ip))
    .map((a) => a.ip);
  const nodeAddresses = sortedTexts(nodeAddressIPs);

  // spec §3: match-all takes the node addresses; CIDRs take every interface address inside
  // them (kube-ipvs0 included, IPv6 link-local included), loopback excluded.
  const { matchAll, cidrs } = nodePortCIDRs(opts.nodePortAddresses, family, primaryNodeIP ?? undefined);
  const nodePortAddresses = matchAll
    ? nodeAddresses
    : sortedTexts(
        addresses.map((a) => a.ip).filter((ip) => !isLoopback(ip) && cidrs.some((c) => cidrContains(c, ip))),
      );

  const setNames = {} as Record<IpsetId, string>;
  for (const d of IPSET_DEFINITIONS) setNames[d.id] = ipsetName(d.id, family);

  return {
    family,
    scheduler,
    schedulerFlags: scheduler === 'mh' ? ['mh-port'] : [],
    mark: formatMark(opts.masqueradeBit),
    masqueradeAll: opts.masqueradeAll,
    localDetector: localDetector(opts, family, node),
    nodeAddresses: new Set(nodeAddresses),
    nodePortAddresses,
    primaryNodeIP,
    randomFully: opts.randomFully,
    setNames,
    excludeCIDRs,
  };
}

/** Whether `ip` is inside one of the (canonical) CIDRs: the applier's excludeCIDRs test. */
export function insideCIDRs(ip: string, cidrs: readonly string[]): boolean {
  const parsed = parseIP(ip);
  return (
    parsed !== null &&
    cidrs.some((text) => {
      const cidr = parseCIDR(text);
      return cidr !== null && cidrContains(cidr, parsed);
    })
  );
}
