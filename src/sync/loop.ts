/**
 * The sync loop (DESIGN "The sync loop", spec §17): it owns timing and decides between
 * full and partial syncs, the way kube-proxy's BoundedFrequencyRunner and proxier do.
 *
 * - A change (a store event that really changed something) queues a sync. Syncs start at
 *   least minSyncPeriod apart, so a burst of changes becomes one sync; without changes a
 *   sync still runs every syncPeriod.
 * - A sync is full on the first sync, after a failed sync, after a change of the node's
 *   topology labels, when a backend lost its state, and an hour after the last full sync;
 *   otherwise it is partial and names the services changed since the last *successful*
 *   sync, so a failed sync's changes are carried into the next one.
 * - After a failure the kernel keeps its previous rules (the restore is atomic) and the loop
 *   retries with exponential backoff: minSyncPeriod (at least 1 s), doubling, capped at
 *   syncPeriod, with jitter. Changes do not bring a retry forward.
 */
import type { Logger } from '../log.js';
import type { TopologyOptions } from '../model/categorize.js';
import { type NodeOverrides, nodeInfoFrom, SnapshotBuilder } from '../model/snapshot.js';
import type { ObjectEvent, ObjectStore } from '../model/store.js';
import type { Snapshot } from '../model/types.js';
import type { BackendSyncResult, ProxyBackend, SyncObserver, SyncReport, SyncRequest } from './backend.js';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { PendingTriggerTimes, type TriggerTime } from './trigger-times.js';

export const FULL_SYNC_INTERVAL_MS = 60 * 60 * 1000;
export const TOPOLOGY_LABEL_PREFIX = 'topology.kubernetes.io/';
const MIN_RETRY_MS = 1000;
const RETRY_JITTER = 0.1;

export interface SyncLoopOptions {
  store: ObjectStore;
  /** one per IP family; each gets its own snapshot and the same request */
  backends: readonly ProxyBackend[];
  syncPeriodMs: number;
  minSyncPeriodMs: number;
  topology: TopologyOptions;
  nodeOverrides?: NodeOverrides;
  observers?: readonly SyncObserver[];
  log: Logger;
  clock?: Clock;
  /** in [0, 1); the backoff jitter (tests pin it) */
  random?: () => number;
}

/** Delay before retrying after `failures` consecutive failed syncs. */
export function retryDelayMs(
  failures: number,
  minSyncPeriodMs: number,
  syncPeriodMs: number,
  random: number,
): number {
  const base = Math.max(minSyncPeriodMs, MIN_RETRY_MS) * 2 ** Math.min(Math.max(failures - 1, 0), 30);
  return Math.min(syncPeriodMs, base * (1 + RETRY_JITTER * random));
}

/** The node labels whose change forces a full sync, as a comparable string. */
export function topologyLabelsKey(labels: Readonly<Record<string, string>>): string {
  const entries = Object.entries(labels)
    .filter(([k]) => k.startsWith(TOPOLOGY_LABEL_PREFIX))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(entries);
}

/** Changes not yet applied by a successful sync. */
class PendingChanges {
  /** service key -> when a change to it was first seen */
  readonly firstSeen = new Map<string, number>();
  /** services changed through their Service object / through their EndpointSlices */
  readonly services = new Set<string>();
  readonly endpoints = new Set<string>();
  nodeSinceMs: number | null = null;

  isEmpty(): boolean {
    return this.firstSeen.size === 0 && this.nodeSinceMs === null;
  }

  oldestMs(): number | null {
    let oldest = this.nodeSinceMs;
    for (const t of this.firstSeen.values()) if (oldest === null || t < oldest) oldest = t;
    return oldest;
  }

