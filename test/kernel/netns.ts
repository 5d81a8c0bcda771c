/**
 * Network-namespace harness for kernel tests.
 *
 * A topology is a "node" namespace (where Switchboard's rules go), N "pod" namespaces each
 * joined to the node by a veth pair, and an "external" host on the node's LAN:
 *
 *   pod i  eth0 10.244.1.(4i+2)/30, fd00:10:244:1::(4i+2)/126  ── vethp<i> on the node (.1 of the /30)
 *   node   eth0 192.168.0.2/24, fd00:192:168::2/64            ── external eth0 192.168.0.100, fd00:192:168::100
 *
 * All pods sit in 10.244.1.0/24 (the node's pod CIDR) and fd00:10:244:1::/64. Pods and the
 * external host route everything via the node; the node routes by default via the external
 * host (as a real node's gateway is on its LAN) and forwards (sysctls set in the node
 * namespace only). Nothing here touches the root namespace: interfaces are created inside
 * the namespaces (`ip -n`), and every namespace and process is tracked and removed in
 * `teardown()`, on process exit as a last resort, and (for runs that died) by the sweep of
 * `sb-<pid>-*` namespaces whose pid is gone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import {
  type CommandRunner,
  ExecaRunner,
  inNetns,
  type RunOptions,
  type RunResult,
} from '../../src/kernel/exec.js';

/**
 * test/kernel/servers/, found from this module's location upwards: this file is also bundled
 * into dist/vm/ for the VM guest (test/vm/), where import.meta.url is a chunk's.
 */
function serversDir(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    for (const candidate of [join(dir, 'servers'), join(dir, 'test', 'kernel', 'servers')]) {
      if (existsSync(join(candidate, 'echo-server.mjs'))) return candidate;
    }
  }
  throw new Error(`netns.ts: test/kernel/servers/ not found above ${fileURLToPath(import.meta.url)}`);
}
const SERVERS_DIR = serversDir();
const SERVER_SCRIPT = join(SERVERS_DIR, 'echo-server.mjs');
const CLIENT_SCRIPT = join(SERVERS_DIR, 'client.mjs');

export const NODE_IPV4 = '192.168.0.2';
export const NODE_IPV6 = 'fd00:192:168::2';
export const EXTERNAL_IPV4 = '192.168.0.100';
export const EXTERNAL_IPV6 = 'fd00:192:168::100';
export const POD_CIDR_IPV4 = '10.244.1.0/24';
export const POD_CIDR_IPV6 = 'fd00:10:244:1::/64';
const MAX_PODS = 63;

export interface PodNs {
  index: number;
  ns: string;
  ipv4: string;
  ipv6: string;
  /** The node's end of the pod's veth (the pod's gateway). */
  gatewayV4: string;
  gatewayV6: string;
  /** The veth's name in the node namespace. */
  nodeInterface: string;
}

export interface ServerOptions {
  /** Reported in every reply; defaults to the namespace name. */
  name?: string;
  tcp?: number[];
  udp?: number[];
}

export interface ServerHandle {
  ns: string;
  name: string;
  pid: number;
  stop(): Promise<void>;
}

export interface ConnectOptions {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  count?: number;
  timeoutMs?: number;
  concurrency?: number;
  /** Local address to send from. */
  source?: string;
}

export type ConnectResult =
  | {
      ok: true;
      name: string;
      proto: string;
      peer: string;
      peerPort: number;
      local?: string;
      localPort: number;
    }
  | { ok: false; error: string };

/* ----------------------------------------------------------------------------------- */
/* Tracking: everything created is registered here first, so nothing outlives the run. */

const liveNamespaces = new Set<string>();
const liveProcesses = new Map<number, ResultPromise>();
let exitHookInstalled = false;
let swept = false;
let counter = 0;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveProcesses.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const ns of liveNamespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes `sb-<pid>-...` namespaces left behind by test processes that no longer exist. */
export async function sweepStaleNamespaces(runner: CommandRunner = new ExecaRunner()): Promise<string[]> {
  const { stdout } = await runner.run('ip', ['netns', 'list']);
  const removed: string[] = [];
  for (const line of stdout.split('\n')) {
    const name = line.split(/\s/, 1)[0] ?? '';
    const m = /^sb-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    await runner.run('ip', ['netns', 'del', name], { reject: false });
    removed.push(name);
  }
  return removed;
}

async function sweepOnce(runner: CommandRunner): Promise<void> {
  if (swept) return;
  swept = true;
  await sweepStaleNamespaces(runner);
}

function newPrefix(): string {
  counter += 1;
  return `sb-${process.pid}-${counter}`;
}

/* ----------------------------------------------------------------------------------- */

/** Runs a setup command with a timeout; a failure throws naming the command and its stderr. */
async function sh(
  runner: CommandRunner,
  cmd: string,
  args: string[],
  options?: RunOptions,
): Promise<RunResult> {
  return runner.run(cmd, args, { timeoutMs: 30_000, ...options });
}

