/**
 * `switchboard run --mode ipvs` end to end on a kernel with ip_vs: the real CLI (bundled)
 * in the node namespace of a topology (test/kernel/netns.ts: node, 3 pods, an external
 * host), reading manifests from a directory it watches, with real packets. Endpoint
 * changes are file rewrites. Few CLI starts (each costs seconds under emulation), in this
 * order, connections held across them:
 *
 * A. iptables mode, a connection held from a pod through a ClusterIP (DNAT);
 * B. IPVS mode (the switch: the held connection survives, iptables mode's chains go):
 *    node settings and timeouts; a foreign virtual server inside excludeCIDRs kept, one
 *    outside removed; ClusterIP (IPv4 and IPv6, kube-ipvs0 a down dummy) from a pod and
 *    from the node; NodePort from outside (masqueraded); LoadBalancer with source ranges
 *    (allowed and denied source); eTP=Local (local endpoint only, client IP kept);
 *    ClientIP affinity; no endpoints (a virtual server without real servers: refused);
 *    UDP; stale UDP conntrack cleaned when an endpoint goes; graceful termination (a held
 *    connection keeps its endpoint at weight 0, new ones go elsewhere, its real server is
 *    deleted once IPVS counts no connection);
 * C. a restart: traffic flows while it is down, and its first sync writes nothing;
 * D. iptables mode again (the switch back), with a connection held through IPVS;
 * E. `switchboard cleanup`: only the excluded virtual server is left, no KUBE- set.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GRACEFUL_CHECK_PERIOD_ENV } from '../../../../src/backends/ipvs/setup.js';
import type { CommandRunner } from '../../../../src/kernel/exec.js';
import { parseIpvsadmList, parseIpvsadmSave } from '../../../../src/kernel/ipvsadm-output.js';
import { EXTERNAL_IPV4, type PodNs, type Topology, tally } from '../../../kernel/netns.js';
import {
  type EndpointSpec,
  endpointSliceObject,
  nodeObject,
  OTHER_NODE,
  type PortSpec,
  type ServiceSpec,
  serviceObject,
} from '../../../traffic/objects.js';
import { HeldConnection, type HeldReply, startEchoServer } from '../../../traffic/processes.js';
import type { CheckContext } from '../check.js';
import { CliProcess, type LogRecord } from '../cli-process.js';

export const timeoutMs = 9 * 60_000;

const TCP_TARGET = 8080;
const UDP_TARGET = 5353;
const EXTERNAL_ALT = '192.168.0.101';
const GRACEFUL_PERIOD_MS = 2000;
const EXCLUDED_VS = '10.100.0.1:80';
const FOREIGN_VS = '10.101.0.1:80';

const http = (nodePort?: number): PortSpec[] => [
  { name: 'http', protocol: 'TCP', port: 80, targetPort: TCP_TARGET, ...(nodePort ? { nodePort } : {}) },
];
const dnsPort: PortSpec[] = [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: UDP_TARGET }];

const SERVICES = {
  web: { name: 'web', type: 'NodePort', clusterIPs: ['10.96.0.10', 'fd00:10:96::a'], ports: http(30080) },
  lb: {
    name: 'lb',
    type: 'LoadBalancer',
    clusterIPs: ['10.96.0.20'],
    ports: http(30081),
    loadBalancerIPs: ['10.200.0.1'],
    loadBalancerSourceRanges: [`${EXTERNAL_IPV4}/32`],
  },
  local: {
    name: 'local',
    type: 'LoadBalancer',
    clusterIPs: ['10.96.0.30'],
    ports: http(30082),
    loadBalancerIPs: ['10.200.0.2'],
    externalTrafficPolicy: 'Local',
  },
  sticky: { name: 'sticky', clusterIPs: ['10.96.0.40'], ports: http(), clientIPAffinitySeconds: 600 },
  empty: { name: 'empty', clusterIPs: ['10.96.0.50'], ports: http() },
  dns: { name: 'dns', clusterIPs: ['10.96.0.60'], ports: dnsPort },
  udp1: { name: 'udp1', clusterIPs: ['10.96.0.61'], ports: dnsPort },
  drain: { name: 'drain', clusterIPs: ['10.96.0.70'], ports: http() },
  // only the connection held across the switch back to iptables mode uses it
  switch: { name: 'switch', clusterIPs: ['10.96.0.80'], ports: http() },
} satisfies Record<string, ServiceSpec>;
type Name = keyof typeof SERVICES;

const CONFIG = {
  apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
  kind: 'KubeProxyConfiguration',
  hostnameOverride: 'node-1',
  clusterCIDR: '10.244.0.0/16,fd00:10:244::/48',
  ipvs: {
    excludeCIDRs: ['10.100.0.0/16'],
    strictARP: true,
    tcpTimeout: '1000s',
    tcpFinTimeout: '100s',
    udpTimeout: '200s',
  },
};

/** The manifests directory `run --from` watches: one file per object, rewritten on change. */
class Manifests {
  constructor(
    readonly dir: string,
    private readonly pods: readonly PodNs[],
  ) {
    writeFileSync(join(dir, 'node.json'), JSON.stringify(nodeObject()));
  }

