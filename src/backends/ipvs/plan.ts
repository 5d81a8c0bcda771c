/**
 * The IPVS applier's planner (pure): desired IpvsState + what is known of the kernel →
 * the smallest batches that make the kernel match, and the state they leave behind.
 *
 * - **ipvsadm** (one `ipvsadm -R`): `-A` missing virtual servers; `-E` those whose
 *   scheduler, persistence or flags differ (or that carry settings Switchboard never
 *   writes); `-a` missing real servers, `-e` real servers whose weight or forwarding
 *   differ; real servers that left: UDP and SCTP `-d` at once, TCP `-e ... -w 0` and handed
 *   to graceful termination (left alone while they drain); `-D` every virtual server of
 *   the family that is not desired, unless its address is inside excludeCIDRs. Each line is
 *   valid against the state read (`-e`, never `-a`, for a real server that exists), so the
 *   kernel has no reason to refuse one. Never `-C`.
 * - **ipset** (one `ipset restore -exist`): leftover swap sets destroyed, missing sets
 *   created and filled, then each set's adds and deletes. A large change to an existing set
 *   (see SWAP_*) is built in a temporary set, swapped in and the temporary destroyed, so a
 *   set that serves traffic never passes through a half-updated state. Never `flush`.
 * - **addresses** (one `ip -batch -`): bind missing addresses to kube-ipvs0, unbind the
 *   family's addresses no longer wanted; the link itself is created first when missing.
 * The iptables helper chains are not planned here: they are rewritten whole by one
 * `iptables-restore --noflush`, as kube-proxy does.
 */

import { addressCommand, KUBE_IPVS0 } from '../../kernel/ip-link.js';
import { canonicalEntry, IpsetEntryError } from '../../kernel/ipset-entries.js';
import type { KernelRealServer, KernelVirtualServer } from '../../kernel/ipvsadm-output.js';
import { cidrContains, type IPFamily, type ParsedCIDR, parseIP } from '../../model/ip.js';
import { ipsetCreateLine } from './format.js';
import { IPSET_DEFINITIONS, ipsetCreateOptions, ipsetName } from './ipsets.js';
import {
  deleteRealServerLine,
  deleteVirtualServerLine,
  realServerLine,
  virtualServerLine,
} from './ipvsadm-text.js';
import { isSwapSetName, type KernelIpset, type KernelIpvsState, swapSetName } from './kernel-state.js';
import {
  compareRealServers,
  IPVS_SCHEDULERS,
  type IpsetState,
  type IpvsState,
  type RealServer,
  realServerKey,
  type SchedulerFlag,
  type VirtualServer,
  virtualServerKey,
} from './state.js';

/**
 * A change to one set goes through a temporary set and `ipset swap` when it touches at
 * least SWAP_MIN_CHANGES entries and at least 1/SWAP_MAX_COST of the set's new size. The
 * swap rewrites the whole set (cost: its size) instead of the changes only, so it is used
 * when that costs at most SWAP_MAX_COST times the incremental way: then atomicity is cheap.
 * Small changes (endpoint churn) stay incremental: a handful of entries, each intermediate
 * state a valid mix of old and new. The floor keeps small sets incremental too.
 */
export const SWAP_MIN_CHANGES = 256;
export const SWAP_MAX_COST = 4;

/** kube-proxy's persistence timeouts are at most a day; ipvsadm accepts up to 31 days. */
const MAX_PERSISTENCE_SECONDS = 86400 * 31;

export class DesiredStateError extends Error {
  override readonly name = 'DesiredStateError';
}

export class KernelConflictError extends Error {
  override readonly name = 'KernelConflictError';
}

/** `TCP 10.96.0.10:80/10.244.1.5:8080`: a real server of a virtual server, as graceful termination keys it. */
export function drainKey(
  vs: Pick<VirtualServer, 'protocol' | 'address' | 'port'>,
  rs: Pick<RealServer, 'address' | 'port'>,
): string {
  return `${virtualServerKey(vs)}/${realServerKey(rs)}`;
}

export interface Drain {
  key: string;
  vs: Pick<VirtualServer, 'protocol' | 'address' | 'port'>;
  rs: Pick<RealServer, 'address' | 'port'>;
}

