/**
 * kube-proxy's proxy health (pkg/proxy/healthcheck/proxy_health.go, 1.33+) and its HTTP server on
 * healthzBindAddress (default 0.0.0.0:10256).
 *
 * Per IP family it keeps when the rules were last updated and the oldest update queued since. A
 * family is unhealthy once an update has been queued for healthTimeout (2 × syncPeriod) without a
 * successful sync; the proxy is healthy while every family is. `/livez` reports that; `/healthz`
 * also fails while the Node is not eligible (being deleted, or tainted ToBeDeletedByClusterAutoscaler)
 * so that load balancers drain the node. Both answer kube-proxy's JSON, byte for byte except that
 * times carry milliseconds (JavaScript's clock) where Go prints nanoseconds.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InputError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IPFamily } from '../model/ip.js';
import type { SyncObserver, SyncReport } from '../sync/backend.js';
import {
  type BindAddress,
  closeServer,
  notFound,
  parseBindAddress,
  requestPath,
  respond,
  startListening,
} from './http.js';
import { familyOutcomes } from './sync-outcome.js';

/** The taint the Cluster Autoscaler puts on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

export interface NowClock {
  /** milliseconds since the epoch */
  now(): number;
}

/** Where `/healthz` and `/livez` answers are counted (kubeproxy_proxy_healthz_total / _livez_total). */
export interface ProbeCounters {
  healthz(code: 200 | 503): void;
  livez(code: 200 | 503): void;
}

export interface ProxierHealth {
  /** null = never (Go's zero time) */
  lastUpdatedMs: number | null;
  healthy: boolean;
}

/** kube-proxy's ProxyHealth. */
export interface ProxyHealth {
  /** the most recent update of any family */
  lastUpdatedMs: number | null;
  currentTimeMs: number;
  healthy: boolean;
  status: ReadonlyMap<IPFamily, ProxierHealth>;
}

export interface ProxyHealthStateOptions {
  /** the families the proxy serves */
  families: readonly IPFamily[];
  /** kube-proxy uses 2 × syncPeriod */
  healthTimeoutMs: number;
  clock?: NowClock;
}

/**
 * The health bookkeeping, fed by the sync loop (it is a SyncObserver) and by the Node informer
 * (`setNode`).
 */
export class ProxyHealthState implements SyncObserver {
  private readonly families: readonly IPFamily[];
  private readonly healthTimeoutMs: number;
  private readonly clock: NowClock;
  private readonly lastUpdated = new Map<IPFamily, number>();
  private readonly oldestPendingQueued = new Map<IPFamily, number>();
  /** eligible until a Node says otherwise: the proxy is healthy while it starts up */
  private nodeEligible = true;

  constructor(opts: ProxyHealthStateOptions) {
    if (opts.families.length === 0) throw new Error('ProxyHealthState: no IP families given');
    if (!(opts.healthTimeoutMs > 0))
      throw new Error(`ProxyHealthState: bad healthTimeoutMs ${opts.healthTimeoutMs}`);
    this.families = opts.families;
    this.healthTimeoutMs = opts.healthTimeoutMs;
    this.clock = opts.clock ?? { now: () => Date.now() };
    // kube-proxy marks each proxier updated as its loop starts, so that one whose syncs never
    // succeed still turns unhealthy once an update has waited too long.
    const now = this.clock.now();
    for (const family of this.families) this.lastUpdated.set(family, now);
  }

  /** The family's rules reflect everything queued so far (kube-proxy's Updated). */
  updated(family: IPFamily): void {
    this.oldestPendingQueued.delete(family);
    this.lastUpdated.set(family, this.clock.now());
  }

  /** A change for the family is waiting for a sync; only the oldest counts (kube-proxy's QueuedUpdate). */
  queuedUpdate(family: IPFamily, atMs: number = this.clock.now()): void {
    if (!this.oldestPendingQueued.has(family)) this.oldestPendingQueued.set(family, atMs);
  }

