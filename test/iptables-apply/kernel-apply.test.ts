/**
 * IptablesBackend against the real kernel, inside scratch network namespaces this test
 * creates (never the root namespace), with both iptables backends.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import {
  createIptablesBackends,
  IptablesBackend,
  IptablesSyncError,
} from '../../src/backends/iptables/backend.js';
import { buildRenderContext } from '../../src/backends/iptables/context.js';
import { JUMP_RULES } from '../../src/backends/iptables/jump-rules.js';
import { renderIptables } from '../../src/backends/iptables/render.js';
import type { HostFacts } from '../../src/config/host.js';
import { type Backend, iptablesBinary } from '../../src/kernel/backend.js';
import type { CommandRunner } from '../../src/kernel/exec.js';
import { listChains } from '../../src/kernel/iptables.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { Snapshot } from '../../src/model/types.js';
import { withScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { type ClusterSim, richCluster, silentLogger, testOptions } from './cluster-sim.js';
import { allChains, kubeState, TapRunner } from './kernel-state.js';

const BACKENDS: Backend[] = ['nft', 'legacy'];

function newBackend(runner: CommandRunner, backend: Backend, family: IPFamily = 'IPv4') {
  return new IptablesBackend({ runner, backend, family, options: testOptions(), log: silentLogger() });
}

/** What one full sync of `snapshot` leaves in a fresh namespace. */
async function freshFullSync(backend: Backend, snapshot: Snapshot): Promise<string> {
  return withScratchNetns(async ({ runner }) => {
    await newBackend(runner, backend, snapshot.family).sync(snapshot, {
      seq: 1,
      full: true,
      changedServices: new Set(),
    });
    return kubeState(runner, backend, snapshot.family);
  });
}

async function save(
  runner: CommandRunner,
  backend: Backend,
  family: IPFamily,
  table?: string,
): Promise<string> {
  return (await runner.run(iptablesBinary(backend, family, 'save'), table ? ['-t', table] : [])).stdout;
}

async function syncAll(be: IptablesBackend, sim: ClusterSim, full = false) {
  const result = await be.sync(sim.snapshot(), sim.request(full));
  sim.synced();
  return result;
}

const rootRouteLocalnet = () => readFileSync('/proc/sys/net/ipv4/conf/all/route_localnet', 'utf8').trim();

