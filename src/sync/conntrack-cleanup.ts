/**
 * Clearing stale UDP conntrack entries after a sync, as kube-proxy does.
 *
 * UDP has no connection to close: a conntrack entry made while a service IP:port led
 * somewhere else (an endpoint since removed, or nowhere because no rule existed yet) keeps
 * every later datagram of the same 5-tuple on that old path until the entry idles out,
 * which a client sending steadily (DNS from a fixed port, syslog, ...) never lets happen.
 *
 * The approach is current kube-proxy's (pkg/proxy/conntrack/cleanup.go CleanStaleEntries,
 * which replaced the older per-change deleteStaleServiceConntrackEntries /
 * deleteStaleEndpointConntrackEntries): list the family's UDP flows and delete each one
 * addressed to a service frontend whose DNAT target is not a serving endpoint of that
 * service port:
 * - frontends are ClusterIP:port, each LoadBalancer VIP:port and externalIP:port (matched
 *   on `--orig-dst`/`--orig-port-dst`), and the NodePort on any address (matched on
 *   `--orig-port-dst` alone);
 * - "serving endpoint" is every endpoint of the port with serving=true, whatever the
 *   traffic policies, topology or terminating state (kube-proxy: changes to a service must
 *   not break existing flows, as for TCP);
 * - a flow that was never DNATed (reply source = the service IP itself) is stale too: this
 *   is what frees a 5-tuple pinned while the service had no rules;
 * - service ports without serving endpoints are left alone, and only UDP is cleaned (SCTP,
 *   cleaned by older kube-proxy, no longer is);
 * - the deletion filter is kube-proxy's: orig-dst + orig-port-dst (or orig-port-dst alone
 *   for a NodePort) + reply-src + reply-port-src, so one command covers every client of a
 *   stale (frontend, old target) pair.
 *
 * Like kube-proxy (UpdateEndpointsMapResult.ConntrackCleanupRequired) the table is only
 * listed when something that matters changed since the last successful sync; here the test
 * is on the snapshots: some UDP service port's frontends or serving endpoints differ (which
 * also covers a Service created or given a new externalIP after its endpoints existed, which
 * kube-proxy's endpoints-only trigger misses), or a previous cleanup failed.
 */
import {
  type ConntrackDeleteFilter,
  type ConntrackFlow,
  type ConntrackTable,
  PROTOCOL_NUMBERS,
} from '../kernel/conntrack.js';
import { CommandError } from '../kernel/exec.js';
import type { Logger } from '../log.js';
import type { IPFamily, Protocol, ServicePortState, Snapshot } from '../model/types.js';
import type { BackendSyncResult, ProxyBackend, SyncRequest } from './backend.js';

/** The protocol whose stale flows are deleted (current kube-proxy: UDP only). */
export const CLEANED_PROTOCOL: Protocol = 'UDP';

const portKey = (sp: ServicePortState) => `${sp.port.serviceKey}|${sp.port.portName}|${sp.port.protocol}`;
const addressKey = (ip: string, port: number) => `${ip}|${port}`;

function servingEndpoints(sp: ServicePortState): string[] {
  return sp.endpoints.filter((e) => e.serving).map((e) => addressKey(e.ip, e.port));
}

/** What the cleanup of one service port depends on: its frontends and serving endpoints. */
function cleanupView(sp: ServicePortState): string {
  const p = sp.port;
  return JSON.stringify([
    p.clusterIP,
    p.port,
    p.nodePort,
    [...p.externalIPs].sort(),
    [...p.loadBalancerVIPs].sort(),
    servingEndpoints(sp).sort(),
  ]);
}

function cleanedPorts(snapshot: Snapshot | null): Map<string, ServicePortState> {
  const out = new Map<string, ServicePortState>();
  for (const sp of snapshot?.servicePorts ?? [])
    if (sp.port.protocol === CLEANED_PROTOCOL) out.set(portKey(sp), sp);
  return out;
}

/**
 * Whether the conntrack table needs a look after going from `previous` (the last
 * successfully synced snapshot of this family, null before the first) to `current`.
 */
export function conntrackCleanupRequired(previous: Snapshot | null, current: Snapshot): boolean {
  if (previous && previous.family !== current.family) {
    throw new Error(
      `conntrack cleanup: snapshots of different families (${previous.family}, ${current.family})`,
    );
  }
  const before = cleanedPorts(previous);
  const after = cleanedPorts(current);
  if (before.size !== after.size) return true;
  for (const [key, sp] of after) {
    const old = before.get(key);
    if (!old) return true;
    // The snapshot builder hands out the same object for an unchanged service.
    if (old !== sp && cleanupView(old) !== cleanupView(sp)) return true;
  }
  return false;
}

