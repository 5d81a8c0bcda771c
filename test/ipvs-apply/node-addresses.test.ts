/**
 * IPVS mode follows the node's interface addresses as kube-proxy's IPVS proxier does (it
 * reads them on every sync): an address added to or removed from an interface gets or
 * loses its NodePort virtual servers (and SCTP node-port set entries) without a restart;
 * a host facts file keeps them fixed. On the in-memory node, from createIpvsBackends on.
 */
import { describe, expect, it } from 'vitest';
import type { IpvsBackend } from '../../src/backends/ipvs/backend.js';
import { desiredIpvsState } from '../../src/backends/ipvs/desired.js';
import { createIpvsBackends } from '../../src/backends/ipvs/setup.js';
import { type HostFacts, neutralHostFacts } from '../../src/config/host.js';
import { defaultKubeProxyConfiguration, type KubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import type { CommandRunner } from '../../src/kernel/exec.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import { Ipvsadm } from '../../src/kernel/ipvsadm.js';
import type { Logger } from '../../src/log.js';
import { ipvsOptions } from '../../src/sync/wiring.js';
import { portState, ipvsOptions as renderOptions, snapshot } from '../ipvs/builders.js';
import { FakeClock } from '../sync/helpers.js';
import { endpoint } from '../unit/builders.js';
import { recordingLogger, silentLogger } from './builders.js';
import { request } from './harness.js';

const SYNC_PERIOD_MS = 30_000;

/** One TCP and one SCTP NodePort service, each with one endpoint. */
const SNAPSHOT = snapshot([
  portState({ name: 'web', clusterIP: '10.96.0.10', nodePort: 30080 }, [endpoint('10.244.2.5')]),
  portState({ name: 'sig', clusterIP: '10.96.0.11', protocol: 'SCTP', nodePort: 30090 }, [
    endpoint('10.244.2.6'),
  ]),
]);

async function ip(node: FakeNode, ...args: string[]): Promise<void> {
  await node.run('ip', args);
}

/** The node ports' virtual server addresses, per port, from the in-memory kernel. */
async function nodePortServers(node: FakeNode): Promise<string[]> {
  const table = await new Ipvsadm(node).readTable();
  return table.virtualServers
    .filter((v) => v.port >= 30000)
    .map((v) => `${v.protocol} ${v.address}:${v.port}`)
    .sort();
}

async function start(
  runner: CommandRunner,
  options: { hostFacts?: HostFacts; config?: KubeProxyConfiguration; log?: Logger; clock?: FakeClock } = {},
): Promise<IpvsBackend> {
  const config = options.config ?? defaultKubeProxyConfiguration();
  config.syncPeriodMs = SYNC_PERIOD_MS;
  const [backend] = await createIpvsBackends({
    runner,
    families: ['IPv4'],
    config,
    desired: (family, facts) => desiredIpvsState(ipvsOptions(config, facts), family),
    log: options.log ?? silentLogger(),
    clock: options.clock ?? new FakeClock(),
    ...(options.hostFacts ? { hostFacts: options.hostFacts } : {}),
  });
  return backend!;
}

/** A node whose eth0 (a bridge: the in-memory ip's stand-in for a NIC) has 192.168.0.2/24. */
async function nodeWithEth0(): Promise<FakeNode> {
  const node = new FakeNode();
  await ip(node, 'link', 'add', 'eth0', 'type', 'bridge');
  await ip(node, 'addr', 'add', '192.168.0.2/24', 'dev', 'eth0');
  return node;
}

describe('IPVS mode follows the node addresses', () => {
  it('an address added, then removed, between full syncs gets, then loses, its NodePort virtual servers and SCTP set entries', async () => {
    const node = await nodeWithEth0();
    const backend = await start(node);
    await backend.sync(SNAPSHOT, request(true));
    expect(await nodePortServers(node)).toEqual(['SCTP 192.168.0.2:30090', 'TCP 192.168.0.2:30080']);
    expect(node.ipset.entries('KUBE-NODE-PORT-SCTP-HASH')).toEqual(['192.168.0.2,sctp:30090']);

    // a VIP keepalived adds (a /32: a primary address of its own, not a secondary)
    await ip(node, 'addr', 'add', '192.168.0.50/32', 'dev', 'eth0');
    await backend.sync(SNAPSHOT, request(true));
    expect(await nodePortServers(node)).toEqual([
      'SCTP 192.168.0.2:30090',
      'SCTP 192.168.0.50:30090',
      'TCP 192.168.0.2:30080',
      'TCP 192.168.0.50:30080',
    ]);
    expect(node.ipset.entries('KUBE-NODE-PORT-SCTP-HASH')).toEqual([
      '192.168.0.2,sctp:30090',
      '192.168.0.50,sctp:30090',
    ]);
    // a node address is never bound to kube-ipvs0
    expect(node.ip.addressesOf('kube-ipvs0')).toEqual(['10.96.0.10', '10.96.0.11']);

    // the first address goes (DHCP renewal with a new lease)
    await ip(node, 'addr', 'del', '192.168.0.2/24', 'dev', 'eth0');
    await backend.sync(SNAPSHOT, request(true));
    expect(await nodePortServers(node)).toEqual(['SCTP 192.168.0.50:30090', 'TCP 192.168.0.50:30080']);
    expect(node.ipset.entries('KUBE-NODE-PORT-SCTP-HASH')).toEqual(['192.168.0.50,sctp:30090']);
    backend.close();
  });

  it('the periodic sync reads them; a change-driven sync only once the last read is syncPeriod old', async () => {
    const node = await nodeWithEth0();
    const clock = new FakeClock();
    const backend = await start(node, { clock });
    await backend.sync(SNAPSHOT, request(true));
    const reads = () => node.callsTo('ip').filter((c) => c.args.join(' ') === '-j addr show').length;
    const afterFull = reads();

    await ip(node, 'addr', 'add', '192.168.0.50/32', 'dev', 'eth0');
    await clock.advance(1_000);
    await backend.sync(SNAPSHOT, request(false, ['ns1/web']));
    expect(reads()).toBe(afterFull);
    expect(await nodePortServers(node)).not.toContain('TCP 192.168.0.50:30080');
    expect(backend.lastSync?.lines.ipvsadm).toBe(0);

    // the syncPeriod sync without changes (partial, as the loop asks for it)
    await backend.sync(SNAPSHOT, request(false, []));
    expect(reads()).toBe(afterFull + 1);
    expect(await nodePortServers(node)).toContain('TCP 192.168.0.50:30080');
    expect(backend.lastSync?.full).toBe(false);

    // under steady churn there is no sync without changes: age alone brings the next read
    await ip(node, 'addr', 'del', '192.168.0.50/32', 'dev', 'eth0');
    await clock.advance(SYNC_PERIOD_MS - 1);
    await backend.sync(SNAPSHOT, request(false, ['ns1/web']));
    expect(await nodePortServers(node)).toContain('TCP 192.168.0.50:30080');
    await clock.advance(1);
    await backend.sync(SNAPSHOT, request(false, ['ns1/web']));
    expect(reads()).toBe(afterFull + 2);
    expect(await nodePortServers(node)).toEqual(['SCTP 192.168.0.2:30090', 'TCP 192.168.0.2:30080']);
    backend.close();
  });

  it('a read that shows no address change writes nothing; a pod veth coming and going changes nothing', async () => {
    const node = await nodeWithEth0();
    const backend = await start(node);
    await backend.sync(SNAPSHOT, request(true));
    await backend.sync(SNAPSHOT, request(false, []));
    await ip(node, 'link', 'add', 'veth1234', 'type', 'bridge');
    const from = node.calls.length;
    await backend.sync(SNAPSHOT, request(false, []));
    // the read, then the periodic rewrite of the helper chains; no ipvsadm, ipset or ip batch
    expect(node.calls.slice(from).map((c) => c.cmd)).toEqual(['ip', 'iptables-nft-restore']);
    backend.close();
  });

  it('a failed read keeps the last addresses (and the sync goes on)', async () => {
    const node = await nodeWithEth0();
    let failReads = false;
    const runner: CommandRunner = {
      run: (cmd, args, opts) =>
        failReads && cmd === 'ip' && args[0] === '-j'
          ? Promise.reject(new Error('ip: killed by a timeout'))
          : node.run(cmd, args, opts),
    };
    const { log, records } = recordingLogger();
    const backend = await start(runner, { log });
    await backend.sync(SNAPSHOT, request(true));
    failReads = true;
    await backend.sync(SNAPSHOT, request(true));
    expect(await nodePortServers(node)).toEqual(['SCTP 192.168.0.2:30090', 'TCP 192.168.0.2:30080']);
    expect(records.some((r) => String(r['msg']).startsWith("could not read the node's interface"))).toBe(
      true,
    );
    backend.close();
  });

  it('a host facts file (--host) keeps them fixed: no read, the file addresses stay', async () => {
    const node = await nodeWithEth0();
    const backend = await start(node, {
      hostFacts: { ...neutralHostFacts(), interfaces: { eth0: ['192.168.0.2/24'] } },
    });
    await backend.sync(SNAPSHOT, request(true));
    await ip(node, 'addr', 'add', '192.168.0.50/32', 'dev', 'eth0');
    await backend.sync(SNAPSHOT, request(true));
    await backend.sync(SNAPSHOT, request(false, []));
    expect(node.callsTo('ip').filter((c) => c.args[0] === '-j')).toEqual([]);
    expect(await nodePortServers(node)).toEqual(['SCTP 192.168.0.2:30090', 'TCP 192.168.0.2:30080']);
    backend.close();
  });
});

describe('desiredIpvsState with re-read addresses', () => {
  const eth0 = { lo: ['127.0.0.1/8'], eth0: ['192.168.0.2/24'] };

  it('keeps its render (and cache) while the addresses that matter stay; follows them when they change', () => {
    const { log, records } = recordingLogger();
    const desired = desiredIpvsState(renderOptions({ interfaces: eth0 }), 'IPv4', log);
    const first = desired(SNAPSHOT);
    expect(desired(SNAPSHOT, { ...eth0 })).toBe(first);
    // a veth, an IPv6 address, an address on kube-ipvs0: not IPv4 node addresses
    expect(
      desired(SNAPSHOT, {
        ...eth0,
        veth1: [],
        eth1: ['fd00::2/64'],
        'kube-ipvs0': ['10.96.0.10/32'],
      }),
    ).toBe(first);
    expect(records).toEqual([]);

    const moved = desired(SNAPSHOT, { lo: ['127.0.0.1/8'], eth0: ['192.168.0.7/24'] });
    expect(moved.virtualServers.map((v) => `${v.address}:${v.port}`)).toContain('192.168.0.7:30080');
    expect(moved.virtualServers.map((v) => `${v.address}:${v.port}`)).not.toContain('192.168.0.2:30080');
    expect(records).toMatchObject([
      { nodePortAddresses: ['192.168.0.7'], before: ['192.168.0.2'], nodeAddresses: ['192.168.0.7'] },
    ]);
  });
});
