/**
 * The in-memory kernel tools (src/kernel/fakes/) against the real ones on a kernel with
 * ip_vs and dummy: the same command scripts (test/ipvs-apply/tool-scripts.ts) through real
 * ipvsadm, ipset and ip (kube-ipvs0 as a real dummy link, IPv6 DAD on as on a node) and
 * through the doubles; every step's exit code, stdout and stderr, and the state each
 * script leaves (`ipvsadm -Sn`, `-Ln`; `ipset save`), must be the same. The
 * host tests and the applier's tests run on these doubles, so this is what makes them
 * evidence about the real tools.
 */
import { FakeIp } from '../../../../src/kernel/fakes/ip.js';
import { FakeIpset } from '../../../../src/kernel/fakes/ipset.js';
import { FakeIpvsadm } from '../../../../src/kernel/fakes/ipvsadm.js';
import { parseIpsetSave } from '../../../../src/kernel/ipset.js';
import {
  IPSET_SCRIPTS,
  IPVSADM_FINAL,
  IPVSADM_RESET,
  IPVSADM_SCRIPTS,
  ipScripts,
  type StepOutcome,
} from '../../../ipvs-apply/tool-scripts.js';
import type { CheckContext } from '../check.js';
import { differences, type PlayPlan, playDouble, playReal } from '../tool-player.js';

export const timeoutMs = 180_000;

/** `ipset save`: without the per-boot hash seed, sets and entries in a stable order. */
function normaliseIpset(o: StepOutcome, step: { args: string[] }): StepOutcome {
  if (step.args[0] !== 'save' || o.exitCode !== 0) return o;
  const sets = parseIpsetSave(o.stdout).map((s) => {
    const { initval: _i, bucketsize: _b, ...options } = s.options;
    return { ...s, options };
  });
  return {
    ...o,
    stdout: JSON.stringify(
      sets.sort((a, b) => a.name.localeCompare(b.name)),
      null,
      1,
    ),
  };
}

/** A dummy link's MAC is random. */
const normaliseIp = (o: StepOutcome): StepOutcome => ({
  ...o,
  stdout: o.stdout.replace(/link\/ether [0-9a-f:]{17}/g, 'link/ether <mac>'),
});

export default async function (t: CheckContext): Promise<void> {
  const { runner } = await t.scratchNetns();
  const problems: string[] = [];
  const started = performance.now();

  const ipvsadm: PlayPlan = {
    tool: 'ipvsadm',
    scripts: IPVSADM_SCRIPTS,
    finals: IPVSADM_FINAL,
    reset: IPVSADM_RESET,
  };
  const ipvsadmSteps = IPVSADM_SCRIPTS.reduce((n, s) => n + s.steps.length, 0);
  problems.push(
    ...differences(
      ipvsadm,
      await playReal(runner, ipvsadm),
      playDouble(ipvsadm, () => new FakeIpvsadm()),
    ),
  );
  t.note(
    `ipvsadm: ${IPVSADM_SCRIPTS.length} scripts, ${ipvsadmSteps} steps (+ -Sn and -Ln after each), ${Math.round(performance.now() - started)} ms`,
  );

  const ipset: PlayPlan = {
    tool: 'ipset',
    scripts: IPSET_SCRIPTS,
    finals: [{ args: ['save'] }],
    reset: [{ args: ['destroy'] }],
  };
  problems.push(
    ...differences(
      ipset,
      await playReal(runner, ipset),
      playDouble(ipset, () => new FakeIpset()),
      normaliseIpset,
    ),
  );
  t.note(`ipset: ${IPSET_SCRIPTS.length} scripts`);

  // As on a node: new links get DAD (the scratch namespace turns it off).
  const ip: PlayPlan = {
    tool: 'ip',
    scripts: ipScripts('dummy'),
    prelude: ['sysctl -q -w net.ipv6.conf.default.accept_dad=1'],
    reset: [{ args: ['link', 'del', 'kube-ipvs0'] }],
  };
  const fakeIp = () => {
    const fake = new FakeIp();
    fake.kernelMessages = 'rtnetlink'; // Debian 12's 6.1 words address errors the old way
    return fake;
  };
  problems.push(...differences(ip, await playReal(runner, ip), playDouble(ip, fakeIp), normaliseIp));
  t.note('ip: kube-ipvs0 as a dummy link with DAD on');

  if (problems.length > 0) {
    throw new Error(
      `the doubles differ from the real tools in ${problems.length} step(s):\n${problems.join('\n')}`,
    );
  }
}
