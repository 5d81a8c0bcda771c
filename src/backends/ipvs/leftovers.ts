/**
 * Removing IPVS mode's state: on `switchboard cleanup` (both families), and when
 * Switchboard starts in iptables mode on a node that ran IPVS mode (one family, once its
 * iptables rules are in place). Current kube-proxy cleans nothing on a mode switch and its
 * `--cleanup` flushes the whole IPVS table and forgets the IPv6 sets; this does neither.
 *
 * What goes, in an order that works: iptables first (IPVS mode's own chains and its jumps
 * into the shared KUBE-PROXY-FIREWALL, so no rule references a set any more), then the
 * family's sets (kube-proxy's 17 names and Switchboard's swap sets: a set still used by
 * another agent's rule cannot be destroyed and is reported), then every virtual server of
 * the family whose address is outside excludeCIDRs, then the family's addresses on
 * kube-ipvs0, and the link itself once no family has an address on it. Nothing foreign is
 * touched: other sets, firewall-mark services, the other family, excluded virtual servers.
 *
 * The IPVS table is read only if ip_vs is loaded (`/proc/net/ip_vs` exists): running
 * ipvsadm would load the module on a node that never used it.
 *
 * On the switch to iptables mode, a virtual server that still carries connections is not
 * deleted at once (`keepBusy`): deleting it, or its address on kube-ipvs0, breaks them
 * (measured: the next packet of a connection made through IPVS gets a reset). iptables
 * mode's DNAT rules catch every new connection before IPVS sees it, so such a virtual
 * server only serves the connections it has: its real servers go to weight 0 and it stays,
 * with its kube-ipvs0 address, until IPVS counts no connection to it, re-checked every
 * period (removeIpvsLeftovers' `drain`) as graceful termination does. `switchboard cleanup`
 * removes everything at once, as kube-proxy's does.
 */
import type { CommandRunner } from '../../kernel/exec.js';
import { CommandError } from '../../kernel/exec.js';
import { addressCommand, IpLink, KUBE_IPVS0 } from '../../kernel/ip-link.js';
import { Ipset, IpsetError, ipsetMissing } from '../../kernel/ipset.js';
import type { Iptables } from '../../kernel/iptables.js';
import { Ipvsadm, IpvsadmRestoreError } from '../../kernel/ipvsadm.js';
import type { KernelVirtualServer } from '../../kernel/ipvsadm-output.js';
import type { Logger } from '../../log.js';
import { cidrContains, type IPFamily, parseIP } from '../../model/ip.js';
import { type Clock, systemClock, type TimerHandle } from '../../sync/clock.js';
import { familyCIDRs } from '../common/local-traffic.js';
import {
  type CleanupPlan,
  IPVS_MODE_LEFTOVERS,
  planCleanup,
  planCleanupOf,
  readForCleanup,
} from '../iptables/cleanup.js';
import { isTextChain, type SavedTables } from '../iptables/kernel-diff.js';
import { IPSET_DEFINITIONS, ipsetName } from './ipsets.js';
import { deleteVirtualServerLine, realServerLine } from './ipvsadm-text.js';
import { isSwapSetName } from './kernel-state.js';
import { virtualServerKey } from './state.js';

export interface IpvsStateRemoval {
  chains: number;
  rules: number;
  sets: number;
  virtualServers: number;
  addresses: number;
  linkRemoved: boolean;
  /** virtual servers kept because they still carry connections (`keepBusy`), by key */
  busy: string[];
  /** what could not be removed, with why */
  problems: string[];
}

export interface RemoveIpvsStateInput {
  runner: CommandRunner;
  families: readonly IPFamily[];
  /** ipvs.excludeCIDRs: virtual servers inside are kept */
  excludeCIDRs: readonly string[];
  log: Logger;
  link?: string;
  /** keep virtual servers that still carry connections, at weight 0, with their kube-ipvs0 address */
  keepBusy?: boolean;
}

