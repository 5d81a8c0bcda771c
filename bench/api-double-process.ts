/**
 * The run path benchmark's API double as a process of its own (run-path.ts forks it), so that
 * the memory the benchmark reports for the proxy is the proxy's: the double holds the whole
 * synthetic cluster, its history and every list it serialises, which in one process with the
 * proxy was a third of the heap at 10,000 services.
 *
 * It generates the scenario's cluster (same shape and seed, so the same objects), serves it
 * on 127.0.0.1 (test/api/fake-apiserver.ts), and answers its parent over the IPC channel:
 *
 * - `{ type: 'targets', count }` -> `{ type: 'targets', indexes }`: the services the endpoint
 *   changes pick (world.ts' pickChangeTargets);
 * - `{ type: 'change', serviceIndex, k }` -> `{ type: 'changed', serviceKey }`: one endpoint
 *   of that service replaced through the double (a MODIFIED watch event follows);
 * - `{ type: 'write-like-kube-proxy', netns, backend }` -> `{ type: 'written' }`: the cluster's
 *   rules written into that namespace the way kube-proxy writes them (the takeover phase);
 * - `{ type: 'dump', dir }` -> `{ type: 'dumped', json }`: the cluster written into `dir` as
 *   kubectl prints it (manifest-dump.ts), for `run --once --from`;
 * - `{ type: 'close' }`: stops serving and exits.
 *
 * The first message is `{ type: 'ready', url, cluster: { nodeName, nodeIP, clusterCIDR } }`;
 * a failure is `{ type: 'error', message }`.
 */
import { DEFAULT_CHUNKING, planTransactions } from '../src/backends/iptables/chunking.js';
import { buildRenderContext } from '../src/backends/iptables/context.js';
import { ensureCanaries, ensureJumpRules } from '../src/backends/iptables/jump-rules.js';
import { renderIptables } from '../src/backends/iptables/render.js';
import { formatRestore } from '../src/backends/iptables/restore-text.js';
import type { Backend } from '../src/kernel/backend.js';
import { ExecaRunner, inNetns } from '../src/kernel/exec.js';
import { Iptables } from '../src/kernel/iptables.js';
import { SnapshotBuilder } from '../src/model/snapshot.js';
import { iptablesOptions } from '../src/sync/wiring.js';
import { FakeApiServer, type KubeObject } from '../test/api/fake-apiserver.js';
import { writeManifestDumps } from './manifest-dump.js';
import { type ClusterShape, type SyntheticCluster, syntheticCluster } from './synthetic-cluster.js';
import { changeClusterEndpoint, pickChangeTargets, worldOf } from './world.js';

/** What the parent needs of the cluster to configure the proxy (synthetic-config.ts). */
export interface ClusterFacts {
  nodeName: string;
  nodeIP: string;
  clusterCIDR: string;
}

export type DoubleRequest =
  | { type: 'targets'; count: number }
  | { type: 'change'; serviceIndex: number; k: number }
  | { type: 'write-like-kube-proxy'; netns: string; backend: Backend }
  | { type: 'dump'; dir: string }
  | { type: 'close' };

export type DoubleReply =
  | { type: 'ready'; url: string; cluster: ClusterFacts }
  | { type: 'targets'; indexes: number[] }
  | { type: 'changed'; serviceKey: string }
  | { type: 'written' }
  | { type: 'dumped'; json: string }
  | { type: 'error'; message: string };

/** The shape argument the parent passes (argv[2], JSON). */
export interface DoubleArgs {
  shape: ClusterShape;
}

const asKubeObject = (object: unknown) => object as KubeObject;

/** changeClusterEndpoint, and the updated slice applied to the double. */
function changeEndpoint(fake: FakeApiServer, cluster: SyntheticCluster, serviceIndex: number, k: number) {
  const change = changeClusterEndpoint(cluster, serviceIndex, k);
  fake.apply('endpointslices', asKubeObject(change.slice));
  return change.serviceKey;
}

/**
 * Writes the cluster's rules into a namespace the way kube-proxy does: jump rules and
 * canaries first with the iptables tools, then the restore input, here in bounded
 * transactions (a 10,000-service restore is not feasible in one with iptables-nft).
 */
async function writeLikeKubeProxy(cluster: SyntheticCluster, netns: string, backend: Backend): Promise<void> {
  const { config, host, store, node, topology } = worldOf(cluster);
  const snapshot = new SnapshotBuilder('IPv4', topology).build(store, node);
  const ctx = buildRenderContext(iptablesOptions(config, host), 'IPv4', node);
  const render = renderIptables(snapshot, ctx);
  const iptables = new Iptables(inNetns(new ExecaRunner(), netns), backend);
  await ensureJumpRules(iptables, 'IPv4');
  await ensureCanaries(iptables, 'IPv4');
  const chunking =
    backend === 'legacy' ? { ...DEFAULT_CHUNKING, threshold: Number.POSITIVE_INFINITY } : DEFAULT_CHUNKING;
  const plan = planTransactions(render.filter, render.nat, chunking);
  for (const { table, chain } of plan.precreate) await iptables.ensureChain('IPv4', table, chain);
  for (const tables of plan.transactions)
    await iptables.restore('IPv4', formatRestore(tables, render.ruleTexts));
}

async function main(): Promise<void> {
  const send = (reply: DoubleReply) => process.send?.(reply);
  if (!process.send) throw new Error('api-double-process: start it with fork() (it talks over IPC)');
  const args = JSON.parse(process.argv[2] ?? '{}') as DoubleArgs;
  const cluster = syntheticCluster(args.shape);
  const fake = await FakeApiServer.start();
  fake.apply('nodes', asKubeObject(cluster.node));
  for (const svc of cluster.services) fake.apply('services', asKubeObject(svc));
  for (const slice of cluster.slices) fake.apply('endpointslices', asKubeObject(slice));
  process.on('message', (message: DoubleRequest) => {
    const answer = async (): Promise<DoubleReply | null> => {
      switch (message.type) {
        case 'targets':
          return { type: 'targets', indexes: pickChangeTargets(cluster, message.count) };
        case 'change':
          return {
            type: 'changed',
            serviceKey: changeEndpoint(fake, cluster, message.serviceIndex, message.k),
          };
        case 'write-like-kube-proxy':
          await writeLikeKubeProxy(cluster, message.netns, message.backend);
          return { type: 'written' };
        case 'dump':
          return { type: 'dumped', json: writeManifestDumps(cluster, message.dir).json };
        case 'close':
          await fake.close();
          process.disconnect();
          return null;
      }
    };
    answer().then(
      (reply) => {
        if (reply) send(reply);
      },
      (e: unknown) => send({ type: 'error', message: e instanceof Error ? e.message : String(e) }),
    );
  });
  // The parent going away (killed by its time box) ends the double too.
  process.on('disconnect', () => process.exit(0));
  const { nodeName, nodeIP, clusterCIDR } = cluster;
  send({ type: 'ready', url: fake.url, cluster: { nodeName, nodeIP, clusterCIDR } });
}

main().catch((e: unknown) => {
  process.send?.({ type: 'error', message: e instanceof Error ? e.message : String(e) });
  process.exitCode = 1;
});
