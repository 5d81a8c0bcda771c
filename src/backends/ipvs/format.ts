/**
 * The text of an IPVS-mode state: four sections, each a header line and a body that is
 * valid input for its tool (issue 7 §1, spec kube-proxy-ipvs.md §13):
 *
 *   ### ipset       `ipset restore` input: every set of the family in name order, each
 *                   `create` exactly as kube-proxy creates it, then its `add` lines
 *   ### ipvs        `ipvsadm -R` input (`ipvsadm -Sn` syntax): each virtual server, then its
 *                   real servers
 *   ### kube-ipvs0  the addresses bound to the dummy interface, one per line
 *   ### iptables    `iptables-restore` input for the helper chains
 *
 * The order of everything is the state's (state.ts), so the text is a normal form: two
 * renders of the same desired state print the same bytes.
 */
import { formatRestore } from '../iptables/restore-text.js';
import { ipsetCreateOptions } from './ipsets.js';
import { realServerLine, virtualServerLine } from './ipvsadm-text.js';
import type { IpsetState, IpvsState } from './state.js';

export const IPVS_SECTIONS = ['ipset', 'ipvs', 'kube-ipvs0', 'iptables'] as const;
export type IpvsSection = (typeof IPVS_SECTIONS)[number];

/** `create NAME TYPE OPTIONS` as kube-proxy creates the set (no comment extension, no -exist). */
export function ipsetCreateLine(set: Pick<IpsetState, 'name' | 'type' | 'family'>): string {
  return `create ${set.name} ${set.type} ${ipsetCreateOptions(set)}`;
}

function lines(list: readonly string[]): string {
  return list.length === 0 ? '' : `${list.join('\n')}\n`;
}

export function formatIpsetSection(state: IpvsState): string {
  const out: string[] = [];
  for (const set of state.ipsets) {
    out.push(ipsetCreateLine(set));
    for (const entry of set.entries) out.push(`add ${set.name} ${entry}`);
  }
  return lines(out);
}

export function formatIpvsSection(state: IpvsState): string {
  const out: string[] = [];
  for (const vs of state.virtualServers) {
    out.push(virtualServerLine(vs));
    for (const rs of vs.realServers) out.push(realServerLine(vs, rs));
  }
  return lines(out);
}

export function formatBoundAddresses(state: IpvsState): string {
  return lines(state.boundAddresses);
}

/** Tables filter then nat, chains in iptables mode's canonical order, rules in emission order. */
export function formatIptablesSection(state: IpvsState): string {
  return formatRestore([state.iptables.filter, state.iptables.nat]);
}

const FORMATTERS: Record<IpvsSection, (state: IpvsState) => string> = {
  ipset: formatIpsetSection,
  ipvs: formatIpvsSection,
  'kube-ipvs0': formatBoundAddresses,
  iptables: formatIptablesSection,
};

/** One section's body alone (`render --section`). */
export function formatSection(state: IpvsState, section: IpvsSection): string {
  return FORMATTERS[section](state);
}

/** All four sections, each after its `### <name>` header line. */
export function formatIpvsState(state: IpvsState): string {
  return IPVS_SECTIONS.map((section) => `### ${section}\n${FORMATTERS[section](state)}`).join('');
}
