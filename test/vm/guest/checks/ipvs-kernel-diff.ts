/**
 * The IPVS applier (IpvsBackend, driven directly: many syncs stay cheap) against a real
 * ip_vs kernel, IPv4 (the IPv6 backend and both families sharing one table run in ipvs-run;
 * under emulation each family's full sync costs 20-40 s, mostly process starts):
 *
 * - a cold start, then the one-endpoint change: how many kernel operations each issued
 *   (the change: at most 3 ipvsadm/ipset operations), and a sync without changes writes
 *   nothing to IPVS, the sets or kube-ipvs0;
 * - `ipvsadm -C` behind its back: lostState() notices, the next sync repairs;
 * - then a sequence of random clusters (test/property/arbitraries.ts, seeded), synced in
 *   turn, partial and full: the kernel read back (`ipvsadm -Sn`, `ipset save`, kube-ipvs0's
 *   addresses, the helper chains) equals the render after every sync, and at the end equals
 *   one sync of the final cluster into a fresh namespace. A foreign virtual server inside
 *   excludeCIDRs survives throughout; one outside goes.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pino } from 'pino';
import { parseSavedTables } from '../../../../src/backends/iptables/kernel-diff.js';
import { helperChainsMatch, IpvsBackend } from '../../../../src/backends/ipvs/backend.js';
import type { IpvsOptions } from '../../../../src/backends/ipvs/context.js';
import { buildIpvsRenderContext } from '../../../../src/backends/ipvs/context.js';
import { formatIptablesSection } from '../../../../src/backends/ipvs/format.js';
import { realServerLine, virtualServerLine } from '../../../../src/backends/ipvs/ipvsadm-text.js';
import { isOwnedSetName } from '../../../../src/backends/ipvs/kernel-state.js';
import { IpvsRenderer } from '../../../../src/backends/ipvs/render.js';
import { type IpvsState, type VirtualServer, virtualServerKey } from '../../../../src/backends/ipvs/state.js';
import type { CommandRunner } from '../../../../src/kernel/exec.js';
import { parseIpAddrOneline } from '../../../../src/kernel/ip-link.js';
import { parseIpsetSave } from '../../../../src/kernel/ipset.js';
import { parseIpvsadmSave } from '../../../../src/kernel/ipvsadm-output.js';
import type { IPFamily } from '../../../../src/model/ip.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../../../src/model/snapshot.js';
import { ObjectStore } from '../../../../src/model/store.js';
import type { SyncRequest } from '../../../../src/sync/backend.js';
import { clusterArb, ipvsOptionsArb, NODE_NAME, topologyArb } from '../../../property/arbitraries.js';
import { add, del, ep, nodeObject, type Raw, serviceObject, sliceObject } from '../../../unit/objects.js';
import type { CheckContext } from '../check.js';

export const timeoutMs = 6 * 60_000;

const SEED = 20_260_801;
const RANDOM_CLUSTERS = 3;
const FAMILIES: IPFamily[] = ['IPv4'];
const EXCLUDE = ['198.18.0.0/15'];
const FOREIGN =
  '-A -t 198.18.0.1:80 -s rr\n-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 1\n-A -t 198.20.0.1:80 -s rr\n';
const log = pino({ level: 'silent' });

/** A plain cluster for the operation counts: 10 ClusterIP services, 2 local endpoints each. */
function plainCluster(changed = false): Raw[] {
  const out: Raw[] = [];
  for (let i = 0; i < 10; i++) {
    const name = `plain${i}`;
    out.push(serviceObject(name, { namespace: 'plain', spec: { clusterIP: `172.30.9.${i + 1}` } }));
    const second = changed && i === 7 ? '10.244.1.99' : `10.244.1.${(i % 50) + 100}`;
    out.push(
      sliceObject(
        `${name}-a`,
        [ep(`10.244.1.${i + 10}`, { nodeName: NODE_NAME }), ep(second, { nodeName: NODE_NAME })],
        {
          namespace: 'plain',
          service: name,
        },
      ),
    );
  }
  return out;
}

