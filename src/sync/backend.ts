/**
 * The contracts between the sync loop and what it drives (backends) or informs
 * (health, metrics). Only this file is shared; implementations live in their own wings.
 */

import type { ObjectEvent } from '../model/store.js';
import type { IPFamily, Snapshot } from '../model/types.js';
import type { TriggerTime } from './trigger-times.js';

/** What the loop asks a backend to do in one sync. */
export interface SyncRequest {
  /** sequence number of this sync (1 = the first) */
  seq: number;
  /** rewrite every service's chains; otherwise only changedServices' (spec §17) */
  full: boolean;
  /** services (namespace/name) whose Service or EndpointSlices changed since the last successful sync */
  changedServices: ReadonlySet<string>;
}

export interface BackendSyncResult {
  /**
   * the family of the backend that produced this result (the loop may stamp it from
   * `ProxyBackend.family`). Health and metrics are kept per family, as kube-proxy keeps them;
   * without it a failed dual-stack sync cannot tell which family succeeded.
   */
  family?: IPFamily;
  /** whether the backend really did a full sync (it may upgrade a partial one) */
  full: boolean;
  /** lines of restore input written (0 in a no-op) */
  restoreLines: number;
  /** rules owned per table after the sync, for kubeproxy_sync_proxy_rules_iptables_total{table} */
  rulesPerTable: Record<string, number>;
  noLocalEndpoints: { internal: number; external: number };
}

/** One family's data plane (iptables for IPv4, ip6tables for IPv6, a dry-run printer, ...). */
export interface ProxyBackend {
  readonly family: IPFamily;
  /** for logs: e.g. `iptables (nft) IPv4` */
  readonly description: string;
  /**
   * Brings the kernel in line with the snapshot. Throws on failure; the kernel then keeps
   * the previous rules (the restore is atomic) and the loop retries with a full sync.
   */
  sync(snapshot: Snapshot, request: SyncRequest): Promise<BackendSyncResult>;
  /** true when the kernel lost our state behind our back (canary chain gone): force a full sync */
  lostState(): Promise<boolean>;
  /**
   * Called once when the proxy starts, before the source's initial list: a backend may start
   * reading the kernel for its first sync meanwhile. Must not throw.
   */
  starting?(): void;
}

/** Where objects come from: manifests or the API server. */
export interface ObjectSource {
  /**
   * Starts delivering events. `onSynced` is called once every kind has completed its
   * first list: the loop does not sync before that.
   */
  start(onEvent: (event: ObjectEvent) => void, onSynced: () => void): Promise<void>;
  stop(): Promise<void>;
}

/** What the loop reports as it goes; health and metrics implement it. */
export interface SyncObserver {
  /** a change arrived and a sync is now pending (kube-proxy's "queued" timestamp) */
  queued?(atMs: number, changes: { services: number; endpoints: number }): void;
  /** a sync finished, successfully or not */
  synced?(report: SyncReport): void;
}

export interface SyncReport {
  seq: number;
  full: boolean;
  ok: boolean;
  startedAtMs: number;
  durationMs: number;
  error?: Error;
  results: BackendSyncResult[];
  /** the snapshot each backend was given, in backend order (empty if the sync failed before building them) */
  snapshots: Snapshot[];
  /** services whose changes this sync applied, with when Switchboard first saw each change */
  appliedChanges: { serviceKey: string; firstSeenMs: number }[];
  /**
   * the EndpointSlice change trigger times this sync checked out (kube-proxy's network
   * programming latency; see trigger-times.ts): a family observes its own once its backend
   * succeeded; a failed family drops them, as kube-proxy does. Absent: none.
   */
  triggerTimes?: TriggerTime[];
}
