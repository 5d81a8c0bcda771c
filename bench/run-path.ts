/**
 * The `run` path with the API source, in this process, for benchmarks: an API double
 * (test/api/fake-apiserver.ts) serving a synthetic cluster over HTTP, and the production
 * proxy started the way `switchboard run` starts it (startProxy: ClusterSource with the
 * production list-watch timings -> ObjectStore -> SyncLoop -> IptablesBackend, made by
 * createIptablesBackends and wrapped in the conntrack cleaner), writing into a network
 * namespace the caller made. Changes go through the API double as watch events.
 *
 * The API double shares the process (and its event loop and heap) with the proxy: its own
 * work is small next to the proxy's for a watch event, but it serialises every list for
 * the initial sync, and it holds its copy of the objects (count that when reading RSS).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { createIptablesBackends } from '../src/backends/iptables/backend.js';
import type { HostFacts } from '../src/config/host.js';
import type { KubeProxyConfiguration } from '../src/config/kubeproxy.js';
import type { Backend } from '../src/kernel/backend.js';
import { Conntrack } from '../src/kernel/conntrack.js';
import { type CommandRunner, inNetns } from '../src/kernel/exec.js';
import { createLogger, type Logger } from '../src/log.js';
import { ClusterSource } from '../src/sources/cluster.js';
import type { SyncReport } from '../src/sync/backend.js';
import { ConntrackCleaner, ConntrackCleaningBackend } from '../src/sync/conntrack-cleanup.js';
import { type RunningProxy, startProxy } from '../src/sync/run.js';
import { iptablesOptions, resolveNodeName } from '../src/sync/wiring.js';
import { FakeApiServer, type KubeObject } from '../test/api/fake-apiserver.js';
import { firstReadyEndpoint, replaceEndpointIP } from './endpoint-change.js';
import { type ClusterShape, podIP, type SyntheticCluster, syntheticCluster } from './synthetic-cluster.js';
import { syntheticConfig, syntheticHost } from './synthetic-config.js';
import { parseScenarioName } from './world.js';

/** A sync the observer saw, with when it ended (performance.now()). */
interface Seen {
  report: SyncReport;
  atMs: number;
}

export interface ProxyStart {
  /** from startProxy() to the end of the first sync */
  ms: number;
  /** from startProxy() to the start of the first sync: list, store */
  listedMs: number;
  /** CPU over the same span: this process (proxy and API double), and the commands it ran */
  cpu: CpuTime;
  report: SyncReport;
}

/** CPU time used so far, in ms: this process, and its children that ended (iptables, ip, ...). */
export interface CpuTime {
  selfMs: number;
  childrenMs: number;
}

let clockTicks: number | null = null;

export function cpuTime(): CpuTime {
  const self = process.cpuUsage();
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  // /proc/self/stat: after "pid (comm) ", fields 14 and 15 (0-based from state) are cutime, cstime.
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const children = Number(fields[13]) + Number(fields[14]);
  return { selfMs: (self.user + self.system) / 1000, childrenMs: (children * 1000) / clockTicks };
}

export function cpuSince(start: CpuTime): CpuTime {
  const now = cpuTime();
  return { selfMs: now.selfMs - start.selfMs, childrenMs: now.childrenMs - start.childrenMs };
}

export interface EndpointChangeResult {
  serviceKey: string;
  /** from handing the changed slice to the API double to the end of the sync that applied it */
  ms: number;
  report: SyncReport;
}

function asKubeObject(object: unknown): KubeObject {
  return object as KubeObject;
}

export class RunPath {
  readonly cluster: SyntheticCluster;
  readonly config: KubeProxyConfiguration;
  readonly host: HostFacts;
  readonly nodeName: string;
  private proxy: RunningProxy | null = null;
  private readonly seen: Seen[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    readonly fake: FakeApiServer,
    cluster: SyntheticCluster,
    private readonly backend: Backend,
    private readonly root: CommandRunner,
    readonly log: Logger,
  ) {
    this.cluster = cluster;
    this.config = syntheticConfig(cluster);
    this.host = syntheticHost(cluster);
    this.nodeName = resolveNodeName(this.config, this.host);
  }

