/**
 * IpvsBackend against the in-memory kernel (FakeNode: ipvsadm, ipset, ip, sysctl and
 * iptables doubles): first sync, partial syncs, failures and the full resync that follows,
 * verification catching a line the kernel silently did not apply, adoption after a
 * restart, excludeCIDRs, lost state, and the operation count of a one-endpoint change.
 */
import { describe, expect, it } from 'vitest';
import { IpvsSyncError } from '../../src/backends/ipvs/backend.js';
import { IPSET_DEFINITIONS, ipsetName } from '../../src/backends/ipvs/ipsets.js';
import type { IpvsState } from '../../src/backends/ipvs/state.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import { clusterState, ipvsState, recordingLogger, rs, vs, withVirtualServer } from './builders.js';
import { harness } from './harness.js';

const WEB = vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5'), rs('10.244.2.6')]);
const DNS = vs('UDP', '10.96.0.53', 53, [rs('10.244.1.7', 53)], { persistenceSeconds: 10800 });

function small(): IpvsState {
  return ipvsState('IPv4', {
    virtualServers: [WEB, DNS],
    sets: { clusterIP: ['10.96.0.10,tcp:80', '10.96.0.53,udp:53'], ipvsIPs: ['10.96.0.10', '10.96.0.53'] },
    boundAddresses: ['10.96.0.10', '10.96.0.53'],
  });
}

function ops(node: FakeNode, from: number) {
  const calls = node.calls.slice(from);
  return {
    ipvsadm: calls.filter((c) => c.cmd === 'ipvsadm'),
    ipset: calls.filter((c) => c.cmd === 'ipset'),
    ip: calls.filter((c) => c.cmd === 'ip'),
    iptables: calls.filter((c) => c.cmd.startsWith('iptables')),
  };
}

describe('IpvsBackend: first sync', () => {
  it('programs an empty node: sets, virtual servers, kube-ipvs0, helper chains and jumps', async () => {
    const h = harness(small());
    const result = await h.sync(false);
    expect(result.full).toBe(true);
    expect(h.node.ipvsadm.save()).toBe(
      [
        '-A -t 10.96.0.10:80 -s rr',
        '-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1',
        '-a -t 10.96.0.10:80 -r 10.244.2.6:8080 -m -w 1',
        '-A -u 10.96.0.53:53 -s rr -p 10800',
        '-a -u 10.96.0.53:53 -r 10.244.1.7:53 -m -w 1',
        '',
      ].join('\n'),
    );
    expect(h.node.ipset.entries('KUBE-CLUSTER-IP')).toEqual(['10.96.0.10,tcp:80', '10.96.0.53,udp:53']);
    expect(h.node.ipset.names()).toHaveLength(17);
    expect(h.node.ip.addressesOf('kube-ipvs0')).toEqual(['10.96.0.10', '10.96.0.53']);
    expect(h.node.iptables.rules('nft', 'IPv4', 'filter', 'INPUT')).toEqual([
      '-m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
      '-m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      '-m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT',
    ]);
    expect(h.node.iptables.rules('nft', 'IPv4', 'filter', 'KUBE-IPVS-FILTER')).toHaveLength(3);
    expect(h.backend.lastSync?.lines).toMatchObject({ ipvsadm: 5 });
  });

  it('takes a restart over the state in place without writing anything', async () => {
    const first = harness(small());
    await first.sync();
    const second = harness(small(), { node: first.node });
    const from = first.node.calls.length;
    await second.sync(true);
    const after = ops(first.node, from);
    expect(after.ipvsadm.map((c) => c.args)).toEqual([['-S', '-n']]);
    expect(after.ipset.map((c) => c.args[0])).toEqual(['list', ...Array(17).fill('save')]);
    expect(after.ip.map((c) => c.args.slice(0, 4))).toEqual([['-o', '-4', 'addr', 'show']]);
    expect(after.iptables.filter((c) => c.cmd.endsWith('-restore'))).toEqual([]);
    expect(after.iptables.filter((c) => c.args.includes('-I'))).toEqual([]);
  });
});

