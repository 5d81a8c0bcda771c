/**
 * Stale UDP conntrack entries in real namespaces: a client pod sends datagrams from a fixed
 * source port (one 5-tuple, one conntrack entry) to a service; the node's rules are
 * written by IptablesBackend and cleaned by ConntrackCleaner, as in production. Each case
 * shows the flow staying on its old path after the rules changed, and moving once the
 * cleaner ran.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import { Conntrack, type ConntrackFlow } from '../../src/kernel/conntrack.js';
import type { IPFamily } from '../../src/model/ip.js';
import { SnapshotBuilder } from '../../src/model/snapshot.js';
import { type ObjectEvent, ObjectStore } from '../../src/model/store.js';
import type { NodeInfo, Snapshot } from '../../src/model/types.js';
import { ConntrackCleaner, type ConntrackCleanupReport } from '../../src/sync/conntrack-cleanup.js';
import { NODE_IPV4, NODE_IPV6, POD_CIDR_IPV4, POD_CIDR_IPV6, type PodNs, Topology } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { iptablesOptions } from '../unit/builders.js';

const CLIENT_SCRIPT = fileURLToPath(new URL('./udp-client.mjs', import.meta.url));
const NODE_NAME = 'node-1';
const SERVICE_PORT = 53;
const TARGET_PORT = 5353;
/** Long enough for a reply through two veths, short enough that a silent path costs little. */
const REPLY_TIMEOUT_MS = 1000;

type UdpResult = { ok: true; name: string } | { ok: false; error: string };

const silentLog = pino({ level: 'silent' });

function conntrackProblem(): string | null {
  try {
    execFileSync('conntrack', ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return null;
  } catch (e) {
    return `\`conntrack --version\` failed (is conntrack-tools installed?): ${(e as Error).message}`;
  }
}

/** describeKernel, also requiring the conntrack CLI (CI fails without it, elsewhere it is skipped). */
function describeConntrackKernel(name: string, body: () => void): void {
  const problem = conntrackProblem();
  if (problem === null) {
    describeKernel(name, body);
  } else if (!['', '0', 'false'].includes(process.env['CI'] ?? '')) {
    describe(name, () => {
      it('has conntrack (required in CI)', () => {
        throw new Error(`conntrack kernel tests cannot run: ${problem}`);
      });
    });
  } else {
    console.warn(`\n*** SKIPPING kernel tests "${name}": ${problem}. CI runs them. ***\n`);
    describe.skip(name, body);
  }
}

const ipOf = (pod: PodNs, family: IPFamily) => (family === 'IPv4' ? pod.ipv4 : pod.ipv6);

function serviceObject(name: string, clusterIP: string, family: IPFamily): ObjectEvent {
  return {
    type: 'add',
    kind: 'Service',
    object: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'ct' },
      spec: {
        type: 'ClusterIP',
        clusterIP,
        clusterIPs: [clusterIP],
        ipFamilies: [family],
        ports: [{ name: 'dns', port: SERVICE_PORT, protocol: 'UDP', targetPort: TARGET_PORT }],
      },
    },
  };
}