  /** SyncObserver: the loop queues one sync for every family. `atMs` is when the oldest pending change arrived. */
  queued(atMs: number): void {
    for (const family of this.families) this.queuedUpdate(family, atMs);
  }

  /** SyncObserver: each family whose backend applied its rules is up to date; failed ones stay pending. */
  synced(report: SyncReport): void {
    for (const outcome of familyOutcomes(report, this.families)) {
      if (outcome.ok) this.updated(outcome.family);
    }
  }

  health(): ProxyHealth {
    const currentTimeMs = this.clock.now();
    const status = new Map<IPFamily, ProxierHealth>();
    let lastUpdatedMs: number | null = null;
    let healthy = true;
    for (const [family, familyUpdatedMs] of this.lastUpdated) {
      if (lastUpdatedMs === null || familyUpdatedMs > lastUpdatedMs) lastUpdatedMs = familyUpdatedMs;
      const queuedMs = this.oldestPendingQueued.get(family);
      const late = queuedMs !== undefined && currentTimeMs - queuedMs >= this.healthTimeoutMs;
      if (late) healthy = false;
      status.set(family, { lastUpdatedMs: familyUpdatedMs, healthy: !late });
    }
    return { lastUpdatedMs, currentTimeMs, healthy, status };
  }

  /** The proxy's own health, ignoring the Node (what health-check node ports report). */
  isHealthy(): boolean {
    return this.health().healthy;
  }

  /**
   * Takes this node's Node object (as the informer delivers it), or null/undefined once it is gone.
   * A missing Node is not eligible, as in kube-proxy 1.33+; before the first call the node counts as eligible.
   */
  setNode(node: unknown): void {
    this.nodeEligible = nodeIsEligible(node);
  }

  isNodeEligible(): boolean {
    return this.nodeEligible;
  }
}

/** Eligible = present, not being deleted, not tainted ToBeDeletedByClusterAutoscaler. */
export function nodeIsEligible(node: unknown): boolean {
  if (node === null || node === undefined) return false;
  if (typeof node !== 'object' || Array.isArray(node)) throw new InputError('Node: expected an object');
  const { metadata, spec } = node as { metadata?: unknown; spec?: unknown };
  const name =
    typeof metadata === 'object' &&
    metadata !== null &&
    typeof (metadata as { name?: unknown }).name === 'string'
      ? (metadata as { name: string }).name
      : '<unnamed>';
  const deletionTimestamp =
    typeof metadata === 'object' && metadata !== null
      ? (metadata as { deletionTimestamp?: unknown }).deletionTimestamp
      : undefined;
  if (deletionTimestamp !== undefined && deletionTimestamp !== null && deletionTimestamp !== '') return false;
  const taints =
    typeof spec === 'object' && spec !== null ? (spec as { taints?: unknown }).taints : undefined;
  if (taints === undefined || taints === null) return true;
  if (!Array.isArray(taints)) throw new InputError(`Node ${name}: spec.taints: expected a list`);
  return !taints.some(
    (taint) =>
      typeof taint === 'object' && taint !== null && (taint as { key?: unknown }).key === TO_BE_DELETED_TAINT,
  );
}

// ---------------------------------------------------------------------------------------------------
// Responses

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * A time as Go's encoding/json prints a time.Time: RFC 3339 with the fraction's trailing zeros cut,
 * in the local zone (`Z` at offset zero, which is what a container without TZ has). null is Go's
 * zero time.
 */