describe('IpvsBackend: partial syncs', () => {
  it('applies only the difference, edits in place, and reads back only what it touched', async () => {
    const h = harness(small());
    await h.sync();
    const from = h.node.calls.length;
    h.desired = withVirtualServer(small(), 'TCP 10.96.0.10:80', (v) => ({
      ...v,
      scheduler: 'wrr',
      realServers: [rs('10.244.1.5'), rs('10.244.3.9')],
    }));
    const result = await h.sync();
    expect(result.full).toBe(false);
    const after = ops(h.node, from);
    expect(after.ipvsadm.map((c) => c.input ?? c.args.join(' '))).toEqual([
      '-E -t 10.96.0.10:80 -s wrr\n-a -t 10.96.0.10:80 -r 10.244.3.9:8080 -m -w 1\n-e -t 10.96.0.10:80 -r 10.244.2.6:8080 -m -w 0\n',
      '-L -n -t 10.96.0.10:80',
    ]);
    expect(after.ipset).toEqual([]);
    expect(after.ip).toEqual([]);
  });

  it('spot-checks a clean batch with one read, however many virtual servers it touched; reads back all of one that reported anything', async () => {
    const h = harness(small());
    await h.sync();
    // one endpoint of a service with several virtual servers (ClusterIP, NodePort, LB)
    let from = h.node.calls.length;
    const move = (v: typeof WEB) => ({ ...v, realServers: [rs('10.244.1.5'), rs('10.244.4.4')] });
    h.desired = withVirtualServer(
      withVirtualServer(small(), 'TCP 10.96.0.10:80', move),
      'UDP 10.96.0.53:53',
      (v) => ({
        ...v,
        realServers: [rs('10.244.1.8', 53)],
      }),
    );
    await h.sync();
    expect(ops(h.node, from).ipvsadm.map((c) => c.args[0])).toEqual(['-R', '-L']);
    // another agent added a real server we add next: "Destination already exists" on stderr
    await h.node.run('ipvsadm', ['-a', '-t', '10.96.0.10:80', '-r', '10.244.5.5:8080', '-m', '-w', '1']);
    from = h.node.calls.length;
    h.desired = withVirtualServer(
      withVirtualServer(small(), 'TCP 10.96.0.10:80', (v) => ({ ...v, realServers: [rs('10.244.5.5')] })),
      'UDP 10.96.0.53:53',
      (v) => ({ ...v, realServers: [rs('10.244.1.9', 53)] }),
    );
    const err = (await h.sync().catch((e: unknown) => e)) as IpvsSyncError;
    expect(err.message).toContain('Destination already exists');
    expect(ops(h.node, from).ipvsadm.map((c) => c.args.join(' '))).toEqual([
      '-R',
      '-L -n -t 10.96.0.10:80',
      '-L -n -u 10.96.0.53:53',
    ]);
  });

  it('rewrites the helper chains on a periodic sync without changes, and not on a change that leaves them alone', async () => {
    const h = harness(small());
    await h.sync();
    let from = h.node.calls.length;
    await h.sync(false, ['ns1/other']);
    expect(ops(h.node, from).iptables).toEqual([]);
    from = h.node.calls.length;
    await h.sync(false, []);
    expect(ops(h.node, from).iptables.map((c) => c.cmd)).toEqual(['iptables-nft-restore']);
  });

  it('a one-endpoint change at 10,000 services x 10 endpoints takes at most 3 ipvsadm/ipset operations', async () => {
    const big = clusterState(10_000, 10);
    const h = harness(big);
    await h.sync();
    expect(h.node.ipvsadm.size).toBe(10_000);
    // a remote endpoint replaced
    let from = h.node.calls.length;
    h.desired = withVirtualServer(big, 'TCP 10.96.19.136:80', (v) => ({
      ...v,
      realServers: [...v.realServers.slice(1), rs('10.250.0.1')],
    }));
    await h.sync();
    let after = ops(h.node, from);
    expect(after.ipvsadm.length + after.ipset.length).toBeLessThanOrEqual(3);
    expect(after.ipvsadm.map((c) => c.args[0])).toEqual(['-R', '-L']);
    // a local endpoint added: its KUBE-LOOP-BACK entry too
    from = h.node.calls.length;
    const base = h.desired;
    h.desired = {
      ...withVirtualServer(base, 'TCP 10.96.0.7:80', (v) => ({
        ...v,
        realServers: [...v.realServers, rs('10.244.200.1')],
      })),
      ipsets: base.ipsets.map((s) =>
        s.name === 'KUBE-LOOP-BACK' ? { ...s, entries: ['10.244.200.1,tcp:8080,10.244.200.1'] } : s,
      ),
    };
    await h.sync();
    after = ops(h.node, from);
    expect(after.ipvsadm.length + after.ipset.length).toBeLessThanOrEqual(3);
    expect(h.backend.lastSync?.operations).toMatchObject({ ipvsadm: 2, ipset: 1 });
    expect(h.node.ipset.entries('KUBE-LOOP-BACK')).toEqual(['10.244.200.1,tcp:8080,10.244.200.1']);
  }, 120_000);
});