  /** Writes a Service and its slices (one per family of its clusterIPs). */
  write(name: Name, endpoints: readonly EndpointSpec[]): void {
    const spec: ServiceSpec = SERVICES[name];
    writeFileSync(join(this.dir, `svc-${name}.json`), JSON.stringify(serviceObject(spec)));
    for (const ip of spec.clusterIPs) {
      const family = ip.includes(':') ? 'IPv6' : 'IPv4';
      writeFileSync(
        join(this.dir, `slice-${name}-${family}.json`),
        JSON.stringify(endpointSliceObject(spec, family, endpoints)),
      );
    }
  }

  pod(i: number): PodNs {
    return this.pods[i]!;
  }
}

function assertOnly(what: string, results: Parameters<typeof tally>[0], expected: readonly string[]): void {
  const counts = tally(results);
  assert.deepEqual(Object.keys(counts).sort(), [...expected].sort(), `${what}: ${JSON.stringify(counts)}`);
}

/** Every connection answered, by one of `allowed` (iptables mode picks at random: not all may be used). */
function assertWithin(what: string, results: Parameters<typeof tally>[0], allowed: readonly string[]): void {
  const counts = tally(results);
  assert.ok(
    Object.keys(counts).every((name) => allowed.includes(name)),
    `${what}: ${JSON.stringify(counts)}`,
  );
}

async function ipvsList(node: CommandRunner, service?: string) {
  const args = service ? ['-Ln', '-t', service] : ['-Ln'];
  const r = await node.run('ipvsadm', args, { reject: false });
  return r.exitCode === 0 ? parseIpvsadmList(r.stdout) : null;
}

function held(reply: HeldReply): string {
  return reply.ok ? reply.name : `!${reply.error}`;
}

