/**
 * One test topology (test/kernel/netns.ts) with the traffic tests' own processes: echo
 * servers named after their pods, held connections, and a second address on the
 * external host. `teardown()` stops every process before the namespaces go (a process
 * would keep its namespace alive) and is safe to call twice.
 */
import { afterAll, beforeAll } from 'vitest';
import { type Backend, iptablesBinary } from '../../src/kernel/backend.js';
import type { CommandRunner } from '../../src/kernel/exec.js';
import type { IPFamily } from '../../src/model/ip.js';
import { type ConnectOptions, type ConnectResult, type PodNs, Topology } from '../kernel/netns.js';
import { type EchoServer, HeldConnection, type Stoppable, startEchoServer } from './processes.js';

/** What the endpoints listen on. */
export const TCP_TARGET = 8080;
export const UDP_TARGET = 5353;
/** A second address of the external host, for "disallowed source" checks. */
export const EXTERNAL_ALT_IPV4 = '192.168.0.101';
export const EXTERNAL_ALT_IPV6 = 'fd00:192:168::101';

/** Timeout of a connection that should succeed: generous, the machine is shared. */
const OK_TIMEOUT_MS = 5000;
/** Timeout of a connection that should be dropped: long enough for a slow answer to arrive. */
export const DROP_TIMEOUT_MS = 1000;

export const podName = (pod: PodNs) => `pod-${pod.index}`;

export class Lab {
  private readonly processes = new Set<Stoppable>();
  private tornDown = false;

  private constructor(readonly topo: Topology) {}

  /** A lab with `pods` pod namespaces, then `setup` run on it; torn down at once if either fails. */
  static async create(pods: number, setup: (lab: Lab) => Promise<void> = async () => {}): Promise<Lab> {
    const topo = await Topology.create({ pods });
    const lab = new Lab(topo);
    try {
      const external = topo.in(topo.external);
      await external.run('ip', ['addr', 'add', `${EXTERNAL_ALT_IPV4}/24`, 'dev', 'eth0']);
      await external.run('ip', ['addr', 'add', `${EXTERNAL_ALT_IPV6}/64`, 'dev', 'eth0', 'nodad']);
      await setup(lab);
    } catch (e) {
      await lab.teardown().catch(() => undefined);
      throw e;
    }
    return lab;
  }

  get pods(): readonly PodNs[] {
    return this.topo.pods;
  }

  pod(index: number): PodNs {
    const pod = this.topo.pods[index];
    if (!pod) throw new Error(`no pod ${index} in ${this.topo.prefix}`);
    return pod;
  }

  get nodeRunner(): CommandRunner {
    return this.topo.in(this.topo.node);
  }

  /** Echo servers (TCP_TARGET, UDP_TARGET) in each pod, named `pod-<index>`. */
  async startEndpoints(pods: readonly PodNs[]): Promise<void> {
    for (const pod of pods)
      await this.startServer(pod.ns, podName(pod), { tcp: [TCP_TARGET], udp: [UDP_TARGET] });
  }

  async startServer(
    ns: string,
    name: string,
    ports: { tcp?: number[]; udp?: number[] },
  ): Promise<EchoServer> {
    const server = await startEchoServer(ns, name, ports);
    this.processes.add(server);
    return server;
  }

  /** `count` connections (TCP) or exchanges (UDP) from namespace `ns`, several at a time. */
  connect(ns: string, options: ConnectOptions): Promise<ConnectResult[]> {
    return this.topo.connect(ns, { timeoutMs: OK_TIMEOUT_MS, concurrency: 8, ...options });
  }

  /** A TCP connection held open from `ns`. */
  async hold(ns: string, target: { host: string; port: number; source?: string }): Promise<HeldConnection> {
    const held = await HeldConnection.open(ns, target, OK_TIMEOUT_MS);
    this.processes.add(held);
    return held;
  }

  /** `iptables-save` of the node namespace, one backend and family (all tables, or one). */
  async save(backend: Backend, family: IPFamily, table?: string): Promise<string> {
    const r = await this.nodeRunner.run(iptablesBinary(backend, family, 'save'), table ? ['-t', table] : []);
    return r.stdout;
  }

  /** Runs `iptables` / `ip6tables` of `backend` in the node namespace. */
  async iptables(backend: Backend, family: IPFamily, args: readonly string[]): Promise<void> {
    await this.nodeRunner.run(iptablesBinary(backend, family, 'iptables'), ['-w', '5', ...args]);
  }

  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    const problems: string[] = [];
    for (const p of this.processes) await p.stop().catch((e: Error) => problems.push(e.message));
    this.processes.clear();
    await this.topo.teardown().catch((e: Error) => problems.push(e.message));
    if (problems.length > 0) throw new Error(`lab teardown: ${problems.join('; ')}`);
  }
}

/**
 * For a describe block: a lab made (Lab.create with `setup`) before its tests and torn down
 * after them.
 */
export function labPerSuite(pods: number, setup: (lab: Lab) => Promise<void>): void {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await Lab.create(pods, setup);
  });
  afterAll(async () => {
    await lab?.teardown();
  });
}
