/**
 * Switchboard's proxy for one node namespace, driven by hand: an ObjectStore fed with
 * plain objects, one SnapshotBuilder and one IptablesBackend per family, made the way
 * production makes them (defaultKubeProxyConfiguration → createIptablesBackends, which
 * reads the iptables version and probes the host facts, here the node namespace's).
 * Syncs are full or partial on request; a partial sync names the services changed since
 * the last successful sync, as the sync loop does.
 *
 * The runner is wrapped so a test can make iptables-restore fail on demand.
 */
import { pino } from 'pino';
import { createIptablesBackends, type IptablesBackend } from '../../src/backends/iptables/backend.js';
import { defaultKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import type { Backend } from '../../src/kernel/backend.js';
import { CommandError, type CommandRunner, type RunOptions, type RunResult } from '../../src/kernel/exec.js';
import type { IPFamily } from '../../src/model/ip.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { type ObjectEvent, ObjectStore } from '../../src/model/store.js';
import type { Snapshot } from '../../src/model/types.js';
import type { BackendSyncResult } from '../../src/sync/backend.js';
import { iptablesOptions, topologyOptions } from '../../src/sync/wiring.js';
import { NODE_NAME, nodeObject } from './objects.js';

export const CLUSTER_CIDR = '10.244.0.0/16,fd00:10:244::/48';

export const silentLog = pino({ level: 'silent' });

/** Passes commands through; while `failRestores` is set, every *-restore exits 1. */
export class FaultInjectingRunner implements CommandRunner {
  failRestores = false;
  injected = 0;

  constructor(private readonly inner: CommandRunner) {}

  async run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    if (this.failRestores && cmd.endsWith('-restore')) {
      this.injected++;
      const result = {
        stdout: '',
        stderr: 'iptables-restore: line 1 failed (injected by the test)\n',
        exitCode: 1,
      };
      if (options?.reject !== false)
        throw new CommandError(cmd, args, result, 'exit', 'exit code 1 (injected)');
      return result;
    }
    return this.inner.run(cmd, args, options);
  }
}

export interface NodeProxyOptions {
  backend: Backend;
  families: readonly IPFamily[];
}

export class NodeProxy {
  readonly store = new ObjectStore(NODE_NAME);
  readonly runner: FaultInjectingRunner;
  private readonly config = { ...defaultKubeProxyConfiguration(), clusterCIDR: CLUSTER_CIDR };
  private readonly builders: Map<IPFamily, SnapshotBuilder>;
  private backends = new Map<IPFamily, IptablesBackend>();
  private seq = 0;
  /** service versions at the last successful sync; null before the first */
  private syncedVersions: Map<string, number> | null = null;

  private constructor(
    nodeRunner: CommandRunner,
    readonly options: NodeProxyOptions,
  ) {
    this.runner = new FaultInjectingRunner(nodeRunner);
    this.builders = new Map(
      options.families.map((f) => [f, new SnapshotBuilder(f, topologyOptions(this.config))] as const),
    );
    this.store.apply({ type: 'add', kind: 'Node', object: nodeObject() });
  }

  static async create(nodeRunner: CommandRunner, options: NodeProxyOptions): Promise<NodeProxy> {
    const proxy = new NodeProxy(nodeRunner, options);
    await proxy.restart();
    return proxy;
  }

  apply(...events: readonly ObjectEvent[]): this {
    for (const e of events) this.store.apply(e);
    return this;
  }

  snapshot(family: IPFamily): Snapshot {
    const builder = this.builders.get(family);
    if (!builder) throw new Error(`NodeProxy: no ${family} backend`);
    return builder.build(this.store, nodeInfoFrom(NODE_NAME, this.store.node));
  }

  /**
   * Writes the store's state. `partial` asks for a partial sync of the services changed
   * since the last successful sync (the backend upgrades it to full when it must).
   */
  async sync(mode: 'full' | 'partial' = 'full'): Promise<BackendSyncResult[]> {
    const versions = this.store.versionsSnapshot();
    const changedServices = this.syncedVersions
      ? this.store.changedSince(this.syncedVersions)
      : new Set<string>();
    const request = {
      seq: ++this.seq,
      full: mode === 'full' || this.syncedVersions === null,
      changedServices,
    };
    const results: BackendSyncResult[] = [];
    for (const [family, backend] of this.backends) {
      results.push(await backend.sync(this.snapshot(family), request));
    }
    this.syncedVersions = versions;
    return results;
  }

  /** New backend instances with no memory, as after a process restart; the next sync is their first. */
  async restart(): Promise<void> {
    const backends = await createIptablesBackends({
      runner: this.runner,
      families: this.options.families,
      options: (facts) => iptablesOptions(this.config, facts),
      log: silentLog,
      backend: this.options.backend,
    });
    this.backends = new Map(backends.map((b) => [b.family, b] as const));
    this.seq = 0;
    this.syncedVersions = null;
  }
}
