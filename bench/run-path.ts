/**
 * The `run` path with the API source, for benchmarks: an API double (test/api/fake-apiserver.ts)
 * serving a synthetic cluster over HTTP from a process of its own (api-double-process.ts), and
 * in this process the production proxy started the way `switchboard run` starts it
 * (startProxy: ClusterSource with the production list-watch timings -> ObjectStore ->
 * SyncLoop -> IptablesBackend, made by createIptablesBackends and wrapped in the conntrack
 * cleaner), writing into a network namespace the caller made. Changes go through the API
 * double as watch events.
 *
 * The double runs apart so that this process's memory is the proxy's (and a little
 * bookkeeping): it holds the whole cluster and serialises every list, a third of the heap at
 * 10,000 services when it shared the process.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
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
import type { ClusterFacts, DoubleArgs, DoubleReply, DoubleRequest } from './api-double-process.js';
import type { ClusterShape } from './synthetic-cluster.js';
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

/** The API double's process, and its answers in order. */
class DoubleProcess {
  private readonly replies: DoubleReply[] = [];
  private wake: (() => void) | null = null;
  private exited: string | null = null;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (reply: DoubleReply) => {
      this.replies.push(reply);
      this.wake?.();
    });
    child.on('exit', (code, signal) => {
      this.exited = `the API double exited (${code ?? signal})`;
      this.wake?.();
    });
  }

  /** Forks the double (the same runtime as this process: tsx or compiled) and waits until it serves. */
  static async start(
    shape: ClusterShape,
  ): Promise<{ double: DoubleProcess; url: string; cluster: ClusterFacts }> {
    const script = sibling('./api-double-process');
    const args: DoubleArgs = { shape };
    // The loader only (tsx): V8 flags given to this process (heap sizes) are the proxy's.
    const execArgv = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const double = new DoubleProcess(fork(script, [JSON.stringify(args)], { stdio: 'inherit', execArgv }));
    const ready = await double.next();
    if (ready.type !== 'ready') throw new Error(`the API double did not start: ${JSON.stringify(ready)}`);
    return { double, url: ready.url, cluster: ready.cluster };
  }

  async ask<T extends DoubleReply['type']>(
    request: DoubleRequest,
    type: T,
  ): Promise<Extract<DoubleReply, { type: T }>> {
    this.child.send(request);
    const reply = await this.next();
    if (reply.type !== type) throw new Error(`API double: ${JSON.stringify(reply)}`);
    return reply as Extract<DoubleReply, { type: T }>;
  }

  private async next(): Promise<DoubleReply> {
    for (;;) {
      const reply = this.replies.shift();
      if (reply) return reply;
      if (this.exited) throw new Error(this.exited);
      await new Promise<void>((resolve) => {
        this.wake = () => {
          this.wake = null;
          resolve();
        };
      });
    }
  }

  async close(): Promise<void> {
    if (this.exited || !this.child.connected) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'close' } satisfies DoubleRequest);
    await gone;
  }
}

const here = fileURLToPath(import.meta.url);

/** A sibling module of this one, in the runtime this process uses (tsx: .ts; --compiled: .js). */
function sibling(relative: string): string {
  const ext = here.endsWith('.ts') ? '.ts' : '.js';
  return resolve(dirname(here), `${relative}${ext}`);
}

/** The node arguments that start the CLI in the runtime this process uses. */
export function cliCommand(): string[] {
  const cli = sibling('../src/cli');
  return cli.endsWith('.ts') ? ['--import', 'tsx', cli] : [cli];
}

/** A kubeconfig for the double (plain HTTP). */
function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'fake', token: 'fake-token' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return kc;
}

export class RunPath {
  readonly config: KubeProxyConfiguration;
  readonly host: HostFacts;
  readonly nodeName: string;
  private proxy: RunningProxy | null = null;
  private readonly seen: Seen[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly double: DoubleProcess,
    private readonly url: string,
    cluster: ClusterFacts,
    private readonly backend: Backend,
    private readonly root: CommandRunner,
    readonly log: Logger,
  ) {
    this.config = syntheticConfig(cluster);
    this.host = syntheticHost(cluster);
    this.nodeName = resolveNodeName(this.config, this.host);
  }

  /** Starts the API double with the scenario's cluster (generated in its process). */
  static async create(options: {
    scenario: string;
    shape: Omit<ClusterShape, 'services' | 'endpointsPerService'>;
    backend: Backend;
    /** runs commands in the root namespace (inNetns is added per proxy) */
    root: CommandRunner;
    log?: Logger;
  }): Promise<RunPath> {
    const shape = { ...options.shape, ...parseScenarioName(options.scenario) };
    const { double, url, cluster } = await DoubleProcess.start(shape);
    return new RunPath(
      double,
      url,
      cluster,
      options.backend,
      options.root,
      options.log ?? createLogger(process.env['BENCH_LOG'] ?? 'warn'),
    );
  }

  /** The services the endpoint changes pick (see world.ts' pickChangeTargets). */
  async changeTargets(count: number): Promise<number[]> {
    return (await this.double.ask({ type: 'targets', count }, 'targets')).indexes;
  }

  /** Has the double write the cluster into `dir` as kubectl prints it; returns the JSON file. */
  async writeDump(dir: string): Promise<string> {
    return (await this.double.ask({ type: 'dump', dir }, 'dumped')).json;
  }

  /** Has the double write the cluster's rules into `netns` the way kube-proxy writes them. */
  /** The port the double listens on, on 127.0.0.1. */
  get apiPort(): number {
    return Number(new URL(this.url).port);
  }

  /** A kubeconfig file's text for the double, for a `switchboard run` child. */
  kubeConfigText(): string {
    return kubeConfigFor(this.url).exportConfig();
  }

  async writeLikeKubeProxy(netns: string): Promise<void> {
    await this.double.ask({ type: 'write-like-kube-proxy', netns, backend: this.backend }, 'written');
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
        kubeConfig: kubeConfigFor(this.url),
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
    const from = this.seen.length;
    const t0 = performance.now();
    const { serviceKey } = await this.double.ask({ type: 'change', serviceIndex, k }, 'changed');
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
    await this.double.close();
  }

  private onSynced(report: SyncReport): void {
    // Without the snapshots: holding every sync's would keep old service states alive.
    this.seen.push({ report: { ...report, snapshots: [] }, atMs: performance.now() });
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