export default async function (t: CheckContext): Promise<void> {
  const topo = await t.topology(3);
  const node = topo.in(topo.node);
  const ext = topo.external;
  const [p0, p1, p2] = topo.pods as [PodNs, PodNs, PodNs];
  const client = p2.ns; // pod 2 is also the "other node" endpoint of `local`; as a client it is just a pod
  const phase = (name: string) => {
    const at = performance.now();
    return () => t.note(`${name}: ${Math.round(performance.now() - at)} ms`);
  };

  let done = phase('setup');
  await topo.in(ext).run('ip', ['addr', 'add', `${EXTERNAL_ALT}/24`, 'dev', 'eth0']);
  // As on a node (the harness turns DAD off): kube-ipvs0 inherits `default`.
  await node.run('sysctl', ['-q', '-w', 'net.ipv6.conf.default.accept_dad=1']);
  const servers = [];
  for (const pod of topo.pods) {
    servers.push(await startEchoServer(pod.ns, `pod-${pod.index}`, { tcp: [TCP_TARGET], udp: [UDP_TARGET] }));
  }
  for (const s of servers) t.defer(() => s.stop());
  const holds: HeldConnection[] = [];
  t.defer(async () => {
    for (const h of holds) await h.stop();
  });
  const hold = async (ns: string, host: string, port: number) => {
    const h = await HeldConnection.open(ns, { host, port }, 8000);
    holds.push(h);
    assert.ok(h.greeting.ok, `held connection to ${host}:${port}: ${JSON.stringify(h.greeting)}`);
    return h;
  };

  const work = mkdtempSync(join(tmpdir(), 'sb-ipvs-run-'));
  const dir = join(work, 'manifests');
  mkdirSync(dir);
  const config = join(work, 'config.json');
  writeFileSync(config, JSON.stringify(CONFIG));
  const m = new Manifests(dir, topo.pods);
  const local = (pod: PodNs): EndpointSpec => ({ pod });
  m.write('web', [local(p0), local(p1)]);
  m.write('lb', [local(p0), local(p1)]);
  m.write('local', [local(p0), { pod: p2, nodeName: OTHER_NODE }]);
  m.write('sticky', [local(p0), local(p1)]);
  m.write('empty', []);
  m.write('dns', [local(p0), local(p1)]);
  m.write('udp1', [local(p0)]);
  m.write('drain', [local(p0), local(p1)]);
  m.write('switch', [local(p0), local(p1)]);
  // Another user's virtual servers: one Switchboard must keep (excludeCIDRs), one it owns.
  await node.run('ipvsadm', ['-R'], {
    input: `-A -t ${EXCLUDED_VS} -s rr\n-a -t ${EXCLUDED_VS} -r 10.244.1.2:8080 -m -w 1\n-A -t ${FOREIGN_VS} -s rr\n`,
  });
  const processes: CliProcess[] = [];
  t.defer(async () => {
    for (const p of processes) await p.stop();
  });
  // Each family's backend costs a full sync at start (15-30 s under emulation): IPv6 runs in B
  // only (the IPv6 IPVS state left by D goes with E's cleanup).
  const start = async (label: string, mode: 'iptables' | 'ipvs', family: 'ipv4' | 'dual' = 'ipv4') => {
    const p = new CliProcess({
      ns: topo.node,
      cli: t.cli,
      label,
      args: ['run', '--mode', mode, '--family', family, '--from', dir, '--config', config],
      env: { SWITCHBOARD_LOG_LEVEL: 'debug', [GRACEFUL_CHECK_PERIOD_ENV]: String(GRACEFUL_PERIOD_MS) },
    });
    processes.push(p);
    await p.synced(0, 180_000);
    return p;
  };
  const stop = async (p: CliProcess) => {
    const code = await p.stop();
    assert.equal(code, 0, `${p.options.label} exited ${code} on SIGTERM\n${p.tail(8)}`);
  };
  done();

  // ------------------------------------------------------------------------------------------
  done = phase('A. iptables mode');
  const a = await start('run --mode iptables', 'iptables');
  const viaDnat = await hold(client, '10.96.0.10', 80);
  const dnatPod = held(viaDnat.greeting);
  const table = parseIpvsadmSave((await node.run('ipvsadm', ['-Sn'])).stdout);
  assert.deepEqual(
    table.virtualServers.map((v) => `${v.address}:${v.port}`).sort(),
    [EXCLUDED_VS, FOREIGN_VS],
    'iptables mode on a node that never ran IPVS mode leaves the IPVS table alone',
  );
  await stop(a);
  done();

  // ------------------------------------------------------------------------------------------
  done = phase('B. IPVS mode: first sync');
  const b = await start('run --mode ipvs --family dual', 'ipvs', 'dual');
  assert.equal(
    held(await viaDnat.probe()),
    dnatPod,
    'a connection made through iptables DNAT survives the switch',
  );
  const nat = (await node.run('iptables-save', ['-t', 'nat'])).stdout;
  assert.doesNotMatch(nat, /KUBE-SVC-|KUBE-SEP-|KUBE-NODEPORTS/, 'iptables mode chains are gone');
  assert.match(nat, /-m set --match-set KUBE-CLUSTER-IP dst,dst/);
  await checkNodeSettings(t, node, b);
  const afterFirst = parseIpvsadmSave((await node.run('ipvsadm', ['-Sn'])).stdout);
  const keys = afterFirst.virtualServers.map((v) => `${v.address}:${v.port}`);
  assert.ok(keys.includes(EXCLUDED_VS), 'the virtual server inside excludeCIDRs stays');
  assert.ok(!keys.includes(FOREIGN_VS), 'the foreign virtual server outside excludeCIDRs is removed');
  const excluded = afterFirst.virtualServers.find((v) => `${v.address}:${v.port}` === EXCLUDED_VS)!;
  assert.equal(excluded.realServers.length, 1, 'and keeps its real servers');
  const link = (await node.run('ip', ['-d', '-o', 'link', 'show', 'kube-ipvs0'])).stdout;
  assert.match(link, /state DOWN .* dummy /, link);
  const v6 = (await node.run('ip', ['-o', '-6', 'addr', 'show', 'dev', 'kube-ipvs0'])).stdout;
  assert.match(v6, /inet6 fd00:10:96::a\/128 /, v6);
  assert.doesNotMatch(v6, /tentative|dadfailed/, `no DAD on a dummy link: ${v6}`);
  t.note(`switch from iptables mode: held connection answered by ${dnatPod}; ${keys.length} virtual servers`);
  done();

  done = phase('B. IPVS mode: traffic');
  await checkTraffic(t, topo, client, [p0, p1, p2]);
  done();

  done = phase('B. IPVS mode: stale UDP, graceful termination');
  await checkStaleUdp(t, topo, m, b, client);
  await checkGracefulTermination(t, topo, m, b, client, hold);
  const excludedAfter = await ipvsList(node, EXCLUDED_VS);
  assert.ok(excludedAfter, 'the excluded virtual server survives the syncs of endpoint changes');
  await stop(b);
  done();

  // ------------------------------------------------------------------------------------------
  done = phase('C. restart');
  const down = await topo.connect(client, {
    proto: 'tcp',
    host: '10.96.0.10',
    port: 80,
    count: 2,
    timeoutMs: 5000,
  });
  assertOnly('ClusterIP while Switchboard is down', down, ['pod-0', 'pod-1']);
  const viaIpvs = await hold(client, '10.96.0.80', 80);
  const ipvsPod = held(viaIpvs.greeting);
  const c = await start('run --mode ipvs (restart)', 'ipvs');
  const first = c.records('ipvs sync done').filter((r) => r['full'] === true);
  assert.ok(first.length >= 1, `a full sync: ${JSON.stringify(first)}`);
  for (const r of first) {
    assert.deepEqual(
      r['lines'],
      { ipset: 0, ipvsadm: 0, ip: 0, iptables: 0 },
      `the restart's first sync writes nothing (${String(r['backend'])}): ${JSON.stringify(r)}`,
    );
  }
  assert.equal(held(await viaIpvs.probe()), ipvsPod, 'held connection through IPVS, across the restart');
  const after = await topo.connect(client, { proto: 'tcp', host: '10.96.0.10', port: 80, count: 4 });
  assertOnly('ClusterIP after the restart', after, ['pod-0', 'pod-1']);
  t.note(
    `restart: first syncs wrote nothing (${first.map((r) => JSON.stringify(r['operations'])).join(' ')})`,
  );
  await stop(c);
  done();

  // ------------------------------------------------------------------------------------------
  done = phase('D. back to iptables mode');
  const d = await start('run --mode iptables (switch back)', 'iptables');
  await d.waitFor(
    'the IPv4 IPVS leftovers removed',
    (r) => /removed IPVS mode's state/.test(r.msg) && r['family'] === 'IPv4',
  );
  const kept = d.records(
    'kept IPVS virtual servers that still carry connections (weight 0); they go once the connections are gone',
  );
  // Kept: every virtual server IPVS still counts connections for (TIME_WAIT, UDP flows of the
  // earlier checks), the held one among them; the idle ones are gone at once.
  const keptKeys = (kept[0]?.['virtualServers'] ?? []) as string[];
  assert.ok(
    keptKeys.includes('TCP 10.96.0.80:80'),
    `the held connection's virtual server is kept: ${keptKeys}`,
  );
  const vsKeys = async () =>
    parseIpvsadmSave((await node.run('ipvsadm', ['-Sn'])).stdout).virtualServers.map(
      (v) => `${v.address}:${v.port}`,
    );
  const atSwitch = await vsKeys();
  assert.ok(!atSwitch.includes('10.96.0.50:80'), `an idle virtual server is gone at once: ${atSwitch}`);
  const probe = held(await viaIpvs.probe());
  assert.equal(probe, ipvsPod, 'a connection made through IPVS survives the switch to iptables mode');
  const viaIptables = await topo.connect(client, { proto: 'tcp', host: '10.96.0.10', port: 80, count: 4 });
  assertWithin('ClusterIP in iptables mode', viaIptables, ['pod-0', 'pod-1']);
  await viaIpvs.reset();
  const drainedBy = Date.now() + 60_000;
  while ((await vsKeys()).includes('10.96.0.80:80')) {
    assert.ok(
      Date.now() < drainedBy,
      'the kept virtual server is still there 60 s after its connection closed',
    );
    await new Promise((r) => setTimeout(r, 1000));
  }
  t.note(
    `switch back to iptables mode: ${keptKeys.length} virtual servers kept at weight 0 for their connections; the held one answered ${probe}, and its virtual server went once the connection closed`,
  );
  await stop(d);
  done();

  // ------------------------------------------------------------------------------------------
  done = phase('E. cleanup');
  const cleanup = await node.run(process.execPath, [t.cli, 'cleanup', '--config', config], {
    reject: false,
    timeoutMs: 120_000,
  });
  assert.equal(cleanup.exitCode, 0, `switchboard cleanup: ${cleanup.stderr}`);
  const final = parseIpvsadmSave((await node.run('ipvsadm', ['-Sn'])).stdout);
  assert.deepEqual(
    final.virtualServers.map((v) => `${v.address}:${v.port}`),
    [EXCLUDED_VS],
    'cleanup leaves only the excluded virtual server',
  );
  const sets = (await node.run('ipset', ['list', '-n'])).stdout.trim();
  assert.equal(sets, '', `no sets left: ${sets}`);
  const links = await node.run('ip', ['link', 'show', 'kube-ipvs0'], { reject: false });
  assert.notEqual(links.exitCode, 0, 'kube-ipvs0 is gone');
  assert.doesNotMatch((await node.run('iptables-save', [])).stdout, /KUBE-/, 'no KUBE- chain left');
  done();
}

