/**
 * Smoke test of the kernel-test harness and of src/kernel against real namespaces.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Backend, detectBackend, probeNfacct } from '../../src/kernel/backend.js';
import { ExecaRunner } from '../../src/kernel/exec.js';
import { Iptables, listChains, RestoreError } from '../../src/kernel/iptables.js';
import type { IPFamily } from '../../src/model/ip.js';
import { EXTERNAL_IPV4, EXTERNAL_IPV6, Topology, tally, withScratchNetns } from './netns.js';
import { describeKernel } from './require-root.js';

const BACKENDS: Backend[] = ['nft', 'legacy'];
const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

describeKernel('harness: pods, node and external host', () => {
  let topo: Topology;

  beforeAll(async () => {
    topo = await Topology.create({ pods: 2 });
    for (const pod of topo.pods) {
      await topo.startServer(pod.ns, { name: `pod-${pod.index}`, tcp: [8080], udp: [5353] });
    }
  });
  afterAll(async () => {
    await topo?.teardown();
  });

  for (const family of FAMILIES) {
    for (const proto of ['tcp', 'udp'] as const) {
      it(`pod 0 reaches pod 1 through the node (${family} ${proto}), source address kept`, async () => {
        const [from, to] = [topo.pods[0]!, topo.pods[1]!];
        const host = family === 'IPv4' ? to.ipv4 : to.ipv6;
        const port = proto === 'tcp' ? 8080 : 5353;
        const results = await topo.connect(from.ns, { proto, host, port, count: 3 });
        expect(tally(results)).toEqual({ 'pod-1': 3 });
        for (const r of results) {
          expect(r.ok && r.peer).toBe(family === 'IPv4' ? from.ipv4 : from.ipv6);
        }
      });
    }
  }

  it('the external host reaches a pod through the node (IPv4 and IPv6)', async () => {
    const pod = topo.pods[1]!;
    const v4 = await topo.connect(topo.external, { proto: 'tcp', host: pod.ipv4, port: 8080 });
    expect(v4).toMatchObject([{ ok: true, name: 'pod-1', peer: EXTERNAL_IPV4 }]);
    const v6 = await topo.connect(topo.external, { proto: 'udp', host: pod.ipv6, port: 5353 });
    expect(v6).toMatchObject([{ ok: true, name: 'pod-1', peer: EXTERNAL_IPV6 }]);
  });

  it('a closed port answers ECONNREFUSED (TCP and UDP)', async () => {
    const pod = topo.pods[0]!;
    const tcp = await topo.connect(topo.pods[1]!.ns, { proto: 'tcp', host: pod.ipv4, port: 9999 });
    expect(tcp).toEqual([{ ok: false, error: 'ECONNREFUSED' }]);
    const udp = await topo.connect(topo.pods[1]!.ns, { proto: 'udp', host: pod.ipv6, port: 9999 });
    expect(udp).toEqual([{ ok: false, error: 'ECONNREFUSED' }]);
  });

  it('a dropped connection is a TIMEOUT, not a refusal (rules in the node namespace only)', async () => {
    const iptables = new Iptables(topo.in(topo.node), 'nft');
    const pod = topo.pods[0]!;
    const drop = `*filter\n:SB-HARNESS-DROP - [0:0]\n-A SB-HARNESS-DROP -p tcp --dport 8080 -j DROP\nCOMMIT\n`;
    await iptables.restore('IPv4', drop);
    await iptables.ensureRule('IPv4', 'prepend', 'filter', 'FORWARD', ['-j', 'SB-HARNESS-DROP']);
    try {
      const r = await topo.connect(topo.external, {
        proto: 'tcp',
        host: pod.ipv4,
        port: 8080,
        timeoutMs: 500,
      });
      expect(r).toEqual([{ ok: false, error: 'TIMEOUT' }]);
    } finally {
      await topo.in(topo.node).run('iptables-nft', ['-w', '5', '-D', 'FORWARD', '-j', 'SB-HARNESS-DROP']);
    }
    const again = await topo.connect(topo.external, { proto: 'tcp', host: pod.ipv4, port: 8080 });
    expect(tally(again)).toEqual({ 'pod-0': 1 });
  });

  it('spreads nothing by itself: 20 concurrent connections all land on the one pod asked', async () => {
    const pod = topo.pods[0]!;
    const r = await topo.connect(topo.pods[1]!.ns, {
      proto: 'tcp',
      host: pod.ipv4,
      port: 8080,
      count: 20,
      concurrency: 5,
    });
    expect(tally(r)).toEqual({ 'pod-0': 20 });
  });
});

describeKernel('src/kernel against real iptables in a scratch namespace', () => {
  const root = new ExecaRunner();

  for (const backend of BACKENDS) {
    it(`${backend}: RestoreError names the failing line and its text`, async () => {
      await withScratchNetns(async ({ runner }) => {
        const iptables = new Iptables(runner, backend);
        const input = [
          '*nat',
          ':KUBE-SB-TEST - [0:0]',
          '-A KUBE-SB-TEST -p tcp --dport 80 -j RETURN',
          '-A KUBE-SB-TEST -p tcp --dport 99999 -j RETURN',
          'COMMIT',
          '',
        ].join('\n');
        const error = await iptables.restore('IPv4', input).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(RestoreError);
        const re = error as RestoreError;
        expect(re.exitCode).toBe(2);
        expect(re.lineNumber).toBe(4);
        expect(re.line).toBe('-A KUBE-SB-TEST -p tcp --dport 99999 -j RETURN');
        expect(re.stderr).toContain("invalid port/service `99999'");
        // Nothing was committed.
        expect(listChains(await iptables.save('IPv4', 'nat'), 'nat')).not.toContain('KUBE-SB-TEST');
      });
    });

    for (const family of FAMILIES) {
      it(`${backend} ${family}: save/listChains read back a restored chain; ensureRule is idempotent`, async () => {
        await withScratchNetns(async ({ runner }) => {
          const iptables = new Iptables(runner, backend);
          const dst = family === 'IPv4' ? '10.96.0.10/32' : 'fd00:10:96::a/128';
          await iptables.restore(
            family,
            `*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SB-TEST - [0:0]\n-A KUBE-SERVICES -d ${dst} -j KUBE-SB-TEST\nCOMMIT\n`,
          );
          const saved = await iptables.save(family, 'nat');
          expect(listChains(saved, 'nat')).toEqual(
            expect.arrayContaining(['PREROUTING', 'OUTPUT', 'KUBE-SERVICES', 'KUBE-SB-TEST']),
          );
          expect(saved).toContain(`-A KUBE-SERVICES -d ${dst} -j KUBE-SB-TEST`);

          const jump = ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'];
          expect(await iptables.hasRule(family, 'nat', 'OUTPUT', jump)).toBe(false);
          expect(await iptables.ensureRule(family, 'prepend', 'nat', 'OUTPUT', jump)).toBe(false);
          expect(await iptables.ensureRule(family, 'prepend', 'nat', 'OUTPUT', jump)).toBe(true);
          const after = await iptables.save(family, 'nat');
          expect(after.match(/^-A OUTPUT .*-j KUBE-SERVICES$/gm)).toEqual([
            '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
          ]);
          expect(await iptables.ensureChain(family, 'nat', 'KUBE-SB-TEST')).toBe(true);
          expect(await iptables.ensureChain(family, 'nat', 'KUBE-SB-NEW')).toBe(false);
        });
      });
    }

    it(`detectBackend picks ${backend} when kubelet's hint chain is there`, async () => {
      await withScratchNetns(async ({ runner }) => {
        await runner.run(`iptables-${backend}`, ['-w', '5', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
        const decision = await detectBackend(runner);
        expect(decision.backend).toBe(backend);
        expect(decision.reason).toContain("kubelet's chains");
      });
    });
  }

  it('detectBackend: with no rules at all the tie goes to nft', async () => {
    await withScratchNetns(async ({ runner }) => {
      expect(await detectBackend(runner)).toEqual({
        backend: 'nft',
        reason: 'no kubelet chains; iptables-nft has 0 rules, iptables-legacy 0 (a tie goes to nft)',
      });
    });
  });

  it('detectBackend: more legacy rules than nft rules → legacy', async () => {
    await withScratchNetns(async ({ runner }) => {
      await runner.run('iptables-legacy', ['-w', '5', '-A', 'INPUT', '-j', 'ACCEPT']);
      expect((await detectBackend(runner)).backend).toBe('legacy');
    });
  });

  it('probeNfacct reads the kernel answer in a scratch namespace', async () => {
    await withScratchNetns(async ({ ns }) => {
      const support = await probeNfacct(root, ns);
      // This kernel has xt_nfacct built in (CONFIG_NETFILTER_XT_MATCH_NFACCT=y); a kernel
      // without it would answer 'no'. Either way the probe must not be left guessing.
      expect(support.kernel).not.toBe('unknown');
    });
  });
});
