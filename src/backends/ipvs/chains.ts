/**
 * The iptables chains kube-proxy's IPVS proxier declares (and so rewrites) on every sync,
 * and its jumps into them from the built-in chains (spec kube-proxy-ipvs.md §7). Five
 * chains share their name with iptables mode (§11): nat KUBE-SERVICES, KUBE-POSTROUTING,
 * KUBE-MARK-MASQ and filter KUBE-FORWARD, KUBE-PROXY-FIREWALL.
 */
import { JUMP_RULES, type JumpRule, jump } from '../iptables/jump-rules.js';
import { FIXED_CHAINS } from '../iptables/render.js';

export const IPVS_CHAINS = {
  nat: ['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER', 'KUBE-MARK-MASQ'],
  filter: [
    'KUBE-FORWARD',
    'KUBE-NODE-PORT',
    'KUBE-PROXY-FIREWALL',
    'KUBE-SOURCE-RANGES-FIREWALL',
    'KUBE-IPVS-FILTER',
    'KUBE-IPVS-OUT-FILTER',
  ],
} as const satisfies Record<'nat' | 'filter', readonly string[]>;

/** kube-proxy's IPVS-mode jumps, in the order it makes sure of them (each prepended). */
export const IPVS_JUMP_RULES: readonly JumpRule[] = [
  jump('nat', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals'),
  jump('nat', 'PREROUTING', 'KUBE-SERVICES', 'kubernetes service portals'),
  jump('nat', 'POSTROUTING', 'KUBE-POSTROUTING', 'kubernetes postrouting rules'),
  jump('filter', 'FORWARD', 'KUBE-FORWARD', 'kubernetes forwarding rules'),
  jump('filter', 'INPUT', 'KUBE-NODE-PORT', 'kubernetes health check rules'),
  jump('filter', 'INPUT', 'KUBE-PROXY-FIREWALL', 'kube-proxy firewall rules'),
  jump('filter', 'FORWARD', 'KUBE-PROXY-FIREWALL', 'kube-proxy firewall rules'),
  jump('filter', 'INPUT', 'KUBE-IPVS-FILTER', 'kubernetes ipvs access filter'),
  jump('filter', 'OUTPUT', 'KUBE-IPVS-OUT-FILTER', 'kubernetes ipvs access filter'),
];

type Table = 'nat' | 'filter';

function has(list: readonly string[], chain: string): boolean {
  return list.includes(chain);
}

/** Chains both modes declare: a switch into either mode must keep them. */
export function isSharedChain(table: string, chain: string): boolean {
  const t = table as Table;
  return (
    (t === 'nat' || t === 'filter') &&
    has(IPVS_CHAINS[t], chain) &&
    has(FIXED_CHAINS[t] as readonly string[], chain)
  );
}

/** IPVS mode's own chains, which iptables mode never declares. */
export function isIpvsOnlyChain(table: string, chain: string): boolean {
  const t = table as Table;
  return (t === 'nat' || t === 'filter') && has(IPVS_CHAINS[t], chain) && !isSharedChain(t, chain);
}

/** Same rule (table, chain, arguments)? */
function sameJump(a: JumpRule, b: JumpRule): boolean {
  return (
    a.table === b.table &&
    a.from === b.from &&
    a.args.length === b.args.length &&
    a.args.every((w, i) => w === b.args[i])
  );
}

/**
 * The jumps one mode makes into a chain the other mode uses too (iptables mode's
 * `--ctstate NEW` jumps to KUBE-PROXY-FIREWALL; IPVS mode's uncommented-NEW ones): a switch
 * into the other mode removes them, keeping the chain. Jumps both modes make (nat
 * KUBE-SERVICES, KUBE-POSTROUTING, filter KUBE-FORWARD) are not listed.
 */
export function modeOnlySharedJumps(mode: 'iptables' | 'ipvs'): JumpRule[] {
  const mine = mode === 'ipvs' ? IPVS_JUMP_RULES : JUMP_RULES;
  const other = mode === 'ipvs' ? JUMP_RULES : IPVS_JUMP_RULES;
  return mine.filter((r) => isSharedChain(r.table, r.to) && !other.some((o) => sameJump(o, r)));
}