export interface PlanInput {
  desired: IpvsState;
  actual: KernelIpvsState;
  /** ipvs.excludeCIDRs, parsed (both families may be given) */
  excludeCIDRs: readonly ParsedCIDR[];
  /** TCP real servers graceful termination is draining (drainKey) */
  draining: ReadonlySet<string>;
  /** kube-ipvs0 */
  link?: string;
  /** kept by the caller across plans: makes unchanged services free (see PlanMemo) */
  memo?: PlanMemo;
}

export interface IpvsPlan {
  /** `ipvsadm -R` lines */
  ipvsadm: string[];
  /** `ipset restore -exist` lines */
  ipset: string[];
  /** create kube-ipvs0 before binding */
  createLink: boolean;
  /** `ip -batch -` lines */
  addresses: string[];
  /** the touched virtual servers as they must be afterwards (null: deleted), by key */
  virtualServers: Map<string, KernelVirtualServer | null>;
  /** the touched sets as they must be afterwards (null: destroyed), by name */
  ipsets: Map<string, KernelIpset | null>;
  /** sets created or swapped in: their type and family are read back */
  rebuiltSets: string[];
  /** the family's addresses on kube-ipvs0 afterwards */
  boundAddresses: Set<string>;
  /** TCP real servers this plan sets to weight 0: graceful termination takes them */
  drainsStarted: Drain[];
  /** drains that end without a delete: the real server is wanted again, or its virtual server goes */
  drainsEnded: string[];
  /** virtual servers left alone because their address is in excludeCIDRs */
  excluded: string[];
}

function sameFlags(a: readonly SchedulerFlag[], b: readonly SchedulerFlag[]): boolean {
  if (a.length !== b.length) return false;
  const sortedB = [...b].sort();
  return [...a].sort().every((f, i) => f === sortedB[i]);
}

function serviceDiffers(want: VirtualServer, have: KernelVirtualServer): boolean {
  return (
    want.scheduler !== have.scheduler ||
    want.persistenceSeconds !== have.persistenceSeconds ||
    !sameFlags(want.flags, have.flags) ||
    have.extras.length > 0
  );
}

function serverDiffers(want: RealServer, have: KernelRealServer): boolean {
  return want.weight !== have.weight || want.forwarding !== have.forwarding || have.extras.length > 0;
}

function asKernel(rs: RealServer): KernelRealServer {
  return { address: rs.address, port: rs.port, weight: rs.weight, forwarding: rs.forwarding, extras: [] };
}

function excludedBy(address: string, cidrs: readonly ParsedCIDR[]): boolean {
  const ip = parseIP(address);
  return ip !== null && cidrs.some((c) => cidrContains(c, ip));
}

// ---------------------------------------------------------------------------------------------
// Validation of the desired state: every value that reaches a tool's input is checked here.

/** Canonical dotted-quad IPv4 (no leading zeros): checked without parsing, the common case. */
const CANONICAL_IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function checkAddress(what: () => string, address: string, family: IPFamily): void {
  if (family === 'IPv4' && CANONICAL_IPV4.test(address)) return;
  const ip = parseIP(address);
  if (!ip || ip.text !== address) {
    throw new DesiredStateError(`${what()}: ${JSON.stringify(address)} is not a canonical IP`);
  }
  if (ip.family !== family) throw new DesiredStateError(`${what()}: ${address} is not an ${family} address`);
}

function checkPort(what: () => string, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new DesiredStateError(`${what()}: port ${port} is not in 1-65535`);
  }
}

/**
 * What a backend remembers between plans, so a sync costs what changed rather than the
 * table's size. The renderer hands out the same objects for unchanged services (the
 * snapshot builder keeps their identity); anything new is checked and compared in full.
 * A set's entries and the bound addresses are new arrays on every render, whatever
 * changed: when one holds the same strings as last time it takes last time's identity
 * (a compare of strings, not a parse of 10,000 addresses), so the memo still hits.
 */
