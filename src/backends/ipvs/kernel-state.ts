/**
 * What one family's IPVS applier knows of the kernel: its family's virtual servers (the
 * IPVS table is shared by both families), the sets it owns that exist, and the addresses
 * on kube-ipvs0. It is read in full at start and on every full sync, then kept up to date
 * from what each successful batch changed (a plan's `after`), so a partial sync reads
 * nothing but what it verifies.
 */

import type { LinkTool } from '../../kernel/ip-link.js';
import type { IpsetTool } from '../../kernel/ipset.js';
import type { SetFamily } from '../../kernel/ipset-entries.js';
import type { IpvsadmTool } from '../../kernel/ipvsadm.js';
import type { KernelVirtualServer } from '../../kernel/ipvsadm-output.js';
import { type IPFamily, parseIP } from '../../model/ip.js';
import { IPSET_DEFINITIONS, ipsetName } from './ipsets.js';
import { virtualServerKey } from './state.js';

export interface KernelIpset {
  name: string;
  type: string;
  family: SetFamily | null;
  /** canonical entries */
  entries: Set<string>;
  /** create options as read (`maxelem`, `range`, ...); absent when written by Switchboard */
  options?: Readonly<Record<string, string>>;
}

export interface KernelIpvsState {
  family: IPFamily;
  /** this family's address virtual servers, by virtualServerKey */
  virtualServers: Map<string, KernelVirtualServer>;
  /** the family's sets Switchboard owns (kube-proxy's names and its swap sets) that exist, by name */
  ipsets: Map<string, KernelIpset>;
  /** this family's addresses on kube-ipvs0; null when the link does not exist */
  boundAddresses: Set<string> | null;
}

/** `SB-SWAP-4-3`: the temporary set a large change of the 4th IPv4 set is built in. */
export function swapSetName(family: IPFamily, index: number): string {
  return `SB-SWAP-${family === 'IPv4' ? 4 : 6}-${index}`;
}

export function isSwapSetName(name: string, family?: IPFamily): boolean {
  const m = /^SB-SWAP-([46])-\d{1,2}$/.exec(name);
  return m !== null && (family === undefined || m[1] === (family === 'IPv4' ? '4' : '6'));
}

const OWNED_SET_NAMES: Readonly<Record<IPFamily, ReadonlySet<string>>> = {
  IPv4: new Set(IPSET_DEFINITIONS.map((d) => ipsetName(d.id, 'IPv4'))),
  IPv6: new Set(IPSET_DEFINITIONS.map((d) => ipsetName(d.id, 'IPv6'))),
};

/**
 * Whether a set name is one Switchboard owns (kube-proxy's or a swap set): of `family`, or
 * of either family when none is given.
 */
export function isOwnedSetName(name: string, family?: IPFamily): boolean {
  if (isSwapSetName(name, family)) return true;
  if (family !== undefined) return OWNED_SET_NAMES[family].has(name);
  return OWNED_SET_NAMES.IPv4.has(name) || OWNED_SET_NAMES.IPv6.has(name);
}

export function addressFamily(address: string): IPFamily | null {
  return parseIP(address)?.family ?? null;
}

export interface IpvsTools {
  ipvsadm: IpvsadmTool;
  ipset: IpsetTool;
  link: LinkTool;
}

/**
 * Reads the kernel state of one family: `ipvsadm -Sn` (filtered to the family), `ipset
 * list -n` then `ipset save NAME` for each existing set of the family that Switchboard owns
 * (other agents' sets, however large, and the other family's, which its own applier reads,
 * are not read), and the family's addresses on kube-ipvs0.
 */
export async function readKernelState(
  tools: IpvsTools,
  family: IPFamily,
  link: string,
): Promise<KernelIpvsState> {
  const table = await tools.ipvsadm.readTable();
  const virtualServers = new Map<string, KernelVirtualServer>();
  for (const vs of table.virtualServers) {
    if (addressFamily(vs.address) === family) virtualServers.set(virtualServerKey(vs), vs);
  }
  const ipsets = new Map<string, KernelIpset>();
  for (const name of await tools.ipset.listNames()) {
    if (!isOwnedSetName(name, family)) continue;
    const saved = await tools.ipset.save(name);
    if (saved) {
      const { type, family: setFamily, entries, options } = saved;
      ipsets.set(name, { name, type, family: setFamily, entries: new Set(entries), options });
    }
  }
  const addresses = await tools.link.addresses(link, family);
  return { family, virtualServers, ipsets, boundAddresses: addresses === null ? null : new Set(addresses) };
}
