/**
 * Real IPVS traffic: a VIP on kube-ipvs0 in the node namespace, `-s rr` over two pods in
 * masquerade mode (`-m`), echo servers in the pods. Connections from the node namespace (whose
 * source is the VIP itself) and from the external host land on both pods, evenly (rr), and
 * each is an IPVS connection entry.
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

  // IPVS itself carried them: one connection entry per connection, source kept, on its real
  // server. (Not `--stats`: the kernel sums those counters every 2 s, so they lag.)
  const entries = (await node.run('ipvsadm', ['-Lnc'])).stdout;
  const perRoute: Record<string, number> = {};
  for (const m of entries.matchAll(/^TCP\s+\S+\s+\S+\s+([\d.]+):\d+\s+([\d.:]+)\s+([\d.]+):(\d+)\s*$/gm)) {
    assert.equal(m[2], `${VIP}:${PORT}`, m[0]);
    const key = `${m[1]} -> ${m[3]}:${m[4]}`;
    perRoute[key] = (perRoute[key] ?? 0) + 1;
  }
  const expected: Record<string, number> = {};
  for (const source of [VIP, EXTERNAL_IPV4]) {
    for (const pod of topo.pods) expected[`${source} -> ${pod.ipv4}:${TARGET_PORT}`] = CONNECTIONS / 2;
  }
  assert.deepEqual(perRoute, expected, `ipvsadm -Lnc:\n${entries}`);
  t.note(`IPVS connection entries: ${JSON.stringify(perRoute)}`);
}
