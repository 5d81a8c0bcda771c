/**
 * Real IPVS traffic: a VIP on kube-ipvs0 in the node namespace, `-s rr` over two pods in
 * masquerade mode (`-m`), echo servers in the pods. Connections from the node namespace and
 * from the external host land on both pods, evenly (rr).
 */
import assert from 'node:assert/strict';
import { EXTERNAL_IPV4, tally } from '../../../kernel/netns.js';
import type { CheckContext } from '../check.js';

const VIP = '10.96.0.10';
const PORT = 80;
const TARGET_PORT = 8080;
const CONNECTIONS = 8;

export default async function (t: CheckContext): Promise<void> {
  const topo = await t.topology(2);
  const node = topo.in(topo.node);
  // IPVS state is per namespace; conntrack=1 keeps IPVS connections in conntrack, which the
  // kube-proxy masquerade rules need (off, the masquerade silently does not happen).
  await node.run('sysctl', ['-q', '-w', 'net.ipv4.vs.conntrack=1']);
  await node.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'dummy']);
  await node.run('ip', ['addr', 'add', `${VIP}/32`, 'dev', 'kube-ipvs0']);
  const batch = [
    `-A -t ${VIP}:${PORT} -s rr`,
    ...topo.pods.map((p) => `-a -t ${VIP}:${PORT} -r ${p.ipv4}:${TARGET_PORT} -m -w 1`),
  ];
  const restore = await node.run('ipvsadm', ['-R'], { input: `${batch.join('\n')}\n` });
  assert.equal(restore.stderr, '', restore.stderr);

  await Promise.all(
    topo.pods.map((p) => topo.startServer(p.ns, { name: `pod${p.index}`, tcp: [TARGET_PORT] })),
  );

  const fromNode = await topo.connect(topo.node, { proto: 'tcp', host: VIP, port: PORT, count: CONNECTIONS });
  const nodeTally = tally(fromNode);
  assert.deepEqual(
    nodeTally,
    { pod0: CONNECTIONS / 2, pod1: CONNECTIONS / 2 },
    `from the node: ${JSON.stringify(fromNode)}`,
  );
  t.note(`from the node namespace: ${JSON.stringify(nodeTally)}`);

  const fromOutside = await topo.connect(topo.external, {
    proto: 'tcp',
    host: VIP,
    port: PORT,
    count: CONNECTIONS,
  });
  const outsideTally = tally(fromOutside);
  assert.deepEqual(
    outsideTally,
    { pod0: CONNECTIONS / 2, pod1: CONNECTIONS / 2 },
    `from outside: ${JSON.stringify(fromOutside)}`,
  );
  // No masquerade rules here: the pods see the external client's own address.
  for (const r of fromOutside) if (r.ok) assert.equal(r.peer, EXTERNAL_IPV4, `source seen by ${r.name}`);
  t.note(`from the external host: ${JSON.stringify(outsideTally)} (source kept: ${EXTERNAL_IPV4})`);

  const stats = (await node.run('ipvsadm', ['-Ln', '--stats'])).stdout;
  t.note(stats.trim());
}