describe('IpvsBackend: failures', () => {
  it('a line the kernel refuses fails the sync with its stderr; the next sync is full and repairs', async () => {
    const { log, records } = recordingLogger();
    const h = harness(small(), { log });
    await h.sync();
    // another agent adds the service we are about to add: our -A is refused
    await h.node.run('ipvsadm', ['-A', '-t', '10.96.0.11:80', '-s', 'wlc']);
    h.desired = ipvsState('IPv4', {
      virtualServers: [WEB, DNS, vs('TCP', '10.96.0.11', 80, [rs('10.244.1.8')])],
    });
    const err = await h.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpvsSyncError);
    expect((err as Error).message).toMatch(/partial sync #\d+ failed: ipvsadm -R did not apply/);
    expect((err as Error).message).toContain('Service already exists');
    expect((err as Error).message).toContain('-A -t 10.96.0.11:80 -s rr');
    // what was serving still serves
    expect(h.node.ipvsadm.save()).toContain('-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1');
    const retry = await h.sync();
    expect(retry.full).toBe(true);
    expect(h.node.ipvsadm.save()).toContain(
      '-A -t 10.96.0.11:80 -s rr\n-a -t 10.96.0.11:80 -r 10.244.1.8:8080 -m -w 1',
    );
    expect(
      records.some(
        (r) => r['msg'] === 'ipvs sync done' && (r['upgradedBecause'] as string[])[0]?.includes('unknown'),
      ),
    ).toBe(true);
  });

  it('verification catches a line that took no effect although ipvsadm reported nothing', async () => {
    const h = harness(small());
    await h.sync();
    // the kernel (or a racing agent) drops what was just added, without a word on stderr
    h.node.ipvsadm.afterRestore = (fake) => {
      fake.afterRestore = null;
      fake.deleteRealServer('TCP 10.96.0.10:80', '10.244.9.9:8080');
    };
    h.desired = withVirtualServer(small(), 'TCP 10.96.0.10:80', (v) => ({
      ...v,
      realServers: [...v.realServers, rs('10.244.9.9')],
    }));
    const err = (await h.sync().catch((e: unknown) => e)) as IpvsSyncError;
    expect(err).toBeInstanceOf(IpvsSyncError);
    expect(err.message).toContain('real server 10.244.9.9:8080 is missing');
    expect(err.offendingLines).toEqual(['-a -t 10.96.0.10:80 -r 10.244.9.9:8080 -m -w 1']);
    await h.sync();
    expect(h.node.ipvsadm.save()).toContain('10.244.9.9:8080');
  });

  it('an ipset failure names the line, keeps IPVS untouched for that sync, and the next sync repairs', async () => {
    const h = harness(small());
    await h.sync();
    const before = h.node.ipvsadm.save();
    // another agent swaps a full set with a tiny maxelem in under a name we own
    await h.node.run('ipset', ['create', 'TINY', 'hash:ip,port', 'family', 'inet', 'maxelem', '2']);
    await h.node.run('ipset', ['add', 'TINY', '10.96.0.10,tcp:80']);
    await h.node.run('ipset', ['add', 'TINY', '10.96.0.53,udp:53']);
    await h.node.run('ipset', ['swap', 'TINY', 'KUBE-CLUSTER-IP']);
    await h.node.run('ipset', ['destroy', 'TINY']);
    h.desired = ipvsState('IPv4', {
      virtualServers: [WEB, DNS, vs('TCP', '10.96.0.12', 80)],
      sets: { clusterIP: ['10.96.0.10,tcp:80', '10.96.0.53,udp:53', '10.96.0.12,tcp:80'] },
    });
    const err = (await h.sync().catch((e: unknown) => e)) as IpvsSyncError;
    expect(err.tool).toBe('ipset');
    expect(err.message).toContain('Hash is full');
    expect(err.offendingLines).toEqual(['add KUBE-CLUSTER-IP 10.96.0.12,tcp:80']);
    expect(h.node.ipvsadm.save()).toBe(before);
    // the full resync sees the set's limit and rebuilds it with kube-proxy's, swapped in
    expect((await h.sync()).full).toBe(true);
    expect(h.node.ipset.entries('KUBE-CLUSTER-IP')).toEqual([
      '10.96.0.10,tcp:80',
      '10.96.0.12,tcp:80',
      '10.96.0.53,udp:53',
    ]);
    expect(h.node.ipvsadm.save()).toContain('-A -t 10.96.0.12:80 -s rr');
  });

  it('reports a set another agent made with another type, and keeps failing clearly until it is gone', async () => {
    const node = new FakeNode();
    await node.run('ipset', ['create', 'KUBE-CLUSTER-IP', 'hash:ip', 'family', 'inet']);
    const h = harness(small(), { node });
    await expect(h.sync()).rejects.toThrow(/ipset KUBE-CLUSTER-IP exists as hash:ip family inet/);
  });
});

