/**
 * The proxy's life around live traffic, with both iptables backends: a restart (new
 * IptablesBackend instances whose first full sync meets the previous instance's rules)
 * keeps established connections and cleans up what changed meanwhile; a failing
 * iptables-restore leaves the previous rules serving until the next sync recovers; and
 * another agent's chains and rules survive syncs and `cleanupIptables`, which leaves no
 * KUBE- chain behind.
 *
 * Pods: 0 is the client; 1-3 are endpoints. The tests run in order and share the node.
 */
import { expect, it } from 'vitest';
import { IptablesSyncError } from '../../src/backends/iptables/backend.js';
import { cleanupIptables } from '../../src/backends/iptables/cleanup.js';
import type { Backend } from '../../src/kernel/backend.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { PodNs } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { landedOn } from './assertions.js';
import { DROP_TIMEOUT_MS, type Lab, labPerSuite, podName, TCP_TARGET } from './lab.js';
import { type ServiceSpec, serviceEvents, sliceEvents } from './objects.js';
import { NodeProxy, silentLog } from './proxy.js';

const http = [{ name: 'http', protocol: 'TCP', port: 80, targetPort: TCP_TARGET }] as const;
const STEADY: ServiceSpec = { name: 'steady', clusterIPs: ['10.96.3.10', 'fd00:96::3:10'], ports: http };
const FLAKY: ServiceSpec = { name: 'flaky', clusterIPs: ['10.96.3.11'], ports: http };
const STEADY_V4 = { host: '10.96.3.10', port: 80 };
const FLAKY_V4 = { host: '10.96.3.11', port: 80 };
/** Another agent's DNAT in nat PREROUTING, to pod 1. */
const AGENT_VIP = { host: '198.18.0.50', port: 7000 };
const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

/** Rules in built-in chains that jump to our chains, appearing more than once. */
function duplicatedJumps(save: string): string[] {
  const seen = new Set<string>();
  const dups: string[] = [];
  for (const line of save.split('\n')) {
    if (!/^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) .*-j KUBE-/.test(line)) continue;
    if (seen.has(line)) dups.push(line);
    seen.add(line);
  }
  return dups;
}

