/**
 * `cleanupIptables` and other agents' rules, in scratch network namespaces: another
 * agent's chains and rules survive syncs and cleanup; after cleanup no KUBE- chain of
 * ours is left, in either family or backend; a second cleanup finds nothing.
 */
import { expect, it } from 'vitest';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import { cleanupIptables } from '../../src/backends/iptables/cleanup.js';
import { type Backend, iptablesBinary } from '../../src/kernel/backend.js';
import type { CommandRunner } from '../../src/kernel/exec.js';
import type { IPFamily } from '../../src/model/ip.js';
import { withScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { type ClusterSim, richCluster, silentLogger, testOptions } from './cluster-sim.js';
import { allChains, normalizeSave } from './kernel-state.js';

const BACKENDS: Backend[] = ['nft', 'legacy'];
const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

async function sh(
  runner: CommandRunner,
  backend: Backend,
  family: IPFamily,
  ...args: string[]
): Promise<void> {
  await runner.run(iptablesBinary(backend, family, 'iptables'), ['-w', '5', ...args]);
}

/** Another agent: its own chains with rules, and jumps to them from built-in chains. */
async function addOtherAgent(runner: CommandRunner, backend: Backend, family: IPFamily): Promise<void> {
  await sh(runner, backend, family, '-t', 'filter', '-N', 'MY-AGENT');
  await sh(
    runner,
    backend,
    family,
    '-t',
    'filter',
    '-A',
    'MY-AGENT',
    '-p',
    'tcp',
    '--dport',
    '22',
    '-j',
    'ACCEPT',
  );
  await sh(
    runner,
    backend,
    family,
    '-t',
    'filter',
    '-A',
    'INPUT',
    '-m',
    'comment',
    '--comment',
    'my agent',
    '-j',
    'MY-AGENT',
  );
  await sh(runner, backend, family, '-t', 'nat', '-N', 'MY-NAT');
  await sh(
    runner,
    backend,
    family,
    '-t',
    'nat',
    '-A',
    'MY-NAT',
    '-p',
    'udp',
    '--dport',
    '5353',
    '-j',
    'RETURN',
  );
  await sh(runner, backend, family, '-t', 'nat', '-I', 'PREROUTING', '-j', 'MY-NAT');
}

async function otherAgentState(runner: CommandRunner, backend: Backend, family: IPFamily): Promise<string> {
  const { stdout } = await runner.run(iptablesBinary(backend, family, 'save'), []);
  return normalizeSave(stdout, ['filter', 'nat'], /^MY-/);
}

/** KUBE- chains and jumps to KUBE- chains, over both backends and families. */
async function kubeLeftovers(runner: CommandRunner): Promise<string[]> {
  const out: string[] = [];
  for (const backend of BACKENDS) {
    for (const family of FAMILIES) {
      for (const chain of await allChains(runner, backend, family)) {
        if (/ KUBE-/.test(chain)) out.push(`${backend} ${family} ${chain}`);
      }
      const { stdout } = await runner.run(iptablesBinary(backend, family, 'save'), []);
      for (const line of stdout.split('\n'))
        if (/ -[jg] KUBE-/.test(line)) out.push(`${backend} ${family} ${line}`);
    }
  }
  return out;
}

async function syncFullThenPartial(be: IptablesBackend, sim: ClusterSim): Promise<void> {
  await be.sync(sim.snapshot(), sim.request(true));
  sim.synced();
  const web = sim.get('ns1/web');
  sim.upsert({ ...web, endpoints: web.endpoints!.slice(1) });
  sim.delete('ns1/np');
  expect((await be.sync(sim.snapshot(), sim.request(false))).full).toBe(false);
  sim.synced();
}

describeKernel('cleanup', () => {
  for (const backend of BACKENDS) {
    it(`${backend}: removes everything of ours in both families, keeps another agent's chains and rules`, async () => {
      await withScratchNetns(async ({ runner }) => {
        const before = new Map<IPFamily, string>();
        for (const family of FAMILIES) {
          await addOtherAgent(runner, backend, family);
          before.set(family, await otherAgentState(runner, backend, family));
          expect(before.get(family)).toContain('-A MY-AGENT -p tcp');
        }
        for (const family of FAMILIES) {
          const be = new IptablesBackend({
            runner,
            backend,
            family,
            options: testOptions(),
            log: silentLogger(),
          });
          await syncFullThenPartial(be, richCluster(family));
          expect(await otherAgentState(runner, backend, family)).toBe(before.get(family));
        }
        expect((await kubeLeftovers(runner)).length).toBeGreaterThan(50);

        const { removed } = await cleanupIptables(runner, silentLogger());
        expect(removed).toBeGreaterThan(50);
        expect(await kubeLeftovers(runner)).toEqual([]);
        for (const family of FAMILIES)
          expect(await otherAgentState(runner, backend, family)).toBe(before.get(family));

        expect(await cleanupIptables(runner, silentLogger())).toEqual({ removed: 0 });
      });
    });

    it(`${backend}: with kubelet's chains present, kubelet's KUBE-FIREWALL, its jumps and its canary stay`, async () => {
      await withScratchNetns(async ({ runner }) => {
        for (const table of ['mangle', 'nat', 'filter']) {
          await sh(runner, backend, 'IPv4', '-t', table, '-N', 'KUBE-KUBELET-CANARY');
        }
        const be = new IptablesBackend({
          runner,
          backend,
          family: 'IPv4',
          options: testOptions(),
          log: silentLogger(),
        });
        await syncFullThenPartial(be, richCluster());
        await cleanupIptables(runner, silentLogger());
        const left = await kubeLeftovers(runner);
        expect(left).toEqual([
          `${backend} IPv4 filter KUBE-FIREWALL`,
          `${backend} IPv4 filter KUBE-KUBELET-CANARY`,
          `${backend} IPv4 mangle KUBE-KUBELET-CANARY`,
          `${backend} IPv4 nat KUBE-KUBELET-CANARY`,
          `${backend} IPv4 -A INPUT -j KUBE-FIREWALL`,
          `${backend} IPv4 -A OUTPUT -j KUBE-FIREWALL`,
        ]);
      });
    });
  }

  it('returns 0 on an empty namespace and leaves it empty', async () => {
    await withScratchNetns(async ({ runner }) => {
      expect(await cleanupIptables(runner, silentLogger())).toEqual({ removed: 0 });
      expect(await kubeLeftovers(runner)).toEqual([]);
      for (const family of FAMILIES) {
        const { stdout } = await runner.run(iptablesBinary('nft', family, 'save'), []);
        expect(stdout.split('\n').filter((l) => l.startsWith('-A '))).toEqual([]);
      }
    });
  });
});