/** One `conntrack -D` to run, with why. */
export interface CleanupAction {
  filter: ConntrackDeleteFilter;
  /** the flows were addressed to a service IP:port, or to a NodePort on any address */
  match: 'service-ip' | 'node-port';
  /** the service ports (nameString) owning that frontend */
  servicePorts: string[];
  /** how many of the listed flows the filter covers */
  flows: number;
}

interface Frontend {
  endpoints: Set<string>;
  servicePorts: Set<string>;
}

function addFrontend<K>(map: Map<K, Frontend>, key: K, endpoints: readonly string[], name: string): void {
  let f = map.get(key);
  if (!f) {
    f = { endpoints: new Set(), servicePorts: new Set() };
    map.set(key, f);
  }
  // Two service ports on one frontend (a shared externalIP): a flow to either's endpoints is kept.
  for (const e of endpoints) f.endpoints.add(e);
  f.servicePorts.add(name);
}

/**
 * The deletions that clear every listed UDP flow of `current`'s family addressed to a
 * service frontend but not DNATed to one of that service port's serving endpoints.
 * Actions come in the order of the first flow each covers.
 */
export function staleConntrackEntries(current: Snapshot, flows: readonly ConntrackFlow[]): CleanupAction[] {
  const byAddress = new Map<string, Frontend>();
  const byNodePort = new Map<number, Frontend>();
  for (const sp of current.servicePorts) {
    const p = sp.port;
    if (p.protocol !== CLEANED_PROTOCOL) continue;
    const endpoints = servingEndpoints(sp);
    // kube-proxy: a service port without endpoints needs no cleaning (its traffic is rejected).
    if (endpoints.length === 0) continue;
    for (const ip of [p.clusterIP, ...p.loadBalancerVIPs, ...p.externalIPs]) {
      addFrontend(byAddress, addressKey(ip, p.port), endpoints, p.nameString);
    }
    if (p.nodePort !== 0) addFrontend(byNodePort, p.nodePort, endpoints, p.nameString);
  }

  const actions = new Map<string, CleanupAction>();
  const add = (match: CleanupAction['match'], filter: ConntrackDeleteFilter, frontend: Frontend) => {
    const key = JSON.stringify([
      match,
      filter.origDst,
      filter.origDstPort,
      filter.replySrc,
      filter.replySrcPort,
    ]);
    const action = actions.get(key);
    if (action) action.flows++;
    else actions.set(key, { filter, match, servicePorts: [...frontend.servicePorts].sort(), flows: 1 });
  };
  const protocol = PROTOCOL_NUMBERS[CLEANED_PROTOCOL];
  for (const flow of flows) {
    if (flow.protocol !== protocol || flow.family !== current.family) continue;
    const { original, reply } = flow;
    // For a DNATed flow the reply comes from the endpoint; otherwise from the service IP itself.
    const target = addressKey(reply.src, reply.sport);
    const common = {
      family: current.family,
      protocol: CLEANED_PROTOCOL,
      origDstPort: original.dport,
      replySrc: reply.src,
      replySrcPort: reply.sport,
    };
    const service = byAddress.get(addressKey(original.dst, original.dport));
    if (service && !service.endpoints.has(target)) {
      add('service-ip', { ...common, origDst: original.dst }, service);
      continue;
    }
    const nodePort = byNodePort.get(original.dport);
    if (nodePort && !nodePort.endpoints.has(target)) add('node-port', common, nodePort);
  }
  return [...actions.values()];
}

export interface ConntrackCleanupReport {
  /** whether the table was looked at */
  ran: boolean;
  flowsListed: number;
  actions: number;
  /** entries conntrack reported deleted */
  deleted: number;
  /** commands that failed (listing included) */
  failures: number;
  durationMs: number;
}

export interface ConntrackCleanerOptions {
  family: IPFamily;
  /** production: `new Conntrack(new ExecaRunner())`; tests: in a namespace, or a fake */
  conntrack: ConntrackTable;
  log: Logger;
  /**
   * Called after each run that looked at the table, for kube-proxy's metrics:
   * kubeproxy_conntrack_reconciler_sync_duration_seconds{ip_family} (durationMs) and
   * kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family} (deleted).
   */
  onReport?: (family: IPFamily, report: ConntrackCleanupReport) => void;
}