  /** Takes back the changes of a failed sync, keeping the earliest first-seen times. */
  absorb(older: PendingChanges): void {
    for (const [key, t] of older.firstSeen) {
      const mine = this.firstSeen.get(key);
      if (mine === undefined || t < mine) this.firstSeen.set(key, t);
    }
    for (const key of older.services) this.services.add(key);
    for (const key of older.endpoints) this.endpoints.add(key);
    if (older.nodeSinceMs !== null && (this.nodeSinceMs === null || older.nodeSinceMs < this.nodeSinceMs)) {
      this.nodeSinceMs = older.nodeSinceMs;
    }
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export class SyncLoop {
  private readonly store: ObjectStore;
  private readonly backends: readonly ProxyBackend[];
  private readonly builders: SnapshotBuilder[];
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly observers: readonly SyncObserver[];

  private sourceReady = false;
  private readonly ready: Promise<void>;
  private markReady!: () => void;
  private readonly stopping: Promise<void>;
  private markStopping!: () => void;
  private started = false;
  private stopped = false;

  private timer: TimerHandle | null = null;
  private timerDueMs = 0;
  private running: Promise<SyncReport> | null = null;

  private seq = 0;
  private lastStartMs: number | null = null;
  private lastFullMs: number | null = null;
  private lastStateCheckMs: number | null = null;
  private needFull = true;
  private failures = 0;
  private retryAtMs: number | null = null;
  private syncedVersions: ReadonlyMap<string, number> = new Map();
  private syncedTopology: string | null = null;
  private pending = new PendingChanges();
  private readonly triggerTimes: PendingTriggerTimes;

  constructor(private readonly opts: SyncLoopOptions) {
    if (!(opts.syncPeriodMs > 0))
      throw new Error(`syncPeriod must be positive (got ${opts.syncPeriodMs} ms)`);
    this.store = opts.store;
    this.backends = opts.backends;
    this.builders = opts.backends.map((b) => new SnapshotBuilder(b.family, opts.topology));
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
    this.log = opts.log;
    this.observers = opts.observers ?? [];
    // Trigger times from before the loop existed are not this proxy's latency.
    this.triggerTimes = new PendingTriggerTimes(this.clock.now());
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
    this.stopping = new Promise((resolve) => {
      this.markStopping = resolve;
    });
  }

  /**
   * Applies one source event to the store and queues a sync if it changed anything.
   * Observers' `queued` hears of every such change (once the source is synced) with the
   * time of the oldest change not yet synced, and how many services have pending changes
   * to their Service object / to their EndpointSlices.
   */
  handleEvent(event: ObjectEvent): void {
    const { changedServices, nodeChanged } = this.store.apply(event);
    this.triggerTimes.record(event, changedServices.length > 0);
    if (changedServices.length === 0 && !nodeChanged) return;
    const now = this.clock.now();
    const p = this.pending;
    for (const key of changedServices) {
      if (!p.firstSeen.has(key)) p.firstSeen.set(key, now);
      if (event.kind === 'Service') p.services.add(key);
      else if (event.kind === 'EndpointSlice') p.endpoints.add(key);
    }
    if (nodeChanged && p.nodeSinceMs === null) p.nodeSinceMs = now;
    if (!this.sourceReady || this.stopped) return;
    const oldest = p.oldestMs() ?? now;
    this.notify((o) => o.queued?.(oldest, { services: p.services.size, endpoints: p.endpoints.size }));
    this.schedule();
  }

  /** The source has delivered its initial state: syncs may start. */
  sourceSynced(): void {
    if (this.sourceReady) return;
    this.sourceReady = true;
    this.markReady();
    this.schedule();
  }

  /** Starts syncing on its own: the first sync as soon as the source is synced. */
  start(): void {
    this.started = true;
    this.schedule();
  }

  /** One sync now (after the source is synced and any running sync ended): `run --once`. */
  async runOnce(): Promise<SyncReport> {
    await Promise.race([this.ready, this.stopping]);
    while (this.running && !this.stopped) await this.running;
    if (this.stopped) throw new Error('the sync loop was stopped');
    this.cancelTimer();
    return this.runSync();
  }

  /** Cancels timers and waits for a running sync to finish. The rules stay as they are. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.markStopping();
    this.cancelTimer();
    if (this.running) await this.running;
  }

  private notify(call: (o: SyncObserver) => void): void {
    for (const o of this.observers) {
      try {
        call(o);
      } catch (e) {
        this.log.warn({ err: e }, 'a sync observer failed');
      }
    }
  }

  private cancelTimer(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private nextDueMs(): number {
    if (this.lastStartMs === null) return this.clock.now();
    if (this.failures > 0 && this.retryAtMs !== null) return this.retryAtMs;
    let due = this.lastStartMs + this.opts.syncPeriodMs;
    if (!this.pending.isEmpty()) due = Math.min(due, this.lastStartMs + this.opts.minSyncPeriodMs);
    return due;
  }

  private schedule(): void {
    if (!this.started || this.stopped || !this.sourceReady || this.running) return;
    const due = this.nextDueMs();
    if (this.timer !== null && this.timerDueMs <= due) return;
    this.cancelTimer();
    this.timerDueMs = due;
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = null;
        void this.runSync();
      },
      Math.max(0, due - this.clock.now()),
    );
  }

  private async runSync(): Promise<SyncReport> {
    const sync = this.syncOnce();
    this.running = sync;
    try {
      return await sync;
    } finally {
      this.running = null;
      this.schedule();
    }
  }

  /**
   * Asks the backends whether the kernel lost our rules, at most once per syncPeriod (as
   * kube-proxy's canary monitor does): the check runs a command per family, which change-
   * driven syncs should not pay for every time.
   */
  private async anyLostState(nowMs: number): Promise<boolean> {
    if (this.lastStateCheckMs !== null && nowMs - this.lastStateCheckMs < this.opts.syncPeriodMs)
      return false;
    this.lastStateCheckMs = nowMs;
    let lost = false;
    for (const backend of this.backends) {
      try {
        if (await backend.lostState()) {
          this.log.warn(
            { backend: backend.description },
            'the kernel lost our rules (canary gone): full sync',
          );
          lost = true;
        }
      } catch (e) {
        this.log.warn({ err: e, backend: backend.description }, 'could not check for lost state: full sync');
        lost = true;
      }
    }
    return lost;
  }

  /** One sync of every backend. Never throws: failures end up in the report. */
  private async syncOnce(): Promise<SyncReport> {
    const seq = ++this.seq;
    const startedAtMs = this.clock.now();
    this.lastStartMs = startedAtMs;
    const results: BackendSyncResult[] = [];
    const errors: Error[] = [];
    let inFlight = new PendingChanges();
    let request: SyncRequest = { seq, full: true, changedServices: new Set() };
    let versions: ReadonlyMap<string, number> = this.syncedVersions;
    let topology = this.syncedTopology;
    let snapshots: Snapshot[] = [];
    let triggerTimes: TriggerTime[] = [];
    try {
      const lost = await this.anyLostState(startedAtMs);
      // From here to the backends' calls nothing awaits: the versions recorded are exactly
      // those of the snapshots, and later events stay pending for the next sync.
      const node = nodeInfoFrom(this.store.name, this.store.node, this.opts.nodeOverrides);
      topology = topologyLabelsKey(node.labels);
      const reasons: string[] = [];
      if (this.lastFullMs === null) reasons.push('first sync');
      else if (startedAtMs - this.lastFullMs >= FULL_SYNC_INTERVAL_MS) reasons.push('hourly');
      if (this.needFull && this.failures > 0) reasons.push('previous sync failed');
      if (this.syncedTopology !== null && topology !== this.syncedTopology)
        reasons.push('node topology labels changed');
      if (lost) reasons.push('backend lost its state');
      inFlight = this.pending;
      this.pending = new PendingChanges();
      triggerTimes = this.triggerTimes.checkout();
      versions = this.store.versionsSnapshot();
      request = {
        seq,
        full: reasons.length > 0 || this.needFull,
        changedServices: this.store.changedSince(this.syncedVersions),
      };
      snapshots = this.builders.map((b) => b.build(this.store, node));
      this.log.debug(
        { seq, full: request.full, reasons, changedServices: request.changedServices.size },
        'sync starting',
      );
      for (const [i, backend] of this.backends.entries()) {
        try {
          const result = await backend.sync(snapshots[i]!, request);
          results.push({ ...result, family: result.family ?? backend.family });
        } catch (e) {
          const err = asError(e);
          errors.push(new Error(`${backend.description}: ${err.message}`, { cause: err }));
        }
      }
    } catch (e) {
      errors.push(asError(e));
    }

    const ok = errors.length === 0;
    const endMs = this.clock.now();
    const report: SyncReport = {
      seq,
      full: request.full || (results.length > 0 && results.every((r) => r.full)),
      ok,
      startedAtMs,
      durationMs: endMs - startedAtMs,
      results,
      snapshots,
      appliedChanges: [],
      triggerTimes,
    };
    if (ok) {
      this.syncedVersions = versions;
      this.syncedTopology = topology;
      this.needFull = false;
      this.failures = 0;
      this.retryAtMs = null;
      if (report.full) this.lastFullMs = startedAtMs;
      report.appliedChanges = [...inFlight.firstSeen].map(([serviceKey, firstSeenMs]) => ({
        serviceKey,
        firstSeenMs,
      }));
      const quiet = request.changedServices.size === 0 && !report.full;
      this.log[quiet ? 'debug' : 'info'](
        {
          seq,
          full: report.full,
          changedServices: request.changedServices.size,
          durationMs: report.durationMs,
        },
        'synced',
      );
    } else {
      report.error =
        errors.length === 1
          ? errors[0]!
          : new AggregateError(errors, errors.map((e) => e.message).join('; '));
      this.needFull = true;
      this.failures++;
      const delay = retryDelayMs(
        this.failures,
        this.opts.minSyncPeriodMs,
        this.opts.syncPeriodMs,
        this.random(),
      );
      this.retryAtMs = endMs + delay;
      this.pending.absorb(inFlight);
      this.log.error(
        { err: report.error, seq, full: request.full, failures: this.failures, retryInMs: Math.round(delay) },
        'sync failed: the previous rules stay in place; retrying with a full sync',
      );
    }
    this.notify((o) => o.synced?.(report));
    return report;
  }
}