/** Whether ip_vs is loaded, without loading it (`test -e /proc/net/ip_vs`). */
export async function ipvsLoaded(runner: CommandRunner): Promise<boolean> {
  try {
    const r = await runner.run('test', ['-e', '/proc/net/ip_vs'], { reject: false, timeoutMs: 10_000 });
    return r.exitCode === 0;
  } catch {
    return false;
  }
}

/** kube-proxy's (or our) IPVS mode ran here for `family`: one of its sets, or kube-ipvs0, exists. */
async function ipvsModeRan(runner: CommandRunner, family: IPFamily): Promise<boolean> {
  try {
    const names = new Set(await new Ipset(runner).listNames());
    if (IPSET_DEFINITIONS.some((d) => names.has(ipsetName(d.id, family)))) return true;
  } catch (e) {
    if (!ipsetMissing(e)) throw e;
  }
  try {
    return await new IpLink(runner).exists(KUBE_IPVS0);
  } catch (e) {
    if (e instanceof CommandError && e.reason === 'spawn') return false;
    throw e;
  }
}

function empty(): IpvsStateRemoval {
  return {
    chains: 0,
    rules: 0,
    sets: 0,
    virtualServers: 0,
    addresses: 0,
    linkRemoved: false,
    busy: [],
    problems: [],
  };
}

/**
 * Removes the sets, virtual servers and kube-ipvs0 addresses of `families` (not the
 * iptables rules: see removeIpvsLeftovers and cleanupIptables). Never throws for a
 * missing tool or module; everything it could not do is in `problems`.
 */
export async function removeIpvsState(input: RemoveIpvsStateInput): Promise<IpvsStateRemoval> {
  const { runner, families, log } = input;
  const link = input.link ?? KUBE_IPVS0;
  const out = empty();
  const excluded = families.flatMap((f) => familyCIDRs(input.excludeCIDRs, f, 'ipvs.excludeCIDRs'));

  // 1. sets (after the iptables rules that used them)
  const ipset = new Ipset(runner);
  try {
    const names = new Set(await ipset.listNames());
    const ours = families.flatMap((f) => [
      ...IPSET_DEFINITIONS.map((d) => ipsetName(d.id, f)),
      ...[...names].filter((n) => isSwapSetName(n, f)),
    ]);
    for (const name of ours) {
      if (!names.has(name)) continue;
      try {
        await ipset.destroy(name);
        out.sets++;
      } catch (e) {
        if (!(e instanceof IpsetError)) throw e;
        out.problems.push(e.inUse ? `ipset ${name} is still used by an iptables rule: kept` : e.message);
      }
    }
  } catch (e) {
    if (ipsetMissing(e)) log.debug('ipset is not installed: no sets to remove');
    else out.problems.push(`ipset: ${(e as Error).message}`);
  }

  // 2. virtual servers
  const keptAddresses = new Set<string>();
  if (await ipvsLoaded(runner)) {
    const ipvsadm = new Ipvsadm(runner);
    try {
      const table = input.keepBusy ? await ipvsadm.readTableWithCounts() : await ipvsadm.readTable();
      const ours = table.virtualServers.filter((vs) => {
        const ip = parseIP(vs.address);
        if (!ip || !families.includes(ip.family)) return false;
        if (excluded.some((c) => cidrContains(c, ip))) {
          log.info({ virtualServer: virtualServerKey(vs) }, 'kept a virtual server inside ipvs.excludeCIDRs');
          return false;
        }
        return true;
      });
      const busy = input.keepBusy ? ours.filter(carriesConnections) : [];
      const stale = ours.filter((vs) => !busy.includes(vs));
      const lines = [
        ...stale.map((vs) => deleteVirtualServerLine(vs)),
        ...busy.flatMap((vs) =>
          vs.realServers
            .filter((r) => r.weight !== 0)
            .map((r) => realServerLine(vs, { ...r, weight: 0 }, '-e')),
        ),
      ];
      for (const vs of busy) {
        out.busy.push(virtualServerKey(vs));
        keptAddresses.add(vs.address);
      }
      if (lines.length > 0) {
        try {
          await ipvsadm.restore(`${lines.join('\n')}\n`);
        } catch (e) {
          // read back below: what did not take effect is reported there
          if (!(e instanceof IpvsadmRestoreError)) throw e;
        }
        const after = new Set((await ipvsadm.readTable()).virtualServers.map(virtualServerKey));
        const left = stale.filter((vs) => after.has(virtualServerKey(vs)));
        out.virtualServers = stale.length - left.length;
        if (left.length > 0)
          out.problems.push(`virtual servers still there: ${left.map(virtualServerKey).join(', ')}`);
      }
    } catch (e) {
      out.problems.push(`ipvsadm: ${(e as Error).message}`);
    }
  } else {
    log.debug('ip_vs is not loaded: no virtual servers to remove');
  }

  // 3. kube-ipvs0 (the addresses of busy virtual servers stay: their connections arrive there)
  const ip = new IpLink(runner);
  try {
    if (await ip.exists(link)) {
      for (const family of families) {
        const addresses = ((await ip.addresses(link, family)) ?? []).filter((a) => !keptAddresses.has(a));
        if (addresses.length === 0) continue;
        await ip.batch(addresses.map((a) => addressCommand('del', a, link)));
        out.addresses += addresses.length;
      }
      const rest = [
        ...((await ip.addresses(link, 'IPv4')) ?? []),
        ...((await ip.addresses(link, 'IPv6')) ?? []),
      ];
      if (rest.length === 0) {
        await ip.remove(link);
        out.linkRemoved = true;
      } else {
        log.info(
          { link, addresses: rest.length },
          "kept the link: addresses are still on it (the other family's, or those of virtual servers kept for their connections)",
        );
      }
    }
  } catch (e) {
    if (e instanceof CommandError && e.reason === 'spawn') log.debug('ip is not installed');
    else out.problems.push(`${link}: ${(e as Error).message}`);
  }
  return out;
}