/**
 * Runs the cleanup for one IP family after each successful sync. Best effort, like
 * kube-proxy's: failures are logged and retried after the next sync, never thrown.
 */
export class ConntrackCleaner {
  readonly family: IPFamily;
  private readonly conntrack: ConntrackTable;
  private readonly log: Logger;
  private readonly onReport: ConntrackCleanerOptions['onReport'];
  /** the last run failed somewhere: look again next time even without a change */
  private retry = false;
  /** `conntrack` is not installed: said once at error level, then quietly */
  private missingReported = false;

  constructor(options: ConntrackCleanerOptions) {
    this.family = options.family;
    this.conntrack = options.conntrack;
    this.log = options.log.child({ component: 'conntrack-cleanup', family: options.family });
    this.onReport = options.onReport;
  }

  /** `previous`: the snapshot of the last successful sync of this family (null before the first). */
  async afterSync(previous: Snapshot | null, current: Snapshot): Promise<ConntrackCleanupReport> {
    const started = performance.now();
    const report: ConntrackCleanupReport = {
      ran: false,
      flowsListed: 0,
      actions: 0,
      deleted: 0,
      failures: 0,
      durationMs: 0,
    };
    try {
      if (current.family !== this.family) {
        throw new Error(`got a ${current.family} snapshot, cleaning ${this.family}`);
      }
      if (!this.retry && !conntrackCleanupRequired(previous, current)) return report;
      report.ran = true;
      const flows = await this.conntrack.list(this.family, CLEANED_PROTOCOL);
      report.flowsListed = flows.length;
      const actions = staleConntrackEntries(current, flows);
      report.actions = actions.length;
      for (const action of actions) {
        try {
          report.deleted += await this.conntrack.delete(action.filter);
          this.log.debug({ ...action }, 'deleted stale conntrack entries');
        } catch (e) {
          report.failures++;
          this.log.warn({ err: e, ...action }, 'could not delete stale conntrack entries');
        }
      }
      this.missingReported = false;
    } catch (e) {
      report.failures++;
      this.reportFailure(e);
    }
    this.retry = report.failures > 0;
    report.durationMs = Math.round(performance.now() - started);
    const summary = { ...report, retryNextSync: this.retry };
    this.log[report.deleted > 0 || report.failures > 0 ? 'info' : 'debug'](summary, 'conntrack cleanup done');
    if (report.ran && this.onReport) {
      try {
        this.onReport(this.family, report);
      } catch (e) {
        this.log.warn({ err: e }, 'conntrack cleanup report callback failed');
      }
    }
    return report;
  }

  private reportFailure(e: unknown): void {
    const missing = e instanceof CommandError && e.reason === 'spawn';
    if (missing && this.missingReported) {
      this.log.debug({ err: e }, 'conntrack cleanup skipped: conntrack cannot be run');
      return;
    }
    if (missing) this.missingReported = true;
    const message = missing
      ? 'conntrack cannot be run (is conntrack-tools installed?): stale UDP flows are not cleared'
      : 'conntrack cleanup failed: stale UDP flows may persist; retrying after the next sync';
    this.log.error({ err: e }, message);
  }
}

/**
 * A backend that runs a ConntrackCleaner after each of its successful syncs, comparing
 * with the snapshot of its previous successful sync. Wrap each real (kernel) backend with
 * it; the sync loop needs no change.
 */
export class ConntrackCleaningBackend implements ProxyBackend {
  readonly family: IPFamily;
  readonly description: string;
  private lastSynced: Snapshot | null = null;

  constructor(
    private readonly inner: ProxyBackend,
    private readonly cleaner: ConntrackCleaner,
  ) {
    if (inner.family !== cleaner.family) {
      throw new Error(`${inner.description}: conntrack cleaner is for ${cleaner.family}`);
    }
    this.family = inner.family;
    this.description = inner.description;
  }

  async sync(snapshot: Snapshot, request: SyncRequest): Promise<BackendSyncResult> {
    const result = await this.inner.sync(snapshot, request);
    const previous = this.lastSynced;
    this.lastSynced = snapshot;
    await this.cleaner.afterSync(previous, snapshot);
    return result;
  }

  lostState(): Promise<boolean> {
    return this.inner.lostState();
  }

  starting(): void {
    this.inner.starting?.();
  }
}