async function addNamespace(runner: CommandRunner, name: string): Promise<void> {
  liveNamespaces.add(name);
  await sh(runner, 'ip', ['netns', 'add', name]);
  await sh(runner, 'ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  // Without this, each new interface's link-local address stays tentative for ~2 s and
  // the first IPv6 neighbour discovery (hence the first connection) stalls.
  await sh(runner, 'ip', [
    'netns',
    'exec',
    name,
    'sysctl',
    '-q',
    '-w',
    'net.ipv6.conf.all.accept_dad=0',
    'net.ipv6.conf.default.accept_dad=0',
  ]);
}

async function deleteNamespace(runner: CommandRunner, name: string): Promise<void> {
  const r = await runner.run('ip', ['netns', 'del', name], { reject: false });
  if (r.exitCode !== 0 && !/No such file/.test(r.stderr)) {
    throw new Error(`ip netns del ${name}: ${r.stderr.trim()}`);
  }
  liveNamespaces.delete(name);
}

async function stopProcess(pid: number): Promise<void> {
  const child = liveProcesses.get(pid);
  if (!child) return;
  child.kill('SIGTERM');
  const exited = await Promise.race([
    child.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), 2000)),
  ]);
  if (!exited) {
    child.kill('SIGKILL');
    await child.catch(() => undefined);
  }
  liveProcesses.delete(pid);
}

/** A lone namespace with only `lo` up: for restore tests and probes. */
export interface ScratchNetns {
  ns: string;
  /** Runs commands inside the namespace. */
  runner: CommandRunner;
  teardown(): Promise<void>;
}

export async function createScratchNetns(root: CommandRunner = new ExecaRunner()): Promise<ScratchNetns> {
  installExitHook();
  await sweepOnce(root);
  const ns = `${newPrefix()}-scratch`;
  try {
    await addNamespace(root, ns);
  } catch (e) {
    await deleteNamespace(root, ns).catch(() => undefined);
    throw e;
  }
  return { ns, runner: inNetns(root, ns), teardown: () => deleteNamespace(root, ns) };
}

/** Runs `fn` in a fresh scratch namespace, deleted afterwards whatever happens. */
export async function withScratchNetns<T>(fn: (scratch: ScratchNetns) => Promise<T>): Promise<T> {
  const scratch = await createScratchNetns();
  try {
    return await fn(scratch);
  } finally {
    await scratch.teardown();
  }
}

export interface TopologyOptions {
  pods: number;
}

export class Topology {
  readonly node: string;
  readonly external: string;
  readonly pods: PodNs[] = [];
  private readonly namespaces: string[] = [];
  private readonly processes = new Set<number>();
  private tornDown = false;

  private constructor(
    readonly prefix: string,
    readonly root: CommandRunner,
  ) {
    this.node = `${prefix}-node`;
    this.external = `${prefix}-ext`;
  }

  static async create(options: TopologyOptions, root: CommandRunner = new ExecaRunner()): Promise<Topology> {
    if (!Number.isInteger(options.pods) || options.pods < 1 || options.pods > MAX_PODS) {
      throw new Error(`Topology: pods must be 1..${MAX_PODS}, got ${options.pods}`);
    }
    installExitHook();
    await sweepOnce(root);
    const topo = new Topology(newPrefix(), root);
    try {
      await topo.build(options.pods);
    } catch (e) {
      await topo.teardown().catch(() => undefined);
      throw e;
    }
    return topo;
  }

  private async ns(name: string): Promise<void> {
    this.namespaces.push(name);
    await addNamespace(this.root, name);
  }

  private ip(ns: string, ...args: string[]): Promise<RunResult> {
    return sh(this.root, 'ip', ['-n', ns, ...args]);
  }