/** Whether any real server of `vs` has connections (active or not: a TIME_WAIT still needs its path). */
function carriesConnections(vs: KernelVirtualServer): boolean {
  return vs.realServers.some((r) => (r.activeConnections ?? 0) + (r.inactiveConnections ?? 0) > 0);
}

export interface RemoveIpvsLeftoversInput {
  runner: CommandRunner;
  /** the iptables (backend) in use */
  iptables: Iptables;
  /**
   * The kernel as a full sync read it just before (IptablesBackend's afterFirstFullSync):
   * when it holds none of IPVS mode's iptables state, the iptables part is skipped without
   * reading every table again (an iptables-save of 10,000 services takes seconds and, held
   * whole, a hundred MiB). Absent: read and plan as always.
   */
  kernelBefore?: SavedTables;
  family: IPFamily;
  excludeCIDRs: readonly string[];
  log: Logger;
  /**
   * Keep the virtual servers that still carry connections, and remove them once their
   * connections are gone, checked every `periodMs` (the switch to iptables mode). Without
   * it, everything goes at once.
   */
  drain?: { periodMs: number; clock?: Clock };
}

/**
 * Starting in iptables mode on a node that ran IPVS mode: once iptables mode's rules are in
 * place (its sync rewrote the chains both modes use), removes IPVS mode's chains and jumps
 * from the iptables in use, then the family's sets, virtual servers and addresses.
 * Logs what it removed; returns it. Throws only when the iptables part fails (the caller
 * retries later); the rest is best effort, reported in `problems`.
 */
