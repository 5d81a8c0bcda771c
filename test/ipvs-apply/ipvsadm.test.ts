/**
 * ipvsadm's grammar, its output parsers, the real wrapper and the in-memory ipvsadm.
 *
 * The output samples are ipvsadm 1.31's formats: this project's hosts have no ip_vs, so
 * they are written from the printf formats in the ipvsadm 1.31 binary installed here
 * (`strings /usr/sbin/ipvsadm`: `-A %s -s %s`, ` -p %u`, ` -b `, `-a %s -r %s %s -w %d`,
 * `%s %s`, ` persistent %u`, `  -> %-28s %-7s %-6d %-10u %-10u`) and the measured
 * normalisations in notes/ipvs-kernel-in-a-vm.md. The VM tests replay them against a real
 * kernel.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import { checkBatch, Ipvsadm, IpvsadmRestoreError, IpvsUnavailableError } from '../../src/kernel/ipvsadm.js';
import {
  IpvsadmParseError,
  parseIpvsadmArgs,
  parseIpvsadmLine,
  splitIpvsadmLine,
} from '../../src/kernel/ipvsadm-args.js';
import { parseIpvsadmList, parseIpvsadmSave, parseIpvsadmTimeouts } from '../../src/kernel/ipvsadm-output.js';

const SAVE_SAMPLE = `-A -t 10.96.0.1:443 -s rr
-a -t 10.96.0.1:443 -r 192.168.0.2:6443 -m -w 1
-A -t 10.96.0.10:53 -s rr
-a -t 10.96.0.10:53 -r 10.244.0.2:53 -m -w 1
-a -t 10.96.0.10:53 -r 10.244.0.3:53 -m -w 0
-A -t 10.96.0.20:80 -s mh -p 360 -b mh-fallback,mh-port
-A -t 192.168.0.10:80 -s wlc -p 60 -M 255.255.255.0 --pe sip
-a -t 192.168.0.10:80 -r 10.0.0.5:80 -g -w 3
-A -t [fd00::10]:80 -s rr
-a -t [fd00::10]:80 -r [fd00:10:244:1::2]:8080 -m -w 1
-A -u 10.96.0.10:53 -s rr -p 10800
-a -u 10.96.0.10:53 -r 10.244.0.2:53 -m -w 1
-A --sctp-service 10.96.0.11:80 -s rr
-A -f 100 -s rr
-a -f 100 -r 10.0.0.9:0 -g -w 1
`;

const LIST_SAMPLE = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.10:53 rr
  -> 10.244.0.2:53                Masq    1      3          7         
  -> 10.244.0.3:53                Masq    0      1          0         
TCP  10.96.0.20:80 mh (mh-fallback,mh-port) persistent 360
UDP  10.96.0.10:53 rr persistent 10800
  -> 10.244.0.2:53                Masq    1      0          12        
TCP  [fd00::10]:80 rr
  -> [fd00:10:244:1::2]:8080      Masq    1      0          0         
FWM  100 rr
  -> 10.0.0.9:0                   Route   1      0          0         
`;

describe('ipvsadm grammar', () => {
  it('reads bundled short options and attached or separate values', () => {
    expect(parseIpvsadmArgs(['-Sn']).command).toBe('save');
    const e = parseIpvsadmArgs(['-a', '-t', '10.96.0.1:80', '-r', '10.0.0.1:8080', '-m', '-w', '0']);
    expect(e).toMatchObject({ command: 'add-server', forwarding: 'masq', weight: 0 });
    expect(e.server).toEqual({ family: 'IPv4', address: '10.0.0.1', port: 8080 });
    // direct routing and tunnels take the service's port (measured)
    const dr = parseIpvsadmArgs(['-a', '-t', '10.96.0.1:80', '-r', '10.0.0.1:8080', '-g']);
    expect(dr.server?.port).toBe(80);
    expect(parseIpvsadmLine('-a -t 10.96.0.1:80 -r 10.0.0.1:8080 -i -w 1').server?.port).toBe(80);
    expect(parseIpvsadmArgs(['-A', '-t', '10.0.0.1:80', '-p']).persistent).toBe(360);
    expect(parseIpvsadmArgs(['-A', '-t', '10.0.0.1:80', '-p', '60']).persistent).toBe(60);
    // the default forwarding of -a is direct routing, and the default weight 1
    expect(parseIpvsadmArgs(['-a', '-t', '10.0.0.1:80', '-r', '10.0.0.2'])).toMatchObject({
      forwarding: 'gate',
      weight: 1,
    });
  });

  it('refuses what ipvsadm refuses, with its exit codes', () => {
    const code = (args: string[]) => {
      try {
        parseIpvsadmArgs(args);
        return 0;
      } catch (e) {
        if (e instanceof IpvsadmParseError) return e.exitCode;
        throw e;
      }
    };
    expect(code(['#', 'a', 'comment'])).toBe(255);
    expect(code(['-A', '-t', '10.0.0.1:80', '--bogus'])).toBe(255);
    expect(code(['-a', '-t', '10.0.0.1:80', '-r', '10.0.0.300:80', '-m'])).toBe(2);
    expect(code(['-A', '-t', '10.0.0.1:80', '-s', 'rr', '-b', 'mh-port'])).toBe(2);
    // ipvsadm 1.31 takes weights up to INT_MAX (measured)
    expect(code(['-a', '-t', '10.0.0.1:80', '-r', '10.0.0.2:80', '-w', '70000'])).toBe(0);
    expect(code(['-a', '-t', '10.0.0.1:80', '-r', '10.0.0.2:80', '-w', '2147483648'])).toBe(2);
    // the first option must be a command
    expect(code(['-t', '10.0.0.1:80', '-A'])).toBe(255);
    expect(code(['-A', '-t', '10.0.0.1:80', 'extra'])).toBe(2);
    expect(code(['-a', '-t', '10.0.0.1:80', '-r', '[fd00::1]:80', '-m'])).toBe(2);
    expect(code(['-a', '-t', '10.0.0.1:80', '-r', '[fd00::1]:80', '-i'])).toBe(0);
    expect(code(['-a', '-t', '[fd00::1]:80', '-r', '[fd00::2]', '-m'])).toBe(2);
    expect(code(['-A', '-t', '10.0.0.1:80', '-o'])).toBe(2);
    expect(code(['-A', '-6', '-f', '1'])).toBe(2);
    expect(code(['-A', '-t', '10.0.0.1:80', '-r', '10.0.0.2:80'])).toBe(2);
    expect(code(['-A', '-t', '010.0.0.1:80'])).toBe(2);
  });
});

describe('parseIpvsadmLine (fast path for the common shapes)', () => {
  const attempt = (f: () => unknown) => {
    try {
      return { ok: f() };
    } catch (e) {
      if (e instanceof IpvsadmParseError) return { error: e.message, exitCode: e.exitCode };
      throw e;
    }
  };
  const address = fc.oneof(
    fc.constantFrom('10.96.0.10', '010.96.0.10', '10.96.0.300', '0.0.0.0', '255.255.255.255', '1.2.3', 'x'),
    fc.constantFrom('[fd00::10]', '[FD00::10]', '[fd00::0:10]', '[::1]', 'fd00::10', '[fd00::zz]'),
  );
  const port = fc.constantFrom('80', '0', '65535', '65536', '080', '', 'http');
  const hostPort = fc.tuple(address, port).map(([a, p]) => (p === '' ? a : `${a}:${p}`));
  const token = fc.oneof(
    fc.constantFrom(
      '-A',
      '-E',
      '-D',
      '-a',
      '-e',
      '-d',
      '-C',
      '-t',
      '-u',
      '--sctp-service',
      '-f',
      '-s',
      '-p',
      '-b',
    ),
    fc.constantFrom('-r', '-m', '-g', '-i', '-w', '-x', 'rr', 'mh', 'mh-port', '1', '0', '70000', '360', '#'),
    hostPort,
  );
  const common = fc
    .record({
      cmd: fc.constantFrom('-A', '-E', '-D', '-a', '-e', '-d'),
      proto: fc.constantFrom('-t', '-u', '--sctp-service'),
      vip: hostPort,
      sched: fc.option(fc.constantFrom('rr', 'wrr', 'mh', '-m')),
      persist: fc.option(fc.constantFrom('60', '0', '360', '2678401')),
      rs: fc.option(hostPort),
      fwd: fc.option(fc.constantFrom('-m', '-g', '-i')),
      weight: fc.option(fc.constantFrom('1', '0', '65535', '65536', '-1')),
    })
    .map((r) =>
      [
        r.cmd,
        r.proto,
        r.vip,
        ...(r.sched ? ['-s', r.sched] : []),
        ...(r.persist ? ['-p', r.persist] : []),
        ...(r.rs ? ['-r', r.rs] : []),
        ...(r.fwd ? [r.fwd] : []),
        ...(r.weight ? ['-w', r.weight] : []),
      ].join(' '),
    );
  it('answers exactly what the general grammar answers', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          common,
          fc.array(token, { maxLength: 9 }).map((t) => t.join(' ')),
        ),
        (line) => {
          expect(attempt(() => parseIpvsadmLine(line))).toEqual(
            attempt(() => parseIpvsadmArgs(splitIpvsadmLine(line))),
          );
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('ipvsadm output', () => {
  it('reads -Sn: services, real servers, normalised options, extras and fwmark services', () => {
    const table = parseIpvsadmSave(SAVE_SAMPLE);
    expect(table.fwmarkServices).toEqual([{ fwmark: 100, family: 'IPv4' }]);
    expect(table.virtualServers.map((v) => `${v.protocol} ${v.address}:${v.port}`)).toEqual([
      'SCTP 10.96.0.11:80',
      'TCP 10.96.0.1:443',
      'TCP 10.96.0.10:53',
      'TCP 10.96.0.20:80',
      'TCP 192.168.0.10:80',
      'TCP fd00::10:80',
      'UDP 10.96.0.10:53',
    ]);
    const dns = table.virtualServers.find((v) => v.address === '10.96.0.10' && v.protocol === 'TCP')!;
    expect(dns.realServers).toEqual([
      { address: '10.244.0.2', port: 53, weight: 1, forwarding: 'masq', extras: [] },
      { address: '10.244.0.3', port: 53, weight: 0, forwarding: 'masq', extras: [] },
    ]);
    const mh = table.virtualServers.find((v) => v.scheduler === 'mh')!;
    expect(mh).toMatchObject({ persistenceSeconds: 360, flags: ['mh-fallback', 'mh-port'], extras: [] });
    const foreign = table.virtualServers.find((v) => v.address === '192.168.0.10')!;
    expect(foreign.extras).toEqual(['-M 255.255.255.0', '--pe sip']);
    expect(foreign.realServers[0]).toMatchObject({ forwarding: 'gate', weight: 3 });
    const v6 = table.virtualServers.find((v) => v.address === 'fd00::10')!;
    expect(v6.realServers[0]).toMatchObject({ address: 'fd00:10:244:1::2', port: 8080 });
  });

  it('reads -Ln: connection counts per real server', () => {
    const table = parseIpvsadmList(LIST_SAMPLE);
    const dns = table.virtualServers.find((v) => v.protocol === 'TCP' && v.port === 53)!;
    expect(
      dns.realServers.map((r) => [r.address, r.weight, r.activeConnections, r.inactiveConnections]),
    ).toEqual([
      ['10.244.0.2', 1, 3, 7],
      ['10.244.0.3', 0, 1, 0],
    ]);
    const mh = table.virtualServers.find((v) => v.scheduler === 'mh')!;
    expect(mh).toMatchObject({ flags: ['mh-fallback', 'mh-port'], persistenceSeconds: 360 });
    expect(table.fwmarkServices).toEqual([{ fwmark: 100, family: 'IPv4' }]);
  });

  it('names the line it cannot read', () => {
    expect(() =>
      parseIpvsadmSave('-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.2:80 -r 10.0.0.3:80 -m -w 1\n'),
    ).toThrow(/line 2: real server before its service/);
    expect(() => parseIpvsadmList('TCP  10.0.0.1:80 rr\n  -> 10.0.0.2:80 Masq one 0 0\n')).toThrow(/line 2/);
  });

  it('reads the timeouts', () => {
    expect(parseIpvsadmTimeouts('Timeout (tcp tcpfin udp): 900 120 300\n')).toEqual({
      tcp: 900,
      tcpFin: 120,
      udp: 300,
    });
  });
});

describe('in-memory ipvsadm', () => {
  it('round-trips -R input through -Sn, normalising as ipvsadm does', async () => {
    const node = new FakeNode();
    const ipvsadm = new Ipvsadm(node);
    await ipvsadm.restore(
      ['-A -t 10.96.0.20:80 -s mh -p -b mh-port,mh-fallback', '-a -t 10.96.0.20:80 -r 10.244.0.9:80 -m'].join(
        '\n',
      ),
    );
    expect(node.ipvsadm.save()).toBe(
      '-A -t 10.96.0.20:80 -s mh -p 360 -b mh-fallback,mh-port\n-a -t 10.96.0.20:80 -r 10.244.0.9:80 -m -w 1\n',
    );
    const table = await ipvsadm.readTable();
    expect(table.virtualServers[0]).toMatchObject({
      persistenceSeconds: 360,
      flags: ['mh-fallback', 'mh-port'],
    });
  });

  it("goes on after a kernel error, printing a message without a line number; the exit code is the last line's", () => {
    const node = new FakeNode();
    const lines = [
      '-A -t 10.0.0.1:80 -s rr',
      '-A -t 10.0.0.1:80 -s rr',
      '-e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1',
      '-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1',
      '-A -t 10.0.0.5:80 -s nosuchsched',
    ];
    expect(node.ipvsadm.run(['-R'], lines.join('\n'))).toEqual({
      stdout: '',
      stderr: 'Service already exists\nNo such destination\nScheduler or persistence engine not found\n',
      exitCode: 255,
    });
    expect(node.ipvsadm.save()).toBe('-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1\n');
    // an earlier line failed, the last one did not: exit 0
    expect(node.ipvsadm.run(['-R'], '-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.6:80 -s rr\n')).toEqual({
      stdout: '',
      stderr: 'Service already exists\n',
      exitCode: 0,
    });
    // an option popt refuses fails its line only
    expect(node.ipvsadm.run(['-R'], '-A -t 10.0.0.7:80 -s rr --bogus\n-A -t 10.0.0.8:80 -s rr -w\n')).toEqual(
      {
        stdout: '',
        stderr: '--bogus: unknown option\n-w: missing argument\n',
        exitCode: 255,
      },
    );
  });

  it('stops at a parse error, keeping the lines before it', () => {
    const node = new FakeNode();
    const comment = node.ipvsadm.run(
      ['-R'],
      '-A -t 10.0.0.1:80 -s rr\n# a comment\n-A -t 10.0.0.2:80 -s rr\n',
    );
    expect(comment).toEqual({
      stdout: '',
      stderr: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
      exitCode: 255,
    });
    expect(node.ipvsadm.run(['-R'], '-A -t 10.0.0.4:80 -s rr extra\n-A -t 10.0.0.5:80 -s rr\n')).toEqual({
      stdout: '',
      stderr: 'unexpected argument extra\n',
      exitCode: 2,
    });
    const badServer = node.ipvsadm.run(
      ['-R'],
      '-a -t 10.0.0.1:80 -r 10.0.0.300:80 -m\n-A -t 10.0.0.3:80 -s rr\n',
    );
    expect(badServer.exitCode).toBe(2);
    expect(badServer.stderr).toMatch(/illegal real server address/);
    expect(node.ipvsadm.save()).toBe('-A -t 10.0.0.1:80 -s rr\n');
  });

  it('fails single commands the kernel refuses with 255, and lists one service or none', () => {
    const node = new FakeNode();
    expect(node.ipvsadm.run(['-D', '-t', '10.0.0.1:80']).exitCode).toBe(255);
    expect(node.ipvsadm.run(['-L', '-n', '-t', '10.0.0.1:80'])).toEqual({
      stdout: '',
      stderr: 'No such service\n',
      exitCode: 1,
    });
  });

  it('sets timeouts, 0 keeping the current value', async () => {
    const node = new FakeNode();
    const ipvsadm = new Ipvsadm(node);
    await ipvsadm.setTimeouts({ tcp: 0, tcpFin: 30, udp: 0 });
    expect(await ipvsadm.timeouts()).toEqual({ tcp: 900, tcpFin: 30, udp: 300 });
  });

  it('without ip_vs every call fails as the real tool does', async () => {
    const ipvsadm = new Ipvsadm(new FakeNode({ ipvsLoaded: false }));
    await expect(ipvsadm.timeouts()).rejects.toBeInstanceOf(IpvsUnavailableError);
    await expect(ipvsadm.readTable()).rejects.toBeInstanceOf(IpvsUnavailableError);
  });
});

describe('Ipvsadm (the wrapper)', () => {
  it('treats any stderr of -R as a failure, whatever the exit code (that of the last line only)', async () => {
    const node = new FakeNode();
    const ipvsadm = new Ipvsadm(node);
    await ipvsadm.restore('-A -t 10.0.0.1:80 -s rr\n');
    const early = await ipvsadm
      .restore('-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.2:80 -s rr\n')
      .catch((e: unknown) => e);
    expect(early).toBeInstanceOf(IpvsadmRestoreError);
    expect((early as IpvsadmRestoreError).messages).toEqual(['Service already exists']);
    expect((early as IpvsadmRestoreError).exitCode).toBe(0);
    const last = await ipvsadm.restore('-A -t 10.0.0.1:80 -s rr\n').catch((e: unknown) => e);
    expect((last as IpvsadmRestoreError).exitCode).toBe(255);
    // exit 255 here is the kernel refusing the last line, not a batch that stopped
    expect((last as IpvsadmRestoreError).stoppedAt).toBeUndefined();
    expect((last as Error).message).toMatch(
      /1 line\(s\) refused .*exit 255, the last line's\): Service already exists/,
    );
  });

  it('never sends a batch with a line ipvsadm would refuse, or a command other than add/edit/delete', () => {
    expect(() => checkBatch('-A -t 10.0.0.1:80 -s rr\n-C\n')).toThrow(/line 2 .*clear is never sent/);
    expect(() => checkBatch('-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r bogus -m\n')).toThrow(
      /line 2 .*illegal real server address/,
    );
    expect(() => checkBatch('-A -t [fd00::1]:80 -s rr\n\n-D -u 10.0.0.1:53\n')).not.toThrow();
  });

  it('reads one service with its connection counts', async () => {
    const node = new FakeNode();
    const ipvsadm = new Ipvsadm(node);
    await ipvsadm.restore('-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 0\n');
    node.ipvsadm.setConnections('TCP 10.0.0.1:80', '10.0.0.2:8080', 2, 5);
    const vs = await ipvsadm.readService({ protocol: 'TCP', address: '10.0.0.1', port: 80 });
    expect(vs?.realServers[0]).toMatchObject({ weight: 0, activeConnections: 2, inactiveConnections: 5 });
    expect(await ipvsadm.readService({ protocol: 'UDP', address: '10.0.0.1', port: 80 })).toBeNull();
    expect(node.callsTo('ipvsadm').at(-1)?.args).toEqual(['-L', '-n', '-u', '10.0.0.1:80']);
  });
});
