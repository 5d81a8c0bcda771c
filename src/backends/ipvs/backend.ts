/**
 * The IPVS applier: one IP family's desired IpvsState written to the kernel as the
 * difference from what is there (spec kube-proxy-ipvs.md §2, §9), never by flushing.
 *
 * One sync, in this order (each step only when the plan has something for it):
 * 1. `ipset restore -exist`: sets first, since the helper chains match on them;
 * 2. `ipvsadm -R`: virtual and real servers, stale virtual servers last;
 * 3. `ip link add kube-ipvs0 type dummy` when missing, then one `ip -force -batch -` of
 *    address binds and unbinds;
 * 4. `iptables-restore --noflush` of the 11 helper chains.
 * A full sync (the first, after any failure, hourly, or when state was lost) first makes
 * sure of the jumps from the built-in chains and reads the kernel: `ipvsadm -Sn`, the sets
 * Switchboard owns, kube-ipvs0's addresses, and `iptables-save` (the helper chains are not
 * rewritten when they already hold the desired rules: a restart adopts a node's state
 * without writing). Between full syncs the state is tracked from each plan.
 *
 * Every batch is checked: any stderr is a failure (`ipvsadm -R` reports each refused line
 * on stderr, and its exit code is only the last line's), and what a batch changed is read
 * back: a clean ipvsadm batch is spot-checked with `ipvsadm -Ln -t ...` of one virtual
 * server it touched, one that reported anything has every touched virtual server read back
 * (one `-Sn` instead past SCOPED_READ_LIMIT); the type and size of each set created or
 * swapped in; kube-ipvs0's addresses. ipset add/del lines are not read back: ipset restore reports every refused
 * element with its line and exit code 1 (measured, see src/kernel/ipset.ts), and reading
 * back would cost an operation per set on every endpoint change. A failed or mismatching
 * batch is logged with the tool's stderr and the offending lines, the known state is
 * forgotten (the next sync is full and re-reads the kernel) and the loop's backoff applies;
 * what was serving keeps serving, since no step removes what it does not replace.
 *
 * Graceful termination runs here too (graceful.ts): its periodic check shares the sync's
 * lock, so the two never interleave.
 */
import type { Backend } from '../../kernel/backend.js';
import type { CommandRunner, RunOptions, RunResult } from '../../kernel/exec.js';
import { readInterfaceAddresses } from '../../kernel/host-probe.js';
import { IpBatchError, IpLink, KUBE_IPVS0 } from '../../kernel/ip-link.js';
import { Ipset, IpsetError } from '../../kernel/ipset.js';
import { Iptables, RestoreError } from '../../kernel/iptables.js';
import { Ipvsadm, IpvsadmRestoreError } from '../../kernel/ipvsadm.js';
import type { KernelVirtualServer } from '../../kernel/ipvsadm-output.js';
import type { Logger } from '../../log.js';
import type { IPFamily, ParsedCIDR } from '../../model/ip.js';
import type { Snapshot } from '../../model/types.js';
import type { BackendSyncResult, ProxyBackend, SyncRequest } from '../../sync/backend.js';
import { type Clock, systemClock } from '../../sync/clock.js';
import { familyCIDRs } from '../common/local-traffic.js';
import { IPTABLES_MODE_LEFTOVERS, planCleanupOf, readForCleanup } from '../iptables/cleanup.js';
import { chainExists, ensureJumpRules } from '../iptables/jump-rules.js';
import {
  chainMatches,
  isTextChain,
  parseSavedTables,
  type SavedTables,
  savedRuleLines,
} from '../iptables/kernel-diff.js';
import { readSavedTables } from '../iptables/read-saved.js';
import { formatRestore } from '../iptables/restore-text.js';
import { IPVS_JUMP_RULES } from './chains.js';
import type { InterfaceAddressMap } from './desired.js';
import { type DrainEntry, decideDrains, GracefulTermination } from './graceful.js';
import { deleteRealServerLine } from './ipvsadm-text.js';
import { type IpvsTools, type KernelIpvsState, readKernelState } from './kernel-state.js';
import { applyPlan, type IpvsPlan, isEmptyPlan, newPlanMemo, planSync } from './plan.js';
import { type IpvsState, virtualServerKey } from './state.js';
import { linesAbout, SCOPED_READ_LIMIT, virtualServerProblems } from './verify.js';

