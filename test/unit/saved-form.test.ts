/**
 * The saved form of rules, against what iptables-save 1.8.9 printed on these machines
 * for them (nft and legacy alike; see notes/iptables-save-form.md and
 * test/kernel/saved-form.test.ts, which checks every golden file against the tools).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  chainMatches,
  dropChainsTheKernelHolds,
  parseSavedTables,
  rulesDigest,
} from '../../src/backends/iptables/kernel-diff.js';
import { emptyTable } from '../../src/backends/iptables/restore-text.js';
import {
  parsedSavedForm,
  ruleWords,
  savedForm,
  savedProbability,
  saveString,
} from '../../src/backends/iptables/saved-form.js';

/** [restore input, what iptables-save printed], IPv4. */
const MEASURED_V4: Array<[string, string]> = [
  [
    '-A KUBE-T -m comment --comment "ns/a:p cluster IP" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j KUBE-SEP-AAAA',
    '-A KUBE-T -d 10.96.0.1/32 -p tcp -m comment --comment "ns/a:p cluster IP" -m tcp --dport 80 -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m comment --comment ns/a:p -m udp -p udp --dport 30053 -j KUBE-SEP-AAAA',
    '-A KUBE-T -p udp -m comment --comment "ns/a:p" -m udp --dport 30053 -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m comment --comment "x" -m sctp -p sctp -d 10.96.0.2 --dport 7 -j KUBE-SEP-AAAA',
    '-A KUBE-T -d 10.96.0.2/32 -p sctp -m comment --comment x -m sctp --dport 7 -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m sctp -p sctp -j DNAT --to-destination 10.1.2.3:7',
    '-A KUBE-T -p sctp -m sctp -j DNAT --to-destination 10.1.2.3:7',
  ],
  ['-A KUBE-T -s 0.0.0.0/0 -j RETURN', '-A KUBE-T -j RETURN'],
  ['-A KUBE-T -s 10.0.0.0/8 -j RETURN', '-A KUBE-T -s 10.0.0.0/8 -j RETURN'],
  [
    '-A KUBE-T -m comment --comment "a b" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-AAAA',
    '-A KUBE-T -m comment --comment "a b" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m statistic --mode random --probability 0.0001000000 -j KUBE-SEP-AAAA',
    '-A KUBE-T -m statistic --mode random --probability 0.00009999983 -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m statistic --mode random --probability 0.9000000000 -j KUBE-SEP-AAAA',
    '-A KUBE-T -m statistic --mode random --probability 0.89999999991 -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m recent --name KUBE-SEP-AAAA --rcheck --seconds 10800 --reap -j KUBE-SEP-AAAA',
    '-A KUBE-T -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-AAAA --mask 255.255.255.255 --rsource -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m recent --name KUBE-SEP-AAAA --set -m tcp -p tcp -j DNAT --to-destination 10.1.2.3:80',
    '-A KUBE-T -p tcp -m recent --set --name KUBE-SEP-AAAA --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.1.2.3:80',
  ],
  ['-A KUBE-T -j MARK --or-mark 0x00004000', '-A KUBE-T -j MARK --set-xmark 0x4000/0x4000'],
  ['-A KUBE-T -j MARK --xor-mark 0x00004000', '-A KUBE-T -j MARK --set-xmark 0x4000/0x0'],
  ['-A KUBE-T -j MARK --or-mark 0x80000000', '-A KUBE-T -j MARK --set-xmark 0x80000000/0x80000000'],
  [
    '-A KUBE-T -m mark ! --mark 0x00004000/0x00004000 -j RETURN',
    '-A KUBE-T -m mark ! --mark 0x4000/0x4000 -j RETURN',
  ],
  ['-A KUBE-T -j MASQUERADE', '-A KUBE-T -j MASQUERADE'],
  ['-A KUBE-T -j MASQUERADE --random-fully', '-A KUBE-T -j MASQUERADE --random-fully'],
  [
    '-A KUBE-T -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-SEP-AAAA',
    '-A KUBE-T ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m comment --comment "p" ! -i cbr+ -j KUBE-SEP-AAAA',
    '-A KUBE-T ! -i cbr+ -m comment --comment p -j KUBE-SEP-AAAA',
  ],
  [
    '-A KUBE-T -m comment --comment "q" -s 10.244.0.0/16 ! -i eth0 -m tcp -p tcp -d 10.96.0.1 --dport 443 -j KUBE-SEP-AAAA',
    '-A KUBE-T -s 10.244.0.0/16 -d 10.96.0.1/32 ! -i eth0 -p tcp -m comment --comment q -m tcp --dport 443 -j KUBE-SEP-AAAA',
  ],
  ['-A KUBE-T -m comment --comment "other traffic"', '-A KUBE-T -m comment --comment "other traffic"'],
  ['-A KUBE-T', '-A KUBE-T'],
  [
    '-A KUBE-F -m comment --comment "x has no endpoints" -m tcp -p tcp -d 10.96.0.1 --dport 80 -j REJECT',
    '-A KUBE-F -d 10.96.0.1/32 -p tcp -m comment --comment "x has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable',
  ],
  [
    '-A KUBE-F -m comment --comment "block" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    '-A KUBE-F ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment block -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
  ],
  [
    '-A KUBE-F -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    '-A KUBE-F -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  ],
  [
    '-A KUBE-F -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP',
    '-A KUBE-F -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP',
  ],
  [
    '-A KUBE-F -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30000 -j DROP',
    '-A KUBE-F -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 30000 -j DROP',
  ],
];

