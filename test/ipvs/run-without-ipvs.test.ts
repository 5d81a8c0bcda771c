/**
 * `switchboard run` in IPVS mode on a kernel without ip_vs (this host's): it stops with a
 * clear message and status 1 before it changes anything on the node. It runs inside a
 * scratch network namespace, so even a regression that tuned the node first would only
 * touch that namespace. (The applier itself runs against a real ip_vs kernel in the VM
 * tests, test/vm.)
 */
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createScratchNetns, type ScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { killRuns, ROOT, startCli } from '../support/cli.js';

const EXAMPLE = join(ROOT, 'fixtures/example');
const ESTABLISHED = '/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established';

let scratch: ScratchNetns | null = null;

afterEach(async () => {
  await killRuns();
  await scratch?.teardown();
  scratch = null;
});

describeKernel('run in IPVS mode without ip_vs', () => {
  it('exits 1 naming what is missing, and leaves the node untouched', async () => {
    scratch = await createScratchNetns();
    const before = (await scratch.runner.run('cat', [ESTABLISHED])).stdout;
    const running = startCli(
      [
        'run',
        '--once',
        '--mode',
        'ipvs',
        '--from',
        join(EXAMPLE, 'cluster.yaml'),
        '--config',
        join(EXAMPLE, 'config.yaml'),
        '--family',
        'ipv4',
      ],
      { prefix: ['ip', 'netns', 'exec', scratch.ns] },
    );
    const { code } = await running.exit;
    expect(code, running.stderr()).toBe(1);
    expect(running.stderr()).toMatch(/switchboard: .*ip_vs/);
    expect(running.stderr()).not.toMatch(/unexpected error/);
    // The conntrack tuning comes after the kernel check: nothing was set.
    expect((await scratch.runner.run('cat', [ESTABLISHED])).stdout).toBe(before);
    const { stdout } = await scratch.runner.run('iptables-save', []);
    expect(stdout).not.toMatch(/KUBE-/);
  });
});