export async function removeIpvsLeftovers(input: RemoveIpvsLeftoversInput): Promise<IpvsStateRemoval> {
  const { iptables, family, log } = input;
  const plan =
    input.kernelBefore && !ipvsLeftoversIn(input.kernelBefore)
      ? NOTHING_TO_CLEAN
      : planCleanupOf(await readForCleanup(iptables, family, IPVS_MODE_LEFTOVERS), IPVS_MODE_LEFTOVERS);
  if (plan.input !== '') await iptables.restore(family, plan.input);
  for (const k of plan.kept)
    log.warn({ ...k }, 'flushed but kept an IPVS-mode chain that another chain still jumps to');
  // A node that never ran IPVS mode may still use IPVS (keepalived, a host load balancer):
  // its virtual servers are not ours to sweep unless kube-proxy's IPVS mode left its marks.
  if (plan.removedChains === 0 && !(await ipvsModeRan(input.runner, family))) {
    log.debug({ family }, 'no sign of IPVS mode (chains, sets, kube-ipvs0): the IPVS table is left alone');
    return { ...empty(), rules: plan.removedRules };
  }
  const state = {
    runner: input.runner,
    families: [family],
    excludeCIDRs: input.excludeCIDRs,
    log,
    keepBusy: input.drain !== undefined,
  };
  const removed = await removeIpvsState(state);
  removed.chains = plan.removedChains;
  removed.rules = plan.removedRules;
  report(removed, family, log);
  if (removed.busy.length > 0 && input.drain) drainLater(state, input.drain, log);
  return removed;
}

const NOTHING_TO_CLEAN: CleanupPlan = { input: '', removedRules: 0, removedChains: 0, kept: [] };

/**
 * Whether tables read by a full sync hold any of IPVS mode's iptables state, by the planner
 * removeIpvsLeftovers uses, over the chains kept as text: IPVS mode's chains and the built-in
 * and shared chains its jumps are in all are; service chains (kept as digests) are iptables
 * mode's and never jump into IPVS mode's chains.
 */
export function ipvsLeftoversIn(saved: SavedTables): boolean {
  const lines: string[] = [];
  for (const [table, chains] of saved) {
    lines.push(`*${table}`);
    for (const [name, chain] of chains)
      if (isTextChain(chain)) lines.push(`:${name} ${chain.builtin ? 'ACCEPT' : '-'} [0:0]`);
    for (const chain of chains.values()) if (isTextChain(chain) && chain.count > 0) lines.push(chain.rules);
    lines.push('COMMIT');
  }
  return planCleanup(`${lines.join('\n')}\n`, IPVS_MODE_LEFTOVERS).input !== '';
}

function report(removed: IpvsStateRemoval, family: IPFamily, log: Logger): void {
  const { problems, busy, ...counts } = removed;
  if (Object.values(counts).some((v) => v !== 0 && v !== false)) {
    log.info({ family, ...counts }, "removed IPVS mode's state (switch to iptables mode)");
  }
  if (busy.length > 0) {
    log.info(
      { family, virtualServers: busy },
      'kept IPVS virtual servers that still carry connections (weight 0); they go once the connections are gone',
    );
  }
  for (const p of problems) log.warn({ family }, `IPVS leftovers: ${p}`);
}

/** Re-checks the busy virtual servers every period until none is left (timers do not keep the process alive). */
function drainLater(
  state: RemoveIpvsStateInput,
  drain: { periodMs: number; clock?: Clock },
  log: Logger,
): void {
  const clock = drain.clock ?? systemClock;
  const check = async () => {
    let busy: string[] = [];
    try {
      const removed = await removeIpvsState(state);
      busy = removed.busy;
      report(removed, state.families[0]!, log);
    } catch (e) {
      log.warn({ err: e }, 'IPVS leftovers: could not check the virtual servers kept for their connections');
      busy = ['(retry)'];
    }
    if (busy.length > 0) arm();
  };
  const arm = () => {
    const timer: TimerHandle = clock.setTimeout(() => void check(), drain.periodMs);
    (timer as { unref?: () => void } | null)?.unref?.();
  };
  arm();
}
