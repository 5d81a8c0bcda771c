/**
 * kube-proxy's IPVS-mode ipsets: names, types and the comments its iptables rules carry
 * (spec kube-proxy-ipvs.md §6). The renderer fills them, the applier owns exactly these
 * names (in both families), and cleanup removes them.
 */
import type { IPFamily } from '../../model/ip.js';
import type { IpsetState, IpsetType } from './state.js';

/** The IPv4 names; the IPv6 proxier's are derived by `ipsetName`. */
export const IPSET = {
  loopBack: 'KUBE-LOOP-BACK',
  clusterIP: 'KUBE-CLUSTER-IP',
  externalIP: 'KUBE-EXTERNAL-IP',
  externalIPLocal: 'KUBE-EXTERNAL-IP-LOCAL',
  loadBalancer: 'KUBE-LOAD-BALANCER',
  loadBalancerLocal: 'KUBE-LOAD-BALANCER-LOCAL',
  loadBalancerFW: 'KUBE-LOAD-BALANCER-FW',
  loadBalancerSourceCIDR: 'KUBE-LOAD-BALANCER-SOURCE-CIDR',
  loadBalancerSourceIP: 'KUBE-LOAD-BALANCER-SOURCE-IP',
  nodePortTCP: 'KUBE-NODE-PORT-TCP',
  nodePortLocalTCP: 'KUBE-NODE-PORT-LOCAL-TCP',
  nodePortUDP: 'KUBE-NODE-PORT-UDP',
  nodePortLocalUDP: 'KUBE-NODE-PORT-LOCAL-UDP',
  nodePortSCTP: 'KUBE-NODE-PORT-SCTP-HASH',
  nodePortLocalSCTP: 'KUBE-NODE-PORT-LOCAL-SCTP-HASH',
  healthCheckNodePort: 'KUBE-HEALTH-CHECK-NODE-PORT',
  ipvsIPs: 'KUBE-IPVS-IPS',
} as const;

export type IpsetId = keyof typeof IPSET;

export interface IpsetDefinition {
  id: IpsetId;
  type: IpsetType;
  /** kube-proxy's comment for the set; its iptables rules quote it */
  comment: string;
}

export const IPSET_DEFINITIONS: readonly IpsetDefinition[] = [
  {
    id: 'loopBack',
    type: 'hash:ip,port,ip',
    comment: 'Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose',
  },
  {
    id: 'clusterIP',
    type: 'hash:ip,port',
    comment: 'Kubernetes service cluster ip + port for masquerade purpose',
  },
  {
    id: 'externalIP',
    type: 'hash:ip,port',
    comment: 'Kubernetes service external ip + port for masquerade and filter purpose',
  },
  {
    id: 'externalIPLocal',
    type: 'hash:ip,port',
    comment: 'Kubernetes service external ip + port with externalTrafficPolicy=local',
  },
  { id: 'loadBalancer', type: 'hash:ip,port', comment: 'Kubernetes service lb portal' },
  {
    id: 'loadBalancerLocal',
    type: 'hash:ip,port',
    comment: 'Kubernetes service load balancer ip + port with externalTrafficPolicy=local',
  },
  {
    id: 'loadBalancerFW',
    type: 'hash:ip,port',
    comment: 'Kubernetes service load balancer ip + port for load balancer with sourceRange',
  },
  {
    id: 'loadBalancerSourceCIDR',
    type: 'hash:ip,port,net',
    comment: 'Kubernetes service load balancer ip + port + source cidr for packet filter purpose',
  },
  {
    id: 'loadBalancerSourceIP',
    type: 'hash:ip,port,ip',
    comment: 'Kubernetes service load balancer ip + port + source IP for packet filter purpose',
  },
  { id: 'nodePortTCP', type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port for masquerade purpose' },
  {
    id: 'nodePortLocalTCP',
    type: 'bitmap:port',
    comment: 'Kubernetes nodeport TCP port with externalTrafficPolicy=local',
  },
  { id: 'nodePortUDP', type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port for masquerade purpose' },
  {
    id: 'nodePortLocalUDP',
    type: 'bitmap:port',
    comment: 'Kubernetes nodeport UDP port with externalTrafficPolicy=local',
  },
  {
    id: 'nodePortSCTP',
    type: 'hash:ip,port',
    comment: "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'",
  },
  {
    id: 'nodePortLocalSCTP',
    type: 'hash:ip,port',
    comment: "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'",
  },
  { id: 'healthCheckNodePort', type: 'bitmap:port', comment: 'Kubernetes health check node port' },
  { id: 'ipvsIPs', type: 'hash:ip', comment: 'Addresses on the ipvs interface' },
];

/** ipset names are at most 31 characters (IPSET_MAXNAMELEN - 1). */
export const IPSET_NAME_MAX = 31;

/**
 * The set's name for a family: IPv6 replaces the `KUBE-` prefix with `KUBE-6-` and cuts
 * the result to 31 characters, as kube-proxy's ipset runner does.
 */
export function ipsetName(id: IpsetId, family: IPFamily): string {
  const base = IPSET[id];
  if (family === 'IPv4') return base;
  return `KUBE-6-${base.slice('KUBE-'.length)}`.slice(0, IPSET_NAME_MAX);
}

/** Every set name Switchboard (and kube-proxy) owns in IPVS mode, both families. */
export function ownedIpsetNames(): string[] {
  return (['IPv4', 'IPv6'] as const).flatMap((family) =>
    IPSET_DEFINITIONS.map((d) => ipsetName(d.id, family)),
  );
}

/** The `create` line's options after the type, exactly as kube-proxy creates the set. */
export function ipsetCreateOptions(set: Pick<IpsetState, 'type' | 'family'>): string {
  if (set.type === 'bitmap:port') return 'range 0-65535';
  return `family ${set.family ?? 'inet'} hashsize 1024 maxelem 65536`;
}
