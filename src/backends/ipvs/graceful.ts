/**
 * Graceful termination of IPVS real servers (spec kube-proxy-ipvs.md §8), as kube-proxy's
 * GracefulTerminationManager does it: a TCP real server that leaves its virtual server is
 * first set to weight 0 (no new connections; the planner does that), then deleted once its
 * ActiveConn + InActConn reach 0, checked every GRACEFUL_CHECK_PERIOD_MS. There is no
 * deadline. UDP and SCTP real servers are deleted at once by the planner, and a real server
 * wanted again before its deletion gets its weight back (the planner, with `-e`).
 *
 * This module only keeps the list and the timer; the backend does the reading and deleting
 * under its own lock, so a check never runs in the middle of a sync. The list lives in
 * memory: after a restart the planner finds weight-0 real servers that are not wanted and
 * hands them back here.
 */
import type { Clock, TimerHandle } from '../../sync/clock.js';
import type { Drain } from './plan.js';
import { virtualServerKey } from './state.js';

/** kube-proxy's rsCheckDeleteInterval. */
export const GRACEFUL_CHECK_PERIOD_MS = 60_000;

export interface DrainEntry extends Drain {
  /** when it was set to weight 0 (clock ms) */
  sinceMs: number;
}

/** What a check decides for the drains of one virtual server, from its `ipvsadm -Ln` read. */
export interface DrainDecision {
  /** connections are gone: delete now */
  remove: DrainEntry[];
  /** still carrying connections: check again later */
  keep: DrainEntry[];
  /** the real server (or its virtual server) is gone, or no longer at weight 0: forget it */
  forget: DrainEntry[];
}

export interface ReadRealServer {
  address: string;
  port: number;
  weight: number;
  activeConnections?: number;
  inactiveConnections?: number;
}

/** Pure: sorts a virtual server's drains by what a fresh read shows. */
export function decideDrains(
  drains: readonly DrainEntry[],
  read: readonly ReadRealServer[] | null,
): DrainDecision {
  const decision: DrainDecision = { remove: [], keep: [], forget: [] };
  for (const d of drains) {
    const rs = read?.find((r) => r.address === d.rs.address && r.port === d.rs.port);
    if (rs?.weight !== 0) decision.forget.push(d);
    else if ((rs.activeConnections ?? 0) + (rs.inactiveConnections ?? 0) === 0) decision.remove.push(d);
    else decision.keep.push(d);
  }
  return decision;
}

export interface GracefulTerminationOptions {
  clock: Clock;
  periodMs?: number;
  /** called when a check is due */
  onDue: () => void;
}

export class GracefulTermination {
  private readonly drains = new Map<string, DrainEntry>();
  private readonly clock: Clock;
  private readonly periodMs: number;
  private readonly onDue: () => void;
  private timer: TimerHandle | null = null;
  private closed = false;

  constructor(options: GracefulTerminationOptions) {
    this.clock = options.clock;
    this.periodMs = options.periodMs ?? GRACEFUL_CHECK_PERIOD_MS;
    this.onDue = options.onDue;
  }

  /** Starts draining (idempotent: a drain keeps its start time). */
  add(drain: Drain): void {
    if (!this.drains.has(drain.key)) this.drains.set(drain.key, { ...drain, sinceMs: this.clock.now() });
    this.arm();
  }

  end(key: string): boolean {
    return this.drains.delete(key);
  }

  has(key: string): boolean {
    return this.drains.has(key);
  }

  keys(): ReadonlySet<string> {
    return new Set(this.drains.keys());
  }

  get size(): number {
    return this.drains.size;
  }

  entries(): DrainEntry[] {
    return [...this.drains.values()];
  }

  /** The drains grouped by virtual server (virtualServerKey). */
  byVirtualServer(): Map<string, DrainEntry[]> {
    const out = new Map<string, DrainEntry[]>();
    for (const d of this.drains.values()) {
      const key = virtualServerKey(d.vs);
      const list = out.get(key);
      if (list) list.push(d);
      else out.set(key, [d]);
    }
    return out;
  }

  /** Arms the check timer if anything drains and none is armed. */
  arm(): void {
    if (this.closed || this.timer !== null || this.drains.size === 0) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.onDue();
    }, this.periodMs);
    // A pending check must not keep a stopping process alive (the system clock's handle is a Node timer).
    (this.timer as { unref?: () => void } | null)?.unref?.();
  }

  /** Cancels the timer for good (the drains stay listed, for inspection). */
  close(): void {
    this.closed = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }
}
