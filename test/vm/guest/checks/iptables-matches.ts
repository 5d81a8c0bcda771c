/**
 * The iptables matches IPVS mode needs load on the guest kernel, through both iptables
 * backends: `-m set` (kube-proxy's KUBE-SERVICES rules) and `-m ipvs`.
 */
import assert from 'node:assert/strict';
import type { CheckContext } from '../check.js';

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
    // A set an iptables rule uses cannot be destroyed (the applier relies on that ordering).
    const destroy = await runner.run('ipset', ['destroy', 'KUBE-CLUSTER-IP'], { reject: false });
    assert.notEqual(destroy.exitCode, 0, 'destroying a set in use should fail');
    t.note(`iptables-${backend}: -m set and -m ipvs rules loaded and read back`);
  }
}