async function checkNodeSettings(t: CheckContext, node: CommandRunner, run: CliProcess): Promise<void> {
  const want: Record<string, string> = {
    'net.ipv4.vs.conntrack': '1',
    'net.ipv4.vs.expire_nodest_conn': '1',
    'net.ipv4.vs.expire_quiescent_template': '1',
    'net.ipv4.ip_forward': '1',
    'net.ipv4.conf.all.arp_ignore': '1',
    'net.ipv4.conf.all.arp_announce': '2',
  };
  const r = await node.run('sysctl', ['-n', ...Object.keys(want)]);
  assert.deepEqual(
    r.stdout.trim().split('\n'),
    Object.values(want),
    'the sysctls IPVS mode sets (strictARP too)',
  );
  const timeouts = (await node.run('ipvsadm', ['-L', '--timeout'])).stdout.trim();
  assert.equal(
    timeouts,
    'Timeout (tcp tcpfin udp): 1000 100 200',
    'ipvs.tcpTimeout/tcpFinTimeout/udpTimeout',
  );
  const reuse = (await node.run('sysctl', ['-n', 'net.ipv4.vs.conn_reuse_mode'])).stdout.trim();
  // The guest's root has CAP_SYS_RESOURCE (the host sandbox does not): oomScoreAdj's default
  // -999 is shown here, as kube-proxy sets it.
  const oomScoreAdj = readFileSync(`/proc/${run.pid}/oom_score_adj`, 'utf8').trim();
  assert.equal(oomScoreAdj, '-999', "oomScoreAdj -999 in the run's /proc/<pid>/oom_score_adj");
  t.note(
    `node settings in place; ${timeouts}; conn_reuse_mode left at ${reuse} (kernel >= 5.9); oom_score_adj ${oomScoreAdj}`,
  );
}