describe('IpvsBackend: what it owns', () => {
  it('keeps foreign virtual servers inside excludeCIDRs, removes those outside, never touches the other family or fwmark services', async () => {
    const node = new FakeNode();
    await node.run('ipvsadm', ['-R'], {
      input: [
        '-A -t 192.168.100.1:80 -s wlc',
        '-a -t 192.168.100.1:80 -r 10.0.0.5:80 -g -w 3',
        '-A -t 192.168.200.1:80 -s rr',
        '-A -t [fd00::10]:80 -s rr',
        '-A -f 100 -s rr',
        '',
      ].join('\n'),
    });
    const h = harness(small(), { node, excludeCIDRs: ['192.168.100.0/24', 'fd00:99::/64'] });
    for (let i = 0; i < 3; i++) await h.sync(i === 2);
    const saved = node.ipvsadm.save();
    expect(saved).toContain('-A -t 192.168.100.1:80 -s wlc\n-a -t 192.168.100.1:80 -r 10.0.0.5:80 -g -w 3');
    expect(saved).not.toContain('192.168.200.1');
    expect(saved).toContain('-A -t [fd00::10]:80 -s rr');
    expect(saved).toContain('-A -f 100 -s rr');
    expect(h.backend.lastSync?.excluded).toBe(1);
  });

  it('notices a cleared IPVS table or flushed iptables, and resyncs in full', async () => {
    const h = harness(small());
    await h.sync();
    expect(await h.backend.lostState()).toBe(false);
    await h.node.run('ipvsadm', ['-C']);
    expect(await h.backend.lostState()).toBe(true);
    expect((await h.sync()).full).toBe(true);
    expect(h.node.ipvsadm.size).toBe(2);
    await h.node.run('iptables-nft', [
      '-t',
      'filter',
      '-D',
      'INPUT',
      '-m',
      'comment',
      '--comment',
      'kubernetes ipvs access filter',
      '-j',
      'KUBE-IPVS-FILTER',
    ]);
    await h.node.run('iptables-nft', ['-t', 'filter', '-F', 'KUBE-IPVS-FILTER']);
    await h.node.run('iptables-nft', ['-t', 'filter', '-X', 'KUBE-IPVS-FILTER']);
    expect(await h.backend.lostState()).toBe(true);
    await h.sync();
    expect(h.node.iptables.rules('nft', 'IPv4', 'filter', 'KUBE-IPVS-FILTER')).toHaveLength(3);
  });

  it('IPv6: its own sets, bracketed addresses, /128 binds; the IPv4 backend leaves them alone', async () => {
    const node = new FakeNode();
    const v6 = ipvsState('IPv6', {
      virtualServers: [vs('TCP', 'fd00:96::a', 80, [rs('fd00:244::5')])],
      sets: { clusterIP: ['fd00:96::a,tcp:80'] },
      boundAddresses: ['fd00:96::a'],
    });
    const h6 = harness(v6, { node, family: 'IPv6' });
    const h4 = harness(small(), { node });
    await h4.sync();
    await h6.sync();
    const from = node.calls.length;
    await h4.sync(true);
    // the IPv4 applier reads its own 17 sets, not the IPv6 applier's
    const saved = ops(node, from).ipset.filter((c) => c.args[0] === 'save');
    expect(saved.map((c) => c.args[1]).sort()).toEqual(
      IPSET_DEFINITIONS.map((d) => ipsetName(d.id, 'IPv4')).sort(),
    );
    expect(node.ipvsadm.save()).toContain('-a -t [fd00:96::a]:80 -r [fd00:244::5]:8080 -m -w 1');
    expect(node.ipset.entries('KUBE-6-CLUSTER-IP')).toEqual(['fd00:96::a,tcp:80']);
    expect(node.ip.addressesOf('kube-ipvs0')).toEqual(['10.96.0.10', '10.96.0.53', 'fd00:96::a']);
  });
});
