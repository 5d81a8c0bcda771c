/**
 * Snapshot -> IPVS-mode desired state (spec kube-proxy-ipvs.md §3-§7). No I/O.
 *
 * Each service port contributes set entries, virtual servers with their real servers,
 * addresses to bind on kube-ipvs0 and KUBE-IPVS-OUT-FILTER drops; the render unites the
 * contributions (shared entries and addresses once) and writes the helper iptables rules,
 * whose presence depends on which sets are non-empty. Unlike iptables mode there is no
 * partial render: the state is always the whole desired state, and the applier diffs it.
 */

import type { Endpoint, ServicePortState, Snapshot } from '../../model/types.js';
import { emptyTable } from '../iptables/restore-text.js';
import { IPVS_CHAINS } from './chains.js';
import type { IpvsRenderContext } from './context.js';
import { insideCIDRs } from './context.js';
import { IPSET_DEFINITIONS, type IpsetId } from './ipsets.js';
import {
  addressSortKey,
  type IpsetState,
  type IpvsIptables,
  type IpvsState,
  type RealServer,
  type VirtualServer,
} from './state.js';

export interface IpvsRenderStats {
  servicePorts: number;
  endpoints: number;
  virtualServers: number;
  realServers: number;
  boundAddresses: number;
  /** entries over all sets */
  setEntries: number;
  /** rules in the helper chains, per table */
  filterRules: number;
  natRules: number;
  /** services (not ports) with iTP/eTP Local, some endpoint, none local: IPVS falls back to the cluster's */
  noLocalEndpointsInternal: number;
  noLocalEndpointsExternal: number;
  /** virtual servers that two service ports both define (the first in snapshot order wins) */
  conflictingVirtualServers: number;
}

/** The desired state, with figures for logs and metrics. It is an IpvsState. */
export interface IpvsRender extends IpvsState {
  stats: IpvsRenderStats;
}

/**
 * A virtual server with its sort key, which is also its identity (protocol, address,
 * port), so that one native string sort orders them and one map de-duplicates them.
 */
interface KeyedVirtualServer {
  sortKey: string;
  vs: VirtualServer;
}

interface KeyedAddress {
  address: string;
  sortKey: string;
}

/** What one service port adds to the state; pure in (ServicePortState, context). */
interface PortContribution {
  entries: Partial<Record<IpsetId, readonly string[]>>;
  virtualServers: readonly KeyedVirtualServer[];
  bound: readonly KeyedAddress[];
  outFilterDrops: readonly string[];
  realServers: number;
  noLocalInternal: boolean;
  noLocalExternal: boolean;
}

const portSortKey = (port: number) => port.toString(16).padStart(4, '0');

/** The real servers of a list of endpoints: IP:port once each, masquerade, weight 1, sorted. */
function realServersOf(endpoints: readonly Endpoint[]): readonly RealServer[] {
  const bySortKey = new Map<string, RealServer>();
  for (const ep of endpoints) {
    const sortKey = addressSortKey(ep.ip) + portSortKey(ep.port);
    if (!bySortKey.has(sortKey))
      bySortKey.set(sortKey, { address: ep.ip, port: ep.port, weight: 1, forwarding: 'masq' });
  }
  return sortedValues(bySortKey);
}

/** The `ipset save` form of a network in a hash:ip,port,net entry: a host network has no prefix. */
function netEntry(cidr: string): string {
  const slash = cidr.lastIndexOf('/');
  const hostPrefix = cidr.includes(':') ? '128' : '32';
  return cidr.slice(slash + 1) === hostPrefix ? cidr.slice(0, slash) : cidr;
}

