/**
 * The core paths with both iptables backends (nft and legacy), each in its own topology:
 * ClusterIP spreading, a NodePort from the external host, the refusal of a service
 * without endpoints, and endpoint churn through partial syncs while a connection is held.
 *
 * Pods: 0 is the client; 1-3 are endpoints on this node.
 */
import { expect, it } from 'vitest';
import type { Backend } from '../../src/kernel/backend.js';
import { NODE_IPV4, type PodNs } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { expectAllFailed, expectSpread, landedOn, peersSeen } from './assertions.js';
import { DROP_TIMEOUT_MS, type Lab, labPerSuite, podName, TCP_TARGET } from './lab.js';
import { type ServiceSpec, serviceEvents, sliceEvents } from './objects.js';
import { NodeProxy } from './proxy.js';

const WEB: ServiceSpec = {
  name: 'web',
  type: 'NodePort',
  clusterIPs: ['10.96.2.10'],
  ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: TCP_TARGET, nodePort: 30080 }],
};
const EMPTY: ServiceSpec = {
  ...WEB,
  name: 'empty',
  clusterIPs: ['10.96.2.11'],
  ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: TCP_TARGET, nodePort: 30011 }],
};
const CHURN: ServiceSpec = {
  ...WEB,
  name: 'churn',
  type: 'ClusterIP',
  clusterIPs: ['10.96.2.12'],
  ports: [WEB.ports[0]!],
};
const CHURN_VIP = { host: '10.96.2.12', port: 80 };

for (const backend of ['nft', 'legacy'] as const satisfies readonly Backend[]) {
  describeKernel(`core traffic paths with the ${backend} backend`, () => {
    let lab: Lab;
    let proxy: NodeProxy;
    let client: PodNs;
    let endpoints: PodNs[];

    labPerSuite(4, async (created) => {
      lab = created;
      client = lab.pod(0);
      endpoints = [lab.pod(1), lab.pod(2), lab.pod(3)];
      await lab.startEndpoints(endpoints);
      const all = endpoints.map((pod) => ({ pod }));
      proxy = await NodeProxy.create(lab.nodeRunner, { backend, families: ['IPv4'] });
      proxy.apply(...serviceEvents(WEB, all), ...serviceEvents(EMPTY, []), ...serviceEvents(CHURN, all));
      expect(proxy.store.currentProblems()).toEqual([]);
      await proxy.sync();
    });

    it('the rules went into this backend only', async () => {
      const other: Backend = backend === 'nft' ? 'legacy' : 'nft';
      expect(await lab.save(backend, 'IPv4', 'nat')).toContain('KUBE-SVC-');
      expect(await lab.save(other, 'IPv4')).not.toContain('KUBE-');
    });

    it('pod → ClusterIP spreads over every endpoint', async () => {
      const results = await lab.connect(client.ns, {
        proto: 'tcp',
        host: '10.96.2.10',
        port: 80,
        count: 300,
      });
      expectSpread(results, endpoints.map(podName));
    });

    it('NodePort from the external host spreads over every endpoint, masqueraded', async () => {
      const results = await lab.connect(lab.topo.external, {
        proto: 'tcp',
        host: NODE_IPV4,
        port: 30080,
        count: 150,
      });
      expectSpread(results, endpoints.map(podName));
      expect(peersSeen(results)).toEqual(
        Object.fromEntries(endpoints.map((p) => [podName(p), [p.gatewayV4]])),
      );
    });

    it('a service without endpoints refuses its ClusterIP and NodePort at once', async () => {
      // One at a time, and few: the kernel rate-limits ICMP errors per host (burst of 6).
      const once = { count: 2, concurrency: 1 };
      expectAllFailed(
        await lab.connect(client.ns, { proto: 'tcp', host: '10.96.2.11', port: 80, ...once }),
        'ECONNREFUSED',
      );
      expectAllFailed(
        await lab.connect(lab.topo.external, { proto: 'tcp', host: NODE_IPV4, port: 30011, ...once }),
        'ECONNREFUSED',
      );
    });

    it('endpoint churn in partial syncs: a held connection survives, new ones follow the endpoints', async () => {
      const held = await lab.hold(client.ns, CHURN_VIP);
      expect(held.greeting).toMatchObject({ ok: true });
      const a = endpoints.find((p) => held.greeting.ok && held.greeting.name === podName(p))!;
      const [b, c] = endpoints.filter((p) => p !== a) as [PodNs, PodNs];

      // B leaves the service.
      proxy.apply(...sliceEvents(CHURN, [{ pod: a }, { pod: c }]));
      expect((await proxy.sync('partial')).map((r) => r.full)).toEqual([false]);
      expect(await held.probe()).toMatchObject({ ok: true, name: podName(a), seq: 1 });
      const withoutB = await lab.connect(client.ns, { proto: 'tcp', ...CHURN_VIP, count: 100 });
      expectSpread(withoutB, [podName(a), podName(c)]);

      // A leaves too: the held connection is conntrack's now, new ones all go to C.
      proxy.apply(...sliceEvents(CHURN, [{ pod: c }]));
      expect((await proxy.sync('partial')).map((r) => r.full)).toEqual([false]);
      expect(await held.probe()).toMatchObject({ ok: true, name: podName(a), seq: 2 });
      const onlyC = await lab.connect(client.ns, { proto: 'tcp', ...CHURN_VIP, count: 30 });
      expect(landedOn(onlyC)).toEqual([podName(c)]);
      // B's server still answers directly: the rules are what keep new connections off it.
      const direct = await lab.connect(client.ns, { proto: 'tcp', host: b.ipv4, port: TCP_TARGET });
      expect(landedOn(direct)).toEqual([podName(b)]);
      await held.stop();
    });

    it('partial syncs take a service to no endpoints, back to some, away and back again', async () => {
      const [, b, c] = endpoints as [PodNs, PodNs, PodNs];
      const partial = async () => expect((await proxy.sync('partial')).map((r) => r.full)).toEqual([false]);
      const once = { proto: 'tcp' as const, ...CHURN_VIP, count: 2, concurrency: 1 };

      proxy.apply(...sliceEvents(CHURN, []));
      await partial();
      expectAllFailed(await lab.connect(client.ns, once), 'ECONNREFUSED');

      proxy.apply(...sliceEvents(CHURN, [{ pod: b }, { pod: c }]));
      await partial();
      expectSpread(await lab.connect(client.ns, { proto: 'tcp', ...CHURN_VIP, count: 100 }), [
        podName(b),
        podName(c),
      ]);

      // Deleted: no rule at all for the ClusterIP any more, so nothing answers (and nothing refuses).
      proxy.apply(...serviceEvents(CHURN, [], 'delete'));
      await partial();
      const gone = await lab.connect(client.ns, { ...once, timeoutMs: DROP_TIMEOUT_MS });
      expect(gone.filter((r) => r.ok || r.error === 'ECONNREFUSED')).toEqual([]);
      expect(await lab.save(backend, 'IPv4', 'nat')).not.toContain('traffic/churn');

      proxy.apply(...serviceEvents(CHURN, [{ pod: c }]));
      await partial();
      expect(landedOn(await lab.connect(client.ns, { proto: 'tcp', ...CHURN_VIP, count: 10 }))).toEqual([
        podName(c),
      ]);
    });
  });
}
