/**
 * Starting IPVS mode: the kernel check (and its clear error without ip_vs), the sysctls
 * kube-proxy sets, the IPVS timeouts, and createIpvsBackends.
 */

import { describe, expect, it } from 'vitest';
import {
  checkIpvsSupport,
  configureIpvsSysctls,
  configureIpvsTimeouts,
  createIpvsBackends,
  GRACEFUL_CHECK_PERIOD_ENV,
  gracefulCheckPeriodFromEnv,
  IpvsUnsupportedError,
  parseKernelVersion,
} from '../../src/backends/ipvs/setup.js';
import { neutralHostFacts } from '../../src/config/host.js';
import { defaultKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import { ipvsState, recordingLogger, silentLogger } from './builders.js';
import { request, snapshotOf } from './harness.js';

describe('checkIpvsSupport', () => {
  it('passes on a node with ip_vs, probing the scheduler with a dummy virtual server it removes', async () => {
    const node = new FakeNode();
    await checkIpvsSupport(node, 'rr', silentLogger());
    expect(node.callsTo('ipvsadm').map((c) => c.args.join(' '))).toEqual([
      '-L --timeout',
      '-A -t 198.51.100.0:20000 -s rr',
      '-D -t 198.51.100.0:20000',
    ]);
    expect(node.ipvsadm.size).toBe(0);
  });

  it('says what is missing: ip_vs, the scheduler module, ipset', async () => {
    await expect(checkIpvsSupport(new FakeNode({ ipvsLoaded: false }), 'rr', silentLogger())).rejects.toThrow(
      /the kernel has no IPVS .*load the ip_vs modules on the node .* or run in iptables mode/,
    );
    const noMh = new FakeNode();
    noMh.ipvsadm.schedulers.delete('mh');
    await expect(checkIpvsSupport(noMh, 'mh', silentLogger())).rejects.toThrow(
      /scheduler "mh" is not available .*ip_vs_mh/,
    );
    const noIpset = new FakeNode({ real: ['ipset'] });
    await expect(checkIpvsSupport(noIpset, 'rr', silentLogger())).rejects.toBeInstanceOf(
      IpvsUnsupportedError,
    );
    await expect(checkIpvsSupport(noIpset, 'rr', silentLogger())).rejects.toThrow(/needs ipset/);
  });
});

describe('configureIpvsSysctls', () => {
  const values = (node: FakeNode) => Object.fromEntries(node.sysctl.values);

  it("sets kube-proxy's values, logging each write; conn_reuse_mode left alone from kernel 5.9", async () => {
    const node = new FakeNode();
    const { log, records } = recordingLogger();
    await configureIpvsSysctls(node, false, log);
    expect(values(node)).toMatchObject({
      'net.ipv4.vs.conntrack': '1',
      'net.ipv4.vs.conn_reuse_mode': '1',
      'net.ipv4.vs.expire_nodest_conn': '1',
      'net.ipv4.vs.expire_quiescent_template': '1',
      'net.ipv4.ip_forward': '1',
      'net.ipv4.conf.all.arp_ignore': '0',
      'net.ipv4.conf.all.route_localnet': '0',
    });
    expect(records.filter((r) => r['msg'] === 'set sysctl').map((r) => r['sysctl'])).toEqual([
      'net.ipv4.vs.conntrack',
      'net.ipv4.vs.expire_nodest_conn',
      'net.ipv4.vs.expire_quiescent_template',
      'net.ipv4.ip_forward',
    ]);
    // a second run writes nothing
    const from = node.calls.length;
    await configureIpvsSysctls(node, false, log);
    expect(node.calls.slice(from).filter((c) => c.args.includes('-w'))).toEqual([]);
  });

  it('sets conn_reuse_mode=0 only on kernels from 4.1 to before 5.9; strictARP sets arp_ignore/arp_announce', async () => {
    const node = new FakeNode();
    node.sysctl.values.set('kernel.osrelease', '5.4.0-150-generic');
    await configureIpvsSysctls(node, true, silentLogger());
    expect(node.sysctl.values.get('net.ipv4.vs.conn_reuse_mode')).toBe('0');
    expect(node.sysctl.values.get('net.ipv4.conf.all.arp_ignore')).toBe('1');
    expect(node.sysctl.values.get('net.ipv4.conf.all.arp_announce')).toBe('2');
    const old = new FakeNode();
    old.sysctl.values.set('kernel.osrelease', '3.10.0-1160.el7.x86_64');
    await configureIpvsSysctls(old, false, silentLogger());
    expect(old.sysctl.values.get('net.ipv4.vs.conn_reuse_mode')).toBe('1');
    expect(parseKernelVersion('6.18.44-fc-v1147')).toEqual([6, 18]);
    expect(parseKernelVersion('weird')).toBeNull();
  });

  it('fails naming the sysctl it cannot set', async () => {
    await expect(
      configureIpvsSysctls(new FakeNode({ ipvsLoaded: false }), false, silentLogger()),
    ).rejects.toThrow(/cannot set sysctl net.ipv4.vs.conntrack=1/);
  });
});

describe('configureIpvsTimeouts', () => {
  it('sets ipvs.tcpTimeout/tcpFinTimeout/udpTimeout in seconds, 0 keeping the current value; nothing when all are 0', async () => {
    const node = new FakeNode();
    const { log, records } = recordingLogger();
    await configureIpvsTimeouts(node, { tcpTimeoutMs: 0, tcpFinTimeoutMs: 0, udpTimeoutMs: 0 }, log);
    expect(node.callsTo('ipvsadm')).toEqual([]);
    await configureIpvsTimeouts(
      node,
      { tcpTimeoutMs: 3_600_500, tcpFinTimeoutMs: 0, udpTimeoutMs: 60_000 },
      log,
    );
    expect(node.ipvsadm.timeouts).toEqual({ tcp: 3600, tcpFin: 120, udp: 60 });
    expect(node.callsTo('ipvsadm').map((c) => c.args.join(' '))).toContain('--set 3600 0 60');
    expect(records.find((r) => r['msg'] === 'set IPVS timeouts (ipvsadm --set)')).toMatchObject({
      from: { tcp: 900, tcpFin: 120, udp: 300 },
      to: { tcp: 3600, tcpFin: 120, udp: 60 },
    });
  });

  it('only logs a failure, as kube-proxy', async () => {
    const { log, records } = recordingLogger();
    await configureIpvsTimeouts(
      new FakeNode({ ipvsLoaded: false }),
      { tcpTimeoutMs: 1000, tcpFinTimeoutMs: 0, udpTimeoutMs: 0 },
      log,
    );
    expect(records.some((r) => r['msg'] === 'could not set IPVS timeouts')).toBe(true);
  });
});

describe('createIpvsBackends', () => {
  it('checks the kernel, sets the node up and makes one backend per family on the detected iptables', async () => {
    const node = new FakeNode();
    const config = defaultKubeProxyConfiguration();
    config.ipvs.strictARP = true;
    config.ipvs.excludeCIDRs = ['192.168.100.0/24'];
    const backends = await createIpvsBackends({
      runner: node,
      families: ['IPv4', 'IPv6'],
      config,
      desired: (family) => () => ipvsState(family),
      hostFacts: neutralHostFacts(),
      log: silentLogger(),
    });
    expect(backends.map((b) => b.description)).toEqual(['ipvs (nft) IPv4', 'ipvs (nft) IPv6']);
    expect(node.sysctl.values.get('net.ipv4.conf.all.arp_announce')).toBe('2');
    await backends[0]!.sync(snapshotOf('IPv4'), request(true));
    await backends[1]!.sync(snapshotOf('IPv6'), request(true));
    expect(node.ipset.names()).toHaveLength(34);
    for (const b of backends) b.close();
  });

  it('stops with IpvsUnsupportedError without ip_vs (no fallback to iptables mode)', async () => {
    await expect(
      createIpvsBackends({
        runner: new FakeNode({ ipvsLoaded: false }),
        families: ['IPv4'],
        config: defaultKubeProxyConfiguration(),
        desired: (family) => () => ipvsState(family),
        log: silentLogger(),
      }),
    ).rejects.toBeInstanceOf(IpvsUnsupportedError);
  });
});

describe('gracefulCheckPeriodFromEnv', () => {
  it(`reads ${GRACEFUL_CHECK_PERIOD_ENV} in milliseconds; unset keeps the default; a bad value is an input error`, () => {
    expect(gracefulCheckPeriodFromEnv({})).toBeUndefined();
    expect(gracefulCheckPeriodFromEnv({ [GRACEFUL_CHECK_PERIOD_ENV]: '' })).toBeUndefined();
    expect(gracefulCheckPeriodFromEnv({ [GRACEFUL_CHECK_PERIOD_ENV]: '2000' })).toBe(2000);
    for (const bad of ['2s', '-5', '50', '3600001', '1e3']) {
      expect(() => gracefulCheckPeriodFromEnv({ [GRACEFUL_CHECK_PERIOD_ENV]: bad })).toThrow(
        new RegExp(`${GRACEFUL_CHECK_PERIOD_ENV}=.*milliseconds`),
      );
    }
  });
});
