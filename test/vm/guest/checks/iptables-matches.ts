/**
 * The iptables matches IPVS mode needs load on the guest kernel, through both iptables
 * backends: `-m set` (kube-proxy's KUBE-SERVICES rules) and `-m ipvs`; and iptables-save
 * prints kube-proxy's `-m ipvs` rules (KUBE-IPVS-OUT-FILTER) in the form
 * iptables/saved-form.ts predicts, so a restart finds the helper chains in place and does
 * not rewrite them.
 */
import assert from 'node:assert/strict';
import { savedForm } from '../../../../src/backends/iptables/saved-form.js';
import type { IPFamily } from '../../../../src/model/ip.js';
import type { CheckContext } from '../check.js';

const OUT_FILTER: Record<IPFamily, string[]> = {
  IPv4: [
    '-A KUBE-IPVS-OUT-FILTER -s 10.200.0.1 -m ipvs --vaddr 10.200.0.1 --vproto tcp --vport 80 -j DROP',
    '-A KUBE-IPVS-OUT-FILTER -s 10.200.0.2 -m ipvs --vaddr 10.200.0.2 --vproto udp --vport 53 -j DROP',
    '-A KUBE-IPVS-OUT-FILTER -s 10.200.0.3 -m ipvs --vaddr 10.200.0.3 --vproto sctp --vport 80 -j DROP',
  ],
  IPv6: ['-A KUBE-IPVS-OUT-FILTER -s fd00::1 -m ipvs --vaddr fd00::1 --vproto tcp --vport 80 -j DROP'],
};

const RULES = `*nat
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
COMMIT
*filter
:KUBE-FORWARD - [0:0]
-A KUBE-FORWARD -m ipvs --ipvs --vdir ORIGINAL --vmethod MASQ -j ACCEPT
-A KUBE-FORWARD -m ipvs --vaddr 10.96.0.0/12 --vport 80 -j ACCEPT
COMMIT
`;

export default async function (t: CheckContext): Promise<void> {
  for (const backend of ['nft', 'legacy'] as const) {
    const { runner } = await t.scratchNetns();
    await runner.run('ipset', ['create', 'KUBE-CLUSTER-IP', 'hash:ip,port']);
    await runner.run(`iptables-${backend}-restore`, [], { input: RULES });
    const saved = (await runner.run(`iptables-${backend}-save`, [])).stdout;
    assert.match(saved, /-m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ/, saved);
    // iptables-nft-save leaves out `--ipvs` when other ipvs options follow; legacy prints it.
    assert.match(saved, /-m ipvs (--ipvs )?--vdir ORIGINAL --vmethod MASQ -j ACCEPT/, saved);
    assert.match(saved, /-m ipvs --vaddr 10\.96\.0\.0\/12 --vport 80 -j ACCEPT/, saved);
    const network = savedForm('-A KUBE-FORWARD -m ipvs --vaddr 10.96.0.0/12 --vport 80 -j ACCEPT', 'IPv4');
    assert.ok(network !== null && saved.split('\n').includes(network), `${network} in\n${saved}`);
    // A set an iptables rule uses cannot be destroyed (the applier relies on that ordering).
    const destroy = await runner.run('ipset', ['destroy', 'KUBE-CLUSTER-IP'], { reject: false });
    assert.notEqual(destroy.exitCode, 0, 'destroying a set in use should fail');
    t.note(`iptables-${backend}: -m set and -m ipvs rules loaded and read back`);

    for (const family of ['IPv4', 'IPv6'] as const) {
      const tool = family === 'IPv4' ? 'iptables' : 'ip6tables';
      const input = `*filter\n:KUBE-IPVS-OUT-FILTER - [0:0]\n${OUT_FILTER[family].join('\n')}\nCOMMIT\n`;
      await runner.run(`${tool}-${backend}-restore`, ['--noflush'], { input });
      const got = (await runner.run(`${tool}-${backend}-save`, ['-t', 'filter'])).stdout
        .split('\n')
        .filter((l) => l.startsWith('-A KUBE-IPVS-OUT-FILTER '));
      const predicted = OUT_FILTER[family].map((l) => savedForm(l, family));
      assert.deepEqual(got, predicted, `${tool}-${backend}-save of -m ipvs rules`);
      // The comparison also normalises what the kernel printed: that must be a fixed point.
      for (const line of got) assert.equal(savedForm(line, family), line);
    }
    t.note(`${backend}: -m ipvs rules saved as predicted (${savedForm(OUT_FILTER.IPv4[0]!, 'IPv4')})`);
  }
}