export interface PlanMemo {
  /** desired virtual servers already checked, with their key */
  validated: WeakMap<VirtualServer, string>;
  /** a desired set's entries array → its canonical entries */
  canonicalEntries: WeakMap<readonly string[], Set<string>>;
  /** a desired virtual server → the known kernel object it matches (the same object: nothing to compare) */
  matched: WeakMap<VirtualServer, KernelVirtualServer>;
  /** a desired set's canonical entries → the known kernel set they match */
  matchedSets: WeakMap<Set<string>, KernelIpset>;
  /** the desired kube-ipvs0 addresses → the known bound addresses they match */
  matchedAddresses: WeakMap<readonly string[], Set<string>>;
  /** per set name, the entries array of the last plan (see sameStrings) */
  lastEntries: Map<string, readonly string[]>;
  /** the bound addresses of the last plan, checked */
  lastBound: readonly string[] | null;
}

export function newPlanMemo(): PlanMemo {
  return {
    validated: new WeakMap(),
    canonicalEntries: new WeakMap(),
    matched: new WeakMap(),
    matchedSets: new WeakMap(),
    matchedAddresses: new WeakMap(),
    lastEntries: new Map(),
    lastBound: null,
  };
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `list`, or the array seen last time when it holds the same strings (so identity-keyed memos hit). */
function sameAsLast(list: readonly string[], last: readonly string[] | null | undefined): readonly string[] {
  return last !== undefined && last !== null && last !== list && sameStrings(last, list) ? last : list;
}

function validateVirtualServer(vs: VirtualServer, key: string, family: IPFamily): void {
  const what = () => `virtual server ${key}`;
  if (!['TCP', 'UDP', 'SCTP'].includes(vs.protocol))
    throw new DesiredStateError(`${what()}: protocol ${vs.protocol}`);
  checkAddress(what, vs.address, family);
  checkPort(what, vs.port);
  if (!(IPVS_SCHEDULERS as readonly string[]).includes(vs.scheduler)) {
    throw new DesiredStateError(
      `${what()}: scheduler ${JSON.stringify(vs.scheduler)} is not one of ${IPVS_SCHEDULERS.join(', ')}`,
    );
  }
  if (
    !Number.isInteger(vs.persistenceSeconds) ||
    vs.persistenceSeconds < 0 ||
    vs.persistenceSeconds > MAX_PERSISTENCE_SECONDS
  ) {
    throw new DesiredStateError(`${what()}: persistence ${vs.persistenceSeconds} s is out of range`);
  }
  for (const flag of vs.flags) {
    if (!flag.startsWith(`${vs.scheduler}-`)) {
      throw new DesiredStateError(`${what()}: flag ${flag} needs scheduler ${flag.split('-')[0]}`);
    }
  }
  const servers = new Set<string>();
  for (const rs of vs.realServers) {
    const rsKey = realServerKey(rs);
    const rsWhat = () => `${what()}, real server ${rsKey}`;
    checkAddress(rsWhat, rs.address, family);
    checkPort(rsWhat, rs.port);
    if (servers.has(rsKey)) throw new DesiredStateError(`${rsWhat()}: listed twice`);
    servers.add(rsKey);
    if (!Number.isInteger(rs.weight) || rs.weight < 0 || rs.weight > 65535) {
      throw new DesiredStateError(`${rsWhat()}: weight ${rs.weight} is not in 0-65535`);
    }
    if (!['masq', 'gate', 'ipip'].includes(rs.forwarding)) {
      throw new DesiredStateError(`${rsWhat()}: forwarding ${rs.forwarding}`);
    }
  }
}

/**
 * Checks the desired state and returns each desired set's entries in canonical form.
 * Throws DesiredStateError naming the object and field.
 */
export function validateDesired(
  desired: IpvsState,
  family: IPFamily,
  memo: PlanMemo = newPlanMemo(),
): Validated {
  if (desired.family !== family) {
    throw new DesiredStateError(`desired state is ${desired.family}, the applier ${family}`);
  }
  const keys: string[] = [];
  const seen = new Set<string>();
  for (const vs of desired.virtualServers) {
    let key = memo.validated.get(vs);
    if (key === undefined) {
      key = virtualServerKey(vs);
      validateVirtualServer(vs, key, family);
      memo.validated.set(vs, key);
    }
    if (seen.has(key)) throw new DesiredStateError(`virtual server ${key}: listed twice`);
    seen.add(key);
    keys.push(key);
  }
  const sets = new Map<string, Set<string>>();
  const definitions = new Map(IPSET_DEFINITIONS.map((d) => [ipsetName(d.id, family), d]));
  for (const set of desired.ipsets) {
    const what = `ipset ${set.name}`;
    const def = definitions.get(set.name);
    if (!def) throw new DesiredStateError(`${what}: not one of kube-proxy's ${family} sets`);
    if (set.type !== def.type)
      throw new DesiredStateError(`${what}: type ${set.type}, kube-proxy's is ${def.type}`);
    const wantFamily = def.type === 'bitmap:port' ? null : family === 'IPv4' ? 'inet' : 'inet6';
    if (set.family !== wantFamily) {
      throw new DesiredStateError(`${what}: family ${set.family}, expected ${wantFamily}`);
    }
    if (sets.has(set.name)) throw new DesiredStateError(`${what}: listed twice`);
    const list = sameAsLast(set.entries, memo.lastEntries.get(set.name));
    memo.lastEntries.set(set.name, list);
    let entries = memo.canonicalEntries.get(list);
    if (!entries) {
      entries = new Set<string>();
      for (const entry of set.entries) {
        try {
          entries.add(canonicalEntry({ type: set.type, family: set.family }, entry));
        } catch (e) {
          if (e instanceof IpsetEntryError) {
            throw new DesiredStateError(`${what}: entry ${JSON.stringify(entry)}: ${e.message}`);
          }
          throw e;
        }
      }
      memo.canonicalEntries.set(list, entries);
    }
    sets.set(set.name, entries);
  }
  const bound = sameAsLast(desired.boundAddresses, memo.lastBound);
  if (bound !== memo.lastBound) {
    for (const address of bound) checkAddress(() => 'kube-ipvs0 address', address, family);
    memo.lastBound = bound;
  }
  return { sets, keys, wanted: seen };
}

/** What validateDesired returns: the canonical set entries, and each virtual server's key (in order). */
export interface Validated {
  sets: Map<string, Set<string>>;
  /** virtualServerKey of each desired virtual server, in the desired order */
  keys: string[];
  wanted: Set<string>;
}

// ---------------------------------------------------------------------------------------------

function planVirtualServers(input: PlanInput, validated: Validated, memo: PlanMemo, plan: IpvsPlan): void {
  const { desired, actual } = input;
  const { wanted, keys } = validated;
  const list = desired.virtualServers;
  for (let i = 0; i < list.length; i++) {
    const vs = list[i]!;
    const key = keys[i]!;
    const have = actual.virtualServers.get(key);
    if (have !== undefined && memo.matched.get(vs) === have) continue;
    const lines: string[] = [];
    if (!have) {
      lines.push(virtualServerLine(vs));
      for (const rs of vs.realServers) lines.push(realServerLine(vs, rs));
      const created: KernelVirtualServer = { ...vs, realServers: vs.realServers.map(asKernel), extras: [] };
      plan.virtualServers.set(key, created);
      memo.matched.set(vs, created);
      plan.ipvsadm.push(...lines);
      continue;
    }
    if (serviceDiffers(vs, have)) lines.push(virtualServerLine(vs, '-E'));
    const after = new Map<string, KernelRealServer>(have.realServers.map((r) => [realServerKey(r), r]));
    const desiredKeys = new Set<string>();
    for (const rs of vs.realServers) {
      const rsKey = realServerKey(rs);
      desiredKeys.add(rsKey);
      const current = after.get(rsKey);
      // Wanted again while draining: its weight comes back with `-e` (kube-proxy deletes and
      // re-adds it; an edit keeps the connections it still carries and is one line, not two).
      if (input.draining.has(drainKey(vs, rs))) plan.drainsEnded.push(drainKey(vs, rs));
      if (!current) {
        lines.push(realServerLine(vs, rs));
      } else if (serverDiffers(rs, current)) {
        lines.push(realServerLine(vs, rs, '-e'));
      } else {
        continue;
      }
      after.set(rsKey, asKernel(rs));
    }
    for (const [rsKey, current] of after) {
      if (desiredKeys.has(rsKey)) continue;
      const dk = drainKey(vs, current);
      if (vs.protocol !== 'TCP') {
        // kube-proxy deletes UDP and SCTP real servers at once: nothing to drain.
        lines.push(deleteRealServerLine(vs, current));
        after.delete(rsKey);
        if (input.draining.has(dk)) plan.drainsEnded.push(dk);
      } else if (input.draining.has(dk)) {
        // draining: graceful termination deletes it when its connections are gone
      } else {
        if (current.weight !== 0) {
          const quiesced = { ...current, weight: 0 };
          lines.push(realServerLine(vs, quiesced, '-e'));
          after.set(rsKey, { ...quiesced, extras: [] });
        }
        // weight 0 already (a drain from before a restart, or set by hand): drain it from here
        plan.drainsStarted.push({
          key: dk,
          vs: { protocol: vs.protocol, address: vs.address, port: vs.port },
          rs: { address: current.address, port: current.port },
        });
      }
    }
    if (lines.length === 0) {
      memo.matched.set(vs, have);
      continue;
    }
    plan.ipvsadm.push(...lines);
    const updated: KernelVirtualServer = {
      ...vs,
      realServers: [...after.values()].sort(compareRealServers),
      extras: [],
    };
    plan.virtualServers.set(key, updated);
    memo.matched.set(vs, updated);
  }
  for (const [key, have] of actual.virtualServers) {
    if (wanted.has(key)) continue;
    if (excludedBy(have.address, input.excludeCIDRs)) {
      plan.excluded.push(key);
      continue;
    }
    plan.ipvsadm.push(deleteVirtualServerLine(have));
    plan.virtualServers.set(key, null);
    // Deleting a virtual server removes its real servers at once, drains included (as kube-proxy).
    for (const rs of have.realServers) {
      const dk = drainKey(have, rs);
      if (input.draining.has(dk)) plan.drainsEnded.push(dk);
    }
  }
}

/**
 * Whether a set's limits differ from kube-proxy's: maxelem (hash types) or range
 * (bitmap:port). hashsize is not compared: the kernel grows it as the set fills, and
 * `ipset save` prints the current one.
 */
function optionsDiffer(want: IpsetState, have: KernelIpset): boolean {
  if (!have.options) return false;
  const ours = Object.fromEntries(
    ipsetCreateOptions(want)
      .split(' ')
      .flatMap((w, i, all) => (i % 2 === 0 ? [[w, all[i + 1] ?? '']] : [])),
  ) as Record<string, string>;
  const key = want.type === 'bitmap:port' ? 'range' : 'maxelem';
  return have.options[key] !== undefined && have.options[key] !== ours[key];
}

function planIpsets(
  input: PlanInput,
  canonical: Map<string, Set<string>>,
  memo: PlanMemo,
  plan: IpvsPlan,
): void {
  const { desired, actual } = input;
  const family = desired.family;
  for (const name of actual.ipsets.keys()) {
    if (isSwapSetName(name, family)) {
      plan.ipset.push(`destroy ${name}`);
      plan.ipsets.set(name, null);
    }
  }
  const fills: string[] = [];
  const changes: string[] = [];
  for (const set of desired.ipsets) {
    const want = canonical.get(set.name)!;
    const have = actual.ipsets.get(set.name);
    if (have !== undefined && memo.matchedSets.get(want) === have) continue;
    const create = (name: string) => ipsetCreateLine({ name, type: set.type, family: set.family });
    const planned: KernelIpset = { name: set.name, type: set.type, family: set.family, entries: want };
    if (!have) {
      fills.push(create(set.name), ...[...want].sort().map((e) => `add ${set.name} ${e}`));
      plan.ipsets.set(set.name, planned);
      memo.matchedSets.set(want, planned);
      plan.rebuiltSets.push(set.name);
      continue;
    }
    if (have.type !== set.type || have.family !== set.family) {
      throw new KernelConflictError(
        `ipset ${set.name} exists as ${have.type}${have.family ? ` family ${have.family}` : ''}; kube-proxy's is ${set.type}${
          set.family ? ` family ${set.family}` : ''
        }. Another agent made it: remove it (with the rules that use it) so Switchboard can create its own`,
      );
    }
    const adds: string[] = [];
    for (const e of want) if (!have.entries.has(e)) adds.push(e);
    const dels: string[] = [];
    for (const e of have.entries) if (!want.has(e)) dels.push(e);
    // Made with other limits (by another agent, or an older kube-proxy): `create -exist` keeps
    // those, so the set is rebuilt with kube-proxy's and swapped in (same type and family).
    const misshapen = optionsDiffer(set, have);
    if (adds.length + dels.length === 0 && !misshapen) {
      memo.matchedSets.set(want, have);
      continue;
    }
    plan.ipsets.set(set.name, planned);
    memo.matchedSets.set(want, planned);
    const count = adds.length + dels.length;
    if (misshapen || (count >= SWAP_MIN_CHANGES && count * SWAP_MAX_COST >= want.size)) {
      const index = IPSET_DEFINITIONS.findIndex((d) => ipsetName(d.id, family) === set.name);
      const temp = swapSetName(family, index);
      changes.push(
        create(temp),
        ...[...want].sort().map((e) => `add ${temp} ${e}`),
        `swap ${temp} ${set.name}`,
        `destroy ${temp}`,
      );
      plan.rebuiltSets.push(set.name);
      continue;
    }
    // deletes first: a set at maxelem takes its adds
    changes.push(
      ...dels.sort().map((e) => `del ${set.name} ${e}`),
      ...adds.sort().map((e) => `add ${set.name} ${e}`),
    );
  }
  plan.ipset.push(...fills, ...changes);
}

function planAddresses(input: PlanInput, memo: PlanMemo, plan: IpvsPlan): void {
  const link = input.link ?? KUBE_IPVS0;
  const have = input.actual.boundAddresses;
  // validateDesired left the identity of these same addresses there
  const list = sameAsLast(input.desired.boundAddresses, memo.lastBound);
  plan.createLink = have === null;
  if (have !== null && memo.matchedAddresses.get(list) === have) {
    plan.boundAddresses = have;
    return;
  }
  const want = new Set(list);
  for (const address of list) {
    if (!have?.has(address)) plan.addresses.push(addressCommand('add', address, link));
  }
  for (const address of [...(have ?? [])].sort()) {
    if (!want.has(address)) plan.addresses.push(addressCommand('del', address, link));
  }
  plan.boundAddresses = have !== null && plan.addresses.length === 0 ? have : want;
  memo.matchedAddresses.set(list, plan.boundAddresses);
}

/** Plans one sync. Throws DesiredStateError (bad desired state) or KernelConflictError. */
export function planSync(input: PlanInput): IpvsPlan {
  const memo = input.memo ?? newPlanMemo();
  const validated = validateDesired(input.desired, input.actual.family, memo);
  const plan: IpvsPlan = {
    ipvsadm: [],
    ipset: [],
    createLink: false,
    addresses: [],
    virtualServers: new Map(),
    ipsets: new Map(),
    rebuiltSets: [],
    boundAddresses: new Set(),
    drainsStarted: [],
    drainsEnded: [],
    excluded: [],
  };
  planIpsets(input, validated.sets, memo, plan);
  planVirtualServers(input, validated, memo, plan);
  planAddresses(input, memo, plan);
  return plan;
}

/** Brings the known state to what it is after `plan` applied (mutates `state`). */
export function applyPlan(state: KernelIpvsState, plan: IpvsPlan): void {
  for (const [key, vs] of plan.virtualServers) {
    if (vs === null) state.virtualServers.delete(key);
    else state.virtualServers.set(key, vs);
  }
  for (const [name, set] of plan.ipsets) {
    if (set === null) state.ipsets.delete(name);
    else state.ipsets.set(name, set);
  }
  state.boundAddresses = plan.boundAddresses;
}

/** Whether a plan changes nothing in IPVS, the sets or the addresses. */
export function isEmptyPlan(plan: IpvsPlan): boolean {
  return (
    plan.ipvsadm.length === 0 && plan.ipset.length === 0 && plan.addresses.length === 0 && !plan.createLink
  );
}
