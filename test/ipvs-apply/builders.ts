/**
 * Small builders of IpvsState values for the applier's tests (the renderer is not
 * involved): virtual and real servers, kube-proxy's 17 sets, and helper chains that use
 * the sets the way kube-proxy's do (so the iptables double checks that sets exist first).
 */
import { pino } from 'pino';
import type { RestoreTable } from '../../src/backends/iptables/restore-text.js';
import { IPSET_DEFINITIONS, type IpsetId, ipsetName } from '../../src/backends/ipvs/ipsets.js';
import {
  compareAddresses,
  compareRealServers,
  compareVirtualServers,
  type IpsetState,
  type IpvsState,
  type RealServer,
  type VirtualServer,
} from '../../src/backends/ipvs/state.js';
import type { Logger } from '../../src/log.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { Protocol } from '../../src/model/types.js';

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** A logger that keeps every record, for assertions on what was logged. */
export function recordingLogger(): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        records.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return { log, records };
}

export function rs(address: string, port = 8080, weight = 1): RealServer {
  return { address, port, weight, forwarding: 'masq' };
}

export interface VsOptions {
  scheduler?: string;
  persistenceSeconds?: number;
  flags?: VirtualServer['flags'];
}

export function vs(
  protocol: Protocol,
  address: string,
  port: number,
  realServers: readonly RealServer[] = [],
  options: VsOptions = {},
): VirtualServer {
  return {
    protocol,
    address,
    port,
    scheduler: options.scheduler ?? 'rr',
    persistenceSeconds: options.persistenceSeconds ?? 0,
    flags: [...(options.flags ?? [])].sort(),
    realServers: [...realServers].sort(compareRealServers),
  };
}

/** The helper chains, with kube-proxy's set-matching rules (a subset: enough to reference sets). */
export function helperChains(family: IPFamily): { filter: RestoreTable; nat: RestoreTable } {
  const s = (id: IpsetId) => ipsetName(id, family);
  const filter: RestoreTable = {
    name: 'filter',
    deleted: [],
    chains: new Map<string, readonly string[]>([
      [
        'KUBE-FORWARD',
        [
          '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
          '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        ],
      ],
      [
        'KUBE-NODE-PORT',
        [
          `-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set ${s('healthCheckNodePort')} dst -j ACCEPT`,
        ],
      ],
      ['KUBE-PROXY-FIREWALL', []],
      ['KUBE-SOURCE-RANGES-FIREWALL', ['-A KUBE-SOURCE-RANGES-FIREWALL -j DROP']],
      [
        'KUBE-IPVS-FILTER',
        [
          `-A KUBE-IPVS-FILTER -m set --match-set ${s('loadBalancer')} dst,dst -j RETURN`,
          `-A KUBE-IPVS-FILTER -m set --match-set ${s('clusterIP')} dst,dst -j RETURN`,
          `-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set ${s('ipvsIPs')} dst -j REJECT`,
        ],
      ],
      ['KUBE-IPVS-OUT-FILTER', []],
    ]),
  };
  const nat: RestoreTable = {
    name: 'nat',
    deleted: [],
    chains: new Map<string, readonly string[]>([
      ['KUBE-SERVICES', [`-A KUBE-SERVICES -m set --match-set ${s('clusterIP')} dst,dst -j ACCEPT`]],
      [
        'KUBE-POSTROUTING',
        [
          `-A KUBE-POSTROUTING -m set --match-set ${s('loopBack')} dst,dst,src -j MASQUERADE`,
          '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
        ],
      ],
      ['KUBE-NODE-PORT', []],
      ['KUBE-LOAD-BALANCER', ['-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ']],
      ['KUBE-MARK-MASQ', ['-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000']],
    ]),
  };
  return { filter, nat };
}

export interface StateSpec {
  virtualServers?: readonly VirtualServer[];
  sets?: Partial<Record<IpsetId, readonly string[]>>;
  boundAddresses?: readonly string[];
}

/** A whole IpvsState: all 17 sets (empty unless given), sorted as the contract says. */
export function ipvsState(family: IPFamily, spec: StateSpec = {}): IpvsState {
  const ipsets: IpsetState[] = IPSET_DEFINITIONS.map(
    (d): IpsetState => ({
      name: ipsetName(d.id, family),
      type: d.type,
      family: d.type === 'bitmap:port' ? null : family === 'IPv4' ? 'inet' : 'inet6',
      entries: [...(spec.sets?.[d.id] ?? [])].sort(),
    }),
  ).sort((a, b) => (a.name < b.name ? -1 : 1));
  return {
    family,
    ipsets,
    virtualServers: [...(spec.virtualServers ?? [])].sort(compareVirtualServers),
    boundAddresses: [...new Set(spec.boundAddresses ?? [])].sort(compareAddresses),
    iptables: helperChains(family),
  };
}

/**
 * `services` ClusterIP TCP services (10.96.x.y:80), each with `endpoints` real servers on
 * other nodes (10.244.x.y:8080), their KUBE-CLUSTER-IP entries and bound addresses: the
 * shape of a large cluster as one node's IPVS proxier sees it.
 */
export function clusterState(services: number, endpoints: number, family: IPFamily = 'IPv4'): IpvsState {
  const virtualServers: VirtualServer[] = [];
  const clusterIPs: string[] = [];
  const bound: string[] = [];
  let ep = 0;
  for (let i = 0; i < services; i++) {
    const vip = family === 'IPv4' ? `10.96.${(i >> 8) & 255}.${i & 255}` : `fd00:96::${(i + 1).toString(16)}`;
    const servers: RealServer[] = [];
    for (let j = 0; j < endpoints; j++, ep++) {
      servers.push(
        rs(
          family === 'IPv4'
            ? `10.${244 + (ep >> 16)}.${(ep >> 8) & 255}.${ep & 255}`
            : `fd00:244::${(ep + 1).toString(16)}`,
        ),
      );
    }
    virtualServers.push(vs('TCP', vip, 80, servers));
    clusterIPs.push(`${vip},tcp:80`);
    bound.push(vip);
  }
  return ipvsState(family, {
    virtualServers,
    sets: { clusterIP: clusterIPs, ipvsIPs: bound },
    boundAddresses: bound,
  });
}

/** `state` with `fn` applied to its virtual server `key` (`TCP 10.96.0.1:80`). */
export function withVirtualServer(
  state: IpvsState,
  key: string,
  fn: (v: VirtualServer) => VirtualServer,
): IpvsState {
  return {
    ...state,
    virtualServers: state.virtualServers.map((v) =>
      `${v.protocol} ${v.address.includes(':') ? `[${v.address}]` : v.address}:${v.port}` === key ? fn(v) : v,
    ),
  };
}
