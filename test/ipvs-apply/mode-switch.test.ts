/**
 * Mode switches and cleanup: iptables → IPVS removes iptables mode's chains once the IPVS
 * rules are in place; IPVS → iptables removes IPVS mode's chains, sets, virtual servers and
 * kube-ipvs0 once the iptables rules are in place; `switchboard cleanup` removes both modes'
 * state. The chains both modes use stay, nothing foreign is touched, and sets go only once
 * no rule uses them. Run on the in-memory kernel, then with the real ipset and iptables in
 * a scratch network namespace (ipvsadm and kube-ipvs0 stay in memory: no ip_vs, no dummy).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type AfterFullSync, IptablesBackend } from '../../src/backends/iptables/backend.js';
import { cleanupIptables, IPVS_MODE_LEFTOVERS, planCleanup } from '../../src/backends/iptables/cleanup.js';
import { parseSavedTables } from '../../src/backends/iptables/kernel-diff.js';
import { ownedIpsetNames } from '../../src/backends/ipvs/ipsets.js';
import { ipvsLeftoversIn, removeIpvsLeftovers, removeIpvsState } from '../../src/backends/ipvs/leftovers.js';
import type { CommandRunner } from '../../src/kernel/exec.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import { Iptables } from '../../src/kernel/iptables.js';
import { richCluster, testOptions } from '../iptables-apply/cluster-sim.js';
import { createScratchNetns, type ScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { FakeClock } from '../sync/helpers.js';
import { ipvsState, recordingLogger, rs, silentLogger, vs } from './builders.js';
import { harness } from './harness.js';

const EXCLUDE = ['192.168.100.0/24'];

function ipvsDesired() {
  return ipvsState('IPv4', {
    virtualServers: [
      vs('TCP', '172.30.0.10', 80, [rs('10.244.1.2')]),
      vs('UDP', '172.30.0.53', 53, [rs('10.244.1.6', 53)]),
    ],
    sets: {
      clusterIP: ['172.30.0.10,tcp:80', '172.30.0.53,udp:53'],
      loopBack: ['10.244.1.2,tcp:8080,10.244.1.2'],
      ipvsIPs: ['172.30.0.10', '172.30.0.53'],
    },
    boundAddresses: ['172.30.0.10', '172.30.0.53'],
  });
}

async function seedForeign(node: FakeNode): Promise<void> {
  await node.run('ipvsadm', ['-R'], {
    input:
      '-A -t 192.168.100.1:80 -s wlc\n-a -t 192.168.100.1:80 -r 10.0.0.5:80 -g -w 3\n-A -t 192.168.200.1:80 -s rr\n-A -f 100 -s rr\n',
  });
}

async function save(runner: CommandRunner, binary = 'iptables-nft-save'): Promise<string> {
  return (await runner.run(binary, [])).stdout;
}

function chainsOf(saveText: string, table: string): string[] {
  let current = '';
  const out: string[] = [];
  for (const line of saveText.split('\n')) {
    if (line.startsWith('*')) current = line.slice(1);
    else if (current === table && line.startsWith(':')) out.push(line.slice(1).split(' ')[0]!);
  }
  return out.filter((c) => c.startsWith('KUBE-')).sort();
}

function rulesOf(saveText: string, table: string, chain: string): string[] {
  let current = '';
  const out: string[] = [];
  for (const line of saveText.split('\n')) {
    if (line.startsWith('*')) current = line.slice(1);
    else if (current === table && line.startsWith(`-A ${chain} `))
      out.push(line.slice(`-A ${chain} `.length));
  }
  return out;
}

function iptablesBackend(runner: CommandRunner, afterFirstFullSync?: AfterFullSync) {
  return new IptablesBackend({
    runner,
    backend: 'nft',
    family: 'IPv4',
    options: testOptions(),
    log: silentLogger(),
    ...(afterFirstFullSync ? { afterFirstFullSync } : {}),
  });
}

async function runIptablesMode(runner: CommandRunner, afterFirstFullSync?: AfterFullSync): Promise<void> {
  const sim = richCluster();
  await iptablesBackend(runner, afterFirstFullSync).sync(sim.snapshot(), sim.request(true));
}

/** The checks after starting in IPVS mode over iptables mode's rules. */
function expectIpvsOnly(saved: string): void {
  expect(chainsOf(saved, 'nat')).toEqual([
    'KUBE-LOAD-BALANCER',
    'KUBE-MARK-MASQ',
    'KUBE-NODE-PORT',
    'KUBE-POSTROUTING',
    'KUBE-SERVICES',
  ]);
  expect(chainsOf(saved, 'filter')).toEqual([
    'KUBE-FIREWALL',
    'KUBE-FORWARD',
    'KUBE-IPVS-FILTER',
    'KUBE-IPVS-OUT-FILTER',
    'KUBE-NODE-PORT',
    'KUBE-PROXY-FIREWALL',
    'KUBE-SOURCE-RANGES-FIREWALL',
  ]);
  expect(chainsOf(saved, 'mangle')).toEqual([]);
  // iptables mode's `--ctstate NEW` jumps into the shared KUBE-PROXY-FIREWALL are gone; kubelet's KUBE-FIREWALL jump stays
  expect(rulesOf(saved, 'filter', 'INPUT')).toEqual([
    '-m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
    '-m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
    '-m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT',
    '-j KUBE-FIREWALL',
  ]);
  expect(rulesOf(saved, 'filter', 'FORWARD')).toEqual([
    '-m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
    '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
  ]);
  expect(rulesOf(saved, 'filter', 'OUTPUT')).toEqual([
    '-m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER',
    '-j KUBE-FIREWALL',
  ]);
  expect(rulesOf(saved, 'nat', 'PREROUTING')).toEqual([
    '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  ]);
}

/** The checks after starting in iptables mode over IPVS mode's state. */
function expectIptablesOnly(saved: string): void {
  expect(chainsOf(saved, 'nat').filter((c) => !/^KUBE-(SVC|SEP|EXT|SVL|FW)-/.test(c))).toEqual([
    'KUBE-MARK-MASQ',
    'KUBE-NODEPORTS',
    'KUBE-POSTROUTING',
    'KUBE-PROXY-CANARY',
    'KUBE-SERVICES',
  ]);
  for (const c of [
    'KUBE-IPVS-FILTER',
    'KUBE-IPVS-OUT-FILTER',
    'KUBE-SOURCE-RANGES-FIREWALL',
    'KUBE-NODE-PORT',
  ]) {
    expect(chainsOf(saved, 'filter')).not.toContain(c);
  }
  expect(rulesOf(saved, 'filter', 'INPUT').join('\n')).not.toContain('kube-proxy firewall rules');
  expect(rulesOf(saved, 'filter', 'INPUT').join('\n')).toContain(
    '--ctstate NEW -m comment --comment "kubernetes load balancer firewall"',
  );
}

describe('mode switch on the in-memory kernel', () => {
  it("iptables → IPVS: iptables mode's chains and jumps go once the IPVS rules are in place; shared chains stay", async () => {
    const node = new FakeNode();
    await runIptablesMode(node);
    expect(chainsOf(await save(node), 'nat').some((c) => c.startsWith('KUBE-SVC-'))).toBe(true);
    const h = harness(ipvsDesired(), { node });
    await h.sync();
    expectIpvsOnly(await save(node));
    expect(rulesOf(await save(node), 'nat', 'KUBE-SERVICES')).toEqual([
      '-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
    ]);
    // a later full sync has nothing more to remove, and finds the helper chains in place
    const from = node.calls.length;
    await h.sync(true);
    expect(node.calls.slice(from).filter((c) => c.cmd === 'iptables-nft-restore')).toEqual([]);
  });

  it('IPVS → iptables: IPVS chains, jumps, sets, stale virtual servers and kube-ipvs0 go once the iptables rules are in place', async () => {
    const node = new FakeNode();
    await seedForeign(node);
    await harness(ipvsDesired(), { node, excludeCIDRs: EXCLUDE }).sync();
    await node.run('ipvsadm', ['-A', '-t', '[fd00::10]:80', '-s', 'rr']);
    const log = silentLogger();
    await runIptablesMode(node, async (iptables, kernelBefore) => {
      // what the sync read before writing: IPVS mode's chains, so the cleanup reads and plans
      expect(ipvsLeftoversIn(kernelBefore)).toBe(true);
      await removeIpvsLeftovers({
        runner: node,
        iptables,
        kernelBefore,
        family: 'IPv4',
        excludeCIDRs: EXCLUDE,
        log,
      });
    });
    expectIptablesOnly(await save(node));
    expect(node.ipset.names()).toEqual([]);
    expect(node.ipvsadm.save()).toBe(
      '-A -t 192.168.100.1:80 -s wlc\n-a -t 192.168.100.1:80 -r 10.0.0.5:80 -g -w 3\n-A -t [fd00::10]:80 -s rr\n-A -f 100 -s rr\n',
    );
    expect(node.ip.hasLink('kube-ipvs0')).toBe(false);
  });

  it('IPVS → iptables with connections open: their virtual servers stay at weight 0, with their kube-ipvs0 address, until the connections are gone', async () => {
    const node = new FakeNode();
    await harness(ipvsDesired(), { node, excludeCIDRs: EXCLUDE }).sync();
    node.ipvsadm.setConnections('TCP 172.30.0.10:80', '10.244.1.2:8080', 1, 0);
    const clock = new FakeClock();
    const { log, records } = recordingLogger();
    await runIptablesMode(node, async () => {
      const removed = await removeIpvsLeftovers({
        runner: node,
        iptables: new Iptables(node, 'nft'),
        family: 'IPv4',
        excludeCIDRs: EXCLUDE,
        log,
        drain: { periodMs: 60_000, clock },
      });
      expect(removed.busy).toEqual(['TCP 172.30.0.10:80']);
      expect(removed.virtualServers).toBe(1);
    });
    expectIptablesOnly(await save(node));
    expect(node.ipset.names()).toEqual([]);
    // kept, quiesced, and still reachable at its address; the idle one and its address are gone
    expect(node.ipvsadm.save()).toBe(
      '-A -t 172.30.0.10:80 -s rr\n-a -t 172.30.0.10:80 -r 10.244.1.2:8080 -m -w 0\n',
    );
    expect(node.ip.addressesOf('kube-ipvs0')).toEqual(['172.30.0.10']);
    expect(records.some((r) => /still carry connections/.test(String(r['msg'])))).toBe(true);

    // a check while the connection lasts changes nothing; the first after it closed removes the rest
    await clock.advance(60_000);
    expect(node.ipvsadm.size).toBe(1);
    node.ipvsadm.setConnections('TCP 172.30.0.10:80', '10.244.1.2:8080', 0, 0);
    await clock.advance(60_000);
    expect(node.ipvsadm.size).toBe(0);
    expect(node.ip.hasLink('kube-ipvs0')).toBe(false);
    expect(clock.pendingTimers()).toEqual([]);
  });

  it('iptables mode on a node that never ran IPVS mode leaves a foreign IPVS table alone', async () => {
    const node = new FakeNode();
    await seedForeign(node);
    const before = node.ipvsadm.save();
    await runIptablesMode(node, async (iptables, kernelBefore) => {
      const from = node.calls.length;
      const removed = await removeIpvsLeftovers({
        runner: node,
        iptables,
        kernelBefore,
        family: 'IPv4',
        excludeCIDRs: [],
        log: silentLogger(),
      });
      expect(removed.virtualServers).toBe(0);
      // the sync's own read showed no IPVS mode: no second read of every table
      expect(node.calls.slice(from).map((c) => c.cmd)).not.toContain('iptables-nft-save');
    });
    expect(node.ipvsadm.save()).toBe(before);
    expect(before).toContain('-A -t 192.168.200.1:80 -s rr');
  });

  it('keeps kube-ipvs0 while the other family still has addresses on it', async () => {
    const node = new FakeNode();
    await harness(ipvsDesired(), { node }).sync();
    await harness(ipvsState('IPv6', { boundAddresses: ['fd00:96::a'] }), { node, family: 'IPv6' }).sync();
    await cleanupIptables(node, silentLogger(), { families: ['IPv4'] });
    const removed = await removeIpvsState({
      runner: node,
      families: ['IPv4'],
      excludeCIDRs: [],
      log: silentLogger(),
    });
    expect(removed).toMatchObject({
      sets: 17,
      virtualServers: 2,
      addresses: 2,
      linkRemoved: false,
      problems: [],
    });
    expect(node.ip.addressesOf('kube-ipvs0')).toEqual(['fd00:96::a']);
    expect(node.ipset.names().every((n) => n.startsWith('KUBE-6-'))).toBe(true);
  });

  it('does not load ip_vs to look for virtual servers on a node without it', async () => {
    const node = new FakeNode({ ipvsLoaded: false });
    const removed = await removeIpvsState({
      runner: node,
      families: ['IPv4', 'IPv6'],
      excludeCIDRs: [],
      log: silentLogger(),
    });
    expect(removed.problems).toEqual([]);
    expect(node.callsTo('ipvsadm')).toEqual([]);
  });

  it("switchboard cleanup: both modes' chains, both families' sets, virtual servers outside excludeCIDRs, kube-ipvs0", async () => {
    const node = new FakeNode();
    await seedForeign(node);
    await runIptablesMode(node);
    await harness(ipvsDesired(), { node, excludeCIDRs: EXCLUDE }).sync();
    await harness(ipvsState('IPv6', { boundAddresses: ['fd00:96::a'] }), { node, family: 'IPv6' }).sync();
    await node.run('ipset', ['create', 'FOREIGN', 'hash:ip']);
    const log = silentLogger();
    await cleanupIptables(node, log);
    const removed = await removeIpvsState({
      runner: node,
      families: ['IPv4', 'IPv6'],
      excludeCIDRs: EXCLUDE,
      log,
    });
    expect(removed.problems).toEqual([]);
    const saved = await save(node);
    for (const table of ['nat', 'filter', 'mangle']) {
      expect(chainsOf(saved, table).filter((c) => c !== 'KUBE-FIREWALL')).toEqual([]);
    }
    expect(node.ipset.names()).toEqual(['FOREIGN']);
    expect(node.ipvsadm.save()).toBe(
      '-A -t 192.168.100.1:80 -s wlc\n-a -t 192.168.100.1:80 -r 10.0.0.5:80 -g -w 3\n-A -f 100 -s rr\n',
    );
    expect(node.ip.hasLink('kube-ipvs0')).toBe(false);
  });

  it('a set another agent still uses is kept and reported; the others go', async () => {
    const node = new FakeNode();
    await harness(ipvsDesired(), { node }).sync();
    await node.run('iptables-nft-restore', ['--noflush'], {
      input:
        '*filter\n:OTHER-AGENT - [0:0]\n-A OTHER-AGENT -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\nCOMMIT\n',
    });
    await cleanupIptables(node, silentLogger());
    const removed = await removeIpvsState({
      runner: node,
      families: ['IPv4'],
      excludeCIDRs: [],
      log: silentLogger(),
    });
    expect(removed.sets).toBe(16);
    expect(removed.problems).toEqual(['ipset KUBE-CLUSTER-IP is still used by an iptables rule: kept']);
  });

  it("IptablesBackend's afterFirstFullSync hook: once after a full sync, again after the next full sync if it threw", async () => {
    const node = new FakeNode();
    const calls: number[] = [];
    const sim = richCluster();
    const be = iptablesBackend(node, async () => {
      calls.push(calls.length);
      if (calls.length === 1) throw new Error('ipset busy');
    });
    await be.sync(sim.snapshot(), sim.request(true));
    sim.synced();
    await be.sync(sim.snapshot(), sim.request(false));
    expect(calls).toEqual([0]);
    await be.sync(sim.snapshot(), sim.request(true));
    await be.sync(sim.snapshot(), sim.request(true));
    expect(calls).toEqual([0, 1]);
  });

  it("finds IPVS mode's iptables state in a sync's read: its chains, or only its jumps", () => {
    const table = (...lines: string[]) =>
      parseSavedTables(['*filter', ':INPUT ACCEPT [0:0]', ...lines, 'COMMIT', ''].join('\n'));
    const proxyFirewall = ':KUBE-PROXY-FIREWALL - [0:0]';
    expect(ipvsLeftoversIn(table(proxyFirewall))).toBe(false);
    expect(
      ipvsLeftoversIn(
        table(
          proxyFirewall,
          '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
        ),
      ),
    ).toBe(false);
    expect(ipvsLeftoversIn(table(':KUBE-IPVS-FILTER - [0:0]'))).toBe(true);
    // IPVS mode's jump into the shared chain, without iptables mode's --ctstate NEW
    expect(
      ipvsLeftoversIn(
        table(
          proxyFirewall,
          '-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
        ),
      ),
    ).toBe(true);
    // service chains are read as digests and are iptables mode's own
    const nat = parseSavedTables(
      '*nat\n:KUBE-SVC-ABCDEFGHIJKLMNOP - [0:0]\n-A KUBE-SVC-ABCDEFGHIJKLMNOP -j RETURN\nCOMMIT\n',
    );
    expect(ipvsLeftoversIn(nat)).toBe(false);
  });

  it('the switch policies never plan to remove a chain the new mode uses', () => {
    const saved = [
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':KUBE-PROXY-FIREWALL - [0:0]',
      ':KUBE-FORWARD - [0:0]',
      ':KUBE-IPVS-FILTER - [0:0]',
      '-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
      'COMMIT',
      '',
    ].join('\n');
    expect(planCleanup(saved, IPVS_MODE_LEFTOVERS).input).toBe(
      [
        '*filter',
        ':KUBE-IPVS-FILTER - [0:0]',
        '-D INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
        '-D INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
        '-X KUBE-IPVS-FILTER',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });
});

describeKernel('mode switch with real ipset and iptables (scratch namespace)', () => {
  let scratch: ScratchNetns | undefined;
  afterEach(async () => {
    await scratch?.teardown();
    scratch = undefined;
  });

  /** ipvsadm, kube-ipvs0 and sysctls in memory; ipset and iptables real, in the namespace. */
  async function hybrid(): Promise<FakeNode> {
    scratch = await createScratchNetns();
    return new FakeNode({ real: ['ipset', 'iptables'], fallback: scratch.runner });
  }

  it('iptables → IPVS → iptables, then cleanup', async () => {
    const node = await hybrid();
    await seedForeign(node);
    await runIptablesMode(node);
    const h = harness(ipvsDesired(), { node, excludeCIDRs: EXCLUDE });
    await h.sync();
    expectIpvsOnly(await save(node));
    // a restart finds the helper chains in place in real iptables-save output: nothing rewritten
    const from = node.calls.length;
    await harness(ipvsDesired(), { node, excludeCIDRs: EXCLUDE }).sync(true);
    expect(
      node.calls
        .slice(from)
        .filter((c) => c.cmd.endsWith('-restore') || (c.cmd === 'ipvsadm' && c.args[0] === '-R')),
    ).toEqual([]);
    const realSets = (await node.run('ipset', ['list', '-n'])).stdout.trim().split('\n').sort();
    expect(realSets).toEqual(
      ownedIpsetNames()
        .filter((n) => !n.startsWith('KUBE-6-'))
        .sort(),
    );
    // a set used by the IPVS rules cannot be destroyed before the rules go (the real kernel says so)
    const inUse = await node.run('ipset', ['destroy', 'KUBE-CLUSTER-IP'], { reject: false });
    expect(inUse.stderr).toMatch(/in use by a kernel component/);

    await runIptablesMode(node, async () => {
      await removeIpvsLeftovers({
        runner: node,
        iptables: new Iptables(node, 'nft'),
        family: 'IPv4',
        excludeCIDRs: EXCLUDE,
        log: silentLogger(),
      });
    });
    expectIptablesOnly(await save(node));
    expect((await node.run('ipset', ['list', '-n'])).stdout.trim()).toBe('');
    expect(node.ipvsadm.save()).toBe(
      '-A -t 192.168.100.1:80 -s wlc\n-a -t 192.168.100.1:80 -r 10.0.0.5:80 -g -w 3\n-A -f 100 -s rr\n',
    );

    await cleanupIptables(node, silentLogger());
    const saved = await save(node);
    for (const table of ['nat', 'filter', 'mangle'])
      expect(chainsOf(saved, table).filter((c) => c !== 'KUBE-FIREWALL')).toEqual([]);
  });
});
