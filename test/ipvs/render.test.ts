/**
 * The IPVS renderer against spec kube-proxy-ipvs.md §3-§7, one behaviour per test, with the
 * expected sets, virtual servers and rules written out by hand.
 */
import { describe, expect, it } from 'vitest';
import { IPSET_DEFINITIONS, ipsetName } from '../../src/backends/ipvs/ipsets.js';
import { IpvsRenderer, renderIpvs } from '../../src/backends/ipvs/render.js';
import { neutralHostFacts } from '../../src/config/host.js';
import { defaultKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { renderIpvsOnce } from '../../src/sync/render-once.js';
import { endpoint, node } from '../unit/builders.js';
import { add, ep, nodeObject, serviceObject, sliceObject } from '../unit/objects.js';
import { context, entries, portState, render, rules, servers, snapshot } from './builders.js';

const COMMENT = Object.fromEntries(
  IPSET_DEFINITIONS.map((d) => [d.id, `-m comment --comment "${d.comment}"`]),
);
const M = '0x00004000';
const TAIL_POSTROUTING = [
  `-A KUBE-POSTROUTING -m mark ! --mark ${M}/${M} -j RETURN`,
  `-A KUBE-POSTROUTING -j MARK --xor-mark ${M}`,
  '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
];
const IPVS_FILTER = [
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT',
];
const local = (ip: string, port = 8080) => endpoint(ip, { local: true, port });
const remote = (ip: string, port = 8080) => endpoint(ip, { port });

describe('with no services', () => {
  const state = render([]);

  it('creates all 17 sets, empty, in name order', () => {
    expect(state.ipsets.map((s) => s.name)).toEqual(
      IPSET_DEFINITIONS.map((d) => ipsetName(d.id, 'IPv4')).sort(),
    );
    expect(state.ipsets.every((s) => s.entries.length === 0)).toBe(true);
    expect(state.virtualServers).toEqual([]);
    expect(state.boundAddresses).toEqual([]);
  });

  it('writes only the unconditional rules', () => {
    expect(rules(state, 'nat', 'KUBE-SERVICES')).toEqual([
      '-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN',
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
    ]);
    expect(rules(state, 'nat', 'KUBE-POSTROUTING')).toEqual(TAIL_POSTROUTING);
    expect(rules(state, 'nat', 'KUBE-LOAD-BALANCER')).toEqual(['-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ']);
    expect(rules(state, 'nat', 'KUBE-NODE-PORT')).toEqual([]);
    expect(rules(state, 'nat', 'KUBE-MARK-MASQ')).toEqual([`-A KUBE-MARK-MASQ -j MARK --or-mark ${M}`]);
    expect(rules(state, 'filter', 'KUBE-FORWARD')).toEqual([
      `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${M}/${M} -j ACCEPT`,
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]);
    expect(rules(state, 'filter', 'KUBE-NODE-PORT')).toEqual([
      `-A KUBE-NODE-PORT ${COMMENT.healthCheckNodePort} -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT`,
    ]);
    expect(rules(state, 'filter', 'KUBE-PROXY-FIREWALL')).toEqual([]);
    expect(rules(state, 'filter', 'KUBE-SOURCE-RANGES-FIREWALL')).toEqual([
      '-A KUBE-SOURCE-RANGES-FIREWALL -j DROP',
    ]);
    expect(rules(state, 'filter', 'KUBE-IPVS-FILTER')).toEqual(IPVS_FILTER);
    expect(rules(state, 'filter', 'KUBE-IPVS-OUT-FILTER')).toEqual([]);
    expect([...state.iptables.nat.chains.keys()].sort()).toEqual([
      'KUBE-LOAD-BALANCER',
      'KUBE-MARK-MASQ',
      'KUBE-NODE-PORT',
      'KUBE-POSTROUTING',
      'KUBE-SERVICES',
    ]);
  });
});

describe('a ClusterIP service', () => {
  const state = render([portState({}, [local('10.180.0.1'), remote('10.180.0.2')])]);

  it('gets a virtual server on the ClusterIP with every endpoint, masqueraded, weight 1', () => {
    expect(state.virtualServers).toEqual([
      {
        protocol: 'TCP',
        address: '172.30.0.41',
        port: 80,
        scheduler: 'rr',
        persistenceSeconds: 0,
        flags: [],
        realServers: [
          { address: '10.180.0.1', port: 8080, weight: 1, forwarding: 'masq' },
          { address: '10.180.0.2', port: 8080, weight: 1, forwarding: 'masq' },
        ],
      },
    ]);
  });

  it('binds the ClusterIP and lists it in KUBE-CLUSTER-IP and KUBE-IPVS-IPS', () => {
    expect(state.boundAddresses).toEqual(['172.30.0.41']);
    expect(entries(state, 'clusterIP')).toEqual(['172.30.0.41,tcp:80']);
    expect(entries(state, 'ipvsIPs')).toEqual(['172.30.0.41']);
  });

  it('lists local endpoints for hairpin masquerade (KUBE-LOOP-BACK) and jumps to it from KUBE-POSTROUTING first', () => {
    expect(entries(state, 'loopBack')).toEqual(['10.180.0.1,tcp:8080,10.180.0.1']);
    expect(rules(state, 'nat', 'KUBE-POSTROUTING')).toEqual([
      `-A KUBE-POSTROUTING ${COMMENT.loopBack} -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE`,
      ...TAIL_POSTROUTING,
    ]);
  });

  it('masquerades ClusterIP traffic from outside the cluster CIDR, then accepts it', () => {
    expect(rules(state, 'nat', 'KUBE-SERVICES')).toEqual([
      '-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN',
      `-A KUBE-SERVICES ${COMMENT.clusterIP} -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
      '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
    ]);
  });

  it('lists a local endpoint in KUBE-LOOP-BACK whatever its conditions', () => {
    const s = render([
      portState({}, [endpoint('10.180.0.9', { local: true, ready: false, serving: false })]),
    ]);
    expect(entries(s, 'loopBack')).toEqual(['10.180.0.9,tcp:80,10.180.0.9']);
    expect(s.virtualServers[0]!.realServers).toEqual([]);
  });
});

describe('the mark and MASQUERADE', () => {
  it('follow masqueradeBit and the host iptables --random-fully support', () => {
    const state = render([], { masqueradeBit: 5, randomFully: true });
    expect(rules(state, 'nat', 'KUBE-POSTROUTING')).toEqual([
      '-A KUBE-POSTROUTING -m mark ! --mark 0x00000020/0x00000020 -j RETURN',
      '-A KUBE-POSTROUTING -j MARK --xor-mark 0x00000020',
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]);
    expect(rules(state, 'nat', 'KUBE-MARK-MASQ')).toEqual(['-A KUBE-MARK-MASQ -j MARK --or-mark 0x00000020']);
    expect(rules(state, 'filter', 'KUBE-FORWARD')[0]).toContain(
      '-m mark --mark 0x00000020/0x00000020 -j ACCEPT',
    );
  });
});

describe('the ClusterIP masquerade rule variant (spec §7 <MASQ>)', () => {
  const ports = [portState({}, [remote('10.180.0.2')])];
  const masqRule = (overrides: Parameters<typeof render>[1]) =>
    rules(render(ports, overrides), 'nat', 'KUBE-SERVICES')[1];

  it('masqueradeAll: every packet to a ClusterIP', () => {
    expect(masqRule({ masqueradeAll: true })).toBe(
      `-A KUBE-SERVICES ${COMMENT.clusterIP} -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`,
    );
  });

  it('no detector: only node-originated traffic with a VIP source (src,dst)', () => {
    expect(masqRule({ clusterCIDR: '' })).toBe(
      `-A KUBE-SERVICES ${COMMENT.clusterIP} -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ`,
    );
  });

  it('another detector: its IfNotLocal match', () => {
    expect(masqRule({ detectLocalMode: 'BridgeInterface', bridgeInterface: 'cbr0' })).toBe(
      `-A KUBE-SERVICES ${COMMENT.clusterIP} -m set --match-set KUBE-CLUSTER-IP dst,dst ! -i cbr0 -j KUBE-MARK-MASQ`,
    );
  });
});

describe('externalIPs', () => {
  it('eTP Cluster: KUBE-EXTERNAL-IP, marked for masquerade, accepted from off-node and for local destinations', () => {
    const state = render([portState({ externalIPs: ['192.0.2.10'] }, [remote('10.180.0.2')])]);
    expect(entries(state, 'externalIP')).toEqual(['192.0.2.10,tcp:80']);
    expect(entries(state, 'externalIPLocal')).toEqual([]);
    const base = `-A KUBE-SERVICES ${COMMENT.externalIP} -m set --match-set KUBE-EXTERNAL-IP dst,dst`;
    expect(rules(state, 'nat', 'KUBE-SERVICES').slice(2, 5)).toEqual([
      `${base} -j KUBE-MARK-MASQ`,
      `${base} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`,
      `${base} -m addrtype --dst-type LOCAL -j ACCEPT`,
    ]);
    expect(Object.keys(servers(state))).toEqual(['TCP 172.30.0.41:80', 'TCP 192.0.2.10:80']);
    expect(state.boundAddresses).toEqual(['172.30.0.41', '192.0.2.10']);
  });

  it('eTP Local: KUBE-EXTERNAL-IP-LOCAL, accepted but never marked', () => {
    const state = render([
      portState({ externalIPs: ['192.0.2.10'], externalPolicyLocal: true }, [local('10.180.0.1')]),
    ]);
    expect(entries(state, 'externalIP')).toEqual([]);
    expect(entries(state, 'externalIPLocal')).toEqual(['192.0.2.10,tcp:80']);
    const base = `-A KUBE-SERVICES ${COMMENT.externalIPLocal} -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst`;
    expect(rules(state, 'nat', 'KUBE-SERVICES')).toEqual([
      '-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN',
      `-A KUBE-SERVICES ${COMMENT.clusterIP} -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
      `${base} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`,
      `${base} -m addrtype --dst-type LOCAL -j ACCEPT`,
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
      '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
    ]);
  });

  it('an externalIP that is already a node address gets a virtual server but is not bound; loopback ones are bound', () => {
    const state = render([portState({ externalIPs: ['192.168.0.2', '127.0.0.5'] }, [remote('10.180.0.2')])]);
    expect(Object.keys(servers(state))).toEqual([
      'TCP 127.0.0.5:80',
      'TCP 172.30.0.41:80',
      'TCP 192.168.0.2:80',
    ]);
    expect(state.boundAddresses).toEqual(['127.0.0.5', '172.30.0.41']);
    expect(entries(state, 'ipvsIPs')).toEqual(['127.0.0.5', '172.30.0.41']);
  });
});

describe('load balancers', () => {
  const lb = (over: Parameters<typeof portState>[0] = {}, eps = [remote('10.180.0.2')]) =>
    portState({ loadBalancerVIPs: ['198.51.100.7'], port: 443, ...over }, eps);

  it('KUBE-LOAD-BALANCER entry, a jump to the chain, which marks; accepted at the end of KUBE-SERVICES', () => {
    const state = render([lb()]);
    expect(entries(state, 'loadBalancer')).toEqual(['198.51.100.7,tcp:443']);
    expect(entries(state, 'loadBalancerLocal')).toEqual([]);
    expect(rules(state, 'nat', 'KUBE-SERVICES')).toEqual([
      '-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN',
      `-A KUBE-SERVICES ${COMMENT.loadBalancer} -m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER`,
      `-A KUBE-SERVICES ${COMMENT.clusterIP} -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
      '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
      '-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT',
    ]);
    expect(rules(state, 'nat', 'KUBE-LOAD-BALANCER')).toEqual(['-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ']);
    expect(state.boundAddresses).toEqual(['172.30.0.41', '198.51.100.7']);
  });

  it('eTP Local: KUBE-LOAD-BALANCER-LOCAL returns before the mark', () => {
    const state = render([lb({ externalPolicyLocal: true }, [local('10.180.0.1')])]);
    expect(entries(state, 'loadBalancerLocal')).toEqual(['198.51.100.7,tcp:443']);
    expect(rules(state, 'nat', 'KUBE-LOAD-BALANCER')).toEqual([
      `-A KUBE-LOAD-BALANCER ${COMMENT.loadBalancerLocal} -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN`,
      '-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ',
    ]);
  });

  it('source ranges containing the primary node IP: FW, SOURCE-CIDR and SOURCE-IP entries, no OUT-FILTER drop', () => {
    const state = render([
      lb({ loadBalancerSourceRanges: ['203.0.113.0/24', '192.168.0.0/16', '198.51.100.9/32'] }),
    ]);
    expect(entries(state, 'loadBalancerFW')).toEqual(['198.51.100.7,tcp:443']);
    expect(entries(state, 'loadBalancerSourceCIDR')).toEqual([
      '198.51.100.7,tcp:443,192.168.0.0/16',
      '198.51.100.7,tcp:443,198.51.100.9',
      '198.51.100.7,tcp:443,203.0.113.0/24',
    ]);
    expect(entries(state, 'loadBalancerSourceIP')).toEqual(['198.51.100.7,tcp:443,198.51.100.7']);
    expect(rules(state, 'filter', 'KUBE-PROXY-FIREWALL')).toEqual([
      `-A KUBE-PROXY-FIREWALL ${COMMENT.loadBalancerFW} -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL`,
    ]);
    expect(rules(state, 'filter', 'KUBE-SOURCE-RANGES-FIREWALL')).toEqual([
      `-A KUBE-SOURCE-RANGES-FIREWALL ${COMMENT.loadBalancerSourceCIDR} -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN`,
      `-A KUBE-SOURCE-RANGES-FIREWALL ${COMMENT.loadBalancerSourceIP} -m set --match-set KUBE-LOAD-BALANCER-SOURCE-IP dst,dst,src -j RETURN`,
      '-A KUBE-SOURCE-RANGES-FIREWALL -j DROP',
    ]);
    expect(rules(state, 'filter', 'KUBE-IPVS-OUT-FILTER')).toEqual([]);
  });

  it('source ranges without the primary node IP: an OUT-FILTER drop for node-originated traffic', () => {
    const state = render([lb({ loadBalancerSourceRanges: ['203.0.113.0/24'] })]);
    expect(entries(state, 'loadBalancerSourceIP')).toEqual([]);
    expect(rules(state, 'filter', 'KUBE-SOURCE-RANGES-FIREWALL')).toHaveLength(2);
    expect(rules(state, 'filter', 'KUBE-IPVS-OUT-FILTER')).toEqual([
      '-A KUBE-IPVS-OUT-FILTER -s 198.51.100.7 -m ipvs --vaddr 198.51.100.7 --vproto tcp --vport 443 -j DROP',
    ]);
  });

  it('no primary node IP: every LB with source ranges is dropped for the node', () => {
    const n = node({ ips: [] });
    const state = render(
      [
        portState(
          { loadBalancerVIPs: ['198.51.100.7'], loadBalancerSourceRanges: ['0.0.0.0/1', '128.0.0.0/1'] },
          [],
          n,
        ),
      ],
      {},
      'IPv4',
      n,
    );
    expect(context({}, 'IPv4', n).primaryNodeIP).toBeNull();
    expect(entries(state, 'loadBalancerSourceIP')).toEqual([]);
    expect(rules(state, 'filter', 'KUBE-IPVS-OUT-FILTER')).toHaveLength(1);
  });

  it('an ingress with ipMode Proxy gets nothing: the load balancer proxies it itself', () => {
    const objects = [
      nodeObject('node-1'),
      serviceObject('lb', {
        spec: { type: 'LoadBalancer', ports: [{ name: 'p80', port: 80, protocol: 'TCP', nodePort: 30080 }] },
        status: {
          loadBalancer: { ingress: [{ ip: '198.51.100.7' }, { ip: '198.51.100.8', ipMode: 'Proxy' }] },
        },
      }),
      sliceObject('lb-1', [ep('10.180.0.2')], { service: 'lb' }),
    ];
    const { render: state, problems } = renderIpvsOnce({
      events: objects.map(add),
      config: { ...defaultKubeProxyConfiguration('ipvs'), hostnameOverride: 'node-1' },
      host: neutralHostFacts(),
      family: 'IPv4',
    });
    expect(problems).toEqual([]);
    expect(entries(state, 'loadBalancer')).toEqual(['198.51.100.7,tcp:80']);
    expect(Object.keys(servers(state))).toEqual([
      'TCP 172.30.0.41:80',
      'TCP 192.168.0.2:30080',
      'TCP 198.51.100.7:80',
    ]);
    expect(state.boundAddresses).toEqual(['172.30.0.41', '198.51.100.7']);
  });

  it('an LB IP that is a node address is not bound', () => {
    const state = render([lb({ loadBalancerVIPs: ['192.168.0.2'] })]);
    expect(state.boundAddresses).toEqual(['172.30.0.41']);
    expect(Object.keys(servers(state))).toContain('TCP 192.168.0.2:443');
  });
});

describe('NodePorts (spec §3, §6)', () => {
  const interfaces = {
    lo: ['127.0.0.1/8', '::1/128'],
    eth0: ['192.168.0.2/24', 'fe80::1/64', 'fd00::2/64'],
    docker0: ['172.17.0.1/16', '169.254.3.3/16'],
    'kube-ipvs0': ['10.96.0.1/32'],
  };
  const np = (over: Parameters<typeof portState>[0] = {}, eps = [remote('10.180.0.2')]) =>
    portState({ nodePort: 30080, ...over }, eps);

  it('one virtual server per node address: every interface but kube-ipvs0, no loopback, IPv4 link-local kept', () => {
    const state = render([np()], { interfaces });
    expect(Object.keys(servers(state))).toEqual([
      'TCP 169.254.3.3:30080',
      'TCP 172.17.0.1:30080',
      'TCP 172.30.0.41:80',
      'TCP 192.168.0.2:30080',
    ]);
    // NodePort addresses are never bound
    expect(state.boundAddresses).toEqual(['172.30.0.41']);
    expect(entries(state, 'nodePortTCP')).toEqual(['30080']);
    expect(rules(state, 'nat', 'KUBE-NODE-PORT')).toEqual([
      `-A KUBE-NODE-PORT -p tcp ${COMMENT.nodePortTCP} -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ`,
    ]);
  });

  it('IPv6: no link-local, no loopback', () => {
    const state = render(
      [np({ family: 'IPv6', clusterIP: 'fd00:30::41' })],
      { interfaces },
      'IPv6',
      node({ ips: ['fd00::2'] }),
    );
    expect(Object.keys(servers(state))).toEqual(['TCP [fd00::2]:30080', 'TCP [fd00:30::41]:80']);
  });

  it('eTP Local: the LOCAL set returns before the masquerade', () => {
    const state = render([np({ externalPolicyLocal: true, protocol: 'UDP' }, [local('10.180.0.1')])], {
      interfaces,
    });
    expect(entries(state, 'nodePortUDP')).toEqual(['30080']);
    expect(entries(state, 'nodePortLocalUDP')).toEqual(['30080']);
    expect(rules(state, 'nat', 'KUBE-NODE-PORT')).toEqual([
      `-A KUBE-NODE-PORT -p udp ${COMMENT.nodePortLocalUDP} -m set --match-set KUBE-NODE-PORT-LOCAL-UDP dst -j RETURN`,
      `-A KUBE-NODE-PORT -p udp ${COMMENT.nodePortUDP} -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ`,
    ]);
  });

  it('TCP eTP Local: KUBE-NODE-PORT-LOCAL-TCP returns before KUBE-NODE-PORT-TCP marks', () => {
    const state = render([np({ externalPolicyLocal: true }, [local('10.180.0.1')])], { interfaces });
    expect(entries(state, 'nodePortLocalTCP')).toEqual(['30080']);
    expect(rules(state, 'nat', 'KUBE-NODE-PORT')).toEqual([
      `-A KUBE-NODE-PORT -p tcp ${COMMENT.nodePortLocalTCP} -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN`,
      `-A KUBE-NODE-PORT -p tcp ${COMMENT.nodePortTCP} -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ`,
    ]);
  });

  it('SCTP: a hash:ip,port entry per node address, matched dst,dst', () => {
    const state = render([np({ protocol: 'SCTP', externalPolicyLocal: true }, [local('10.180.0.1')])], {
      interfaces,
    });
    const expected = ['169.254.3.3,sctp:30080', '172.17.0.1,sctp:30080', '192.168.0.2,sctp:30080'];
    expect(entries(state, 'nodePortSCTP')).toEqual(expected);
    expect(entries(state, 'nodePortLocalSCTP')).toEqual(expected);
    expect(entries(state, 'nodePortTCP')).toEqual([]);
    expect(rules(state, 'nat', 'KUBE-NODE-PORT')).toEqual([
      `-A KUBE-NODE-PORT -p sctp ${COMMENT.nodePortLocalSCTP} -m set --match-set KUBE-NODE-PORT-LOCAL-SCTP-HASH dst,dst -j RETURN`,
      `-A KUBE-NODE-PORT -p sctp ${COMMENT.nodePortSCTP} -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ`,
    ]);
    expect(Object.keys(servers(state))).toContain('SCTP 192.168.0.2:30080');
  });

  it('nodePortAddresses CIDRs: interface addresses inside them, kube-ipvs0 and IPv6 link-local included', () => {
    const v4 = render([np()], {
      interfaces,
      nodePortAddresses: ['192.168.0.0/16', '10.96.0.0/12', '127.0.0.0/8'],
    });
    expect(Object.keys(servers(v4))).toEqual([
      'TCP 10.96.0.1:30080',
      'TCP 172.30.0.41:80',
      'TCP 192.168.0.2:30080',
    ]);
    const v6ctx = context(
      { interfaces, nodePortAddresses: ['fe80::/10', '::1/128'] },
      'IPv6',
      node({ ips: ['fd00::2'] }),
    );
    expect(v6ctx.nodePortAddresses).toEqual(['fe80::1']);
  });

  it('nodePortAddresses primary: the primary node IP only', () => {
    expect(context({ interfaces, nodePortAddresses: ['primary'] }).nodePortAddresses).toEqual([
      '192.168.0.2',
    ]);
  });

  it('no node address to listen on: the port gets no NodePort entries, virtual servers or health-check port', () => {
    const state = render(
      [
        np({ loadBalancerVIPs: ['198.51.100.7'], externalPolicyLocal: true, healthCheckNodePort: 32000 }, [
          local('10.180.0.1'),
        ]),
      ],
      { interfaces, nodePortAddresses: ['10.99.0.0/16'] },
    );
    expect(Object.keys(servers(state))).toEqual(['TCP 172.30.0.41:80', 'TCP 198.51.100.7:80']);
    expect(entries(state, 'nodePortTCP')).toEqual([]);
    expect(entries(state, 'nodePortLocalTCP')).toEqual([]);
    expect(entries(state, 'healthCheckNodePort')).toEqual([]);
    expect(entries(state, 'loadBalancerLocal')).toEqual(['198.51.100.7,tcp:80']);
  });

  it('without host interfaces the node IPs stand in for them', () => {
    const state = render([np()], { interfaces: {} });
    expect(Object.keys(servers(state))).toEqual(['TCP 172.30.0.41:80', 'TCP 192.168.0.2:30080']);
    expect(context({ interfaces: {} }).nodeAddresses).toEqual(new Set(['192.168.0.2']));
  });

  it('the health-check node port of an eTP Local LB goes to KUBE-HEALTH-CHECK-NODE-PORT', () => {
    const state = render(
      [np({ loadBalancerVIPs: ['198.51.100.7'], externalPolicyLocal: true, healthCheckNodePort: 32000 }, [])],
      { interfaces },
    );
    expect(entries(state, 'healthCheckNodePort')).toEqual(['32000']);
  });
});

describe('real servers per traffic policy (spec §4)', () => {
  const eps = [local('10.180.0.1'), remote('10.180.0.2'), remote('10.180.0.3')];

  it('eTP Local: external virtual servers use the local endpoints, the ClusterIP all of them', () => {
    const state = render([portState({ nodePort: 30080, externalPolicyLocal: true }, eps)], {
      interfaces: {},
    });
    expect(servers(state)).toEqual({
      'TCP 172.30.0.41:80': ['10.180.0.1:8080', '10.180.0.2:8080', '10.180.0.3:8080'],
      'TCP 192.168.0.2:30080': ['10.180.0.1:8080'],
    });
    expect(state.stats.noLocalEndpointsExternal).toBe(0);
  });

  it('eTP Local without a local endpoint: IPVS falls back to the cluster endpoints', () => {
    const remoteOnly = eps.slice(1);
    const state = render([portState({ nodePort: 30080, externalPolicyLocal: true }, remoteOnly)], {
      interfaces: {},
    });
    expect(servers(state)['TCP 192.168.0.2:30080']).toEqual(['10.180.0.2:8080', '10.180.0.3:8080']);
    expect(state.stats.noLocalEndpointsExternal).toBe(1);
    expect(state.stats.noLocalEndpointsInternal).toBe(0);
  });

  it('iTP Local: the ClusterIP uses local endpoints; without one, the cluster list (empty unless externally accessible)', () => {
    expect(servers(render([portState({ internalPolicyLocal: true }, eps)]))).toEqual({
      'TCP 172.30.0.41:80': ['10.180.0.1:8080'],
    });
    const internalOnly = render([portState({ internalPolicyLocal: true }, eps.slice(1))]);
    expect(servers(internalOnly)).toEqual({ 'TCP 172.30.0.41:80': [] });
    expect(internalOnly.stats.noLocalEndpointsInternal).toBe(1);
    const withNodePort = render([portState({ internalPolicyLocal: true, nodePort: 30080 }, eps.slice(1))], {
      interfaces: {},
    });
    expect(servers(withNodePort)['TCP 172.30.0.41:80']).toEqual(['10.180.0.2:8080', '10.180.0.3:8080']);
  });

  it('only terminating endpoints: the serving ones are used; not serving, none', () => {
    const terminating = [
      endpoint('10.180.0.4', { ready: false, serving: true, terminating: true, port: 8080 }),
      endpoint('10.180.0.5', { ready: false, serving: false, terminating: true, port: 8080 }),
    ];
    expect(servers(render([portState({}, terminating)]))).toEqual({
      'TCP 172.30.0.41:80': ['10.180.0.4:8080'],
    });
  });

  it('no endpoints: the virtual server stays, without real servers (IPVS drops, no REJECT)', () => {
    const state = render([portState({}, [])]);
    expect(servers(state)).toEqual({ 'TCP 172.30.0.41:80': [] });
    expect(entries(state, 'clusterIP')).toEqual(['172.30.0.41,tcp:80']);
    expect(state.iptables.filter.chains.get('KUBE-SERVICES')).toBeUndefined();
  });

  it('real servers are de-duplicated by IP:port and sorted numerically', () => {
    const state = render([
      portState({}, [
        remote('10.180.0.10'),
        remote('10.180.0.9'),
        remote('10.180.0.10'),
        remote('10.180.0.9', 80),
      ]),
    ]);
    expect(servers(state)['TCP 172.30.0.41:80']).toEqual([
      '10.180.0.9:80',
      '10.180.0.9:8080',
      '10.180.0.10:8080',
    ]);
  });
});

describe('virtual server options', () => {
  it('ClientIP affinity: persistence with its timeout on every virtual server of the port', () => {
    const state = render([portState({ stickySeconds: 600, nodePort: 30080 }, [remote('10.180.0.2')])], {
      interfaces: {},
    });
    expect(state.virtualServers.map((vs) => vs.persistenceSeconds)).toEqual([600, 600]);
  });

  it('the configured scheduler on every virtual server; mh adds the mh-port flag; blank means rr', () => {
    const mh = render([portState({ nodePort: 30080 })], { scheduler: 'mh', interfaces: {} });
    expect(mh.virtualServers.map((vs) => [vs.scheduler, vs.flags])).toEqual([
      ['mh', ['mh-port']],
      ['mh', ['mh-port']],
    ]);
    expect(render([portState()], { scheduler: 'sh' }).virtualServers[0]!.scheduler).toBe('sh');
    expect(render([portState()], { scheduler: '' }).virtualServers[0]!.scheduler).toBe('rr');
  });

  it('sorts virtual servers by protocol name, address (IPv4 numerically), port', () => {
    const state = render([
      portState({ clusterIP: '10.0.0.10', protocol: 'UDP', port: 53 }),
      portState({ clusterIP: '10.0.0.9', name: 'b', port: 80 }),
      portState({ clusterIP: '10.0.0.10', name: 'c', port: 8080 }),
      portState({ clusterIP: '10.0.0.10', name: 'd', port: 443 }),
      portState({ clusterIP: '10.0.0.11', name: 'e', protocol: 'SCTP', port: 9 }),
    ]);
    expect(state.virtualServers.map((vs) => `${vs.protocol} ${vs.address}:${vs.port}`)).toEqual([
      'SCTP 10.0.0.11:9',
      'TCP 10.0.0.9:80',
      'TCP 10.0.0.10:443',
      'TCP 10.0.0.10:8080',
      'UDP 10.0.0.10:53',
    ]);
  });
});

describe('IPv6', () => {
  const n = node({ ips: ['fd00::2'] });
  const state = render(
    [
      portState(
        {
          family: 'IPv6',
          clusterIP: 'fd00:30::41',
          nodePort: 30080,
          protocol: 'SCTP',
          loadBalancerVIPs: ['2001:db8::7'],
          loadBalancerSourceRanges: ['2001:db8::/32', 'fd12::5/128'],
        },
        [endpoint('fd00:180::1', { local: true, port: 8080 })],
        n,
      ),
    ],
    { interfaces: {} },
    'IPv6',
    n,
  );

  it('names the sets KUBE-6-…, cut to 31 characters', () => {
    expect(state.ipsets.map((s) => s.name)).toContain('KUBE-6-NODE-PORT-LOCAL-SCTP-HAS');
    expect(state.ipsets.map((s) => s.name)).toContain('KUBE-6-LOAD-BALANCER-SOURCE-CID');
    expect(state.ipsets.every((s) => s.name.startsWith('KUBE-6-') && s.name.length <= 31)).toBe(true);
    expect(state.ipsets.find((s) => s.name === 'KUBE-6-CLUSTER-IP')!.family).toBe('inet6');
    expect(state.ipsets.find((s) => s.name === 'KUBE-6-NODE-PORT-TCP')!.family).toBeNull();
  });

  it('writes entries without brackets and matches the KUBE-6 sets', () => {
    expect(entries(state, 'loopBack')).toEqual(['fd00:180::1,sctp:8080,fd00:180::1']);
    expect(entries(state, 'nodePortSCTP')).toEqual(['fd00::2,sctp:30080']);
    // a /32 is a network in IPv6; only /128 is a host, printed without its prefix as ipset save does
    expect(entries(state, 'loadBalancerSourceCIDR')).toEqual([
      '2001:db8::7,sctp:80,2001:db8::/32',
      '2001:db8::7,sctp:80,fd12::5',
    ]);
    expect(entries(state, 'loadBalancerSourceIP')).toEqual([]);
    expect(rules(state, 'nat', 'KUBE-SERVICES')[0]).toBe('-A KUBE-SERVICES -s ::1/128 -j RETURN');
    expect(rules(state, 'filter', 'KUBE-IPVS-FILTER').at(-1)).toBe(
      '-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-6-IPVS-IPS dst -j REJECT',
    );
    expect(rules(state, 'filter', 'KUBE-IPVS-OUT-FILTER')).toEqual([
      '-A KUBE-IPVS-OUT-FILTER -s 2001:db8::7 -m ipvs --vaddr 2001:db8::7 --vproto sctp --vport 80 -j DROP',
    ]);
    expect(state.boundAddresses).toEqual(['2001:db8::7', 'fd00:30::41']);
  });
});

describe('across service ports', () => {
  it('shares set entries, bound addresses and drops; keeps the first definition of a virtual server', () => {
    const a = portState({ name: 'a', externalIPs: ['192.0.2.10'], nodePort: 30080 }, [remote('10.180.0.2')]);
    const b = portState(
      { name: 'b', clusterIP: '172.30.0.42', externalIPs: ['192.0.2.10'], port: 80, nodePort: 30080 },
      [remote('10.180.0.3')],
    );
    const state = render([a, b], { interfaces: {} });
    expect(entries(state, 'externalIP')).toEqual(['192.0.2.10,tcp:80']);
    expect(entries(state, 'nodePortTCP')).toEqual(['30080']);
    expect(state.boundAddresses).toEqual(['172.30.0.41', '172.30.0.42', '192.0.2.10']);
    expect(servers(state)['TCP 192.0.2.10:80']).toEqual(['10.180.0.2:8080']);
    expect(state.stats.conflictingVirtualServers).toBe(2);
  });
});

describe('IpvsRenderer', () => {
  it('renders the same state with its cache as a fresh one-shot render, and only re-renders what changed', () => {
    const n = node();
    const ctx = context();
    const a = portState({ name: 'a' }, [remote('10.180.0.2')]);
    const b = portState({ name: 'b', clusterIP: '172.30.0.42' }, [remote('10.180.0.3')]);
    const renderer = new IpvsRenderer();
    const first = renderer.render(snapshot([a, b]), ctx);
    expect(first).toEqual(renderIpvs(snapshot([a, b]), ctx));
    // the same service ports again: the previous state object itself
    expect(renderer.render(snapshot([a, b]), ctx)).toBe(first);
    const b2 = portState({ name: 'b', clusterIP: '172.30.0.42' }, [remote('10.180.0.4')], n);
    const second = renderer.render(snapshot([a, b2]), ctx);
    expect(second).toEqual(renderIpvs(snapshot([a, b2]), ctx));
    // a's virtual server object is reused from the cache
    expect(second.virtualServers[0]).toBe(first.virtualServers[0]);
    expect(second.virtualServers[1]).not.toBe(first.virtualServers[1]);
  });

  it('a new context starts over', () => {
    const a = portState({ nodePort: 30080 }, [remote('10.180.0.2')]);
    const renderer = new IpvsRenderer();
    renderer.render(snapshot([a]), context({ interfaces: {} }));
    const other = context({ interfaces: { eth0: ['192.168.0.9/24'] } });
    expect(renderer.render(snapshot([a]), other)).toEqual(renderIpvs(snapshot([a]), other));
  });
});
