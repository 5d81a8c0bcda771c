/**
 * Real packets to ClusterIPs (spec §5, §9, §11, §12), rules written by Switchboard's
 * IptablesBackend (nft) in a topology's node namespace, IPv4 and IPv6: pods and the node
 * reach only ready endpoints and spread over all of them, a service without endpoints
 * refuses at once, ClientIP affinity sticks, internalTrafficPolicy Local keeps traffic on
 * this node (or drops it), and a pod reaching itself through its service is masqueraded.
 *
 * Pods: 0 is the client; 1-3 are ready endpoints on this node; 4 is a ready endpoint on
 * another node (still reachable, so that avoiding it proves something); 5 runs a server
 * but is listed as not ready.
 */
import { expect, it } from 'vitest';
import type { PodNs } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { expectAllFailed, expectSpread, landedOn, peersSeen } from './assertions.js';
import { DROP_TIMEOUT_MS, type Lab, labPerSuite, podName, TCP_TARGET, UDP_TARGET } from './lab.js';
import { type EndpointSpec, OTHER_NODE, type ServiceSpec, serviceEvents } from './objects.js';
import { NodeProxy } from './proxy.js';

const ports = [
  { name: 'http', protocol: 'TCP', port: 80, targetPort: TCP_TARGET },
  { name: 'dns', protocol: 'UDP', port: 53, targetPort: UDP_TARGET },
] as const;

const WEB: ServiceSpec = { name: 'web', clusterIPs: ['10.96.0.10', 'fd00:96::10'], ports };
const EMPTY: ServiceSpec = { name: 'empty', clusterIPs: ['10.96.0.11', 'fd00:96::11'], ports };
const STICKY: ServiceSpec = {
  name: 'sticky',
  clusterIPs: ['10.96.0.12', 'fd00:96::12'],
  ports,
  clientIPAffinitySeconds: 10800,
};
const ITP_LOCAL: ServiceSpec = {
  name: 'itp-local',
  clusterIPs: ['10.96.0.13'],
  ports,
  internalTrafficPolicy: 'Local',
};
const ITP_REMOTE_ONLY: ServiceSpec = { ...ITP_LOCAL, name: 'itp-remote-only', clusterIPs: ['10.96.0.14'] };
const SELF: ServiceSpec = { name: 'self', clusterIPs: ['10.96.0.15', 'fd00:96::15'], ports };
const DRAINING: ServiceSpec = { name: 'draining', clusterIPs: ['10.96.0.16'], ports };