function sliceObject(service: string, family: IPFamily, addresses: string[]): ObjectEvent {
  return {
    type: 'add',
    kind: 'EndpointSlice',
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${service}-1`, namespace: 'ct', labels: { 'kubernetes.io/service-name': service } },
      addressType: family,
      endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true, serving: true } })),
      ports: [{ name: 'dns', port: TARGET_PORT, protocol: 'UDP' }],
    },
  };
}

/** The proxy for one family inside a topology's node namespace, driven by hand. */
class NodeProxy {
  readonly store = new ObjectStore(NODE_NAME);
  readonly conntrack: Conntrack;
  readonly cleaner: ConntrackCleaner;
  private readonly builder: SnapshotBuilder;
  private readonly backend: IptablesBackend;
  private readonly node: NodeInfo;
  private seq = 0;
  /** snapshot of the last sync, and of the one before */
  current: Snapshot | null = null;
  previous: Snapshot | null = null;

  constructor(
    topo: Topology,
    readonly family: IPFamily,
  ) {
    const runner = topo.in(topo.node);
    this.builder = new SnapshotBuilder(family, { preferSameNode: false });
    this.node = {
      name: NODE_NAME,
      labels: {},
      ips: [family === 'IPv4' ? NODE_IPV4 : NODE_IPV6],
      podCIDRs: [family === 'IPv4' ? POD_CIDR_IPV4 : POD_CIDR_IPV6],
    };
    this.backend = new IptablesBackend({
      runner,
      backend: 'nft',
      family,
      options: iptablesOptions({ clusterCIDR: '10.244.0.0/16,fd00:10:244::/48' }),
      log: silentLog,
    });
    this.conntrack = new Conntrack(runner);
    this.cleaner = new ConntrackCleaner({ family, conntrack: this.conntrack, log: silentLog });
  }

  apply(...events: ObjectEvent[]): this {
    for (const e of events) this.store.apply(e);
    return this;
  }

  /** Writes the rules for the store's objects (no conntrack cleanup). */
  async sync(): Promise<void> {
    const snapshot = this.builder.build(this.store, this.node);
    await this.backend.sync(snapshot, { seq: ++this.seq, full: true, changedServices: new Set() });
    this.previous = this.current;
    this.current = snapshot;
  }

  /** What the sync loop does after a successful sync. */
  cleanup(): Promise<ConntrackCleanupReport> {
    return this.cleaner.afterSync(this.previous, this.current!);
  }

  async flowsTo(ip: string): Promise<ConntrackFlow[]> {
    return (await this.conntrack.list(this.family, 'UDP')).filter((f) => f.original.dst === ip);
  }
}

async function send(
  topo: Topology,
  client: PodNs,
  host: string,
  sport: number,
  count = 1,
): Promise<UdpResult[]> {
  const args = [CLIENT_SCRIPT, '--host', host, '--port', String(SERVICE_PORT), '--sport', String(sport)];
  args.push('--count', String(count), '--timeout-ms', String(REPLY_TIMEOUT_MS));
  const r = await topo.in(client.ns).run(process.execPath, args, { timeoutMs: 30_000 });
  return (JSON.parse(r.stdout) as { results: UdpResult[] }).results;
}

const names = (results: UdpResult[]) => results.map((r) => (r.ok ? r.name : `!${r.error}`));

async function withTopology(fn: (topo: Topology) => Promise<void>): Promise<void> {
  const topo = await Topology.create({ pods: 3 });
  try {
    await fn(topo);
  } finally {
    await topo.teardown();
  }
}

describeConntrackKernel('conntrack cleanup of stale UDP flows', () => {
  for (const family of ['IPv4', 'IPv6'] as const) {
    it(`${family}: a flow pinned to a removed endpoint moves to the remaining one after cleanup`, async () => {
      await withTopology(async (topo) => {
        const [client, podA, podB] = topo.pods as [PodNs, PodNs, PodNs];
        const servers = {
          'ep-a': await topo.startServer(podA.ns, { name: 'ep-a', udp: [TARGET_PORT] }),
          'ep-b': await topo.startServer(podB.ns, { name: 'ep-b', udp: [TARGET_PORT] }),
        };
        const clusterIP = family === 'IPv4' ? '10.96.0.10' : 'fd00:96::10';
        const proxy = new NodeProxy(topo, family);
        proxy.apply(
          serviceObject('dns', clusterIP, family),
          sliceObject('dns', family, [ipOf(podA, family), ipOf(podB, family)]),
        );
        await proxy.sync();
        await proxy.cleanup();

        // The same 5-tuple keeps reaching the endpoint its first datagram was DNATed to.
        const first = names(await send(topo, client, clusterIP, 40000, 3));
        expect(['ep-a', 'ep-b']).toContain(first[0]);
        expect(first).toEqual([first[0], first[0], first[0]]);
        const pinned = first[0] as 'ep-a' | 'ep-b';
        const [removedPod, remaining] = pinned === 'ep-a' ? [podA, 'ep-b'] : [podB, 'ep-a'];
        const keptPod = pinned === 'ep-a' ? podB : podA;

        // The endpoint leaves the service: new flows avoid it, the old one does not.
        proxy.apply(sliceObject('dns', family, [ipOf(keptPod, family)]));
        await proxy.sync();
        expect(names(await send(topo, client, clusterIP, 40001))).toEqual([remaining]);
        expect(names(await send(topo, client, clusterIP, 40000, 2))).toEqual([pinned, pinned]);
        // The pod goes away too: the pinned flow is now a black hole.
        await servers[pinned].stop();
        expect(names(await send(topo, client, clusterIP, 40000))).toEqual(['!ECONNREFUSED']);
        const stale = await proxy.flowsTo(clusterIP);
        expect(stale.map((f) => [f.original.sport, f.reply.src])).toContainEqual([
          40000,
          ipOf(removedPod, family),
        ]);

        const report = await proxy.cleanup();
        expect(report).toMatchObject({ ran: true, actions: 1, failures: 0 });
        expect(report.deleted).toBeGreaterThanOrEqual(1);
        expect(names(await send(topo, client, clusterIP, 40000, 2))).toEqual([remaining, remaining]);
        // Nothing changed since: the next sync does not even list the table.
        await proxy.sync();
        expect(await proxy.cleanup()).toMatchObject({ ran: false });
      });
    });
  }

  it('IPv4: datagrams sent while the service had no rules stay pinned until cleanup', async () => {
    await withTopology(async (topo) => {
      const [client, , podB] = topo.pods as [PodNs, PodNs, PodNs];
      await topo.startServer(podB.ns, { name: 'ep-b', udp: [TARGET_PORT] });
      const clusterIP = '10.96.0.30';
      const proxy = new NodeProxy(topo, 'IPv4');
      await proxy.sync();
      await proxy.cleanup();

      // Unknown to the proxy: routed out the node's default route and lost there (dropped, or
      // looping until its TTL runs out if the external host forwards), but conntracked on the
      // node without any NAT.
      expect(await send(topo, client, clusterIP, 42000)).toMatchObject([{ ok: false }]);
      const unNATed = await proxy.flowsTo(clusterIP);
      expect(unNATed.map((f) => [f.original.sport, f.reply.src, f.reply.sport])).toEqual([
        [42000, clusterIP, SERVICE_PORT],
      ]);

      proxy.apply(serviceObject('late', clusterIP, 'IPv4'), sliceObject('late', 'IPv4', [podB.ipv4]));
      await proxy.sync();
      expect(names(await send(topo, client, clusterIP, 42001))).toEqual(['ep-b']);
      expect(await send(topo, client, clusterIP, 42000)).toMatchObject([{ ok: false }]);

      const report = await proxy.cleanup();
      expect(report).toMatchObject({ ran: true, actions: 1, deleted: 1, failures: 0 });
      expect(names(await send(topo, client, clusterIP, 42000, 2))).toEqual(['ep-b', 'ep-b']);
    });
  });

  it('IPv4: a service without endpoints rejects without leaving an entry; once it has one, the same 5-tuple reaches it', async () => {
    await withTopology(async (topo) => {
      const [client, podA] = topo.pods as [PodNs, PodNs, PodNs];
      await topo.startServer(podA.ns, { name: 'ep-a', udp: [TARGET_PORT] });
      const clusterIP = '10.96.0.20';
      const proxy = new NodeProxy(topo, 'IPv4');
      proxy.apply(serviceObject('empty', clusterIP, 'IPv4'), sliceObject('empty', 'IPv4', []));
      await proxy.sync();
      await proxy.cleanup();

      // KUBE-SERVICES (filter) REJECTs: the packet is dropped before its entry is confirmed.
      expect(names(await send(topo, client, clusterIP, 41000, 2))).toEqual([
        '!ECONNREFUSED',
        '!ECONNREFUSED',
      ]);
      expect(await proxy.flowsTo(clusterIP)).toEqual([]);

      proxy.apply(sliceObject('empty', 'IPv4', [podA.ipv4]));
      await proxy.sync();
      // Nothing pinned, so the new endpoint answers even before the cleanup...
      expect(names(await send(topo, client, clusterIP, 41000))).toEqual(['ep-a']);
      // ...which looks (the service gained endpoints) and finds nothing stale.
      expect(await proxy.cleanup()).toMatchObject({ ran: true, actions: 0, failures: 0 });
      expect(names(await send(topo, client, clusterIP, 41000))).toEqual(['ep-a']);
    });
  });
});