for (const backend of ['nft', 'legacy'] as const satisfies readonly Backend[]) {
  describeKernel(`restart, restore failure and cleanup with the ${backend} backend`, () => {
    let lab: Lab;
    let proxy: NodeProxy;
    let client: PodNs;
    let endpoints: [PodNs, PodNs, PodNs];
    /** the other agent's rules as iptables-save prints them, per family */
    const agentLines = new Map<IPFamily, string[]>();

    const agentRulesNow = async (family: IPFamily) =>
      (await lab.save(backend, family))
        .split('\n')
        .filter((l) => l.includes('MY-AGENT') || l.includes(AGENT_VIP.host));

    labPerSuite(4, async (created) => {
      lab = created;
      client = lab.pod(0);
      endpoints = [lab.pod(1), lab.pod(2), lab.pod(3)];
      await lab.startEndpoints(endpoints);
      // Another agent was there first: its own chain in filter, and a rule in nat PREROUTING.
      for (const family of FAMILIES) {
        const from = family === 'IPv4' ? '198.18.0.99/32' : '2001:db8::99/128';
        await lab.iptables(backend, family, ['-t', 'filter', '-N', 'MY-AGENT']);
        await lab.iptables(backend, family, ['-t', 'filter', '-A', 'MY-AGENT', '-s', from, '-j', 'DROP']);
        await lab.iptables(backend, family, ['-t', 'filter', '-A', 'FORWARD', '-j', 'MY-AGENT']);
      }
      await lab.iptables(backend, 'IPv4', [
        ...['-t', 'nat', '-A', 'PREROUTING', '-d', `${AGENT_VIP.host}/32`, '-p', 'tcp'],
        ...[
          '--dport',
          String(AGENT_VIP.port),
          '-j',
          'DNAT',
          '--to-destination',
          `${endpoints[0].ipv4}:${TCP_TARGET}`,
        ],
      ]);
      for (const family of FAMILIES) agentLines.set(family, await agentRulesNow(family));
      expect(agentLines.get('IPv4')).toHaveLength(4);

      proxy = await NodeProxy.create(lab.nodeRunner, { backend, families: FAMILIES });
      proxy.apply(
        ...serviceEvents(
          STEADY,
          endpoints.map((pod) => ({ pod })),
        ),
      );
      proxy.apply(...serviceEvents(FLAKY, [{ pod: endpoints[0] }, { pod: endpoints[1] }]));
      expect(proxy.store.currentProblems()).toEqual([]);
      await proxy.sync();
    });

    it("a restarted proxy's first full sync keeps an established connection and adds no rule twice", async () => {
      const held = await lab.hold(client.ns, STEADY_V4);
      expect(held.greeting).toMatchObject({ ok: true });
      const name = held.greeting.ok ? held.greeting.name : '';

      await proxy.restart();
      expect((await proxy.sync()).map((r) => r.full)).toEqual([true, true]);
      expect(await held.probe()).toMatchObject({ ok: true, name, seq: 1 });
      const fresh = await lab.connect(client.ns, { proto: 'tcp', ...STEADY_V4, count: 60 });
      expect(landedOn(fresh)).toEqual(endpoints.map(podName).sort());
      for (const family of FAMILIES) expect(duplicatedJumps(await lab.save(backend, family))).toEqual([]);
      await held.stop();
    });

    it('a restarted proxy deletes the rules of an endpoint that left while it was down', async () => {
      const gone = endpoints[2];
      proxy.apply(...sliceEvents(STEADY, [{ pod: endpoints[0] }, { pod: endpoints[1] }]));
      await proxy.restart();
      await proxy.sync();
      expect(await lab.save(backend, 'IPv4', 'nat')).not.toContain(`${gone.ipv4}:${TCP_TARGET}`);
      expect(await lab.save(backend, 'IPv6', 'nat')).not.toContain(`[${gone.ipv6}]:${TCP_TARGET}`);
      const results = await lab.connect(client.ns, { proto: 'tcp', ...STEADY_V4, count: 60 });
      expect(landedOn(results)).toEqual([podName(endpoints[0]), podName(endpoints[1])]);
    });

    it('a failing iptables-restore leaves the previous rules serving; the next sync recovers', async () => {
      const [kept, leaving] = [endpoints[1], endpoints[0]];
      const both = [podName(leaving), podName(kept)].sort();
      expect(landedOn(await lab.connect(client.ns, { proto: 'tcp', ...FLAKY_V4, count: 60 }))).toEqual(both);

      proxy.apply(...sliceEvents(FLAKY, [{ pod: kept }]));
      proxy.runner.failRestores = true;
      try {
        await expect(proxy.sync('partial')).rejects.toThrow(IptablesSyncError);
      } finally {
        proxy.runner.failRestores = false;
      }
      expect(proxy.runner.injected).toBeGreaterThan(0);
      expect(landedOn(await lab.connect(client.ns, { proto: 'tcp', ...FLAKY_V4, count: 60 }))).toEqual(both);
      const steady = await lab.connect(client.ns, { proto: 'tcp', ...STEADY_V4, count: 40 });
      expect(landedOn(steady)).toEqual([podName(endpoints[0]), podName(endpoints[1])]);

      const results = await proxy.sync('partial');
      // The backend that failed does not trust what it knew and resyncs in full.
      expect(results[0]?.full).toBe(true);
      expect(landedOn(await lab.connect(client.ns, { proto: 'tcp', ...FLAKY_V4, count: 30 }))).toEqual([
        podName(kept),
      ]);
    });

    it('a hand-flushed KUBE-SERVICES is repaired by the next periodic sync (no changes pending)', async () => {
      await proxy.sync('partial');
      await lab.iptables(backend, 'IPv4', ['-t', 'nat', '-F', 'KUBE-SERVICES']);
      const broken = await lab.connect(client.ns, {
        proto: 'tcp',
        ...STEADY_V4,
        count: 2,
        timeoutMs: DROP_TIMEOUT_MS,
      });
      expect(broken.filter((r) => r.ok)).toEqual([]);

      const results = await proxy.sync('partial');
      expect(results.map((r) => r.full)).toEqual([false, false]);
      const repaired = await lab.connect(client.ns, { proto: 'tcp', ...STEADY_V4, count: 40 });
      expect(landedOn(repaired)).toEqual([podName(endpoints[0]), podName(endpoints[1])]);
    });

    it("another agent's chain and rules survive the syncs and cleanup; cleanup leaves no KUBE- chain", async () => {
      const agentAnswers = async () =>
        landedOn(await lab.connect(lab.topo.external, { proto: 'tcp', ...AGENT_VIP, count: 3 }));
      for (const family of FAMILIES) expect(await agentRulesNow(family)).toEqual(agentLines.get(family));
      expect(await agentAnswers()).toEqual([podName(endpoints[0])]);

      const { removed } = await cleanupIptables(lab.nodeRunner, silentLog);
      expect(removed).toBeGreaterThan(0);
      for (const b of ['nft', 'legacy'] as const) {
        for (const family of FAMILIES)
          expect(await lab.save(b, family), `${b} ${family}`).not.toContain('KUBE-');
      }
      for (const family of FAMILIES) expect(await agentRulesNow(family)).toEqual(agentLines.get(family));
      expect(await agentAnswers()).toEqual([podName(endpoints[0])]);

      // Service traffic is no longer DNATed: nothing answers on the ClusterIP.
      const results = await lab.connect(client.ns, {
        proto: 'tcp',
        ...STEADY_V4,
        count: 2,
        timeoutMs: DROP_TIMEOUT_MS,
      });
      expect(results.filter((r) => r.ok)).toEqual([]);
    });
  });
}