async function checkTraffic(t: CheckContext, topo: Topology, client: string, pods: PodNs[]): Promise<void> {
  const node = topo.in(topo.node);
  const ext = topo.external;
  const connect = (ns: string, host: string, port: number, count: number, extra: object = {}) =>
    topo.connect(ns, { proto: 'tcp', host, port, count, timeoutMs: 5000, ...extra });

  const fromPod = await connect(client, '10.96.0.10', 80, 6);
  assertOnly('ClusterIP from a pod', fromPod, ['pod-0', 'pod-1']);
  for (const r of fromPod) if (r.ok) assert.equal(r.peer, pods[2]!.ipv4, 'a pod source is not masqueraded');
  const fromPod6 = await connect(client, 'fd00:10:96::a', 80, 4);
  assertOnly('IPv6 ClusterIP (on kube-ipvs0, down) from a pod', fromPod6, ['pod-0', 'pod-1']);
  const fromNode = await connect(topo.node, '10.96.0.10', 80, 4);
  assertOnly('ClusterIP from the node', fromNode, ['pod-0', 'pod-1']);
  const nodePort = await connect(ext, '192.168.0.2', 30080, 4);
  assertOnly('NodePort from outside', nodePort, ['pod-0', 'pod-1']);
  for (const r of nodePort)
    if (r.ok) assert.notEqual(r.peer, EXTERNAL_IPV4, 'NodePort (eTP Cluster) is masqueraded');
  t.note(
    `ClusterIP pod ${JSON.stringify(tally(fromPod))} v6 ${JSON.stringify(tally(fromPod6))} node ${JSON.stringify(tally(fromNode))}; NodePort ${JSON.stringify(tally(nodePort))}`,
  );

  const allowed = await connect(ext, '10.200.0.1', 80, 2);
  assertOnly('LoadBalancer IP from an allowed source', allowed, ['pod-0', 'pod-1']);
  const denied = await connect(ext, '10.200.0.1', 80, 1, { source: EXTERNAL_ALT, timeoutMs: 2000 });
  assert.deepEqual(
    tally(denied),
    { '!TIMEOUT': 1 },
    'LoadBalancer IP from a source outside the ranges is dropped',
  );

  const localLb = await connect(ext, '10.200.0.2', 80, 4);
  assertOnly('eTP=Local LoadBalancer IP: only the local endpoint', localLb, ['pod-0']);
  for (const r of localLb)
    if (r.ok) assert.equal(r.peer, EXTERNAL_IPV4, 'eTP=Local keeps the client address');
  const localNp = await connect(ext, '192.168.0.2', 30082, 4);
  assertOnly('eTP=Local NodePort: only the local endpoint', localNp, ['pod-0']);
  for (const r of localNp)
    if (r.ok) assert.equal(r.peer, EXTERNAL_IPV4, 'eTP=Local keeps the client address');
  // not from pod 2, an endpoint of this service: a pod reaching itself needs KUBE-LOOP-BACK, kept for local endpoints
  const localCip = await connect(pods[1]!.ns, '10.96.0.30', 80, 8);
  assertOnly('the eTP=Local service inside the cluster: every endpoint', localCip, ['pod-0', 'pod-2']);
  t.note(
    `LB allowed ${JSON.stringify(tally(allowed))}, denied ${JSON.stringify(tally(denied))}; eTP=Local LB ${JSON.stringify(tally(localLb))} NodePort ${JSON.stringify(tally(localNp))} ClusterIP ${JSON.stringify(tally(localCip))}`,
  );

  const sticky = await connect(client, '10.96.0.40', 80, 6);
  assert.equal(
    Object.keys(tally(sticky)).length,
    1,
    `ClientIP affinity: one endpoint: ${JSON.stringify(tally(sticky))}`,
  );
  assert.ok(
    sticky.every((r) => r.ok),
    'ClientIP affinity: all answered',
  );

  // IPVS finds no real server and answers ICMP port unreachable (ip_vs_leave), as under kube-proxy
  const empty = await connect(client, '10.96.0.50', 80, 1, { timeoutMs: 2000 });
  assert.deepEqual(tally(empty), { '!ECONNREFUSED': 1 }, 'a service without endpoints does not connect');
  const emptyVs = await ipvsList(node, '10.96.0.50:80');
  assert.equal(emptyVs?.virtualServers[0]?.realServers.length, 0, 'its virtual server has no real servers');

  const udp = await topo.connect(client, {
    proto: 'udp',
    host: '10.96.0.60',
    port: 53,
    count: 6,
    timeoutMs: 3000,
  });
  assertOnly('UDP ClusterIP', udp, ['pod-0', 'pod-1']);
  t.note(
    `affinity ${JSON.stringify(tally(sticky))}; empty ${JSON.stringify(tally(empty))}; UDP ${JSON.stringify(tally(udp))}`,
  );
}

