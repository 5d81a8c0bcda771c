/**
 * A full sync over rules the kernel already holds writes only what differs (spec §17,
 * issue 9 §1), real kernel, both backends, in scratch namespaces:
 *
 * - a restarted proxy (a new IptablesBackend) over its own rules writes nothing: no
 *   restore, no jump rule, no chain;
 * - a proxy taking over from kube-proxy, i.e. over every golden file (kube-proxy's rules,
 *   rule for rule) restored with kube-proxy's jump rules and canaries, writes nothing;
 * - chains altered behind its back (a rule replaced, added or removed, a chain flushed or
 *   deleted, a jump rule deleted) are exactly what it writes, and the kernel ends where a
 *   full sync into a fresh namespace ends;
 * - the periodic sync without changes (nft) reads the fixed chains and writes only one that
 *   differs; with legacy it rewrites them, as kube-proxy does.
 *
 * "Writes nothing" is counted on what reaches the tools: restore inputs and iptables
 * commands other than the read (iptables-save) and the canary checks.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import { ensureCanaries, ensureJumpRules } from '../../src/backends/iptables/jump-rules.js';
import { type Backend, iptablesBinary } from '../../src/kernel/backend.js';
import type { CommandRunner } from '../../src/kernel/exec.js';
import { Iptables } from '../../src/kernel/iptables.js';
import type { IPFamily } from '../../src/model/ip.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import type { Snapshot } from '../../src/model/types.js';
import { iptablesOptions, resolveNodeName, topologyOptions } from '../../src/sync/wiring.js';
import { listScenarios, RULE_FILES, type Scenario, scenarioInputs } from '../golden/scenario.js';
import { withScratchNetns } from '../kernel/netns.js';
import { nfacctCounters, nfacctTool } from '../kernel/nfacct.js';
import { describeKernel } from '../kernel/require-root.js';
import { richCluster, silentLogger, testOptions } from './cluster-sim.js';
import { kubeState, TapRunner } from './kernel-state.js';

const BACKENDS: Backend[] = ['nft', 'legacy'];

/** Restore inputs, and iptables commands that change something (not -L/-C/-S, not the save). */
function writes(tap: TapRunner): string[] {
  return tap.calls
    .filter((c) => {
      const cmd = c.args[3] ?? c.cmd; // inside `ip netns exec <ns> <cmd> ...`
      if (cmd.endsWith('-save')) return false;
      if (cmd.endsWith('-restore')) return true;
      if (!/iptables/.test(cmd)) return false;
      return !c.args.some((a) => a === '-L' || a === '-C' || a === '-S');
    })
    .map((c) => [...c.args.slice(3), c.input ?? ''].join(' '));
}

function restoreLineCount(tap: TapRunner): number {
  return tap.restoreInputs().reduce((n, input) => n + input.split('\n').length - 1, 0);
}

/** The chains a restore input declares (flushes and fills), as `table chain`. */
function declaredChains(tap: TapRunner): string[] {
  const out: string[] = [];
  for (const input of tap.restoreInputs()) {
    let table = '';
    for (const line of input.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (line.startsWith(':')) out.push(`${table} ${line.slice(1).split(' ')[0]}`);
    }
  }
  return out.sort();
}

function newBackend(runner: CommandRunner, backend: Backend, family: IPFamily = 'IPv4') {
  return new IptablesBackend({ runner, backend, family, options: testOptions(), log: silentLogger() });
}

const FULL = { seq: 1, full: true, changedServices: new Set<string>() };

async function freshFullSync(backend: Backend, snapshot: Snapshot): Promise<string> {
  return withScratchNetns(async ({ runner }) => {
    await newBackend(runner, backend, snapshot.family).sync(snapshot, FULL);
    return kubeState(runner, backend, snapshot.family);
  });
}

/** A golden scenario written by kube-proxy: its snapshot and options, and the rule file. */
function goldenCase(s: Scenario, family: IPFamily) {
  const inputs = scenarioInputs(s);
  const nodeName = resolveNodeName(inputs.config, inputs.host);
  const store = new ObjectStore(nodeName);
  for (const event of inputs.events) store.apply(event);
  const node = nodeInfoFrom(nodeName, store.node, { nodeIPs: inputs.host.nodeIPs });
  return {
    snapshot: new SnapshotBuilder(family, topologyOptions(inputs.config)).build(store, node),
    options: iptablesOptions(inputs.config, inputs.host),
    rules: readFileSync(join(s.dir, RULE_FILES[family]), 'utf8'),
  };
}