  private async build(podCount: number): Promise<void> {
    await this.ns(this.node);
    const nodeSh = this.in(this.node);
    await nodeSh.run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    await nodeSh.run('sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);

    // The node's LAN, with the external host on it.
    await this.ns(this.external);
    await this.ip(
      this.node,
      'link',
      'add',
      'eth0',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      this.external,
    );
    await this.ip(this.node, 'addr', 'add', `${NODE_IPV4}/24`, 'dev', 'eth0');
    await this.ip(this.node, 'addr', 'add', `${NODE_IPV6}/64`, 'dev', 'eth0', 'nodad');
    await this.ip(this.node, 'link', 'set', 'eth0', 'up');
    await this.ip(this.external, 'addr', 'add', `${EXTERNAL_IPV4}/24`, 'dev', 'eth0');
    await this.ip(this.external, 'addr', 'add', `${EXTERNAL_IPV6}/64`, 'dev', 'eth0', 'nodad');
    await this.ip(this.external, 'link', 'set', 'eth0', 'up');
    await this.ip(this.external, 'route', 'add', 'default', 'via', NODE_IPV4);
    await this.ip(this.external, '-6', 'route', 'add', 'default', 'via', NODE_IPV6);
    await this.ip(this.node, 'route', 'add', 'default', 'via', EXTERNAL_IPV4);
    await this.ip(this.node, '-6', 'route', 'add', 'default', 'via', EXTERNAL_IPV6);

    for (let i = 0; i < podCount; i++) {
      const pod: PodNs = {
        index: i,
        ns: `${this.prefix}-p${i}`,
        ipv4: `10.244.1.${4 * i + 2}`,
        ipv6: `fd00:10:244:1::${(4 * i + 2).toString(16)}`,
        gatewayV4: `10.244.1.${4 * i + 1}`,
        gatewayV6: `fd00:10:244:1::${(4 * i + 1).toString(16)}`,
        nodeInterface: `vethp${i}`,
      };
      await this.ns(pod.ns);
      await this.ip(
        this.node,
        'link',
        'add',
        pod.nodeInterface,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        pod.ns,
      );
      await this.ip(this.node, 'addr', 'add', `${pod.gatewayV4}/30`, 'dev', pod.nodeInterface);
      await this.ip(this.node, 'addr', 'add', `${pod.gatewayV6}/126`, 'dev', pod.nodeInterface, 'nodad');
      await this.ip(this.node, 'link', 'set', pod.nodeInterface, 'up');
      await this.ip(pod.ns, 'addr', 'add', `${pod.ipv4}/30`, 'dev', 'eth0');
      await this.ip(pod.ns, 'addr', 'add', `${pod.ipv6}/126`, 'dev', 'eth0', 'nodad');
      await this.ip(pod.ns, 'link', 'set', 'eth0', 'up');
      await this.ip(pod.ns, 'route', 'add', 'default', 'via', pod.gatewayV4);
      await this.ip(pod.ns, '-6', 'route', 'add', 'default', 'via', pod.gatewayV6);
      this.pods.push(pod);
    }
  }

  /** A runner whose commands run inside namespace `ns`. */
  in(ns: string): CommandRunner {
    return inNetns(this.root, ns);
  }

  /** Starts an echo server in `ns`; resolves once it listens. */
  async startServer(ns: string, options: ServerOptions): Promise<ServerHandle> {
    const name = options.name ?? ns;
    const args = ['netns', 'exec', ns, process.execPath, SERVER_SCRIPT, '--name', name];
    for (const p of options.tcp ?? []) args.push('--tcp', String(p));
    for (const p of options.udp ?? []) args.push('--udp', String(p));
    // `ip netns exec` execs the command, so this pid is the server's own.
    const child = execa('ip', args, {
      stdin: 'ignore',
      reject: false,
      buffer: { stdout: false, stderr: true },
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start echo server in ${ns}`);
    liveProcesses.set(pid, child);
    this.processes.add(pid);
    const stop = async () => {
      await stopProcess(pid);
      this.processes.delete(pid);
    };
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`echo server ${name} in ${ns}: not ready after 10 s`)),
        10_000,
      );
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('READY\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void child.then((r) => {
        clearTimeout(timer);
        reject(new Error(`echo server ${name} in ${ns} exited (${r.exitCode}): ${String(r.stderr).trim()}`));
      });
    }).catch(async (e) => {
      await stop();
      throw e;
    });
    return { ns, name, pid, stop };
  }

  /** Connects `count` times from `ns` (one client process); results in attempt order. */
  async connect(ns: string, options: ConnectOptions): Promise<ConnectResult[]> {
    return connectFrom(this.root, ns, options);
  }

  /** Stops every server, deletes every namespace; safe to call twice. */
  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    const problems: string[] = [];
    for (const pid of this.processes) {
      await stopProcess(pid).catch((e: Error) => problems.push(e.message));
    }
    this.processes.clear();
    for (const ns of this.namespaces.reverse()) {
      await deleteNamespace(this.root, ns).catch((e: Error) => problems.push(e.message));
    }
    if (problems.length > 0) throw new Error(`teardown of ${this.prefix}: ${problems.join('; ')}`);
  }
}

/** Runs the client script in `ns` and returns its results. */
export async function connectFrom(
  root: CommandRunner,
  ns: string,
  options: ConnectOptions,
): Promise<ConnectResult[]> {
  const count = options.count ?? 1;
  const timeoutMs = options.timeoutMs ?? 2000;
  const concurrency = options.concurrency ?? 1;
  const args = [
    CLIENT_SCRIPT,
    '--proto',
    options.proto,
    '--host',
    options.host,
    '--port',
    String(options.port),
    '--count',
    String(count),
    '--timeout-ms',
    String(timeoutMs),
    '--concurrency',
    String(concurrency),
  ];
  if (options.source) args.push('--source', options.source);
  const budget = Math.ceil(count / concurrency) * timeoutMs + 30_000;
  const r = await inNetns(root, ns).run(process.execPath, args, { timeoutMs: budget });
  const parsed = JSON.parse(r.stdout) as { results: ConnectResult[] };
  return parsed.results;
}

/** Names that answered, counted: `{ 'pod-a': 7, 'pod-b': 3 }`; failures under `!<error>`. */
export function tally(results: readonly ConnectResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const key = r.ok ? r.name : `!${r.error}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