  /** Generates the cluster and loads it into a fresh API double. */
  static async create(options: {
    scenario: string;
    shape: Omit<ClusterShape, 'services' | 'endpointsPerService'>;
    backend: Backend;
    /** runs commands in the root namespace (inNetns is added per proxy) */
    root: CommandRunner;
    log?: Logger;
  }): Promise<RunPath> {
    const cluster = syntheticCluster({ ...options.shape, ...parseScenarioName(options.scenario) });
    const fake = await FakeApiServer.start();
    fake.apply('nodes', asKubeObject(cluster.node));
    for (const svc of cluster.services) fake.apply('services', asKubeObject(svc));
    for (const slice of cluster.slices) fake.apply('endpointslices', asKubeObject(slice));
    return new RunPath(
      fake,
      cluster,
      options.backend,
      options.root,
      options.log ?? createLogger(process.env['BENCH_LOG'] ?? 'warn'),
    );
  }

  get running(): RunningProxy | null {
    return this.proxy;
  }

  /** Starts a proxy writing into network namespace `ns`; resolves when its first sync ended. */
  async startProxy(ns: string): Promise<ProxyStart> {
    if (this.proxy) throw new Error('run path: a proxy is already running');
    const from = this.seen.length;
    const cpu0 = cpuTime();
    const t0 = performance.now();
    const wall0 = Date.now();
    const runner = inNetns(this.root, ns);
    this.proxy = await startProxy({
      config: this.config,
      host: this.host,
      families: ['IPv4'],
      source: new ClusterSource({
        nodeName: this.nodeName,
        log: this.log,
        kubeConfig: this.fake.kubeConfig(),
      }),
      createBackends: async ({ families, config, host, log }) => {
        const backends = await createIptablesBackends({
          runner,
          families,
          options: (facts) => iptablesOptions(config, facts),
          hostFacts: host,
          log,
          backend: this.backend,
        });
        const conntrack = new Conntrack(runner);
        return backends.map(
          (b) => new ConntrackCleaningBackend(b, new ConntrackCleaner({ family: b.family, conntrack, log })),
        );
      },
      observers: [{ synced: (report) => this.onSynced(report) }],
      log: this.log,
    });
    const first = await this.waitFor((s) => s.report.seq === 1, from);
    if (!first.report.ok) throw new Error(`first sync failed: ${first.report.error?.message}`);
    return {
      ms: first.atMs - t0,
      listedMs: first.report.startedAtMs - wall0,
      cpu: cpuSince(cpu0),
      report: first.report,
    };
  }

  /** Stops the proxy (the rules stay in place). */
  async stopProxy(): Promise<void> {
    const proxy = this.proxy;
    this.proxy = null;
    await proxy?.stop();
  }

  /**
   * Replaces the first ready endpoint of service `serviceIndex` (a new pod on the same node;
   * the k-th change gets an address the generator never uses) through the API double, and
   * resolves when a sync applied it.
   */
  async changeEndpoint(serviceIndex: number, k: number): Promise<EndpointChangeResult> {
    const svc = this.cluster.services[serviceIndex]!;
    const serviceKey = `${svc.metadata!.namespace}/${svc.metadata!.name}`;
    const slice: V1EndpointSlice = this.cluster.slices[serviceIndex]!;
    const index = firstReadyEndpoint(slice);
    const node = Number((slice.endpoints[index]?.nodeName ?? 'node-001').slice('node-'.length)) - 1;
    const change = replaceEndpointIP(
      slice,
      index,
      podIP(node, 200 * 256 + k),
      ++this.cluster.lastResourceVersion,
    );
    this.cluster.slices[serviceIndex] = change.slice;
    const from = this.seen.length;
    const t0 = performance.now();
    this.fake.apply('endpointslices', asKubeObject(change.slice));
    const done = await this.waitFor(
      (s) => s.report.ok && s.report.appliedChanges.some((c) => c.serviceKey === serviceKey),
      from,
    );
    return { serviceKey, ms: done.atMs - t0, report: done.report };
  }

  /** The last sync seen, if any. */
  lastSync(): SyncReport | undefined {
    return this.seen.at(-1)?.report;
  }

  async close(): Promise<void> {
    await this.stopProxy();
    await this.fake.close();
  }

  private onSynced(report: SyncReport): void {
    this.seen.push({ report, atMs: performance.now() });
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The first sync seen at index >= `from` that matches, waiting for it if need be. */
  private async waitFor(match: (s: Seen) => boolean, from: number, timeoutMs = 600_000): Promise<Seen> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.seen.slice(from).find(match);
      if (found) return found;
      const failed = this.seen.slice(from).find((s) => !s.report.ok);
      if (failed) throw new Error(`a sync failed: ${failed.report.error?.message}`);
      if (performance.now() > deadline) throw new Error('run path: timed out waiting for a sync');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
