/**
 * Host probing and sysctl access over recorded tool outputs (no root needed).
 */
import { describe, expect, it } from 'vitest';
import { type CommandRunner, RecordingRunner } from '../../src/kernel/exec.js';
import { parseIpAddrJson, probeHostFacts } from '../../src/kernel/host-probe.js';
import { ensureSysctl, readSysctl, writeSysctl } from '../../src/kernel/sysctl.js';
import { silentLogger } from './cluster-sim.js';

// `ip -j addr show` from iproute2 6.1, trimmed.
const IP_ADDR = JSON.stringify([
  {
    ifindex: 1,
    ifname: 'lo',
    flags: ['LOOPBACK', 'UP'],
    addr_info: [
      { family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host', label: 'lo' },
      { family: 'inet6', local: '::1', prefixlen: 128, scope: 'host' },
    ],
  },
  {
    ifindex: 2,
    ifname: 'eth0',
    link_index: 3,
    addr_info: [
      { family: 'inet', local: '192.168.0.2', prefixlen: 24, broadcast: '192.168.0.255', scope: 'global' },
      { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
    ],
  },
  { ifindex: 3, ifname: 'dummy0', addr_info: [] },
  { ifindex: 4, ifname: 'can0', addr_info: [{ family: 'can' }] },
]);

describe('parseIpAddrJson', () => {
  it('lists each interface with address/prefix entries', () => {
    expect(parseIpAddrJson(IP_ADDR)).toEqual({
      lo: ['127.0.0.1/8', '::1/128'],
      eth0: ['192.168.0.2/24', 'fe80::1/64'],
      dummy0: [],
      can0: [],
    });
  });

  it('names what is wrong with bad output', () => {
    expect(() => parseIpAddrJson('Object "addr" is unknown')).toThrow(/ip -j addr show: output is not JSON/);
    expect(() => parseIpAddrJson('{}')).toThrow(/expected a JSON array/);
    expect(() => parseIpAddrJson('[{"addr_info":[]}]')).toThrow(/\[0\]\.ifname is missing/);
    expect(() => parseIpAddrJson('[{"ifname":"x","addr_info":[{"family":"inet"}]}]')).toThrow(
      /x\.addr_info\[0\] has no local address/,
    );
  });
});

describe('probeHostFacts', () => {
  it('combines addresses, the iptables version, existing nfacct counters and tcp_be_liberal', async () => {
    const runner = new RecordingRunner()
      .on('ip -j addr show', { stdout: IP_ADDR })
      .on('nfacct list', {
        stdout:
          '{ pkts = 00000000000000000000, bytes = 00000000000000000000 } = ct_state_invalid_dropped_pkts;\n{ pkts = 1, bytes = 2 } = something_else;\n',
      })
      .on('sysctl -n net.netfilter.nf_conntrack_tcp_be_liberal', { stdout: '1\n' });
    const facts = await probeHostFacts({
      runner,
      version: { major: 1, minor: 8, patch: 9, mode: 'nf_tables' },
      log: silentLogger(),
    });
    expect(facts).toEqual({
      kind: 'HostFacts',
      interfaces: {
        lo: ['127.0.0.1/8', '::1/128'],
        eth0: ['192.168.0.2/24', 'fe80::1/64'],
        dummy0: [],
        can0: [],
      },
      iptables: { randomFully: true, nfacct: ['ct_state_invalid_dropped_pkts'] },
      conntrack: { tcpBeLiberal: true },
    });
  });

  it("creates kube-proxy's missing nfacct counters and counts into those that then exist", async () => {
    // A tiny stateful nfacct: `list` shows what exists, `add` creates.
    const existing = new Set(['ct_state_invalid_dropped_pkts']);
    const added: string[] = [];
    const machine = new RecordingRunner().on('ip -j addr show', { stdout: '[]' });
    const runner: CommandRunner = {
      run: async (cmd, args, opts) => {
        if (cmd !== 'nfacct') return machine.run(cmd, args, opts);
        if (args[0] === 'add') {
          added.push(args[1]!);
          existing.add(args[1]!);
          return { stdout: '', stderr: '', exitCode: 0 };
        }
        const listing = [...existing].map(
          (n) => `{ pkts = 00000000000000000000, bytes = 00000000000000000000 } = ${n};\n`,
        );
        return { stdout: listing.join(''), stderr: '', exitCode: 0 };
      },
    };
    const facts = await probeHostFacts({
      runner,
      version: { major: 1, minor: 8, patch: 9, mode: 'nf_tables' },
      log: silentLogger(),
    });
    expect(added).toEqual(['localhost_nps_accepted_pkts']);
    expect([...facts.iptables.nfacct].sort()).toEqual([
      'ct_state_invalid_dropped_pkts',
      'localhost_nps_accepted_pkts',
    ]);
  });

  it('assumes no counters and a strict conntrack when it cannot tell', async () => {
    const runner = new RecordingRunner()
      .on('ip -j addr show', { stdout: '[]' })
      .on('nfacct list', { exitCode: 1, stderr: 'nfacct: netlink error' })
      .on('sysctl -n', {
        exitCode: 255,
        stderr: 'sysctl: cannot stat /proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal',
      });
    const facts = await probeHostFacts({
      runner,
      version: { major: 1, minor: 6, patch: 1 },
      log: silentLogger(),
    });
    expect(facts.iptables).toEqual({ randomFully: false, nfacct: [] });
    expect(facts.conntrack).toEqual({ tcpBeLiberal: false });
  });
});

describe('sysctl', () => {
  it('reads, writes only when needed, checks the write took, and refuses odd names and values', async () => {
    const runner = new RecordingRunner().modelSysctls(new Map([['net.ipv4.conf.all.route_localnet', '1']]));
    expect(await readSysctl(runner, 'net.ipv4.conf.all.route_localnet')).toBe('1');
    expect(await ensureSysctl(runner, 'net.ipv4.conf.all.route_localnet', '1')).toBe(false);
    expect(await ensureSysctl(runner, 'net.ipv4.ip_forward', '1')).toBe(true);
    expect(runner.commandLines()).toEqual([
      'sysctl -n net.ipv4.conf.all.route_localnet',
      'sysctl -n net.ipv4.conf.all.route_localnet',
      'sysctl -n net.ipv4.ip_forward',
      'sysctl -q -w net.ipv4.ip_forward=1',
      'sysctl -n net.ipv4.ip_forward',
    ]);
    await expect(readSysctl(runner, '../../etc/passwd')).rejects.toThrow(/not a sysctl name/);
    await expect(writeSysctl(runner, 'net.ipv4.ip_forward', '1 2')).rejects.toThrow(/not a plain value/);
  });

  it('a write the kernel ignored while sysctl exited 0 is an error naming the key', async () => {
    const runner = new RecordingRunner().modelSysctls(new Map([['net.ipv4.vs.conntrack', '0']]), {
      readOnly: new Set(['net.ipv4.vs.conntrack']),
    });
    await expect(ensureSysctl(runner, 'net.ipv4.vs.conntrack', '1')).rejects.toThrow(
      /net\.ipv4\.vs\.conntrack=1 did not take effect \(it reads "0"\)/,
    );
  });
});
