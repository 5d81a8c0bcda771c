/**
 * The saved form (src/backends/iptables/saved-form.ts) of IPVS mode's helper rules against
 * what real iptables prints, for kube-proxy's rule forms (spec kube-proxy-ipvs.md §7), both
 * families and both backends. (`-m ipvs` needs xt_ipvs, missing on these hosts: the VM
 * checks it, test/vm/guest/checks/iptables-matches.ts.)
 */
import { describe, expect, it } from 'vitest';
import { parseSavedTables } from '../../src/backends/iptables/kernel-diff.js';
import { savedForm } from '../../src/backends/iptables/saved-form.js';
import { helperChainsMatch } from '../../src/backends/ipvs/backend.js';
import { IPSET_DEFINITIONS, ipsetCreateOptions, ipsetName } from '../../src/backends/ipvs/ipsets.js';
import { iptablesBinary } from '../../src/kernel/backend.js';
import type { IPFamily } from '../../src/model/ip.js';
import { withScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';

function rules(family: IPFamily): { filter: string[]; nat: string[] } {
  const v4 = family === 'IPv4';
  const s = (base: string) => (v4 ? base : `KUBE-6-${base.slice(5)}`.slice(0, 31));
  const lo = v4 ? '127.0.0.0/8' : '::1/128';
  const lb = v4 ? '5.6.7.8' : 'fd00:5:6::8';
  return {
    nat: [
      `-A KUBE-SERVICES -s ${lo} -j RETURN`,
      `-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set ${s('KUBE-LOOP-BACK')} dst,dst,src -j MASQUERADE`,
      `-A KUBE-SERVICES -m comment --comment "Kubernetes service lb portal" -m set --match-set ${s('KUBE-LOAD-BALANCER')} dst,dst -j KUBE-LOAD-BALANCER`,
      `-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set ${s('KUBE-NODE-PORT-TCP')} dst -j KUBE-MARK-MASQ`,
      `-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set ${s('KUBE-CLUSTER-IP')} dst,dst ! -s ${v4 ? '10.244.0.0/16' : 'fd00:10:244::/48'} -j KUBE-MARK-MASQ`,
      `-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set ${s('KUBE-EXTERNAL-IP')} dst,dst -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`,
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
      '-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ',
      `-A KUBE-SERVICES -m set --match-set ${s('KUBE-CLUSTER-IP')} dst,dst -j ACCEPT`,
      '-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN',
      '-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000',
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
      '-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000',
    ],
    filter: [
      `-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer with sourceRange" -m set --match-set ${s('KUBE-LOAD-BALANCER-FW')} dst,dst -j KUBE-SOURCE-RANGES-FIREWALL`,
      `-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source cidr for packet filter purpose" -m set --match-set ${s('KUBE-LOAD-BALANCER-SOURCE-CIDR')} dst,dst,src -j RETURN`,
      '-A KUBE-SOURCE-RANGES-FIREWALL -j DROP',
      `-A KUBE-IPVS-OUT-FILTER -s ${lb} -j DROP`,
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT',
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      `-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set ${s('KUBE-HEALTH-CHECK-NODE-PORT')} dst -j ACCEPT`,
      `-A KUBE-IPVS-FILTER -m set --match-set ${s('KUBE-LOAD-BALANCER')} dst,dst -j RETURN`,
      `-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set ${s('KUBE-IPVS-IPS')} dst -j REJECT`,
    ],
  };
}

function restoreText(family: IPFamily): string {
  const r = rules(family);
  const table = (name: string, lines: string[], chains: string[]) =>
    [`*${name}`, ...chains.map((c) => `:${c} - [0:0]`), ...lines, 'COMMIT'].join('\n');
  return `${[
    table('filter', r.filter, [
      'KUBE-FORWARD',
      'KUBE-NODE-PORT',
      'KUBE-PROXY-FIREWALL',
      'KUBE-SOURCE-RANGES-FIREWALL',
      'KUBE-IPVS-FILTER',
      'KUBE-IPVS-OUT-FILTER',
    ]),
    table('nat', r.nat, [
      'KUBE-SERVICES',
      'KUBE-POSTROUTING',
      'KUBE-NODE-PORT',
      'KUBE-LOAD-BALANCER',
      'KUBE-MARK-MASQ',
    ]),
  ].join('\n')}\n`;
}

describe('savedForm of IPVS helper rules', () => {
  it('moves generic options before the modules, adds host prefixes, rewrites MARK and REJECT', () => {
    expect(savedForm('-A X -m set --match-set S dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ', 'IPv4')).toBe(
      '-A X ! -s 10.244.0.0/16 -m set --match-set S dst,dst -j KUBE-MARK-MASQ',
    );
    expect(savedForm('-A X -s 5.6.7.8 -j DROP', 'IPv4')).toBe('-A X -s 5.6.7.8/32 -j DROP');
    expect(savedForm('-A X -j MARK --or-mark 0x00004000', 'IPv4')).toBe(
      '-A X -j MARK --set-xmark 0x4000/0x4000',
    );
    expect(savedForm('-A X -j REJECT', 'IPv6')).toBe('-A X -j REJECT --reject-with icmp6-port-unreachable');
    expect(
      savedForm('-A X -p tcp -m comment --comment "a b" -m set --match-set S dst -j KUBE-MARK-MASQ', 'IPv4'),
    ).toBe('-A X -p tcp -m comment --comment "a b" -m set --match-set S dst -j KUBE-MARK-MASQ');
    expect(
      savedForm('-A X -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT', 'IPv4'),
    ).toBe('-A X -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT');
  });

  it('refuses set and physdev forms it does not model', () => {
    for (const rule of [
      '-A X -m set ! --match-set S dst -j RETURN',
      '-A X -m set --match-set S dst,any -j RETURN',
      '-A X -m set --match-set S -j RETURN',
      '-A X -m set --match-set "S T" dst -j RETURN',
      '-A X -m set --match-set S dst --return-nomatch -j RETURN',
      '-A X -m physdev --physdev-in eth0 -j RETURN',
    ])
      expect(savedForm(rule, 'IPv4'), rule).toBeNull();
  });
});

describe('savedForm: -m ipvs (forms measured with iptables 1.8.9, nft and legacy, in the VM guest)', () => {
  it("prints libxt_ipvs's order, the protocol as a number, a host --vaddr without its prefix", () => {
    const saved = (line: string, family: IPFamily = 'IPv4') => savedForm(line, family);
    for (const [input, output, family] of [
      [
        '-A KUBE-IPVS-OUT-FILTER -s 10.200.0.1 -m ipvs --vaddr 10.200.0.1 --vproto tcp --vport 80 -j DROP',
        '-A KUBE-IPVS-OUT-FILTER -s 10.200.0.1/32 -m ipvs --vproto 6 --vaddr 10.200.0.1 --vport 80 -j DROP',
        'IPv4',
      ],
      [
        '-A X -s 10.0.0.3 -m ipvs --vaddr 10.0.0.3/32 --vproto sctp --vport 80 -j DROP',
        '-A X -s 10.0.0.3/32 -m ipvs --vproto 132 --vaddr 10.0.0.3 --vport 80 -j DROP',
        'IPv4',
      ],
      [
        '-A X -s fd00::1 -m ipvs --vaddr fd00::1 --vproto udp --vport 53 -j DROP',
        '-A X -s fd00::1/128 -m ipvs --vproto 17 --vaddr fd00::1 --vport 53 -j DROP',
        'IPv6',
      ],
      // a network keeps its prefix (an IPv6 /32 too)
      [
        '-A X -m ipvs --vaddr 10.96.0.0/12 --vport 80 -j ACCEPT',
        '-A X -m ipvs --vaddr 10.96.0.0/12 --vport 80 -j ACCEPT',
        'IPv4',
      ],
      [
        '-A X -m ipvs --vaddr fd00::/32 --vport 80 -j ACCEPT',
        '-A X -m ipvs --vaddr fd00::/32 --vport 80 -j ACCEPT',
        'IPv6',
      ],
    ] as const) {
      expect(saved(input, family), input).toBe(output);
      expect(saved(output, family), output).toBe(output);
    }
    // What nft and legacy print differently (`--ipvs`), and what we never write, is not modelled.
    for (const rule of [
      '-A X -m ipvs --ipvs --vdir ORIGINAL -j ACCEPT',
      '-A X -m ipvs --vdir ORIGINAL -j ACCEPT',
      '-A X -m ipvs ! --vaddr 10.0.0.1 -j ACCEPT',
      '-A X -m ipvs --vproto icmp -j ACCEPT',
      '-A X -m ipvs --vaddr 0.0.0.0/0 -j ACCEPT',
      '-A X -m ipvs --vaddr 10.0.0.1/8 -j ACCEPT',
      '-A X -m ipvs --vport 0 -j ACCEPT',
      '-A X -m ipvs -j ACCEPT',
    ])
      expect(saved(rule), rule).toBeNull();
  });
});

describeKernel('the predicted save form against real iptables', () => {
  for (const backend of ['nft', 'legacy'] as const) {
    for (const family of ['IPv4', 'IPv6'] as const) {
      it(`${backend} ${family}`, async () => {
        await withScratchNetns(async ({ runner }) => {
          const sets = IPSET_DEFINITIONS.map((d) => {
            const name = ipsetName(d.id, family);
            const fam = d.type === 'bitmap:port' ? null : family === 'IPv4' ? 'inet' : 'inet6';
            return `create ${name} ${d.type} ${ipsetCreateOptions({ type: d.type, family: fam })}`;
          });
          await runner.run('ipset', ['restore'], { input: `${sets.join('\n')}\n` });
          const input = restoreText(family);
          await runner.run(iptablesBinary(backend, family, 'restore'), ['--noflush'], { input });
          const saved = (await runner.run(iptablesBinary(backend, family, 'save'), [])).stdout;
          const savedRules = saved.split('\n').filter((l) => /^-A KUBE-/.test(l));
          const r = rules(family);
          for (const line of [...r.filter, ...r.nat]) {
            const predicted = savedForm(line, family);
            expect(predicted, line).not.toBeNull();
            expect(savedRules, line).toContain(predicted);
            expect(savedForm(predicted!, family), predicted!).toBe(predicted);
          }
          expect(helperChainsMatch(parseSavedTables(saved), input, family)).toBe(true);
          expect(
            helperChainsMatch(parseSavedTables(saved), input.replace('-j DROP\n', '-j ACCEPT\n'), family),
          ).toBe(false);
        });
      });
    }
  }
});