/** One namespace's proxy: the store, a snapshot builder and an IpvsBackend per family. */
class NodeUnderTest {
  readonly store = new ObjectStore(NODE_NAME);
  private readonly builders: Map<IPFamily, SnapshotBuilder>;
  backends = new Map<IPFamily, IpvsBackend>();
  /** the renderer the backend uses, kept to compare with */
  readonly renders = new Map<IPFamily, IpvsState>();
  private objects: Raw[] = [];
  private synced: ReadonlyMap<string, number> | null = null;
  private seq = 0;

  constructor(
    readonly runner: CommandRunner,
    private readonly options: IpvsOptions,
    topology = { preferSameNode: false },
  ) {
    this.builders = new Map(FAMILIES.map((f) => [f, new SnapshotBuilder(f, topology)]));
    this.store.apply(
      add(
        nodeObject(NODE_NAME, {
          ips: ['192.168.0.2', 'fd00::2'],
          podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
        }),
      ),
    );
    this.restart();
  }

  /** New backends with no memory, as after a process restart. */
  restart(): void {
    for (const b of this.backends.values()) b.close();
    this.backends = new Map(
      FAMILIES.map((family) => {
        const renderer = new IpvsRenderer();
        const desired = (snapshot: Parameters<IpvsRenderer['render']>[0]) => {
          const ctx = buildIpvsRenderContext(this.options, family, snapshot.node);
          const state = renderer.render(snapshot, ctx);
          this.renders.set(family, state);
          return state;
        };
        const backend = new IpvsBackend({
          runner: this.runner,
          iptablesBackend: 'nft',
          family,
          desired,
          excludeCIDRs: EXCLUDE,
          log,
          gracefulCheckPeriodMs: 3_600_000,
        });
        return [family, backend] as const;
      }),
    );
    this.synced = null;
  }

  /** Replaces the cluster: objects no longer there are deleted, the others added or updated. */
  load(objects: readonly Raw[]): void {
    const key = (o: Raw) => `${String(o['kind'])}/${JSON.stringify(o['metadata'])}`;
    const keep = new Set(objects.map(key));
    for (const o of this.objects) if (!keep.has(key(o))) this.store.apply(del(o));
    for (const o of objects) this.store.apply(add(o));
    this.objects = [...objects];
  }

  /** One sync of both families; returns each backend's stats. */
  async sync(full: boolean) {
    const versions = this.store.versionsSnapshot();
    const request: SyncRequest = {
      seq: ++this.seq,
      full: full || this.synced === null,
      changedServices: this.synced ? this.store.changedSince(this.synced) : new Set(),
    };
    const node = nodeInfoFrom(NODE_NAME, this.store.node);
    const stats = [];
    for (const family of FAMILIES) {
      const backend = this.backends.get(family)!;
      await backend.sync(this.builders.get(family)!.build(this.store, node), request);
      stats.push({ family, ...backend.lastSync! });
    }
    this.synced = versions;
    return stats;
  }

  /** Graceful termination's check, now rather than in an hour: nothing carries connections here. */
  async checkDrains(): Promise<void> {
    for (const b of this.backends.values()) await b.checkDrains();
  }

  close(): void {
    for (const b of this.backends.values()) b.close();
  }
}

/** The kernel state of one family, as comparable text. */
async function readKernel(runner: CommandRunner, family: IPFamily) {
  const v4 = family === 'IPv4';
  const table = parseIpvsadmSave((await runner.run('ipvsadm', ['-Sn'])).stdout);
  const ipvs = new Map<string, string>();
  for (const vs of table.virtualServers) {
    if (vs.address.includes(':') === v4) continue;
    const lines = [
      virtualServerLine(vs) + vs.extras.map((e) => ` ${e}`).join(''),
      ...vs.realServers.map((r) => realServerLine(vs, r)),
    ];
    ipvs.set(virtualServerKey(vs), lines.join('\n'));
  }
  const sets = new Map<string, string>();
  for (const s of parseIpsetSave((await runner.run('ipset', ['save'])).stdout)) {
    if (!isOwnedSetName(s.name) || (s.family !== null && (s.family === 'inet') !== v4)) continue;
    if (s.family === null && s.name.startsWith('KUBE-6-') === v4) continue;
    sets.set(s.name, `${s.type} ${s.family ?? ''} ${s.entries.join(' ')}`);
  }
  const link = await runner.run('ip', ['-o', v4 ? '-4' : '-6', 'addr', 'show', 'dev', 'kube-ipvs0'], {
    reject: false,
  });
  const addresses =
    link.exitCode === 0
      ? parseIpAddrOneline(link.stdout)
          .map((a) => a.address)
          .sort()
      : [];
  const save = (await runner.run(v4 ? 'iptables-nft-save' : 'ip6tables-nft-save', [])).stdout;
  const chains = save
    .split('\n')
    .filter((l) => /^\*|^:KUBE-|^-A .*KUBE-/.test(l))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
  return { ipvs, sets, addresses, chains, save };
}