describeKernel('traffic to ClusterIPs (nft, IPv4 and IPv6)', () => {
  let lab: Lab;
  let client: PodNs;
  let local: PodNs[];
  let remote: PodNs;
  let notReady: PodNs;
  const names = () => local.map(podName);

  labPerSuite(6, async (created) => {
    lab = created;
    client = lab.pod(0);
    local = [lab.pod(1), lab.pod(2), lab.pod(3)];
    remote = lab.pod(4);
    notReady = lab.pod(5);
    await lab.startEndpoints([...local, remote, notReady]);
    const ready = local.map((pod): EndpointSpec => ({ pod }));
    const proxy = await NodeProxy.create(lab.nodeRunner, { backend: 'nft', families: ['IPv4', 'IPv6'] });
    proxy.apply(
      ...serviceEvents(WEB, [...ready, { pod: notReady, ready: false, serving: false }]),
      ...serviceEvents(EMPTY, []),
      ...serviceEvents(STICKY, ready),
      ...serviceEvents(ITP_LOCAL, [
        { pod: local[0]! },
        { pod: local[1]! },
        { pod: remote, nodeName: OTHER_NODE },
      ]),
      ...serviceEvents(ITP_REMOTE_ONLY, [{ pod: remote, nodeName: OTHER_NODE }]),
      ...serviceEvents(SELF, [{ pod: local[0]! }]),
      // Nothing ready: the serving, terminating endpoint takes the traffic; the other does not.
      ...serviceEvents(DRAINING, [
        { pod: local[1]!, ready: false, serving: true, terminating: true },
        { pod: local[2]!, ready: false, serving: false, terminating: true },
      ]),
    );
    expect(proxy.store.currentProblems()).toEqual([]);
    await proxy.sync();
  });

  it('pod → ClusterIP (TCP): only ready endpoints answer, spread over all of them, source kept', async () => {
    const results = await lab.connect(client.ns, { proto: 'tcp', host: '10.96.0.10', port: 80, count: 300 });
    expectSpread(results, names());
    expect(Object.values(peersSeen(results)).flat()).toEqual(names().map(() => client.ipv4));
    // The not-ready endpoint's server is up: it is the rules that keep traffic away from it.
    const direct = await lab.connect(client.ns, { proto: 'tcp', host: notReady.ipv4, port: TCP_TARGET });
    expect(landedOn(direct)).toEqual([podName(notReady)]);
  });

  it('node → ClusterIP (TCP): only ready endpoints answer, spread over all of them', async () => {
    const results = await lab.connect(lab.topo.node, {
      proto: 'tcp',
      host: '10.96.0.10',
      port: 80,
      count: 150,
    });
    expectSpread(results, names());
  });

  it('pod → ClusterIP (UDP): only ready endpoints answer, spread over all of them', async () => {
    const results = await lab.connect(client.ns, { proto: 'udp', host: '10.96.0.10', port: 53, count: 150 });
    expectSpread(results, names());
  });

  it('a service without endpoints is refused at once (TCP and UDP), not dropped', async () => {
    // One at a time, and few: the kernel sends a host at most a burst of 6 ICMP errors, then
    // one a second (net.ipv4.icmp_ratelimit); REJECTs beyond that look like drops.
    const once = { count: 2, concurrency: 1 };
    const tcp = await lab.connect(client.ns, { proto: 'tcp', host: '10.96.0.11', port: 80, ...once });
    expectAllFailed(tcp, 'ECONNREFUSED');
    const udp = await lab.connect(client.ns, { proto: 'udp', host: '10.96.0.11', port: 53, ...once });
    expectAllFailed(udp, 'ECONNREFUSED');
    const node = await lab.connect(lab.topo.node, { proto: 'tcp', host: '10.96.0.11', port: 80, ...once });
    expectAllFailed(node, 'ECONNREFUSED');
  });

  it('ClientIP affinity: every connection from one client lands on the same endpoint', async () => {
    for (const from of [client.ns, lab.topo.node]) {
      // One at a time: the first connection must have recorded the client before the next arrives.
      const results = await lab.connect(from, {
        proto: 'tcp',
        host: '10.96.0.12',
        port: 80,
        count: 30,
        concurrency: 1,
      });
      const landed = landedOn(results);
      expect(landed, `from ${from}`).toHaveLength(1);
      expect(names()).toContain(landed[0]);
    }
  });

  it('internalTrafficPolicy Local: a pod reaches only the endpoints on this node', async () => {
    const results = await lab.connect(client.ns, { proto: 'tcp', host: '10.96.0.13', port: 80, count: 100 });
    expectSpread(results, [podName(local[0]!), podName(local[1]!)]);
  });

  it('internalTrafficPolicy Local without a local endpoint: dropped, not refused', async () => {
    const results = await lab.connect(client.ns, {
      proto: 'tcp',
      host: '10.96.0.14',
      port: 80,
      count: 2,
      timeoutMs: DROP_TIMEOUT_MS,
    });
    expectAllFailed(results, 'TIMEOUT');
    // The remote endpoint itself is fine: it is the policy that keeps traffic away.
    const direct = await lab.connect(client.ns, { proto: 'tcp', host: remote.ipv4, port: TCP_TARGET });
    expect(landedOn(direct)).toEqual([podName(remote)]);
  });

  it('hairpin: a pod reaching its own service lands on itself, masqueraded to the node', async () => {
    const self = local[0]!;
    const results = await lab.connect(self.ns, { proto: 'tcp', host: '10.96.0.15', port: 80, count: 10 });
    expect(landedOn(results)).toEqual([podName(self)]);
    // Without the SEP chain's masquerade the reply would go straight back, un-NATed, and fail.
    expect(peersSeen(results)).toEqual({ [podName(self)]: [self.gatewayV4] });
  });

  it('no ready endpoint: a serving, terminating endpoint takes the traffic (spec §2.2 fallback)', async () => {
    const results = await lab.connect(client.ns, { proto: 'tcp', host: '10.96.0.16', port: 80, count: 20 });
    expect(landedOn(results)).toEqual([podName(local[1]!)]);
  });

  it('IPv6 (second backend): pod → ClusterIP over TCP and UDP spreads over the ready endpoints', async () => {
    const tcp = await lab.connect(client.ns, { proto: 'tcp', host: 'fd00:96::10', port: 80, count: 150 });
    expectSpread(tcp, names());
    expect(Object.values(peersSeen(tcp)).flat()).toEqual(names().map(() => client.ipv6));
    const udp = await lab.connect(client.ns, { proto: 'udp', host: 'fd00:96::10', port: 53, count: 100 });
    expectSpread(udp, names());
    const empty = await lab.connect(client.ns, {
      proto: 'tcp',
      host: 'fd00:96::11',
      port: 80,
      count: 2,
      concurrency: 1,
    });
    expectAllFailed(empty, 'ECONNREFUSED');
  });

  it('IPv6: ClientIP affinity sticks, and hairpin traffic is masqueraded', async () => {
    const sticky = await lab.connect(client.ns, {
      proto: 'tcp',
      host: 'fd00:96::12',
      port: 80,
      count: 20,
      concurrency: 1,
    });
    expect(landedOn(sticky)).toHaveLength(1);
    expect(names()).toContain(landedOn(sticky)[0]);
    const self = local[0]!;
    const hairpin = await lab.connect(self.ns, { proto: 'tcp', host: 'fd00:96::15', port: 80, count: 5 });
    expect(peersSeen(hairpin)).toEqual({ [podName(self)]: [self.gatewayV6] });
  });
});