describeKernel('a full sync over rules the kernel already holds', () => {
  for (const backend of BACKENDS) {
    for (const family of ['IPv4', 'IPv6'] as const) {
      it(`${backend} ${family}: a restarted proxy over its own rules writes nothing`, async () => {
        await withScratchNetns(async ({ runner }) => {
          const sim = richCluster(family);
          await newBackend(runner, backend, family).sync(sim.snapshot(), FULL);
          const before = await kubeState(runner, backend, family);
          const tap = new TapRunner(runner);
          const result = await newBackend(tap, backend, family).sync(sim.snapshot(), FULL);
          expect(result.full).toBe(true);
          expect(result.restoreLines).toBe(0);
          expect(writes(tap)).toEqual([]);
          expect(tap.calls.filter((c) => (c.args[3] ?? c.cmd).endsWith('-save'))).toHaveLength(1);
          expect(await kubeState(runner, backend, family)).toBe(before);
        });
      });
    }

    it(`${backend}: the periodic sync checks the fixed chains${backend === 'nft' ? ' and writes only a flushed one' : ' by rewriting them'}`, async () => {
      await withScratchNetns(async ({ runner }) => {
        const tap = new TapRunner(runner);
        const be = newBackend(tap, backend);
        const sim = richCluster();
        await be.sync(sim.snapshot(), sim.request(true));
        sim.synced();
        const expected = await kubeState(runner, backend, 'IPv4');
        tap.clear();
        await be.sync(sim.snapshot(), sim.request(false));
        if (backend === 'nft') expect(tap.restoreInputs()).toEqual([]);
        else expect(declaredChains(tap)).toContain('nat KUBE-SERVICES');
        await runner.run(iptablesBinary(backend, 'IPv4', 'iptables'), ['-t', 'filter', '-F', 'KUBE-FORWARD']);
        tap.clear();
        await be.sync(sim.snapshot(), sim.request(false));
        if (backend === 'nft') expect(declaredChains(tap)).toEqual(['filter KUBE-FORWARD']);
        else expect(declaredChains(tap)).toContain('filter KUBE-FORWARD');
        expect(await kubeState(runner, backend, 'IPv4')).toBe(expected);
      });
    });

    it(`${backend}: chains altered behind its back are exactly what a restart writes`, async () => {
      const sim = richCluster();
      const expected = await freshFullSync(backend, sim.snapshot());
      await withScratchNetns(async ({ runner }) => {
        await newBackend(runner, backend).sync(sim.snapshot(), FULL);
        const natSave = (await runner.run(iptablesBinary(backend, 'IPv4', 'save'), ['-t', 'nat'])).stdout;
        const svc = /^-A (KUBE-SVC-\S+) /m.exec(natSave)![1]!;
        const sep = /^-A (KUBE-SEP-\S+) /m.exec(natSave)![1]!;
        const ext = /^-A (KUBE-EXT-\S+) /m.exec(natSave)![1]!;
        const fw = /^:(KUBE-FW-\S+) /m.exec(natSave)![1]!;
        const ipt = (...args: string[]) => runner.run(iptablesBinary(backend, 'IPv4', 'iptables'), args);
        await ipt('-t', 'nat', '-R', svc, '1', '-j', sep); // a rule replaced
        await ipt('-t', 'nat', '-A', sep, '-j', 'RETURN'); // a rule added
        await ipt('-t', 'nat', '-D', ext, '1'); // a rule removed
        await ipt('-t', 'filter', '-F', 'KUBE-FORWARD'); // a chain flushed
        // a chain deleted, with the rule in KUBE-SERVICES that jumps to it
        const ksRule = natSave
          .split('\n')
          .find((l) => l.startsWith('-A KUBE-SERVICES ') && l.endsWith(`-j ${fw}`))!;
        await ipt(
          '-t',
          'nat',
          '-D',
          'KUBE-SERVICES',
          ...(ksRule.match(/"[^"]*"|\S+/g) ?? []).slice(2).map((w) => w.replace(/^"|"$/g, '')),
        );
        await ipt('-t', 'nat', '-F', fw);
        await ipt('-t', 'nat', '-X', fw);
        // a jump rule deleted
        await ipt(
          '-t',
          'nat',
          '-D',
          'POSTROUTING',
          '-m',
          'comment',
          '--comment',
          'kubernetes postrouting rules',
          '-j',
          'KUBE-POSTROUTING',
        );

        const tap = new TapRunner(runner);
        await newBackend(tap, backend).sync(sim.snapshot(), FULL);
        expect(declaredChains(tap)).toEqual(
          [
            `nat ${svc}`,
            `nat ${sep}`,
            `nat ${ext}`,
            `nat ${fw}`,
            'nat KUBE-SERVICES',
            'filter KUBE-FORWARD',
          ].sort(),
        );
        expect(tap.restoreInputs().join('\n')).toMatch(/^-I POSTROUTING 1 .*-j KUBE-POSTROUTING$/m);
        expect(tap.restoreInputs().join('\n')).not.toMatch(/^-I (PREROUTING|OUTPUT|INPUT|FORWARD) /m);
        expect(await kubeState(runner, backend, 'IPv4')).toBe(expected);
      });
    });
  }
});

describeKernel('taking over from kube-proxy: over every golden rule file, nothing is written', () => {
  for (const scenario of listScenarios()) {
    const inputs = scenarioInputs(scenario);
    // A partial render is not the whole of what kube-proxy leaves.
    if (!inputs.scope.full) continue;
    for (const family of scenario.families) {
      for (const backend of BACKENDS) {
        const { snapshot, options, rules } = goldenCase(scenario, family);
        const counters = nfacctCounters(rules);
        it.skipIf(counters.length > 0 && !nfacctTool)(`${scenario.name} ${family} ${backend}`, async () => {
          await withScratchNetns(async ({ runner }) => {
            for (const c of counters) await runner.run('nfacct', ['add', c]);
            // What kube-proxy does: jump rules and canaries, then one restore.
            const iptables = new Iptables(runner, backend);
            await ensureJumpRules(iptables, family);
            await ensureCanaries(iptables, family);
            await iptables.restore(family, rules);
            const before = await kubeState(runner, backend, family);

            const tap = new TapRunner(runner);
            const be = new IptablesBackend({ runner: tap, backend, family, options, log: silentLogger() });
            const result = await be.sync(snapshot, FULL);
            expect(result.restoreLines).toBe(0);
            expect(writes(tap)).toEqual([]);
            expect(restoreLineCount(tap)).toBe(0);
            expect(await kubeState(runner, backend, family)).toBe(before);
          });
        });
      }
    }
  }
});