type KernelView = Awaited<ReturnType<typeof readKernel>>;

/** What the render says the kernel holds, besides the foreign virtual servers it keeps. */
function compareWithRender(what: string, family: IPFamily, kernel: KernelView, render: IpvsState): string[] {
  const problems: string[] = [];
  const want = new Map<string, string>();
  for (const vs of render.virtualServers as VirtualServer[]) {
    want.set(
      virtualServerKey(vs),
      [virtualServerLine(vs), ...vs.realServers.map((r) => realServerLine(vs, r))].join('\n'),
    );
  }
  for (const [key, text] of want) {
    // TCP real servers that left wait at weight 0 for graceful termination: not rendered, fine
    const draining = (l: string) => l.startsWith('-a -t ') && l.endsWith(' -w 0') && !text.includes(l);
    const got = kernel.ipvs
      .get(key)
      ?.split('\n')
      .filter((l) => !draining(l))
      .join('\n');
    if (got !== text)
      problems.push(
        `${what} ${family}: ${key}: kernel ${JSON.stringify(kernel.ipvs.get(key))}, render ${JSON.stringify(text)}`,
      );
  }
  for (const key of kernel.ipvs.keys()) {
    if (!want.has(key) && !key.includes('198.18.'))
      problems.push(`${what} ${family}: ${key} in the kernel, not rendered`);
  }
  for (const set of render.ipsets) {
    const text = `${set.type} ${set.family ?? ''} ${[...set.entries].sort().join(' ')}`;
    if (kernel.sets.get(set.name) !== text)
      problems.push(
        `${what} ${family}: set ${set.name}: kernel ${JSON.stringify(kernel.sets.get(set.name))}, render ${JSON.stringify(text)}`,
      );
  }
  if (kernel.sets.size !== render.ipsets.length)
    problems.push(`${what} ${family}: sets ${[...kernel.sets.keys()].join(' ')}`);
  const bound = [...render.boundAddresses].sort();
  if (JSON.stringify(kernel.addresses) !== JSON.stringify(bound))
    problems.push(`${what} ${family}: kube-ipvs0 ${kernel.addresses.join(' ')}, render ${bound.join(' ')}`);
  if (!helperChainsMatch(parseSavedTables(kernel.save), formatIptablesSection(render), family))
    problems.push(`${what} ${family}: the helper chains differ from the render`);
  return problems;
}

function compareKernels(a: KernelView, b: KernelView, family: IPFamily): string[] {
  const problems: string[] = [];
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  if (!same([...a.ipvs].sort(), [...b.ipvs].sort())) problems.push(`${family}: virtual servers differ`);
  if (!same([...a.sets].sort(), [...b.sets].sort())) problems.push(`${family}: sets differ`);
  if (!same(a.addresses, b.addresses)) problems.push(`${family}: kube-ipvs0 differs`);
  if (!same(a.chains, b.chains)) problems.push(`${family}: the KUBE chains differ`);
  return problems;
}

const ops = (s: { operations: Record<string, number> }) => JSON.stringify(s.operations);