export function renderServicePort(state: ServicePortState, ctx: IpvsRenderContext): PortContribution {
  const { port: sp, selection: sel } = state;
  const p = sp.protocol.toLowerCase();
  const entries: Partial<Record<IpsetId, string[]>> = {};
  const add = (id: IpsetId, entry: string) => {
    const list = entries[id];
    if (list) list.push(entry);
    else entries[id] = [entry];
  };
  const virtualServers: KeyedVirtualServer[] = [];
  const bound: KeyedAddress[] = [];
  const outFilterDrops: string[] = [];
  let realServerCount = 0;

  // spec §4: ClusterIP traffic uses the cluster endpoints, or local∥cluster with iTP Local;
  // external traffic likewise with eTP Local. IPVS never black-holes: no local endpoint
  // means the cluster's (which is empty when the port does not use cluster endpoints).
  const cluster = realServersOf(sel.cluster);
  const localOrCluster = sel.local.length > 0 ? realServersOf(sel.local) : cluster;
  const internalServers = sp.internalPolicyLocal ? localOrCluster : cluster;
  const externalServers = sp.externalPolicyLocal ? localOrCluster : cluster;
  let externalVirtualServers = 0;

  const virtualServer = (address: string, port: number, realServers: readonly RealServer[]) => {
    const vs: VirtualServer = {
      protocol: sp.protocol,
      address,
      port,
      scheduler: ctx.scheduler,
      persistenceSeconds: sp.stickySeconds,
      flags: ctx.schedulerFlags,
      realServers,
    };
    virtualServers.push({ sortKey: `${sp.protocol} ${addressSortKey(address)}${portSortKey(port)}`, vs });
    realServerCount += realServers.length;
  };
  const bind = (address: string) => bound.push({ address, sortKey: addressSortKey(address) });

  // Hairpin: every local endpoint, whatever its condition (spec §6).
  for (const ep of state.endpoints) {
    if (ep.isLocal) add('loopBack', `${ep.ip},${p}:${ep.port},${ep.ip}`);
  }

  // ClusterIP: always bound.
  add('clusterIP', `${sp.clusterIP},${p}:${sp.port}`);
  virtualServer(sp.clusterIP, sp.port, internalServers);
  bind(sp.clusterIP);

  // externalIPs: bound unless the node already has the address.
  for (const ip of sp.externalIPs) {
    add(sp.externalPolicyLocal ? 'externalIPLocal' : 'externalIP', `${ip},${p}:${sp.port}`);
    virtualServer(ip, sp.port, externalServers);
    externalVirtualServers++;
    if (!ctx.nodeAddresses.has(ip)) bind(ip);
  }

  // LB ingress IPs (ipMode unset or VIP; the model drops Proxy).
  const ranges = sp.loadBalancerSourceRanges;
  const allowFromNode = ctx.primaryNodeIP !== null && insideCIDRs(ctx.primaryNodeIP, ranges);
  for (const vip of sp.loadBalancerVIPs) {
    const entry = `${vip},${p}:${sp.port}`;
    add('loadBalancer', entry);
    if (sp.externalPolicyLocal) add('loadBalancerLocal', entry);
    if (ranges.length > 0) {
      add('loadBalancerFW', entry);
      for (const range of ranges) add('loadBalancerSourceCIDR', `${entry},${netEntry(range)}`);
      if (allowFromNode) add('loadBalancerSourceIP', `${entry},${vip}`);
      else
        outFilterDrops.push(
          `-A KUBE-IPVS-OUT-FILTER -s ${vip} -m ipvs --vaddr ${vip} --vproto ${p} --vport ${sp.port} -j DROP`,
        );
    }
    virtualServer(vip, sp.port, externalServers);
    externalVirtualServers++;
    if (!ctx.nodeAddresses.has(vip)) bind(vip);
  }

  // NodePort: one virtual server per node address. Without node addresses kube-proxy skips
  // the rest of the port, the health-check port included (spec §3).
  let skipped = false;
  if (sp.nodePort !== 0) {
    if (ctx.nodePortAddresses.length === 0) skipped = true;
    else {
      const local = sp.externalPolicyLocal;
      if (sp.protocol === 'SCTP') {
        for (const ip of ctx.nodePortAddresses) {
          add('nodePortSCTP', `${ip},sctp:${sp.nodePort}`);
          if (local) add('nodePortLocalSCTP', `${ip},sctp:${sp.nodePort}`);
        }
      } else {
        const tcp = sp.protocol === 'TCP';
        add(tcp ? 'nodePortTCP' : 'nodePortUDP', String(sp.nodePort));
        if (local) add(tcp ? 'nodePortLocalTCP' : 'nodePortLocalUDP', String(sp.nodePort));
      }
      for (const ip of ctx.nodePortAddresses) {
        virtualServer(ip, sp.nodePort, externalServers);
        externalVirtualServers++;
      }
    }
  }
  if (!skipped && sp.healthCheckNodePort !== 0) add('healthCheckNodePort', String(sp.healthCheckNodePort));

  // kube-proxy counts a service when a virtual server restricted to local endpoints had to
  // fall back (its syncEndpoint): the ClusterIP one with iTP Local, the external ones with eTP Local.
  const localOnlyUsed = sp.internalPolicyLocal || (sp.externalPolicyLocal && externalVirtualServers > 0);
  const fellBack = localOnlyUsed && sel.local.length === 0 && sel.hasEndpoints;

  return {
    entries,
    virtualServers,
    bound,
    outFilterDrops,
    realServers: realServerCount,
    noLocalInternal: fellBack && sp.internalPolicyLocal,
    noLocalExternal: fellBack && sp.externalPolicyLocal,
  };
}