/** Stale UDP flows: an endpoint goes, the flow pinned to it is cleaned, the next datagram reaches the new one. */
async function checkStaleUdp(
  t: CheckContext,
  topo: Topology,
  m: Manifests,
  b: CliProcess,
  client: string,
): Promise<void> {
  const script = join(t.repoRoot, 'test', 'conntrack', 'udp-client.mjs');
  const send = async () => {
    const r = await topo
      .in(client)
      .run(
        process.execPath,
        [
          script,
          '--host',
          '10.96.0.61',
          '--port',
          '53',
          '--sport',
          '40053',
          '--count',
          '1',
          '--timeout-ms',
          '2000',
        ],
        { timeoutMs: 60_000 },
      );
    const [result] = (JSON.parse(r.stdout) as { results: { ok: boolean; name?: string; error?: string }[] })
      .results;
    return result!.ok ? result!.name! : `!${result!.error}`;
  };
  // Two exchanges more than 2 s apart: the flow is a steady one (ASSURED, 120 s), as a DNS
  // client's; a one-off flow would idle out of conntrack (30 s) before it could be stale.
  assert.equal(await send(), 'pod-0', 'UDP flow to the one endpoint');
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(await send(), 'pod-0', 'UDP flow to the one endpoint, again');
  const flow = async () =>
    (
      await topo.in(topo.node).run('conntrack', ['-L', '-p', 'udp', '--sport', '40053'], { reject: false })
    ).stdout.trim();
  const before = await flow();
  assert.match(before, /\[ASSURED\]/, `a steady flow: ${before}`);
  const mark = b.logs.length;
  m.write('udp1', [{ pod: m.pod(1) }]);
  await b.synced(mark);
  const cleaned = await b.waitFor(
    'the conntrack cleanup after the change',
    (r: LogRecord) => r.msg === 'conntrack cleanup done',
    {
      from: mark,
    },
  );
  // Who removes the flow depends on the kernel: from 5.9, IPVS with expire_nodest_conn=1
  // expires the connections of a deleted real server, their conntrack entries with them, so
  // Switchboard's cleanup (kube-proxy's) finds nothing left; older kernels leave it to it.
  assert.doesNotMatch(
    await flow(),
    /sport=5353 /,
    'the flow pinned to the old endpoint is gone from conntrack',
  );
  const after = await send();
  assert.equal(after, 'pod-1', 'the same UDP flow (same source port) reaches the new endpoint at once');
  t.note(
    `stale UDP: ${before}\n  gone after the endpoint change (Switchboard's cleanup deleted ${String(cleaned['deleted'])} entries); the flow from source port 40053 moved pod-0 -> ${after} with its first datagram`,
  );
}