export default async function (t: CheckContext): Promise<void> {
  const [options] = fc.sample(ipvsOptionsArb, { numRuns: 1, seed: SEED });
  const opts: IpvsOptions = { ...options!, excludeCIDRs: EXCLUDE, scheduler: options!.scheduler };
  const [topology] = fc.sample(topologyArb, { numRuns: 1, seed: SEED });
  const clusters = fc.sample(clusterArb, { numRuns: RANDOM_CLUSTERS, seed: SEED });
  t.note(
    `options: scheduler ${JSON.stringify(opts.scheduler)}, masqueradeAll ${opts.masqueradeAll}, nodePortAddresses ${JSON.stringify(opts.nodePortAddresses)}`,
  );

  const { runner } = await t.scratchNetns();
  await runner.run('ipvsadm', ['-R'], { input: FOREIGN });
  const proxy = new NodeUnderTest(runner, opts, topology);
  t.defer(() => proxy.close());
  const check = async (what: string) => {
    const problems: string[] = [];
    for (const family of FAMILIES) {
      problems.push(
        ...compareWithRender(what, family, await readKernel(runner, family), proxy.renders.get(family)!),
      );
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  };

  // Cold start, one endpoint changed, a sync without changes.
  proxy.load(plainCluster());
  const cold = await proxy.sync(true);
  await check('cold start');
  proxy.load(plainCluster(true));
  const change = await proxy.sync(false);
  await check('one endpoint changed');
  const v4 = change.find((s) => s.family === 'IPv4')!;
  assert.ok(v4.operations.ipvsadm + v4.operations.ipset <= 3, `one-endpoint change: ${ops(v4)}`);
  assert.equal(v4.operations.ip, 0, `one-endpoint change touches no address: ${ops(v4)}`);
  const idle = await proxy.sync(false);
  for (const s of idle)
    assert.equal(s.operations.ipvsadm + s.operations.ipset + s.operations.ip, 0, `no change: ${ops(s)}`);
  t.note(`cold start ${cold.map((s) => `${s.family} ${ops(s)} ${s.ms} ms`).join(', ')}`);
  t.note(
    `one-endpoint change IPv4 ${ops(v4)} ${v4.ms} ms (lines ${JSON.stringify(v4.lines)}); no change ${ops(idle[0]!)}`,
  );

  // The table cleared behind its back.
  await runner.run('ipvsadm', ['-C']);
  const lost = await proxy.backends.get('IPv4')!.lostState();
  assert.equal(lost, true, 'lostState() notices a cleared IPVS table');
  await runner.run('ipvsadm', ['-R'], { input: FOREIGN.split('\n').slice(0, 2).join('\n') });
  const repaired = await proxy.sync(false);
  assert.ok(repaired[0]!.full, 'the sync after a lost state is full');
  await check('after ipvsadm -C');
  t.note(`after ipvsadm -C lostState() said so and a full sync repaired (${ops(repaired[0]!)})`);

  // Random clusters, partial and full syncs in turn.
  const sizes: string[] = [];
  for (const [i, cluster] of clusters.entries()) {
    proxy.load([...cluster.objects, ...plainCluster(i % 2 === 0)]);
    const stats = await proxy.sync(false);
    await check(`random cluster ${i + 1}`);
    sizes.push(
      `${stats.map((s) => s.virtualServers).join('+')} VS ${stats[0]!.full ? 'full' : 'partial'} ${stats.map((s) => s.ms).join('+')} ms`,
    );
  }
  t.note(`random clusters (seed ${SEED}): ${sizes.join('; ')}`);

  // One sync of the final cluster into a fresh namespace: the same kernel state.
  const fresh = await t.scratchNetns();
  await fresh.runner.run('ipvsadm', ['-R'], { input: FOREIGN });
  const other = new NodeUnderTest(fresh.runner, opts, topology);
  t.defer(() => other.close());
  other.load([...clusters.at(-1)!.objects, ...plainCluster((clusters.length - 1) % 2 === 0)]);
  await other.sync(true);
  await proxy.checkDrains();
  const problems: string[] = [];
  for (const family of FAMILIES) {
    const a = await readKernel(runner, family);
    const b = await readKernel(fresh.runner, family);
    problems.push(...compareKernels(a, b, family));
    assert.ok(
      a.ipvs.has('TCP 198.18.0.1:80'),
      'the foreign virtual server inside excludeCIDRs is still there',
    );
    assert.ok(!a.ipvs.has('TCP 198.20.0.1:80'), 'the one outside is gone');
  }
  assert.deepEqual(
    problems,
    [],
    `after the sequence vs one sync into a fresh namespace:\n${problems.join('\n')}`,
  );
  t.note('the kernel after the sequence equals one sync of the final cluster into a fresh namespace');
}