type Tool = 'ipset' | 'ipvsadm' | 'ip' | 'iptables';

/** A sync step that failed or did not take effect; the kernel keeps what it had before that step. */
export class IpvsSyncError extends Error {
  override readonly name = 'IpvsSyncError';
  constructor(
    message: string,
    readonly tool?: Tool,
    /** the tool's stderr */
    readonly stderr = '',
    /** the batch lines that failed or did not take effect */
    readonly offendingLines: readonly string[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Kernel operations (tool invocations) of one sync, per tool. */
export type OperationCounts = Record<'ipvsadm' | 'ipset' | 'ip' | 'iptables' | 'other', number>;

function zeroCounts(): OperationCounts {
  return { ipvsadm: 0, ipset: 0, ip: 0, iptables: 0, other: 0 };
}

/** Counts every command run through it, per tool. */
class CountingRunner implements CommandRunner {
  counts = zeroCounts();
  constructor(private readonly inner: CommandRunner) {}
  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    const tool =
      cmd === 'ipvsadm' || cmd === 'ipset' || cmd === 'ip'
        ? cmd
        : /^ip6?tables/.test(cmd)
          ? 'iptables'
          : 'other';
    this.counts[tool]++;
    return this.inner.run(cmd, args, options);
  }
}

export interface IpvsSyncStats {
  seq: number;
  full: boolean;
  /** lines written, per tool */
  lines: Record<Tool, number>;
  operations: OperationCounts;
  virtualServers: number;
  excluded: number;
  drainsStarted: number;
  draining: number;
  ms: number;
}

export interface IpvsBackendConfig {
  /** production: ExecaRunner; tests: the in-memory kernel (FakeNode), or inNetns(...) */
  runner: CommandRunner;
  /** the iptables backend the node uses (nft or legacy) */
  iptablesBackend: Backend;
  family: IPFamily;
  /** the renderer: the family's desired state for a snapshot (and the interfaces' addresses, when followed) */
  desired: (snapshot: Snapshot, interfaces?: InterfaceAddressMap) => IpvsState;
  /**
   * Follow the node's interface addresses (see currentInterfaces): read again on full and
   * periodic syncs, and on any sync once the last read is `maxAgeMs` old (syncPeriod).
   * Absent: they are fixed (a host facts file, tests) and `desired` gets none.
   */
  followInterfaces?: { maxAgeMs: number };
  /** ipvs.excludeCIDRs (either family; only this family's apply) */
  excludeCIDRs: readonly string[];
  log: Logger;
  clock?: Clock;
  /** lock-wait flags for iptables, from `waitFlags(version)`; default `-w 5` */
  waitFlags?: readonly string[];
  /** graceful termination's check period (default 1 minute, as kube-proxy) */
  gracefulCheckPeriodMs?: number;
  /** after the first successful full sync, remove iptables mode's chains (default true) */
  removeIptablesModeLeftovers?: boolean;
  /** the dummy link (default kube-ipvs0) */
  link?: string;
}

const DEFAULT_WAIT = ['-w', '5'] as const;
/** An IPVS-only chain whose disappearance means iptables was flushed (IPVS mode keeps no canary). */
const CANARY_LIKE_CHAIN = 'KUBE-IPVS-FILTER';

export class IpvsBackend implements ProxyBackend {
  readonly family: IPFamily;
  readonly description: string;
  private readonly runner: CountingRunner;
  private readonly tools: IpvsTools;
  private readonly iptables: Iptables;
  private readonly desired: (snapshot: Snapshot, interfaces?: InterfaceAddressMap) => IpvsState;
  private readonly followInterfaces: { maxAgeMs: number } | undefined;
  /** the interfaces' addresses as last read (undefined: not read yet, the start-up ones apply) */
  private interfaces: InterfaceAddressMap | undefined;
  private interfacesText = '';
  private interfacesReadAtMs = Number.NEGATIVE_INFINITY;
  private readonly excludeCIDRs: ParsedCIDR[];
  private readonly log: Logger;
  private readonly wait: readonly string[];
  private readonly link: string;
  private readonly removeLeftovers: boolean;
  readonly graceful: GracefulTermination;
  private readonly clock: Clock;

  /** the kernel as known after the last successful sync; null = unknown, read it */
  private state: KernelIpvsState | null = null;
  /** the helper chains' restore input as last written (or found in place); null = rewrite */
  private lastIptables: string | null = null;
  private leftoversRemoved = false;
  /** survives failures: it only says which desired objects were checked and what they matched */
  private readonly memo = newPlanMemo();
  private lock: Promise<unknown> = Promise.resolve();
  private lastStats: IpvsSyncStats | null = null;

  constructor(config: IpvsBackendConfig) {
    this.family = config.family;
    this.description = `ipvs (${config.iptablesBackend}) ${config.family}`;
    this.runner = new CountingRunner(config.runner);
    this.tools = {
      ipvsadm: new Ipvsadm(this.runner),
      ipset: new Ipset(this.runner),
      link: new IpLink(this.runner),
    };
    this.wait = config.waitFlags ?? DEFAULT_WAIT;
    this.iptables = new Iptables(this.runner, config.iptablesBackend, { waitFlags: [...this.wait] });
    this.desired = config.desired;
    this.followInterfaces = config.followInterfaces;
    this.excludeCIDRs = familyCIDRs(config.excludeCIDRs, config.family, 'ipvs.excludeCIDRs');
    this.log = config.log.child({ backend: this.description });
    this.link = config.link ?? KUBE_IPVS0;
    this.removeLeftovers = config.removeIptablesModeLeftovers ?? true;
    this.clock = config.clock ?? systemClock;
    this.graceful = new GracefulTermination({
      clock: this.clock,
      ...(config.gracefulCheckPeriodMs !== undefined ? { periodMs: config.gracefulCheckPeriodMs } : {}),
      onDue: () => {
        void this.checkDrains();
      },
    });
  }

  /** What the last successful sync did (for logs, the bench and tests). */
  get lastSync(): IpvsSyncStats | null {
    return this.lastStats;
  }

  /** Stops graceful termination's timer (the kernel state stays as it is). */
  close(): void {
    this.graceful.close();
  }

  /** Runs `fn` after everything queued before it: syncs and drain checks never interleave. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  sync(snapshot: Snapshot, request: SyncRequest): Promise<BackendSyncResult> {
    return this.exclusive(() => this.syncLocked(snapshot, request));
  }

  private async syncLocked(snapshot: Snapshot, request: SyncRequest): Promise<BackendSyncResult> {
    if (snapshot.family !== this.family)
      throw new Error(`${this.description}: got a ${snapshot.family} snapshot`);
    const started = performance.now();
    const opsBefore = { ...this.runner.counts };
    const upgrade: string[] = [];
    let full = request.full;
    try {
      if (!full && this.state === null) upgrade.push('kernel state unknown (first sync or after a failure)');
      full ||= upgrade.length > 0;
      const periodic = !full && request.changedServices.size === 0;
      const desired = this.desired(snapshot, await this.currentInterfaces(full, periodic));
      const iptablesText = formatRestore([desired.iptables.filter, desired.iptables.nat]);
      if (full) await this.readKernel(iptablesText);
      const state = this.state!;
      const plan = planSync({
        desired,
        actual: state,
        excludeCIDRs: this.excludeCIDRs,
        draining: this.graceful.keys(),
        link: this.link,
        memo: this.memo,
      });
      const lines = { ipset: 0, ipvsadm: 0, ip: 0, iptables: 0 };
      if (!isEmptyPlan(plan)) await this.execute(plan, lines);
      applyPlan(state, plan);
      for (const key of plan.drainsEnded) this.graceful.end(key);
      for (const d of plan.drainsStarted) this.graceful.add(d);
      this.pruneDrains(state);

      // kube-proxy rewrites the helper chains on every sync. A sync whose chains did not
      // change leaves them alone; the periodic sync without changes rewrites them, which
      // repairs a hand-edited chain within syncPeriod.
      if (periodic || iptablesText !== this.lastIptables) {
        await this.restoreIptables(iptablesText);
        lines.iptables = iptablesText.split('\n').length - 1;
      }
      this.lastIptables = iptablesText;
      if (full && this.removeLeftovers && !this.leftoversRemoved) await this.removeIptablesModeLeftovers();

      const operations = zeroCounts();
      for (const k of Object.keys(operations) as (keyof OperationCounts)[])
        operations[k] = this.runner.counts[k] - opsBefore[k];
      const stats: IpvsSyncStats = {
        seq: request.seq,
        full,
        lines,
        operations,
        virtualServers: desired.virtualServers.length,
        excluded: plan.excluded.length,
        drainsStarted: plan.drainsStarted.length,
        draining: this.graceful.size,
        ms: Math.round(performance.now() - started),
      };
      this.lastStats = stats;
      if (full) this.log.info({ ...stats, upgradedBecause: upgrade }, 'ipvs sync done');
      else this.log.debug(stats, 'ipvs sync done');
      return {
        full,
        restoreLines: lines.ipset + lines.ipvsadm + lines.ip + lines.iptables,
        // kube-proxy's IPVS proxier exports no kubeproxy_sync_proxy_rules_iptables_total.
        rulesPerTable: {},
        // IPVS never black-holes a Local policy: with no local endpoint it uses the others (§4).
        noLocalEndpoints: { internal: 0, external: 0 },
      };
    } catch (e) {
      this.forget();
      throw this.wrap(e, request, full);
    }
  }

  /**
   * The interfaces' addresses for this sync's render (kube-proxy's nodeIPs and
   * nodePortAddresses follow them). kube-proxy's IPVS proxier reads them on every sync, and
   * has only full syncs. Here full and periodic syncs read them, and a change-driven
   * partial sync only once the last read is syncPeriod old: a read is a process whose
   * output lists every address on kube-ipvs0 (one per service IP: 1.5 MB of JSON and about
   * 0.1 s at 10,000 services, measured), which endpoint churn should not pay for on every
   * sync, while an address change is still seen within about
   * syncPeriod, as in kube-proxy when nothing else changes. A read that fails keeps the last
   * addresses (kube-proxy would go on with none, dropping every NodePort virtual server).
   */
  private async currentInterfaces(
    full: boolean,
    periodic: boolean,
  ): Promise<InterfaceAddressMap | undefined> {
    const follow = this.followInterfaces;
    if (!follow) return undefined;
    const now = this.clock.now();
    if (!full && !periodic && now - this.interfacesReadAtMs < follow.maxAgeMs) return this.interfaces;
    this.interfacesReadAtMs = now;
    try {
      const read = await readInterfaceAddresses(this.runner);
      // The same addresses keep the same object: the renderer's context is checked only on a change.
      const text = JSON.stringify(read);
      if (text !== this.interfacesText) {
        if (this.interfaces !== undefined) this.log.debug('the interfaces or their addresses changed');
        this.interfaces = read;
        this.interfacesText = text;
      }
    } catch (e) {
      this.log.warn({ err: e }, "could not read the node's interface addresses; the last ones stay in use");
    }
    return this.interfaces;
  }

  /** A full sync's reads: jump rules made sure of, then the kernel state and the helper chains. */
  private async readKernel(iptablesText: string): Promise<void> {
    const added = await ensureJumpRules(this.iptables, this.family, IPVS_JUMP_RULES);
    if (added > 0) this.log.info({ added }, 'added missing jump rules from the built-in chains');
    this.state = await readKernelState(this.tools, this.family, this.link);
    // Read as a stream: after a switch from iptables mode the tables still hold its rules.
    const saved = await readSavedTables(this.iptables, this.family);
    this.lastIptables = helperChainsMatch(saved, iptablesText, this.family) ? iptablesText : null;
    this.log.debug(
      {
        virtualServers: this.state.virtualServers.size,
        sets: this.state.ipsets.size,
        boundAddresses: this.state.boundAddresses?.size ?? null,
        helperChainsInPlace: this.lastIptables !== null,
      },
      'read the kernel state',
    );
  }

  private async execute(plan: IpvsPlan, lines: Record<Tool, number>): Promise<void> {
    if (plan.ipset.length > 0) {
      const text = `${plan.ipset.join('\n')}\n`;
      try {
        await this.tools.ipset.restore(text);
      } catch (e) {
        if (e instanceof IpsetError) {
          throw new IpvsSyncError(
            `ipset restore failed: ${e.message}`,
            'ipset',
            e.stderr,
            e.line === undefined ? [] : [e.line],
            {
              cause: e,
            },
          );
        }
        throw e;
      }
      lines.ipset = plan.ipset.length;
      await this.verifySets(plan);
    }
    if (plan.ipvsadm.length > 0) {
      let refused: IpvsadmRestoreError | null = null;
      try {
        await this.tools.ipvsadm.restore(`${plan.ipvsadm.join('\n')}\n`);
      } catch (e) {
        if (!(e instanceof IpvsadmRestoreError)) throw e;
        refused = e;
      }
      lines.ipvsadm = plan.ipvsadm.length;
      await this.verifyVirtualServers(plan, refused);
    }
    if (plan.createLink) {
      await this.tools.link.addDummy(this.link);
      this.log.info({ link: this.link }, 'created the dummy link for service addresses');
    }
    if (plan.addresses.length > 0) {
      try {
        await this.tools.link.batch(plan.addresses);
      } catch (e) {
        if (e instanceof IpBatchError) {
          throw new IpvsSyncError(
            e.message,
            'ip',
            e.stderr,
            e.failures.flatMap((f) => (f.line === undefined ? [] : [f.line])),
            { cause: e },
          );
        }
        throw e;
      }
      lines.ip = plan.addresses.length;
      const read = await this.tools.link.addresses(this.link, this.family);
      const want = plan.boundAddresses;
      const got = new Set(read ?? []);
      const missing = [...want].filter((a) => !got.has(a));
      const extra = [...got].filter((a) => !want.has(a));
      if (missing.length + extra.length > 0) {
        throw new IpvsSyncError(
          `${this.link} addresses did not take effect: missing ${missing.join(', ') || 'none'}, still bound ${extra.join(', ') || 'none'}`,
          'ip',
          '',
          plan.addresses.filter((l) => [...missing, ...extra].some((a) => l.includes(` ${a}/`))),
        );
      }
    }
  }

  /** Created or swapped sets: their type, family and size as planned (a `create -exist` can be silently ignored). */
  private async verifySets(plan: IpvsPlan): Promise<void> {
    for (const name of plan.rebuiltSets) {
      const want = plan.ipsets.get(name)!;
      const header = await this.tools.ipset.header(name);
      const problem =
        header === null
          ? 'is missing'
          : header.type !== want.type || header.family !== want.family
            ? `is ${header.type} ${header.family ?? ''}, expected ${want.type} ${want.family ?? ''}`
            : header.entries !== want.entries.size
              ? `has ${header.entries} entries, expected ${want.entries.size}`
              : null;
      if (problem) {
        throw new IpvsSyncError(
          `ipset ${name} ${problem} after ipset restore`,
          'ipset',
          '',
          plan.ipset.filter((l) => l.split(' ')[1] === name),
        );
      }
    }
  }

  private async verifyVirtualServers(plan: IpvsPlan, refused: IpvsadmRestoreError | null): Promise<void> {
    // A clean batch is spot-checked (one virtual server, see verify.ts); one that reported
    // anything is read back whole, to name what did not take effect.
    const touched =
      refused === null ? [...plan.virtualServers.keys()].slice(0, 1) : [...plan.virtualServers.keys()];
    const read = new Map<string, KernelVirtualServer | null>();
    if (touched.length > SCOPED_READ_LIMIT) {
      const table = await this.tools.ipvsadm.readTable();
      const byKey = new Map(table.virtualServers.map((v) => [virtualServerKey(v), v]));
      for (const key of touched) read.set(key, byKey.get(key) ?? null);
    } else {
      for (const key of touched) {
        const id = plan.virtualServers.get(key) ?? this.state!.virtualServers.get(key)!;
        read.set(key, await this.tools.ipvsadm.readService(id));
      }
    }
    const problems: string[] = [];
    const offending: string[] = [];
    for (const key of touched) {
      const expected = plan.virtualServers.get(key) ?? null;
      const found = virtualServerProblems(key, expected, read.get(key) ?? null);
      if (found.length === 0) continue;
      problems.push(...found);
      offending.push(...linesAbout(plan.ipvsadm, expected ?? this.state!.virtualServers.get(key)!));
    }
    if (refused === null && problems.length === 0) return;
    const parts = [
      refused?.message,
      problems.length > 0
        ? `read back: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? ` (+${problems.length - 10} more)` : ''}`
        : undefined,
    ].filter((p) => p !== undefined);
    if (refused?.stoppedAt) offending.unshift(refused.stoppedAt.line);
    throw new IpvsSyncError(
      `ipvsadm -R did not apply: ${parts.join('; ')}`,
      'ipvsadm',
      refused?.stderr ?? '',
      [...new Set(offending)],
      {
        ...(refused ? { cause: refused } : {}),
      },
    );
  }

  private async restoreIptables(text: string): Promise<void> {
    try {
      await this.iptables.restore(this.family, text);
    } catch (e) {
      if (e instanceof RestoreError) {
        throw new IpvsSyncError(
          `helper chains: ${e.message}`,
          'iptables',
          e.stderr,
          e.line === undefined ? [] : [e.line],
          {
            cause: e,
          },
        );
      }
      throw e;
    }
  }

  /**
   * Starting in IPVS mode on a node that ran iptables mode (Switchboard's or kube-proxy's):
   * once the IPVS rules are in place, iptables mode's chains and jumps go. The chains both
   * modes use were just rewritten by this sync. Failures are logged and retried at the
   * next full sync: the leftovers no longer carry traffic.
   */
  private async removeIptablesModeLeftovers(): Promise<void> {
    try {
      const saved = await readForCleanup(this.iptables, this.family, IPTABLES_MODE_LEFTOVERS);
      const plan = planCleanupOf(saved, IPTABLES_MODE_LEFTOVERS);
      if (plan.input !== '') {
        await this.iptables.restore(this.family, plan.input);
        this.log.info(
          { chains: plan.removedChains, rules: plan.removedRules },
          "removed iptables mode's chains and jump rules (switch to IPVS mode)",
        );
      }
      for (const k of plan.kept) {
        this.log.warn({ ...k }, 'flushed but kept an iptables-mode chain that another chain still jumps to');
      }
      this.leftoversRemoved = true;
    } catch (e) {
      this.log.warn({ err: e }, "could not remove iptables mode's leftovers; retrying at the next full sync");
    }
  }

  /** Forgets drains whose real server or virtual server is gone from the known state. */
  private pruneDrains(state: KernelIpvsState): void {
    for (const d of this.graceful.entries()) {
      const vs = state.virtualServers.get(virtualServerKey(d.vs));
      const rs = vs?.realServers.find((r) => r.address === d.rs.address && r.port === d.rs.port);
      if (rs?.weight !== 0) this.graceful.end(d.key);
    }
  }

  /** Graceful termination's periodic check: deletes drained real servers whose connections are gone. */
  checkDrains(): Promise<void> {
    return this.exclusive(async () => {
      const removed: DrainEntry[] = [];
      try {
        for (const [, drains] of this.graceful.byVirtualServer()) {
          const read = await this.tools.ipvsadm.readService(drains[0]!.vs);
          const decision = decideDrains(drains, read?.realServers ?? null);
          for (const d of decision.forget) {
            this.graceful.end(d.key);
            // Someone else changed it: what we know of the kernel is wrong, so read it again.
            this.forget();
            this.log.info(
              { realServer: d.key },
              'graceful termination: real server gone or no longer at weight 0 (changed by someone else); the next sync is full',
            );
          }
          removed.push(...decision.remove);
        }
        if (removed.length > 0) {
          const lines = removed.map((d) => deleteRealServerLine(d.vs, d.rs));
          let refused: IpvsadmRestoreError | null = null;
          try {
            await this.tools.ipvsadm.restore(`${lines.join('\n')}\n`);
          } catch (e) {
            if (!(e instanceof IpvsadmRestoreError)) throw e;
            refused = e;
          }
          const stillThere: string[] = [];
          // One read per virtual server, however many of its real servers were deleted.
          const reads = new Map<string, KernelVirtualServer | null>();
          for (const d of removed) {
            const vsKey = virtualServerKey(d.vs);
            let after = reads.get(vsKey);
            if (after === undefined) {
              after = await this.tools.ipvsadm.readService(d.vs);
              reads.set(vsKey, after);
            }
            if (after?.realServers.some((r) => r.address === d.rs.address && r.port === d.rs.port)) {
              stillThere.push(d.key);
              continue;
            }
            this.dropRealServer(d);
            this.graceful.end(d.key);
            this.log.info(
              { realServer: d.key, drainedMs: this.clock.now() - d.sinceMs },
              'graceful termination: deleted drained real server',
            );
          }
          if (refused || stillThere.length > 0) {
            throw new IpvsSyncError(
              `graceful termination could not delete ${stillThere.join(', ') || 'every real server'}${refused ? `: ${refused.message}` : ''}`,
              'ipvsadm',
              refused?.stderr ?? '',
              lines,
            );
          }
        }
      } catch (e) {
        this.forget();
        this.log.warn({ err: e }, 'graceful termination check failed; the next sync is full');
      } finally {
        this.graceful.arm();
      }
    });
  }

  private dropRealServer(d: DrainEntry): void {
    const key = virtualServerKey(d.vs);
    const vs = this.state?.virtualServers.get(key);
    if (!vs) return;
    this.state!.virtualServers.set(key, {
      ...vs,
      realServers: vs.realServers.filter((r) => !(r.address === d.rs.address && r.port === d.rs.port)),
    });
  }

  /**
   * Whether the kernel lost our state behind our back, checked cheaply (the loop asks at
   * most once per syncPeriod): the KUBE-IPVS-FILTER chain (gone after an iptables flush) and
   * one virtual server we hold (gone after `ipvsadm -C`).
   */
  lostState(): Promise<boolean> {
    return this.exclusive(async () => {
      if (this.state === null) return false;
      const reasons: string[] = [];
      const chain = CANARY_LIKE_CHAIN;
      if (!(await chainExists(this.runner, this.iptables, this.family, this.wait, 'filter', chain))) {
        reasons.push(`${chain} is gone from the filter table (iptables was flushed)`);
      }
      const sample = this.state.virtualServers.values().next().value as KernelVirtualServer | undefined;
      if (sample && (await this.tools.ipvsadm.readService(sample)) === null) {
        reasons.push(
          `virtual server ${sample.protocol} ${sample.address}:${sample.port} is gone (the IPVS table was cleared)`,
        );
      }
      if (reasons.length === 0) return false;
      this.log.warn({ reasons }, 'the kernel lost our state; the next sync is full');
      this.forget();
      return true;
    });
  }

  private forget(): void {
    this.state = null;
    this.lastIptables = null;
  }

  private wrap(e: unknown, request: SyncRequest, full: boolean): Error {
    const prefix = `${this.description} ${full ? 'full' : 'partial'} sync #${request.seq} failed`;
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof IpvsSyncError) {
      const details = [
        e.stderr.trim() !== '' ? `${e.tool} stderr:\n${e.stderr.trim()}` : '',
        e.offendingLines.length > 0 ? `offending line(s):\n${e.offendingLines.slice(0, 20).join('\n')}` : '',
      ].filter((d) => d !== '');
      return new IpvsSyncError(
        `${prefix}: ${message}${details.length > 0 ? `\n${details.join('\n')}` : ''}`,
        e.tool,
        e.stderr,
        e.offendingLines,
        {
          cause: e,
        },
      );
    }
    return new IpvsSyncError(`${prefix}: ${message}`, undefined, '', [], { cause: e });
  }
}

/**
 * Whether the kernel's tables (as read: readSavedTables, parseSavedTables) hold exactly the
 * helper chains of `restoreText`, rule for rule, each compared in the form iptables-save
 * prints it (iptables/saved-form.ts; a rule it does not model compares different, and the
 * chains are rewritten).
 */
export function helperChainsMatch(kernel: SavedTables, restoreText: string, family: IPFamily): boolean {
  // The wanted chains' rules as lines: none is kept as a digest.
  for (const [table, chains] of parseSavedTables(restoreText, { digestOnly: () => false })) {
    for (const [chain, wanted] of chains) {
      const held = kernel.get(table)?.get(chain);
      if (!held || !isTextChain(wanted) || !chainMatches(savedRuleLines(wanted), held, family)) return false;
    }
  }
  return true;
}