const MEASURED_V6: Array<[string, string]> = [
  [
    '-A KUBE-T -m comment --comment "ns/a:p cluster IP" -m tcp -p tcp -d fd00:10:96::1 --dport 80 -j KUBE-SEP-AAAA',
    '-A KUBE-T -d fd00:10:96::1/128 -p tcp -m comment --comment "ns/a:p cluster IP" -m tcp --dport 80 -j KUBE-SEP-AAAA',
  ],
  ['-A KUBE-T ! -s fd00:10:244::/48 -j RETURN', '-A KUBE-T ! -s fd00:10:244::/48 -j RETURN'],
  ['-A KUBE-T -d ::/0 -j RETURN', '-A KUBE-T -j RETURN'],
  ['-A KUBE-T -d 2001:db8::1:0:0:1 -j RETURN', '-A KUBE-T -d 2001:db8::1:0:0:1/128 -j RETURN'],
  [
    '-A KUBE-T -m recent --name KUBE-SEP-AAAA --set -m tcp -p tcp -j DNAT --to-destination [fd00:10:180::1]:80',
    '-A KUBE-T -p tcp -m recent --set --name KUBE-SEP-AAAA --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -m tcp -j DNAT --to-destination [fd00:10:180::1]:80',
  ],
  ['-A KUBE-T -m comment --comment a.b -j RETURN', '-A KUBE-T -m comment --comment "a.b" -j RETURN'],
  ['-A KUBE-T -m comment --comment "" -j RETURN', '-A KUBE-T -m comment --comment "" -j RETURN'],
  ['-A KUBE-T -m comment --comment "a_b-C9" -j RETURN', '-A KUBE-T -m comment --comment a_b-C9 -j RETURN'],
  [
    '-A KUBE-F -m comment --comment "x has no endpoints" -m tcp -p tcp -d fd00::1 --dport 80 -j REJECT',
    '-A KUBE-F -d fd00::1/128 -p tcp -m comment --comment "x has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp6-port-unreachable',
  ],
  [
    '-A KUBE-F -m conntrack --ctstate DNAT,INVALID,NEW,UNTRACKED,SNAT -j DROP',
    '-A KUBE-F -m conntrack --ctstate INVALID,NEW,UNTRACKED,SNAT,DNAT -j DROP',
  ],
];

