/**
 * The iptables applier: one IP family's rules written to the kernel with
 * `iptables-restore --noflush` (spec §4, §16, §17).
 *
 * It keeps what it needs to make partial syncs cheap and safe:
 * - the render context, rebuilt only when the node's addresses or CIDRs change it (the
 *   renderer caches per-service rules by the context object's identity);
 * - the service chains that exist: read on full syncs only, then tracked from what each
 *   successful restore left in place. A full sync reads every table once (`iptables-save`)
 *   and writes only the chains whose rules differ from the render (kernel-diff.ts), so a
 *   restart over its own rules or a takeover from kube-proxy's writes (almost) nothing;
 *   the same read tells which jump rules and canaries are missing;
 * - the rules of the fixed chains (KUBE-SERVICES, KUBE-FORWARD, ...) as last written:
 *   a partial sync that applies changes leaves out a fixed chain whose rules did not
 *   change, and `--noflush` keeps the kernel's copy. kube-proxy rewrites them on every
 *   sync; with thousands of services KUBE-SERVICES is most of a partial sync's input. The
 *   periodic sync without changes still rewrites them, which repairs a hand-flushed chain.
 * Any failure forgets all of it, so the next sync is full and re-reads the kernel.
 */
import type { HostFacts } from '../../config/host.js';
import { type Backend, resolveIptables } from '../../kernel/backend.js';
import type { CommandRunner } from '../../kernel/exec.js';
import { probeHostFacts } from '../../kernel/host-probe.js';
import { Iptables, RestoreError } from '../../kernel/iptables.js';
import { ensureSysctl, ROUTE_LOCALNET } from '../../kernel/sysctl.js';
import type { Logger } from '../../log.js';
import type { IPFamily } from '../../model/ip.js';
import type { NodeInfo, Snapshot } from '../../model/types.js';
import type { BackendSyncResult, ProxyBackend, SyncRequest } from '../../sync/backend.js';
import { isServiceChain } from './chain-names.js';
import {
  type ChunkingOptions,
  DEFAULT_CHUNKING,
  ENTRY_CHAINS,
  type KernelChains,
  planTransactions,
  type TransactionPlan,
} from './chunking.js';
import { buildRenderContext, type IptablesOptions, type RenderContext } from './context.js';
import {
  canaryExists,
  ensureCanaries,
  ensureJumpTargets,
  jumpRuleInsert,
  missingJumpRules,
} from './jump-rules.js';
import {
  dropChainsTheKernelHolds,
  type SavedChain,
  type SavedTables,
  savedChainFromListing,
  savedJumps,
} from './kernel-diff.js';
import { readSavedTables } from './read-saved.js';
import { addStaleChains, FIXED_CHAINS, type IptablesRender, IptablesRenderer } from './render.js';
import { type RestoreTable, restoreLineCount, restorePieces, type TableName } from './restore-text.js';

/** Fixed chains' rules as written, keyed `<table> <chain>`. */
export type FixedChainContents = Map<string, readonly string[]>;

const fixedKey = (table: TableName, chain: string) => `${table} ${chain}`;