export function formatGoJSONTime(ms: number | null): string {
  if (ms === null) return '0001-01-01T00:00:00Z';
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6));
  const offsetMinutes = -new Date(seconds * 1000).getTimezoneOffset();
  const local = new Date((seconds + offsetMinutes * 60) * 1000);
  const date = `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1, 2)}-${pad(local.getUTCDate(), 2)}`;
  const time = `${pad(local.getUTCHours(), 2)}:${pad(local.getUTCMinutes(), 2)}:${pad(local.getUTCSeconds(), 2)}`;
  const fraction = nanos === 0 ? '' : `.${pad(nanos, 9).replace(/0+$/, '')}`;
  const abs = Math.abs(offsetMinutes);
  const zone =
    offsetMinutes === 0
      ? 'Z'
      : `${offsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60), 2)}:${pad(abs % 60, 2)}`;
  return `${date}T${time}${fraction}${zone}`;
}

/**
 * The body json.Marshal gives kube-proxy's ProxyHealth: fields in struct order, `nodeEligible` only
 * for /healthz, `status` (sorted by family) only when non-empty, no trailing newline.
 */
export function formatHealthBody(health: ProxyHealth, nodeEligible?: boolean): string {
  const parts = [
    `"lastUpdated":${JSON.stringify(formatGoJSONTime(health.lastUpdatedMs))}`,
    `"currentTime":${JSON.stringify(formatGoJSONTime(health.currentTimeMs))}`,
  ];
  if (nodeEligible !== undefined) parts.push(`"nodeEligible":${nodeEligible}`);
  parts.push(`"healthy":${health.healthy}`);
  if (health.status.size > 0) {
    const families = [...health.status.keys()].sort();
    const entries = families.map((family) => {
      const s = health.status.get(family)!;
      return `${JSON.stringify(family)}:{"lastUpdated":${JSON.stringify(formatGoJSONTime(s.lastUpdatedMs))},"healthy":${s.healthy}}`;
    });
    parts.push(`"status":{${entries.join(',')}}`);
  }
  return `{${parts.join(',')}}`;
}

const JSON_HEADERS = { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' };

/** /healthz: the proxy's health and the Node's eligibility. */
export function healthzResponse(state: ProxyHealthState): { status: 200 | 503; body: string } {
  const health = state.health();
  const nodeEligible = state.isNodeEligible();
  const healthy = health.healthy && nodeEligible;
  // kube-proxy reports a healthy proxy as updated "now", as older releases did.
  const shown = healthy ? { ...health, lastUpdatedMs: health.currentTimeMs } : health;
  return { status: healthy ? 200 : 503, body: formatHealthBody(shown, nodeEligible) };
}

/** /livez: the proxy's health only. */
export function livezResponse(state: ProxyHealthState): { status: 200 | 503; body: string } {
  const health = state.health();
  const shown = health.healthy ? { ...health, lastUpdatedMs: health.currentTimeMs } : health;
  return { status: health.healthy ? 200 : 503, body: formatHealthBody(shown) };
}

// ---------------------------------------------------------------------------------------------------
// Server

export interface ProxyHealthServerOptions {
  /** healthzBindAddress: `ip:port` or `[ip]:port` */
  address: string;
  counters?: ProbeCounters;
  log: Logger;
}

/** The HTTP server for `/healthz` and `/livez`. */
export class ProxyHealthServer {
  private readonly server: Server;
  private readonly address: BindAddress;

  constructor(
    private readonly state: ProxyHealthState,
    private readonly opts: ProxyHealthServerOptions,
  ) {
    this.address = parseBindAddress(opts.address, 'healthzBindAddress');
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('error', (err) => opts.log.error({ err }, 'healthz server error'));
  }

  /** Starts listening; rejects (naming the address) when the address cannot be bound. */
  start(): Promise<AddressInfo> {
    return startListening(this.server, this.address, 'healthz', this.opts.log);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = requestPath(req);
    if (path === '/healthz') {
      const { status, body } = healthzResponse(this.state);
      this.opts.counters?.healthz(status);
      respond(res, status, JSON_HEADERS, body);
    } else if (path === '/livez') {
      const { status, body } = livezResponse(this.state);
      this.opts.counters?.livez(status);
      respond(res, status, JSON_HEADERS, body);
    } else {
      notFound(res);
    }
  }
}