describe('savedForm', () => {
  for (const [family, cases] of [
    ['IPv4', MEASURED_V4],
    ['IPv6', MEASURED_V6],
  ] as const) {
    it(`${family}: derives what iptables-save printed, and keeps a saved line as it is`, () => {
      for (const [input, saved] of cases) {
        expect(savedForm(input, family), input).toBe(saved);
        expect(savedForm(saved, family), saved).toBe(saved);
      }
    });
  }

  it('refuses what it does not model exactly: the caller then rewrites the chain', () => {
    const unknown: Array<[string, 'IPv4' | 'IPv6']> = [
      ['-A KUBE-T -m limit --limit 5/s -j RETURN', 'IPv4'],
      ['-A KUBE-T -j LOG --log-prefix x', 'IPv4'],
      ['-A KUBE-T -j SOMECHAIN', 'IPv4'],
      ['-A KUBE-T -g KUBE-X', 'IPv4'],
      ['-A KUBE-T -m tcp -p tcp --dport 1:100 -j RETURN', 'IPv4'],
      ['-A KUBE-T -m tcp -p tcp ! --dport 80 -j RETURN', 'IPv4'],
      ['-A KUBE-T -p icmp -j RETURN', 'IPv4'],
      ['-A KUBE-T -m tcp -p udp --dport 80 -j RETURN', 'IPv4'],
      ['-A KUBE-T -d 010.1.1.1 -j RETURN', 'IPv4'],
      ['-A KUBE-T -d 10.1.1.1/8 -j RETURN', 'IPv4'],
      ['-A KUBE-T -d fd00::1 -j RETURN', 'IPv4'],
      ['-A KUBE-T -d FD00::1 -j RETURN', 'IPv6'],
      // glibc prints these IPv6 addresses as ::a.b.c.d
      ['-A KUBE-T -d ::1.2.3.4 -j RETURN', 'IPv6'],
      ['-A KUBE-T -d ::102:304 -j RETURN', 'IPv6'],
      ['-A KUBE-T ! -s 0.0.0.0/0 -j RETURN', 'IPv4'],
      ['-A KUBE-T -m statistic --mode nth --every 2 -j RETURN', 'IPv4'],
      ['-A KUBE-T -m statistic --mode random --probability 1.5 -j RETURN', 'IPv4'],
      ['-A KUBE-T -m conntrack --ctstate BOGUS -j RETURN', 'IPv4'],
      ['-A KUBE-T -m recent --name X --update -j RETURN', 'IPv4'],
      ['-A KUBE-T -m recent --name X --set --rdest -j RETURN', 'IPv4'],
      ['-A KUBE-T -j REJECT --reject-with tcp-reset', 'IPv4'],
      ['-A KUBE-T -j MASQUERADE --random', 'IPv4'],
      ['-A KUBE-T -j DNAT --to-destination 10.0.0.1', 'IPv4'],
      ['-A KUBE-T -j DNAT --to-destination fd00::1:80', 'IPv6'],
      ['-A KUBE-T -m comment --comment "unterminated -j RETURN', 'IPv4'],
      ['-A KUBE-T -m comment --comment a"b -j RETURN', 'IPv4'],
      ['-A KUBE-T -m comment --comment a -m comment --comment b', 'IPv4'],
      ['-A KUBE-T ! ! -s 10.0.0.0/8', 'IPv4'],
      ['-A KUBE-T -s 10.0.0.0/8 -s 10.0.0.0/8', 'IPv4'],
      ['-I KUBE-T -j RETURN', 'IPv4'],
      ['-A KUBE-T -j RETURN !', 'IPv4'],
    ];
    for (const [rule, family] of unknown) expect(savedForm(rule, family), rule).toBeNull();
  });

  it('quotes and escapes a comment the way xtables_save_string does', () => {
    expect(saveString('abc_-9')).toBe('abc_-9');
    expect(saveString('a.b')).toBe('"a.b"');
    expect(saveString('')).toBe('""');
    expect(saveString(`a"b'c\\d`)).toBe(`"a\\"b\\'c\\\\d"`);
    expect(ruleWords('-A X -m comment --comment "a\\"b\\\\c d"')).toEqual([
      '-A',
      'X',
      '-m',
      'comment',
      '--comment',
      'a"b\\c d',
    ]);
  });
});

describe('savedForm shortcuts for common shapes', () => {
  it('give exactly what the general path gives, on every golden rule and on near misses', () => {
    const fixtures = fileURLToPath(new URL('../../fixtures', import.meta.url));
    const rules: Array<[string, 'IPv4' | 'IPv6']> = [];
    for (const scenario of readdirSync(fixtures)) {
      for (const [file, family] of [
        ['iptables.rules', 'IPv4'],
        ['ip6tables.rules', 'IPv6'],
      ] as const) {
        const path = join(fixtures, scenario, file);
        if (!existsSync(path)) continue;
        for (const line of readFileSync(path, 'utf8').split('\n'))
          if (line.startsWith('-A ')) rules.push([line, family]);
      }
    }
    const variants = (r: string) => [
      r,
      r.replace(/ -s (\S+)/, ' -s $1/32'),
      r.replace(/ -s (\S+)/, ' -s 010.0.0.1'),
      r.replace(/--to-destination \S+/, '--to-destination 10.0.0.1:0'),
      r.replace(/--to-destination \S+/, '--to-destination [fd00::1]:80'),
      r.replace(/--probability \S+/, '--probability 2'),
      r.replace(/-j (KUBE-\S+)$/, '-j lower-case'),
      `${r} `,
    ];
    let compared = 0;
    for (const [rule, family] of rules) {
      for (const v of variants(rule)) {
        for (const f of ['IPv4', 'IPv6'] as const) {
          expect(savedForm(v, f), `${f} ${v}`).toBe(parsedSavedForm(v, f));
          compared++;
        }
      }
      expect(savedForm(rule, family)).not.toBeNull();
    }
    expect(compared).toBeGreaterThan(10_000);
  });
});