export function fixedChainContents(tables: readonly RestoreTable[]): FixedChainContents {
  const out: FixedChainContents = new Map();
  for (const table of tables) {
    for (const chain of FIXED_CHAINS[table.name]) {
      const rules = table.chains.get(chain);
      if (rules) out.set(fixedKey(table.name, chain), [...rules]);
    }
  }
  return out;
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

/**
 * Removes from `table` every fixed chain whose rules equal what was last written, so the
 * restore input does not declare it (and `--noflush` leaves it alone). Returns the names
 * removed.
 */
export function dropUnchangedFixedChains(table: RestoreTable, lastWritten: FixedChainContents): string[] {
  const dropped: string[] = [];
  for (const chain of FIXED_CHAINS[table.name]) {
    const rules = table.chains.get(chain);
    const last = lastWritten.get(fixedKey(table.name, chain));
    if (rules && last && sameRules(rules, last)) {
      table.chains.delete(chain);
      dropped.push(chain);
    }
  }
  return dropped;
}

/** The service chains (KUBE-SVC-..., KUBE-SEP-...) in the nat table read. */
function serviceChainsIn(saved: SavedTables): Set<string> {
  const out = new Set<string>();
  for (const chain of saved.get('nat')?.keys() ?? []) if (isServiceChain(chain)) out.add(chain);
  return out;
}

function isEmpty(table: RestoreTable): boolean {
  return table.chains.size === 0 && table.deleted.length === 0 && (table.commands?.length ?? 0) === 0;
}

/**
 * What the transaction plan needs to know of the kernel: its nat chains, and whether the
 * entry chains may be filled by appending (empty, and nothing jumps to them yet).
 */
function kernelChains(saved: SavedTables): KernelChains {
  const nat = saved.get('nat') ?? new Map();
  const entries = new Set<string>(ENTRY_CHAINS);
  let appendEntryChains = ENTRY_CHAINS.every((c) => (nat.get(c)?.count ?? 0) === 0);
  for (const [name, chain] of nat) {
    if (!appendEntryChains) break;
    if (entries.has(name) || chain.count === 0) continue;
    if (savedJumps(chain).some((target) => entries.has(target))) appendEntryChains = false;
  }
  return { nat: new Set(nat.keys()), appendEntryChains };
}

/** Wall time of a sync's phases, for the sync log. */
class PhaseTimer {
  readonly laps: Record<string, number> = {};
  private last = performance.now();

  lap(name: string): void {
    const now = performance.now();
    this.laps[name] = Math.round(now - this.last);
    this.last = now;
  }
}

/** A sync that failed; the kernel keeps what it had (each restore is atomic). */
export class IptablesSyncError extends Error {
  override readonly name = 'IptablesSyncError';
  constructor(
    message: string,
    /** the refused restore, when that is what failed */
    readonly restore?: RestoreError,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface IptablesBackendConfig {
  /** production: ExecaRunner; tests: inNetns(runner, ns) */
  runner: CommandRunner;
  backend: Backend;
  family: IPFamily;
  options: IptablesOptions;
  log: Logger;
  /** lock-wait flags for iptables and iptables-restore, from `waitFlags(version)`; default `-w 5` */
  waitFlags?: readonly string[];
  chunking?: Partial<ChunkingOptions>;
  /**
   * Runs once, after the first successful full sync (again after the next full sync if it
   * throws), given this backend's Iptables: e.g. removing IPVS mode's leftovers once
   * iptables mode's rules are in place.
   */
  afterFirstFullSync?: AfterFullSync;
}

/**
 * A step after a full sync, given this backend's Iptables and the kernel as that sync read
 * it before writing (so the step need not read every table again to know whether it has
 * anything to do).
 */
export type AfterFullSync = (iptables: Iptables, kernelBefore: SavedTables) => Promise<void>;

const DEFAULT_WAIT = ['-w', '5'] as const;

/** A kernel read made ahead (starting()) is used by a first full sync at most this old. */
const READ_AHEAD_MAX_AGE_MS = 60_000;

export class IptablesBackend implements ProxyBackend {
  readonly family: IPFamily;
  readonly description: string;
  readonly backend: Backend;
  private readonly runner: CommandRunner;
  private readonly iptables: Iptables;
  private readonly options: IptablesOptions;
  private readonly log: Logger;
  private readonly wait: readonly string[];
  private readonly chunking: ChunkingOptions;
  private readonly renderer = new IptablesRenderer();

  private ctx: RenderContext | null = null;
  private ctxKey = '';
  private ctxText = '';
  /** service chains in the kernel after the last successful sync; null = unknown, read it */
  private chains: Set<string> | null = null;
  private lastFixed: FixedChainContents = new Map();
  private canariesMade = false;
  private afterFirstFullSync: AfterFullSync | undefined;
  /** a kernel read started by starting(), for the first full sync */
  private readAhead: { startedMs: number; saved: Promise<SavedTables> } | null = null;

  constructor(config: IptablesBackendConfig) {
    this.family = config.family;
    this.backend = config.backend;
    this.description = `iptables (${config.backend}) ${config.family}`;
    this.runner = config.runner;
    this.options = config.options;
    this.log = config.log.child({ backend: this.description });
    this.wait = config.waitFlags ?? DEFAULT_WAIT;
    this.iptables = new Iptables(config.runner, config.backend, { waitFlags: [...this.wait] });
    this.afterFirstFullSync = config.afterFirstFullSync;
    // legacy rewrites the whole table on every commit, so splitting a sync multiplies its
    // cost (3,000 services: one 0.5 s restore vs 23 summing to 2.5 s); nft's cost grows
    // faster than linearly with the transaction (one 4.2 s restore vs 23 of 40-110 ms).
    const byBackend = config.backend === 'legacy' ? { threshold: Number.POSITIVE_INFINITY } : {};
    this.chunking = { ...DEFAULT_CHUNKING, ...byBackend, ...config.chunking };
  }

  async sync(snapshot: Snapshot, request: SyncRequest): Promise<BackendSyncResult> {
    if (snapshot.family !== this.family) {
      throw new Error(`${this.description}: got a ${snapshot.family} snapshot`);
    }
    const started = performance.now();
    const upgrade: string[] = [];
    let full = request.full;
    try {
      const { ctx, changed } = this.contextFor(snapshot.node);
      if (!full && this.chains === null) upgrade.push('kernel state unknown (first sync or after a failure)');
      if (!full && changed) upgrade.push('node addresses or CIDRs changed the rules');
      full ||= upgrade.length > 0;

      let saved: SavedTables | null = null;
      const phases = new PhaseTimer();
      // A full sync reads every table once: what to write is what differs from it (spec
      // §17). iptables-save starts before we render (the render needs the kernel's chains
      // only for the stale ones, added after); its output is parsed as it comes, never held
      // whole. While the (synchronous) render runs nothing reads the pipe, so iptables-save
      // waits once the pipe is full: only its own read of the kernel overlaps the render.
      const reading = full ? this.kernelRead() : null;
      reading?.catch(() => undefined); // awaited below; not unhandled if the render throws
      const render = this.renderer.render(snapshot, ctx, {
        full,
        changedServices: request.changedServices,
        existingChains: full ? null : this.chains!,
      });
      phases.lap('render');
      if (reading) {
        saved = await reading;
        addStaleChains(render, serviceChainsIn(saved));
        phases.lap('read');
        await this.prepareFullSync(ctx, saved, render);
        phases.lap('prepare');
      }
      const written = fixedChainContents([render.filter, render.nat]);
      // A full sync leaves out every chain the kernel already holds as rendered.
      const kernelHeld = saved
        ? dropChainsTheKernelHolds(render.filter, saved, this.family) +
          dropChainsTheKernelHolds(render.nat, saved, this.family)
        : 0;
      if (saved) phases.lap('compare');
      // A sync that carries changes skips the fixed chains it wrote last time unchanged. The
      // periodic sync with nothing to change checks them against the kernel instead, so a
      // chain someone flushed by hand is repaired within syncPeriod, as with kube-proxy.
      let skipped: string[] = [];
      if (!full && request.changedServices.size > 0) skipped = this.skipUnchangedFixedChains(render);
      else if (!full) skipped = await this.skipFixedChainsTheKernelHolds(render);
      const restoreLines = await this.apply(render, saved);
      phases.lap('write');

      this.chains = render.activeChains;
      this.lastFixed = written;
      const ms = Math.round(performance.now() - started);
      const summary = {
        seq: request.seq,
        full,
        ms,
        restoreLines,
        servicePorts: render.stats.servicePorts,
        changedServices: request.changedServices.size,
        staleChains: render.staleChains.length,
        unchangedFixedChains: skipped,
        ...(saved ? { chainsAlreadyInKernel: kernelHeld } : {}),
        phasesMs: phases.laps,
      };
      if (full) this.log.info({ ...summary, upgradedBecause: upgrade }, 'iptables sync done');
      else this.log.debug(summary, 'iptables sync done');
      if (saved && this.afterFirstFullSync) await this.runAfterFirstFullSync(this.afterFirstFullSync, saved);
      return {
        full,
        restoreLines,
        rulesPerTable: { filter: render.stats.filterRules, nat: render.stats.natRules },
        noLocalEndpoints: {
          internal: render.stats.noLocalEndpointsInternal,
          external: render.stats.noLocalEndpointsExternal,
        },
      };
    } catch (e) {
      this.forget();
      throw this.wrap(e, request, full);
    }
  }

  private async runAfterFirstFullSync(hook: AfterFullSync, kernelBefore: SavedTables): Promise<void> {
    try {
      await hook(this.iptables, kernelBefore);
      this.afterFirstFullSync = undefined;
    } catch (e) {
      this.log.warn({ err: e }, 'after-first-full-sync step failed; retrying after the next full sync');
    }
  }

  /**
   * Starts reading the kernel (iptables-save) for the first sync while the source lists the
   * cluster: at 10,000 services both take seconds, and they use different cores.
   *
   * The read is then older than a read made by the sync itself, by the time of the list:
   * a chain someone else changed in between would be taken for what was read. That window
   * exists anyway between any read and the restore that follows (kube-proxy has it too);
   * this makes it a few seconds longer once, at start, and a read older than
   * READ_AHEAD_MAX_AGE_MS is not used.
   */
  starting(): void {
    if (this.readAhead || this.chains !== null) return;
    // Parsed as it is printed, so the read is done, parse included, when the list is.
    const saved = this.readSaved();
    saved.catch(() => undefined); // a failed read-ahead is replaced by a read in the sync
    this.readAhead = { startedMs: performance.now(), saved };
  }

  /** Every table as read: the read-ahead when there is a recent one, else a new read. */
  private kernelRead(): Promise<SavedTables> {
    const ahead = this.readAhead;
    this.readAhead = null;
    if (ahead && performance.now() - ahead.startedMs <= READ_AHEAD_MAX_AGE_MS) {
      return ahead.saved.catch((e: unknown) => {
        this.log.warn({ err: e }, 'reading the kernel ahead failed; reading again');
        return this.readSaved();
      });
    }
    return this.readSaved();
  }

  private readSaved(): Promise<SavedTables> {
    return readSavedTables(this.iptables, this.family);
  }

  /** True when our mangle canary chain vanished (iptables was flushed); false before we made it. */
  async lostState(): Promise<boolean> {
    if (!this.canariesMade) return false;
    const present = await canaryExists(this.runner, this.iptables, this.family, this.wait, 'mangle');
    if (!present) {
      this.log.warn(
        'KUBE-PROXY-CANARY is gone from the mangle table: iptables was flushed; the next sync is full',
      );
      this.forget();
    }
    return !present;
  }

  /** The render context, the same object while what it is built from does not change. */
  private contextFor(node: NodeInfo): { ctx: RenderContext; changed: boolean } {
    const key = JSON.stringify([node.name, node.ips, node.podCIDRs]);
    if (this.ctx && key === this.ctxKey) return { ctx: this.ctx, changed: false };
    const ctx = buildRenderContext(this.options, this.family, node);
    const text = JSON.stringify(ctx);
    this.ctxKey = key;
    // A node change that does not reach the rules keeps the old object (and the cache).
    if (this.ctx && text === this.ctxText) return { ctx: this.ctx, changed: false };
    const changed = this.ctx !== null;
    this.ctx = ctx;
    this.ctxText = text;
    return { ctx, changed };
  }

  /**
   * What a full sync makes sure of besides the restore input (spec §16). The chains the
   * jump rules target and the render does not write are created here; the missing jump
   * rules themselves are inserted by the last restore transaction (so on a fresh node
   * nothing is reachable, and validated by nf_tables on each commit, until everything is
   * written).
   */
  private async prepareFullSync(
    ctx: RenderContext,
    saved: SavedTables,
    render: IptablesRender,
  ): Promise<void> {
    const tables: Record<string, RestoreTable> = { filter: render.filter, nat: render.nat };
    await ensureJumpTargets(this.iptables, this.family, saved, (t, c) => tables[t]?.chains.has(c) === true);
    await ensureCanaries(this.iptables, this.family, saved);
    this.canariesMade = true;
    // spec §13: NodePorts on 127.0.0.1 need martian-source routing of loopback addresses.
    if (ctx.family === 'IPv4' && ctx.localhostNodePorts) {
      await ensureSysctl(this.runner, ROUTE_LOCALNET, '1', this.log);
    }
  }

  /**
   * The periodic sync's check of the fixed chains (nft): each read with `iptables -S` (at
   * 10,000 services ~0.2 s for KUBE-SERVICES, milliseconds for the others) and left out of
   * the restore when the kernel holds it as rendered. Rewriting them all instead, as
   * kube-proxy does, names every service chain in one iptables-nft-restore input: ~2 s of
   * CPU every syncPeriod, during which changes wait. With legacy every restore rewrites
   * the whole table anyway, and each read would copy it too: it keeps rewriting them.
   */
  private async skipFixedChainsTheKernelHolds(render: IptablesRender): Promise<string[]> {
    if (this.backend !== 'nft') return [];
    const held: SavedTables = new Map();
    const reads: Promise<void>[] = [];
    for (const table of [render.filter, render.nat]) {
      const chains = new Map<string, SavedChain>();
      held.set(table.name, chains);
      for (const chain of FIXED_CHAINS[table.name]) {
        if (!table.chains.has(chain)) continue;
        // Reads only, so side by side.
        reads.push(
          this.iptables.listChain(this.family, table.name, chain).then((listed) => {
            if (listed !== null) chains.set(chain, savedChainFromListing(listed));
          }),
        );
      }
    }
    await Promise.all(reads);
    dropChainsTheKernelHolds(render.filter, held, this.family);
    dropChainsTheKernelHolds(render.nat, held, this.family);
    // `held` has only chains the render declared: those it no longer declares were dropped.
    return [render.filter, render.nat].flatMap((t) =>
      [...held.get(t.name)!.keys()].filter((c) => !t.chains.has(c)).map((c) => `${t.name} ${c}`),
    );
  }

  private skipUnchangedFixedChains(render: IptablesRender): string[] {
    return [
      ...dropUnchangedFixedChains(render.filter, this.lastFixed).map((c) => `filter ${c}`),
      ...dropUnchangedFixedChains(render.nat, this.lastFixed).map((c) => `nat ${c}`),
    ];
  }

  /**
   * Writes the render (a full sync: what differs from `saved`, the kernel's state as read,
   * and the missing jump rules); returns the restore lines written (0 when there was
   * nothing to do).
   */
  private async apply(render: IptablesRender, saved: SavedTables | null): Promise<number> {
    let plan: TransactionPlan = { precreate: [], transactions: [[render.filter, render.nat]] };
    if (saved) {
      plan = planTransactions(render.filter, render.nat, this.chunking, kernelChains(saved));
      const jumps = missingJumpRules(saved, this.family);
      if (jumps.length > 0) {
        const last = plan.transactions.at(-1)!;
        for (const table of last) {
          const inserts = jumps.filter((j) => j.table === table.name).map(jumpRuleInsert);
          if (inserts.length > 0) table.commands = [...(table.commands ?? []), ...inserts];
        }
        this.log.info({ added: jumps.length }, 'adding missing jump rules from the built-in chains');
      }
    }
    for (const { table, chain } of plan.precreate) await this.iptables.ensureChain(this.family, table, chain);
    let lines = 0;
    const total = plan.transactions.length;
    for (const [i, tables] of plan.transactions.entries()) {
      const nonEmpty = tables.filter((t) => !isEmpty(t));
      if (nonEmpty.length === 0) continue;
      // Written piece by piece: at 10,000 services the input of a single transaction
      // (iptables-legacy) is 37 MB, and even 100 services' is a large object for V8.
      const text = restorePieces(nonEmpty, render.ruleTexts);
      try {
        await this.iptables.restore(this.family, text);
      } catch (e) {
        if (e instanceof RestoreError && total > 1) {
          throw new IptablesSyncError(`transaction ${i + 1} of ${total}: ${e.message}`, e, { cause: e });
        }
        throw e;
      }
      lines += restoreLineCount(nonEmpty);
    }
    if (total > 1)
      this.log.info({ transactions: total, lines }, 'large full sync applied in bounded transactions');
    return lines;
  }

  private forget(): void {
    this.chains = null;
    this.lastFixed = new Map();
  }

  private wrap(e: unknown, request: SyncRequest, full: boolean): Error {
    const kind = full ? 'full' : 'partial';
    const prefix = `${this.description} ${kind} sync #${request.seq} failed`;
    const restore = e instanceof RestoreError ? e : e instanceof IptablesSyncError ? e.restore : undefined;
    const message = e instanceof Error ? e.message : String(e);
    if (restore) {
      const stderr = restore.stderr.trim();
      return new IptablesSyncError(`${prefix}: ${message}\niptables-restore stderr:\n${stderr}`, restore, {
        cause: e,
      });
    }
    return new IptablesSyncError(`${prefix}: ${message}`, undefined, { cause: e });
  }
}

export interface CreateIptablesBackendsInput {
  runner: CommandRunner;
  families: readonly IPFamily[];
  /** the renderer's options for the host facts in use (production: `iptablesOptions(config, facts)`) */
  options: (hostFacts: HostFacts) => IptablesOptions;
  /** facts from a file; absent = probed from the machine through `runner` */
  hostFacts?: HostFacts;
  log: Logger;
  /** skip detection and use this backend (tests, or an operator's override) */
  backend?: Backend;
  chunking?: Partial<ChunkingOptions>;
  /** per family: run once after its first successful full sync (see IptablesBackendConfig) */
  afterFirstFullSync?: (family: IPFamily, ...args: Parameters<AfterFullSync>) => Promise<void>;
}

/**
 * One IptablesBackend per requested family, on the node's iptables backend (nft or
 * legacy, detected the way iptables-wrappers does it), with the lock-wait flags its
 * version takes, and host facts probed when none are given.
 */
export async function createIptablesBackends(input: CreateIptablesBackendsInput): Promise<IptablesBackend[]> {
  const { runner, log } = input;
  const { backend, version, waitFlags: wait } = await resolveIptables(runner, input.backend, log);
  let facts = input.hostFacts;
  if (!facts) {
    facts = await probeHostFacts({ runner, version, log });
  }
  const options = input.options(facts);
  return input.families.map(
    (family) =>
      new IptablesBackend({
        runner,
        backend,
        family,
        options,
        log,
        waitFlags: wait,
        ...(input.chunking ? { chunking: input.chunking } : {}),
        ...(input.afterFirstFullSync
          ? {
              afterFirstFullSync: (iptables: Iptables, kernelBefore: SavedTables) =>
                input.afterFirstFullSync!(family, iptables, kernelBefore),
            }
          : {}),
      }),
  );
}