describeKernel('IptablesBackend in a network namespace', () => {
  it('createIptablesBackends detects the backend and probes the host inside the namespace, then syncs', async () => {
    await withScratchNetns(async ({ runner }) => {
      const seen: HostFacts[] = [];
      const backends = await createIptablesBackends({
        runner,
        families: ['IPv4', 'IPv6'],
        options: (facts) => {
          seen.push(facts);
          return testOptions({ interfaces: facts.interfaces, randomFully: facts.iptables.randomFully });
        },
        log: silentLogger(),
      });
      // An empty namespace: no kubelet chains, no rules either way, and a tie goes to nft.
      expect(backends.map((b) => b.description)).toEqual(['iptables (nft) IPv4', 'iptables (nft) IPv6']);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.interfaces).toEqual({ lo: ['127.0.0.1/8', '::1/128'] });
      expect(seen[0]!.iptables.randomFully).toBe(true);
      for (const be of backends) {
        const sim = richCluster(be.family);
        expect((await be.sync(sim.snapshot(), sim.request(true))).full).toBe(true);
      }
      expect(await kubeState(runner, 'nft', 'IPv6')).toContain(':KUBE-SERVICES -');
    });
  });

  for (const backend of BACKENDS) {
    for (const family of ['IPv4', 'IPv6'] as const) {
      it(`${backend} ${family}: applies a golden-like cluster and reads it back chain by chain`, async () => {
        const rootBefore = rootRouteLocalnet();
        await withScratchNetns(async ({ runner }) => {
          const sim = richCluster(family);
          const snapshot = sim.snapshot();
          const result = await newBackend(runner, backend, family).sync(snapshot, sim.request(true));
          expect(result.full).toBe(true);

          const ctx = buildRenderContext(testOptions(), family, snapshot.node);
          const render = renderIptables(snapshot, ctx);
          for (const table of [render.filter, render.nat]) {
            const saved = await save(runner, backend, family, table.name);
            const kernelChains = listChains(saved, table.name).filter((c) => c.startsWith('KUBE-'));
            // Besides the rendered chains: the canary, and the jump targets made sure of even
            // when the render leaves them empty (KUBE-FIREWALL for IPv6).
            const jumpTargets = JUMP_RULES.filter((r) => r.table === table.name).map((r) => r.to);
            const expected = new Set([...table.chains.keys(), ...jumpTargets, 'KUBE-PROXY-CANARY']);
            expect(kernelChains.sort()).toEqual([...expected].sort());
            for (const [chain, rules] of table.chains) {
              const back = saved.split('\n').filter((l) => l.startsWith(`-A ${chain} `));
              expect(back.length, `${table.name} ${chain}`).toBe(rules.length);
              const targets = (ls: readonly string[]) => ls.map((l) => / -j (\S+)/.exec(l)?.[1] ?? '');
              expect(targets(back), `${table.name} ${chain} targets`).toEqual(targets(rules));
            }
          }
          expect(result.rulesPerTable['nat']).toBe(render.stats.natRules);
          const nat = await save(runner, backend, family, 'nat');
          expect(nat).toContain('-j MASQUERADE --random-fully');
          expect(nat).toMatch(/-j DNAT --to-destination (10\.244\.1\.2|\[fd00:10:244:1::2\]):8080/);

          const routeLocalnet = (
            await runner.run('sysctl', ['-n', 'net.ipv4.conf.all.route_localnet'])
          ).stdout.trim();
          expect(routeLocalnet).toBe(family === 'IPv4' ? '1' : '0');
        });
        expect(rootRouteLocalnet()).toBe(rootBefore);
      });
    }

    it(`${backend}: jump rules and canaries exist once after two full syncs`, async () => {
      await withScratchNetns(async ({ runner }) => {
        const be = newBackend(runner, backend);
        const sim = richCluster();
        await syncAll(be, sim, true);
        await syncAll(be, sim, true);
        const saved = {
          filter: await save(runner, backend, 'IPv4', 'filter'),
          nat: await save(runner, backend, 'IPv4', 'nat'),
        };
        for (const rule of JUMP_RULES) {
          const matching = saved[rule.table]
            .split('\n')
            .filter((l) => l.startsWith(`-A ${rule.from} `) && l.endsWith(`-j ${rule.to}`))
            .filter((l) => rule.args.every((a) => !a.includes(' ') || l.includes(`"${a}"`)));
          expect(matching, `${rule.table} ${rule.from} -> ${rule.to}`).toHaveLength(1);
        }
        const chains = await allChains(runner, backend, 'IPv4');
        for (const table of ['mangle', 'nat', 'filter'])
          expect(chains).toContain(`${table} KUBE-PROXY-CANARY`);
      });
    });

    it(`${backend}: a partial sync with unchanged KUBE-SERVICES does not declare it, and lands where a full sync does`, async () => {
      await withScratchNetns(async ({ runner }) => {
        const tap = new TapRunner(runner);
        const be = newBackend(tap, backend);
        const sim = richCluster();
        await syncAll(be, sim, true);
        tap.clear();

        const web = sim.get('ns1/web');
        sim.upsert({ ...web, endpoints: [{ ip: '10.244.2.77' }, ...web.endpoints!.slice(1)] });
        const result = await syncAll(be, sim);
        expect(result.full).toBe(false);
        expect(tap.calls.map((c) => c.cmd)).toEqual([iptablesBinary(backend, 'IPv4', 'restore')]);
        const [input] = tap.restoreInputs();
        expect(input).not.toContain(':KUBE-SERVICES ');
        expect(input).not.toContain('*filter');
        expect(input).toMatch(/^:KUBE-SVC-\S+ - \[0:0\]$/m);
        expect(input).toMatch(/^-X KUBE-SEP-/m);

        expect(await kubeState(runner, backend, 'IPv4')).toBe(await freshFullSync(backend, sim.snapshot()));
      });
    });

    it(`${backend}: a corrupted restore input keeps the previous rules, names stderr and the line, and the next sync recovers`, async () => {
      await withScratchNetns(async ({ runner }) => {
        const tap = new TapRunner(runner);
        const be = newBackend(tap, backend);
        const sim = richCluster();
        await syncAll(be, sim, true);
        const before = await kubeState(runner, backend, 'IPv4');

        // The kernel gets a broken copy of one rule; the backend knows the line it sent.
        let sent: { number: number; text: string } | undefined;
        tap.sabotageNext((call) => {
          if (!call.cmd.endsWith('-restore') || call.input === undefined) return undefined;
          const lines = call.input.split('\n');
          const i = lines.findIndex((l) => l.startsWith('-A KUBE-SVC-'));
          sent = { number: i + 1, text: lines[i]! };
          lines[i] = `${lines[i]} -p tcp --dport 99999`;
          return { ...call, input: lines.join('\n') };
        });
        sim.upsert({ name: 'added', clusterIP: '172.30.0.99', endpoints: [{ ip: '10.244.2.50' }] });
        sim.delete('ns1/sticky');
        const error = await be.sync(sim.snapshot(), sim.request(false)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(IptablesSyncError);
        const message = (error as Error).message;
        expect(message).toMatch(/partial sync #\d+ failed/);
        expect(message).toContain(`at line ${sent!.number}: ${sent!.text}`);
        expect(message).toContain(`Error occurred at line: ${sent!.number}`);
        expect(message).toMatch(/invalid port\/service `99999' specified|Invalid argument|multiple -p flags/);
        expect(await kubeState(runner, backend, 'IPv4')).toBe(before);

        tap.clear();
        const result = await syncAll(be, sim);
        expect(result.full).toBe(true);
        expect(tap.calls.some((c) => c.cmd.endsWith('-save'))).toBe(true);
        expect(await kubeState(runner, backend, 'IPv4')).toBe(await freshFullSync(backend, sim.snapshot()));
      });
    });

    it(`${backend}: a restore the kernel refuses (a foreign jump to a stale chain) changes nothing and is reported with its line`, async () => {
      await withScratchNetns(async ({ runner }) => {
        const be = newBackend(runner, backend);
        const sim = richCluster();
        await syncAll(be, sim, true);
        const web = sim.get('ns1/web');
        const oldSep = (await save(runner, backend, 'IPv4', 'nat'))
          .split('\n')
          .find((l) => l.includes('--to-destination 10.244.2.3:8080'))!
          .split(' ')[1]!;
        const ipt = iptablesBinary(backend, 'IPv4', 'iptables');
        await runner.run(ipt, ['-w', '5', '-t', 'nat', '-N', 'MY-AGENT']);
        await runner.run(ipt, ['-w', '5', '-t', 'nat', '-A', 'MY-AGENT', '-j', oldSep]);
        const before = await kubeState(runner, backend, 'IPv4');

        sim.upsert({ ...web, endpoints: web.endpoints!.filter((e) => e.ip !== '10.244.2.3') });
        const error = (await be
          .sync(sim.snapshot(), sim.request(false))
          .catch((e: unknown) => e)) as IptablesSyncError;
        expect(error).toBeInstanceOf(IptablesSyncError);
        expect(error.message).toContain(`at line ${error.restore!.lineNumber}: -X ${oldSep}`);
        expect(error.message).toMatch(
          backend === 'nft' ? /CHAIN_DEL failed \(Device or resource busy\)/ : /line \d+ failed/,
        );
        expect(await kubeState(runner, backend, 'IPv4')).toBe(before);

        await runner.run(ipt, ['-w', '5', '-t', 'nat', '-F', 'MY-AGENT']);
        const result = await syncAll(be, sim);
        expect(result.full).toBe(true);
        expect(await kubeState(runner, backend, 'IPv4')).toBe(await freshFullSync(backend, sim.snapshot()));
      });
    });

    it(`${backend}: notices a flush through the canary and restores everything with the next sync`, async () => {
      await withScratchNetns(async ({ runner }) => {
        const be = newBackend(runner, backend);
        const sim = richCluster();
        expect(await be.lostState()).toBe(false);
        await syncAll(be, sim, true);
        expect(await be.lostState()).toBe(false);

        // What `iptables -F; iptables -X` on every table does to a node.
        const ipt = iptablesBinary(backend, 'IPv4', 'iptables');
        for (const table of ['filter', 'nat', 'mangle']) {
          await runner.run(ipt, ['-w', '5', '-t', table, '-F']);
          await runner.run(ipt, ['-w', '5', '-t', table, '-X']);
        }
        expect(await be.lostState()).toBe(true);
        const result = await syncAll(be, sim);
        expect(result.full).toBe(true);
        expect(await be.lostState()).toBe(false);
        expect(await kubeState(runner, backend, 'IPv4')).toBe(await freshFullSync(backend, sim.snapshot()));
      });
    });
  }
});