async function checkGracefulTermination(
  t: CheckContext,
  topo: Topology,
  m: Manifests,
  b: CliProcess,
  client: string,
  hold: (ns: string, host: string, port: number) => Promise<HeldConnection>,
): Promise<void> {
  const node = topo.in(topo.node);
  const vip = '10.96.0.70:80';
  const h = await hold(client, '10.96.0.70', 80);
  const kept = held(h.greeting);
  const goes = kept === 'pod-0' ? 0 : 1;
  const stays = 1 - goes;
  const target = `${m.pod(goes).ipv4}:${TCP_TARGET}`;
  const mark = b.logs.length;
  m.write('drain', [{ pod: m.pod(stays) }]);
  await b.synced(mark);
  const rsOf = async () =>
    (await ipvsList(node, vip))?.virtualServers[0]?.realServers.find(
      (r) => `${r.address}:${r.port}` === target,
    );
  const draining = await rsOf();
  assert.equal(draining?.weight, 0, `the endpoint that left is at weight 0: ${JSON.stringify(draining)}`);
  assert.equal(draining?.activeConnections, 1, 'with the held connection active');
  assert.equal(held(await h.probe()), kept, 'the established connection survives the endpoint change');
  const fresh = await topo.connect(client, {
    proto: 'tcp',
    host: '10.96.0.70',
    port: 80,
    count: 4,
    timeoutMs: 5000,
  });
  assertOnly('new connections after the endpoint change', fresh, [`pod-${stays}`]);
  // Several check periods with the connection open: it must not be deleted.
  await new Promise((r) => setTimeout(r, 3 * GRACEFUL_PERIOD_MS));
  const stillThere = await rsOf();
  assert.equal(
    stillThere?.activeConnections,
    1,
    `kept while the connection is open: ${JSON.stringify(stillThere)}`,
  );
  assert.equal(held(await h.probe()), kept, 'still answering after several checks');
  await h.reset();
  const seen: string[] = [];
  const deadline = Date.now() + 60_000;
  for (;;) {
    const rs = await rsOf();
    seen.push(rs ? `w${rs.weight}/${rs.activeConnections}/${rs.inactiveConnections}` : 'gone');
    if (!rs) break;
    assert.ok(Date.now() < deadline, `the drained real server is still there after 60 s: ${seen.join(' ')}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  // the applier deletes it, reads it back, then logs: wait for the log
  const deleted = await b.waitFor(
    'graceful termination deleting the drained real server',
    (r) => r.msg === 'graceful termination: deleted drained real server',
    { from: mark, timeoutMs: 30_000 },
  );
  assert.equal(deleted['realServer'], `TCP ${vip}/${target}`);
  t.note(
    `graceful termination: held on ${kept}, new connections ${JSON.stringify(tally(fresh))}; after the reset (weight/active/inactive): ${seen.join(' ')}`,
  );
}