/**
 * Renders snapshots, remembering each service port's contribution by identity: the
 * snapshot builder hands out the same ServicePortState for an unchanged service, so a sync
 * only computes the services that changed. A snapshot whose service ports are all the
 * previous render's (a periodic sync with no change) gets the previous render back.
 */
export class IpvsRenderer {
  private cache = new WeakMap<ServicePortState, PortContribution>();
  private cacheCtx: IpvsRenderContext | null = null;
  private previous: { ports: readonly ServicePortState[]; render: IpvsRender } | null = null;

  render(snapshot: Snapshot, ctx: IpvsRenderContext): IpvsRender {
    if (ctx !== this.cacheCtx) {
      this.cache = new WeakMap();
      this.cacheCtx = ctx;
      this.previous = null;
    }
    const ports = snapshot.servicePorts;
    const prev = this.previous;
    if (prev && sameItems(prev.ports, ports) && prev.render.family === snapshot.family) return prev.render;
    const render = assemble(snapshot, ctx, (sp) => {
      let c = this.cache.get(sp);
      if (!c) {
        c = renderServicePort(sp, ctx);
        this.cache.set(sp, c);
      }
      return c;
    });
    this.previous = { ports, render };
    return render;
  }
}

/** One-shot render without a cache (`render`, tests). */
export function renderIpvs(snapshot: Snapshot, ctx: IpvsRenderContext): IpvsRender {
  return new IpvsRenderer().render(snapshot, ctx);
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The values in the order of their keys: a native string sort, no comparator calls. */
function sortedValues<T>(byKey: ReadonlyMap<string, T>): T[] {
  return [...byKey.keys()].sort().map((k) => byKey.get(k)!);
}

function assemble(
  snapshot: Snapshot,
  ctx: IpvsRenderContext,
  contributionOf: (sp: ServicePortState) => PortContribution,
): IpvsRender {
  const entries = new Map<IpsetId, Set<string>>(IPSET_DEFINITIONS.map((d) => [d.id, new Set<string>()]));
  const virtualServers = new Map<string, VirtualServer>();
  const bound = new Map<string, string>();
  const drops = new Set<string>();
  const internalServices = new Set<string>();
  const externalServices = new Set<string>();
  let conflicts = 0;

  for (const sp of snapshot.servicePorts) {
    const c = contributionOf(sp);
    for (const id in c.entries) {
      const target = entries.get(id as IpsetId)!;
      for (const entry of c.entries[id as IpsetId]!) target.add(entry);
    }
    for (const { sortKey, vs } of c.virtualServers) {
      const existing = virtualServers.get(sortKey);
      if (!existing) virtualServers.set(sortKey, vs);
      else if (existing !== vs && !sameVirtualServer(existing, vs)) conflicts++;
    }
    for (const { sortKey, address } of c.bound) bound.set(sortKey, address);
    for (const d of c.outFilterDrops) drops.add(d);
    if (c.noLocalInternal) internalServices.add(sp.port.serviceKey);
    if (c.noLocalExternal) externalServices.add(sp.port.serviceKey);
  }

  // KUBE-IPVS-IPS holds exactly the addresses bound to kube-ipvs0.
  const boundSorted = sortedValues(bound);
  const ipvsIPs = entries.get('ipvsIPs')!;
  for (const address of boundSorted) ipvsIPs.add(address);

  const hashFamily = ctx.family === 'IPv4' ? 'inet' : 'inet6';
  const ipsets = IPSET_DEFINITIONS.map(
    (d): IpsetState => ({
      name: ctx.setNames[d.id],
      type: d.type,
      family: d.type === 'bitmap:port' ? null : hashFamily,
      entries: [...entries.get(d.id)!].sort(),
    }),
  ).sort((a, b) => (a.name < b.name ? -1 : 1));

  const nonEmpty = (id: IpsetId) => entries.get(id)!.size > 0;
  const iptables = helperRules(ctx, nonEmpty, [...drops]);
  const sortedServers = sortedValues(virtualServers);

  let realServers = 0;
  for (const vs of sortedServers) realServers += vs.realServers.length;
  let setEntries = 0;
  for (const set of ipsets) setEntries += set.entries.length;
  let filterRules = 0;
  for (const rules of iptables.filter.chains.values()) filterRules += rules.length;
  let natRules = 0;
  for (const rules of iptables.nat.chains.values()) natRules += rules.length;

  return {
    family: ctx.family,
    ipsets,
    virtualServers: sortedServers,
    boundAddresses: boundSorted,
    iptables,
    stats: {
      servicePorts: snapshot.servicePorts.length,
      endpoints: snapshot.totalEndpoints,
      virtualServers: sortedServers.length,
      realServers,
      boundAddresses: boundSorted.length,
      setEntries,
      filterRules,
      natRules,
      noLocalEndpointsInternal: internalServices.size,
      noLocalEndpointsExternal: externalServices.size,
      conflictingVirtualServers: conflicts,
    },
  };
}

function sameVirtualServer(a: VirtualServer, b: VirtualServer): boolean {
  return (
    a.persistenceSeconds === b.persistenceSeconds &&
    a.realServers.length === b.realServers.length &&
    a.realServers.every(
      (rs, i) => rs.address === b.realServers[i]!.address && rs.port === b.realServers[i]!.port,
    )
  );
}

/**
 * The helper chains in kube-proxy's emission order (writeIptablesRules, spec §7). Rules
 * that match a set are written only while that set has entries, except the unconditional
 * tail (from KUBE-FORWARD on).
 */
function helperRules(
  ctx: IpvsRenderContext,
  nonEmpty: (id: IpsetId) => boolean,
  outFilterDrops: readonly string[],
): IpvsIptables {
  const nat = emptyTable('nat');
  const filter = emptyTable('filter');
  const natRules = new Map<string, string[]>(IPVS_CHAINS.nat.map((c) => [c, []]));
  const filterRules = new Map<string, string[]>(IPVS_CHAINS.filter.map((c) => [c, []]));
  const rule = (table: 'nat' | 'filter', chain: string, text: string) =>
    (table === 'nat' ? natRules : filterRules).get(chain)!.push(`-A ${chain} ${text}`);
  const name = (id: IpsetId) => ctx.setNames[id];
  const comment = (id: IpsetId) =>
    `-m comment --comment "${IPSET_DEFINITIONS.find((d) => d.id === id)!.comment}"`;
  const M = ctx.mark;

  rule('nat', 'KUBE-SERVICES', `-s ${ctx.family === 'IPv4' ? '127.0.0.0/8' : '::1/128'} -j RETURN`);

  // kube-proxy's ipsetWithIptablesChain, in its order.
  const setJumps: [IpsetId, 'nat' | 'filter', string, string, string, string][] = [
    ['loopBack', 'nat', 'KUBE-POSTROUTING', 'MASQUERADE', 'dst,dst,src', ''],
    ['loadBalancer', 'nat', 'KUBE-SERVICES', 'KUBE-LOAD-BALANCER', 'dst,dst', ''],
    ['loadBalancerLocal', 'nat', 'KUBE-LOAD-BALANCER', 'RETURN', 'dst,dst', ''],
    ['nodePortLocalTCP', 'nat', 'KUBE-NODE-PORT', 'RETURN', 'dst', 'tcp'],
    ['nodePortTCP', 'nat', 'KUBE-NODE-PORT', 'KUBE-MARK-MASQ', 'dst', 'tcp'],
    ['nodePortLocalUDP', 'nat', 'KUBE-NODE-PORT', 'RETURN', 'dst', 'udp'],
    ['nodePortUDP', 'nat', 'KUBE-NODE-PORT', 'KUBE-MARK-MASQ', 'dst', 'udp'],
    ['nodePortLocalSCTP', 'nat', 'KUBE-NODE-PORT', 'RETURN', 'dst,dst', 'sctp'],
    ['nodePortSCTP', 'nat', 'KUBE-NODE-PORT', 'KUBE-MARK-MASQ', 'dst,dst', 'sctp'],
    ['loadBalancerFW', 'filter', 'KUBE-PROXY-FIREWALL', 'KUBE-SOURCE-RANGES-FIREWALL', 'dst,dst', ''],
    ['loadBalancerSourceCIDR', 'filter', 'KUBE-SOURCE-RANGES-FIREWALL', 'RETURN', 'dst,dst,src', ''],
    ['loadBalancerSourceIP', 'filter', 'KUBE-SOURCE-RANGES-FIREWALL', 'RETURN', 'dst,dst,src', ''],
  ];
  for (const [id, table, chain, target, match, protocol] of setJumps) {
    if (!nonEmpty(id)) continue;
    const proto = protocol ? `-p ${protocol} ` : '';
    rule(table, chain, `${proto}${comment(id)} -m set --match-set ${name(id)} ${match} -j ${target}`);
  }

  if (nonEmpty('clusterIP')) {
    const base = `${comment('clusterIP')} -m set --match-set ${name('clusterIP')}`;
    if (ctx.masqueradeAll) rule('nat', 'KUBE-SERVICES', `${base} dst,dst -j KUBE-MARK-MASQ`);
    else if (ctx.localDetector)
      rule('nat', 'KUBE-SERVICES', `${base} dst,dst ${ctx.localDetector.ifNotLocal} -j KUBE-MARK-MASQ`);
    // No detector: only node-originated traffic from a VIP (source = the VIP on kube-ipvs0).
    else rule('nat', 'KUBE-SERVICES', `${base} src,dst -j KUBE-MARK-MASQ`);
  }

  const externalAccept = (id: IpsetId) => {
    const base = `${comment(id)} -m set --match-set ${name(id)} dst,dst`;
    rule(
      'nat',
      'KUBE-SERVICES',
      `${base} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`,
    );
    rule('nat', 'KUBE-SERVICES', `${base} -m addrtype --dst-type LOCAL -j ACCEPT`);
  };
  if (nonEmpty('externalIP')) {
    rule(
      'nat',
      'KUBE-SERVICES',
      `${comment('externalIP')} -m set --match-set ${name('externalIP')} dst,dst -j KUBE-MARK-MASQ`,
    );
    externalAccept('externalIP');
  }
  if (nonEmpty('externalIPLocal')) externalAccept('externalIPLocal');

  rule('nat', 'KUBE-SERVICES', '-m addrtype --dst-type LOCAL -j KUBE-NODE-PORT');
  rule('nat', 'KUBE-LOAD-BALANCER', '-j KUBE-MARK-MASQ');
  rule('filter', 'KUBE-SOURCE-RANGES-FIREWALL', '-j DROP');
  for (const drop of outFilterDrops) filterRules.get('KUBE-IPVS-OUT-FILTER')!.push(drop);

  // Accept IPVS traffic so that later nat rules leave it alone; the last rules of KUBE-SERVICES.
  for (const id of ['clusterIP', 'loadBalancer'] as const) {
    if (nonEmpty(id)) rule('nat', 'KUBE-SERVICES', `-m set --match-set ${name(id)} dst,dst -j ACCEPT`);
  }

  rule(
    'filter',
    'KUBE-FORWARD',
    `-m comment --comment "kubernetes forwarding rules" -m mark --mark ${M}/${M} -j ACCEPT`,
  );
  rule(
    'filter',
    'KUBE-FORWARD',
    '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  );
  rule(
    'filter',
    'KUBE-NODE-PORT',
    `${comment('healthCheckNodePort')} -m set --match-set ${name('healthCheckNodePort')} dst -j ACCEPT`,
  );
  for (const [id, match] of [
    ['loadBalancer', 'dst,dst'],
    ['clusterIP', 'dst,dst'],
    ['externalIP', 'dst,dst'],
    ['externalIPLocal', 'dst,dst'],
    ['healthCheckNodePort', 'dst'],
  ] as const) {
    rule('filter', 'KUBE-IPVS-FILTER', `-m set --match-set ${name(id)} ${match} -j RETURN`);
  }
  rule(
    'filter',
    'KUBE-IPVS-FILTER',
    `-m conntrack --ctstate NEW -m set --match-set ${name('ipvsIPs')} dst -j REJECT`,
  );

  rule('nat', 'KUBE-POSTROUTING', `-m mark ! --mark ${M}/${M} -j RETURN`);
  rule('nat', 'KUBE-POSTROUTING', `-j MARK --xor-mark ${M}`);
  rule(
    'nat',
    'KUBE-POSTROUTING',
    `-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${ctx.randomFully ? ' --random-fully' : ''}`,
  );
  rule('nat', 'KUBE-MARK-MASQ', `-j MARK --or-mark ${M}`);

  for (const [chain, rules] of natRules) nat.chains.set(chain, rules);
  for (const [chain, rules] of filterRules) filter.chains.set(chain, rules);
  return { filter, nat };
}
