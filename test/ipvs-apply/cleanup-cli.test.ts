/**
 * `switchboard cleanup` removes IPVS mode's iptables chains and both families' sets (after
 * the rules that use them), and nothing foreign: the real command in a scratch namespace,
 * with real ipset and iptables. (No ip_vs here: the virtual-server part is covered against
 * the in-memory kernel in mode-switch.test.ts and in the VM.)
 */
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { withScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { ROOT } from '../support/cli.js';

describeKernel('switchboard cleanup (scratch namespace, real ipset and iptables)', () => {
  it("removes both modes' chains and both families' sets; keeps a foreign set", async () => {
    await withScratchNetns(async ({ ns, runner }) => {
      const sh = (cmd: string, args: string[], input?: string) =>
        runner.run(cmd, args, input === undefined ? {} : { input });
      await sh(
        'ipset',
        ['restore'],
        [
          'create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536',
          'add KUBE-CLUSTER-IP 10.96.0.10,tcp:80',
          'create KUBE-6-CLUSTER-IP hash:ip,port family inet6 hashsize 1024 maxelem 65536',
          'create KUBE-NODE-PORT-TCP bitmap:port range 0-65535',
          'create SB-SWAP-4-1 hash:ip,port family inet hashsize 1024 maxelem 65536',
          'create FOREIGN hash:ip family inet',
          '',
        ].join('\n'),
      );
      await sh(
        'iptables-nft-restore',
        ['--noflush'],
        [
          '*filter',
          ':KUBE-IPVS-FILTER - [0:0]',
          '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
          '-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN',
          'COMMIT',
          '',
        ].join('\n'),
      );
      const config = join(tmpdir(), `sb-${process.pid}-kubeproxy.yaml`);
      await writeFile(
        config,
        'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  excludeCIDRs: ["192.168.100.0/24"]\n',
      );
      const r = await runner.run(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'src/cli.ts'), 'cleanup', '--config', config],
        {
          reject: false,
          timeoutMs: 120_000,
        },
      );
      await rm(config, { force: true });
      expect(r.exitCode, r.stderr).toBe(0);
      expect((await sh('ipset', ['list', '-n'])).stdout.trim()).toBe('FOREIGN');
      const saved = (await sh('iptables-nft-save', [])).stdout;
      expect(saved).not.toMatch(/KUBE-/);
      expect(ns).toMatch(/^sb-/);
    });
  });
});