describe('savedProbability', () => {
  it("prints the kernel's 32-bit fraction with 11 decimals, rounding exact ties to even", () => {
    expect(savedProbability('0.5000000000')).toBe('0.50000000000');
    expect(savedProbability('0.3333333333')).toBe('0.33333333349');
    expect(savedProbability('0.0004882812')).toBe('0.00048828125');
    // 2^-12 and 3 * 2^-12 end in an exact 5 at the 12th decimal (measured: ...062 and ...188).
    expect(savedProbability('0.0002441406')).toBe('0.00024414062');
    expect(savedProbability('0.0007324219')).toBe('0.00073242188');
    expect(savedProbability('0.9999999999')).toBe('1.00000000000');
    expect(savedProbability('0.0000000001')).toBe('0.00000000000');
    expect(savedProbability('0.50000000000')).toBe('0.50000000000');
    expect(savedProbability('.5')).toBeNull();
    expect(savedProbability('2')).toBeNull();
  });

  it('is a fixed point on what it prints', () => {
    for (let k = 2; k <= 5000; k++) {
      const saved = savedProbability((1 / k).toFixed(10))!;
      expect(savedProbability(saved)).toBe(saved);
    }
  });
});

const SAVE = `# Generated by iptables-nft-save v1.8.9 (nf_tables) on Thu Dec  3 08:33:15 2026
*filter
:INPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-X - [0:0]
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
COMMIT
`;

describe('parseSavedTables and the chain comparison', () => {
  it('reads tables, chains (built-in or not) and their rules', () => {
    const saved = parseSavedTables(SAVE);
    expect([...saved.keys()]).toEqual(['filter', 'nat']);
    expect(saved.get('filter')!.get('INPUT')).toMatchObject({ builtin: true, count: 1 });
    expect(saved.get('filter')!.get('KUBE-FORWARD')).toEqual({
      builtin: false,
      count: 2,
      rules:
        '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n' +
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    });
    // A service chain keeps a digest of its rules' text, here of none.
    expect(saved.get('nat')!.get('KUBE-SVC-X')).toEqual({
      builtin: false,
      count: 0,
      digest: rulesDigest(''),
      jumps: [],
    });
  });

  it('keeps rules of a chain that come in two runs', () => {
    const saved = parseSavedTables(
      '*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j RETURN\n-A B -j RETURN\n-A A -j DROP\nCOMMIT\n',
    );
    expect(saved.get('nat')!.get('A')).toEqual({
      builtin: false,
      count: 2,
      rules: '-A A -j RETURN\n-A A -j DROP',
    });
  });

  it('drops only the chains the kernel holds with exactly the rendered rules', () => {
    const saved = parseSavedTables(SAVE);
    const filter = emptyTable('filter');
    filter.chains.set('KUBE-FORWARD', [
      '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT',
    ]);
    filter.chains.set('KUBE-SERVICES', []);
    const nat = emptyTable('nat');
    nat.chains.set('KUBE-MARK-MASQ', ['-A KUBE-MARK-MASQ -j MARK --or-mark 0x00008000']);
    nat.chains.set('KUBE-SVC-X', []);
    nat.deleted = ['KUBE-SVC-X'];
    expect(dropChainsTheKernelHolds(filter, saved, 'IPv4')).toBe(1);
    expect([...filter.chains.keys()]).toEqual(['KUBE-SERVICES']);
    // A different mark, and a chain being deleted, stay.
    expect(dropChainsTheKernelHolds(nat, saved, 'IPv4')).toBe(0);
    expect([...nat.chains.keys()]).toEqual(['KUBE-MARK-MASQ', 'KUBE-SVC-X']);
  });

  it('differs on order, count and on any rule it cannot model', () => {
    const chain = parseSavedTables(SAVE).get('filter')!.get('KUBE-FORWARD')!;
    const a = '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP';
    const b =
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT';
    expect(chainMatches([a, b], chain, 'IPv4')).toBe(true);
    expect(chainMatches([b, a], chain, 'IPv4')).toBe(false);
    expect(chainMatches([a], chain, 'IPv4')).toBe(false);
    expect(chainMatches([a, `${b} -m limit --limit 1/s`], chain, 'IPv4')).toBe(false);
    // The built-in chain is never taken as ours.
    const input = emptyTable('filter');
    input.chains.set('INPUT', [
      '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    ]);
    expect(dropChainsTheKernelHolds(input, parseSavedTables(SAVE), 'IPv4')).toBe(0);
  });
});
