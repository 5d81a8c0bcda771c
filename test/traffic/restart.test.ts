/**
 * Connections keep flowing while a restarted proxy takes over its own rules, with both
 * iptables backends: new connections to a Service are made all along the restarted
 * proxy's first full sync (which finds its rules in place and writes nothing), and again
 * along one that finds another Service changed while it was down (and writes only that
 * Service's chains). An established connection survives both.
 *
 * Pods: 0 is the client; 1-3 are endpoints. Forty more Services give the syncs some
 * length. The tests run in order and share the node.
 */
import { expect, it } from 'vitest';
import type { Backend } from '../../src/kernel/backend.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { PodNs } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { expectSpread } from './assertions.js';
import { type Lab, labPerSuite, podName, TCP_TARGET } from './lab.js';
import { type ServiceSpec, serviceEvents, sliceEvents } from './objects.js';
import { NodeProxy } from './proxy.js';

const http = [{ name: 'http', protocol: 'TCP', port: 80, targetPort: TCP_TARGET }] as const;
const BUSY: ServiceSpec = { name: 'busy', clusterIPs: ['10.96.4.10', 'fd00:96::4:10'], ports: http };
const OTHER: ServiceSpec = { name: 'other', clusterIPs: ['10.96.4.11'], ports: http };
const BUSY_V4 = { host: '10.96.4.10', port: 80 };
const FILLERS = 40;
const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

/** Runs `sync` while connections are being made; returns the connections and when the sync ran. */
async function syncUnderTraffic<T>(lab: Lab, client: PodNs, sync: () => Promise<T>) {
  const t0 = performance.now();
  const traffic = lab.connect(client.ns, { proto: 'tcp', ...BUSY_V4, count: 300 });
  // Let the first connections through before the restart begins.
  await new Promise((r) => setTimeout(r, 200));
  const syncStart = performance.now() - t0;
  const value = await sync();
  const syncEnd = performance.now() - t0;
  const results = await traffic;
  return { value, results, syncStart, syncEnd, trafficEnd: performance.now() - t0 };
}

for (const backend of ['nft', 'legacy'] as const satisfies readonly Backend[]) {
  describeKernel(`connections during a restart with the ${backend} backend`, () => {
    let lab: Lab;
    let proxy: NodeProxy;
    let client: PodNs;
    let endpoints: [PodNs, PodNs, PodNs];

    labPerSuite(4, async (created) => {
      lab = created;
      client = lab.pod(0);
      endpoints = [lab.pod(1), lab.pod(2), lab.pod(3)];
      await lab.startEndpoints(endpoints);
      proxy = await NodeProxy.create(lab.nodeRunner, { backend, families: FAMILIES });
      proxy.apply(
        ...serviceEvents(
          BUSY,
          endpoints.map((pod) => ({ pod })),
        ),
      );
      proxy.apply(...serviceEvents(OTHER, [{ pod: endpoints[0] }, { pod: endpoints[1] }]));
      for (let i = 0; i < FILLERS; i++) {
        const filler: ServiceSpec = { name: `filler-${i}`, clusterIPs: [`10.96.5.${i + 1}`], ports: http };
        proxy.apply(...serviceEvents(filler, [{ pod: endpoints[i % 3]! }]));
      }
      expect(proxy.store.currentProblems()).toEqual([]);
      await proxy.sync();
    });

    it('new connections flow all along a restart over its own rules, which writes nothing', async () => {
      const held = await lab.hold(client.ns, BUSY_V4);
      expect(held.greeting).toMatchObject({ ok: true });
      const run = await syncUnderTraffic(lab, client, async () => {
        await proxy.restart();
        return proxy.sync();
      });
      expect(run.value.map((r) => [r.full, r.restoreLines])).toEqual([
        [true, 0],
        [true, 0],
      ]);
      // The sync ran while connections were being made.
      expect(run.syncEnd).toBeLessThan(run.trafficEnd);
      expectSpread(run.results, endpoints.map(podName));
      expect(await held.probe()).toMatchObject({ ok: true, seq: 1 });
      await held.stop();
    });

    it('and along a restart that finds another Service changed while it was down', async () => {
      proxy.apply(...sliceEvents(OTHER, [{ pod: endpoints[2] }]));
      const run = await syncUnderTraffic(lab, client, async () => {
        await proxy.restart();
        return proxy.sync();
      });
      const [v4] = run.value;
      expect(v4!.restoreLines).toBeGreaterThan(0);
      expect(run.syncEnd).toBeLessThan(run.trafficEnd);
      expectSpread(run.results, endpoints.map(podName));
      const nat = await lab.save(backend, 'IPv4', 'nat');
      expect(nat).toContain(`${endpoints[2].ipv4}:${TCP_TARGET}`);
    });
  });
}
