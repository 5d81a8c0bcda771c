/**
 * Real packets from outside the node (spec §9, §11-§14): NodePorts under both external
 * traffic policies, a LoadBalancer VIP with source ranges, externalIPs, and the refusal of
 * a service without endpoints, with rules written by Switchboard's IptablesBackend (nft,
 * IPv4 and IPv6) in the node namespace. The external host routes everything via the node.
 *
 * Pods: 1 and 2 are endpoints on this node; 3 is an endpoint on another node, still
 * reachable through this one (so that avoiding it proves something). Pod 0 is unused
 * by the services.
 */
import { expect, it } from 'vitest';
import { EXTERNAL_IPV4, EXTERNAL_IPV6, NODE_IPV4, NODE_IPV6, type PodNs } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { expectAllFailed, expectSpread, landedOn, peersSeen } from './assertions.js';
import {
  DROP_TIMEOUT_MS,
  EXTERNAL_ALT_IPV4,
  EXTERNAL_ALT_IPV6,
  type Lab,
  labPerSuite,
  podName,
  TCP_TARGET,
} from './lab.js';
import { OTHER_NODE, type PortSpec, type ServiceSpec, serviceEvents } from './objects.js';
import { NodeProxy } from './proxy.js';

const http = (nodePort?: number): PortSpec[] => [
  { name: 'http', protocol: 'TCP', port: 80, targetPort: TCP_TARGET, ...(nodePort ? { nodePort } : {}) },
];

const NP_CLUSTER: ServiceSpec = {
  name: 'np-cluster',
  type: 'NodePort',
  clusterIPs: ['10.96.1.10', 'fd00:96::1:10'],
  ports: http(30080),
  externalTrafficPolicy: 'Cluster',
};
const NP_LOCAL: ServiceSpec = {
  name: 'np-local',
  type: 'NodePort',
  clusterIPs: ['10.96.1.11'],
  ports: http(30090),
  externalTrafficPolicy: 'Local',
};
const NP_LOCAL_NONE: ServiceSpec = {
  ...NP_LOCAL,
  name: 'np-local-none',
  clusterIPs: ['10.96.1.12'],
  ports: http(30091),
};
const LB_VIP = '203.0.113.10';
const LB_VIP6 = '2001:db8:1b::10';
const LB: ServiceSpec = {
  name: 'lb',
  type: 'LoadBalancer',
  clusterIPs: ['10.96.1.13', 'fd00:96::1:13'],
  ports: http(30070),
  loadBalancerIPs: [LB_VIP, LB_VIP6],
  loadBalancerSourceRanges: [`${EXTERNAL_IPV4}/32`, `${EXTERNAL_IPV6}/128`],
};
const EXTERNAL_IP = '198.51.100.20';
const EXT_IP: ServiceSpec = {
  name: 'ext-ip',
  clusterIPs: ['10.96.1.14'],
  ports: http(),
  externalIPs: [EXTERNAL_IP],
};
const EMPTY_EXTERNAL_IP = '198.51.100.21';
const EMPTY: ServiceSpec = {
  name: 'empty',
  type: 'NodePort',
  clusterIPs: ['10.96.1.15'],
  ports: http(30011),
  externalIPs: [EMPTY_EXTERNAL_IP],
};

describeKernel('traffic from outside the node (nft, IPv4 and IPv6)', () => {
  let lab: Lab;
  let local: [PodNs, PodNs];
  let remote: PodNs;
  const ext = () => lab.topo.external;

  labPerSuite(4, async (created) => {
    lab = created;
    local = [lab.pod(1), lab.pod(2)];
    remote = lab.pod(3);
    await lab.startEndpoints([...local, remote]);
    // Something listening on the node at the empty service's NodePort: a refusal must come from the rules.
    await lab.startServer(lab.topo.node, 'node-listener', { tcp: [30011, 30012] });
    const localEps = local.map((pod) => ({ pod }));
    const remoteEp = { pod: remote, nodeName: OTHER_NODE };
    const proxy = await NodeProxy.create(lab.nodeRunner, { backend: 'nft', families: ['IPv4', 'IPv6'] });
    proxy.apply(
      ...serviceEvents(NP_CLUSTER, [localEps[0]!, remoteEp]),
      ...serviceEvents(NP_LOCAL, [...localEps, remoteEp]),
      ...serviceEvents(NP_LOCAL_NONE, [remoteEp]),
      ...serviceEvents(LB, localEps),
      ...serviceEvents(EXT_IP, localEps),
      ...serviceEvents(EMPTY, []),
    );
    expect(proxy.store.currentProblems()).toEqual([]);
    await proxy.sync();
  });

  it('NodePort, externalTrafficPolicy Cluster: endpoints on any node answer, and see the node as the source', async () => {
    const results = await lab.connect(ext(), { proto: 'tcp', host: NODE_IPV4, port: 30080, count: 100 });
    expectSpread(results, [podName(local[0]), podName(remote)]);
    // Masqueraded to the node's address on the pod's side, not the external host's.
    expect(peersSeen(results)).toEqual({
      [podName(local[0])]: [local[0].gatewayV4],
      [podName(remote)]: [remote.gatewayV4],
    });
  });

  it('NodePort, externalTrafficPolicy Cluster, over IPv6', async () => {
    const results = await lab.connect(ext(), { proto: 'tcp', host: NODE_IPV6, port: 30080, count: 100 });
    expectSpread(results, [podName(local[0]), podName(remote)]);
    expect(peersSeen(results)).toEqual({
      [podName(local[0])]: [local[0].gatewayV6],
      [podName(remote)]: [remote.gatewayV6],
    });
  });

  it("NodePort, externalTrafficPolicy Local: only this node's endpoints answer, and see the client's own address", async () => {
    const results = await lab.connect(ext(), { proto: 'tcp', host: NODE_IPV4, port: 30090, count: 100 });
    expectSpread(results, local.map(podName));
    expect(peersSeen(results)).toEqual(Object.fromEntries(local.map((p) => [podName(p), [EXTERNAL_IPV4]])));
  });

  it('NodePort, externalTrafficPolicy Local, from a pod: short-circuited to every endpoint, source kept', async () => {
    const client = lab.pod(0);
    const results = await lab.connect(client.ns, { proto: 'tcp', host: NODE_IPV4, port: 30090, count: 150 });
    expectSpread(results, [...local, remote].map(podName));
    expect([...new Set(Object.values(peersSeen(results)).flat())]).toEqual([client.ipv4]);
  });

  it('NodePort, externalTrafficPolicy Local, from the node itself: every endpoint, masqueraded', async () => {
    const results = await lab.connect(lab.topo.node, {
      proto: 'tcp',
      host: NODE_IPV4,
      port: 30090,
      count: 150,
    });
    expectSpread(results, [...local, remote].map(podName));
    expect(peersSeen(results)).toEqual(
      Object.fromEntries([...local, remote].map((p) => [podName(p), [p.gatewayV4]])),
    );
  });

  it('NodePort on 127.0.0.1 from the node (localhostNodePorts, the default)', async () => {
    const results = await lab.connect(lab.topo.node, {
      proto: 'tcp',
      host: '127.0.0.1',
      port: 30080,
      count: 40,
    });
    expect(landedOn(results)).toEqual([podName(local[0]), podName(remote)].sort());
  });

  it('NodePort, externalTrafficPolicy Local, no endpoint on this node: dropped', async () => {
    const results = await lab.connect(ext(), {
      proto: 'tcp',
      host: NODE_IPV4,
      port: 30091,
      count: 2,
      timeoutMs: DROP_TIMEOUT_MS,
    });
    expectAllFailed(results, 'TIMEOUT');
    // The remote endpoint is reachable from the external host: the policy is what keeps it out.
    const direct = await lab.connect(ext(), { proto: 'tcp', host: remote.ipv4, port: TCP_TARGET });
    expect(landedOn(direct)).toEqual([podName(remote)]);
  });

  it('LoadBalancer VIP with source ranges: an allowed source connects, another is dropped', async () => {
    const allowed = await lab.connect(ext(), {
      proto: 'tcp',
      host: LB_VIP,
      port: 80,
      count: 40,
      source: EXTERNAL_IPV4,
    });
    expect(landedOn(allowed)).toEqual(local.map(podName).sort());
    const denied = await lab.connect(ext(), {
      proto: 'tcp',
      host: LB_VIP,
      port: 80,
      count: 2,
      source: EXTERNAL_ALT_IPV4,
      timeoutMs: DROP_TIMEOUT_MS,
    });
    expectAllFailed(denied, 'TIMEOUT');
    // Pods are not exempt from the source ranges (spec §14).
    const fromPod = await lab.connect(lab.pod(0).ns, {
      proto: 'tcp',
      host: LB_VIP,
      port: 80,
      count: 2,
      timeoutMs: DROP_TIMEOUT_MS,
    });
    expectAllFailed(fromPod, 'TIMEOUT');
    // Source ranges filter the VIP only: the NodePort stays open to every source (spec §9).
    const nodePort = await lab.connect(ext(), {
      proto: 'tcp',
      host: NODE_IPV4,
      port: 30070,
      count: 40,
      source: EXTERNAL_ALT_IPV4,
    });
    expect(landedOn(nodePort)).toEqual(local.map(podName).sort());
  });

  it('LoadBalancer VIP with source ranges over IPv6', async () => {
    // Both addresses are in one /64: name the source, or the kernel may pick either.
    const allowed = await lab.connect(ext(), {
      proto: 'tcp',
      host: LB_VIP6,
      port: 80,
      count: 40,
      source: EXTERNAL_IPV6,
    });
    expect(landedOn(allowed)).toEqual(local.map(podName).sort());
    const denied = await lab.connect(ext(), {
      proto: 'tcp',
      host: LB_VIP6,
      port: 80,
      count: 2,
      source: EXTERNAL_ALT_IPV6,
      timeoutMs: DROP_TIMEOUT_MS,
    });
    expectAllFailed(denied, 'TIMEOUT');
    const nodePort = await lab.connect(ext(), {
      proto: 'tcp',
      host: NODE_IPV6,
      port: 30070,
      count: 40,
      source: EXTERNAL_ALT_IPV6,
    });
    expect(landedOn(nodePort)).toEqual(local.map(podName).sort());
  });

  it('externalIPs: reach the endpoints, masqueraded (externalTrafficPolicy Cluster)', async () => {
    const results = await lab.connect(ext(), { proto: 'tcp', host: EXTERNAL_IP, port: 80, count: 100 });
    expectSpread(results, local.map(podName));
    expect(peersSeen(results)).toEqual(Object.fromEntries(local.map((p) => [podName(p), [p.gatewayV4]])));
  });

  it("a service without endpoints refuses its NodePort and externalIP, even with a listener on the node's port", async () => {
    // One at a time, and few: the kernel rate-limits ICMP errors per host (burst of 6).
    const once = { count: 2, concurrency: 1 };
    expectAllFailed(
      await lab.connect(ext(), { proto: 'tcp', host: NODE_IPV4, port: 30011, ...once }),
      'ECONNREFUSED',
    );
    expectAllFailed(
      await lab.connect(ext(), { proto: 'tcp', host: EMPTY_EXTERNAL_IP, port: 80, ...once }),
      'ECONNREFUSED',
    );
    // The same listener answers on a port no service claims: the refusal came from the rules.
    const listener = await lab.connect(ext(), { proto: 'tcp', host: NODE_IPV4, port: 30012 });
    expect(landedOn(listener)).toEqual(['node-listener']);
  });
});
