import { describe, expect, it } from 'vitest';
import {
  formatIpvsState,
  formatSection,
  IPVS_SECTIONS,
  ipsetCreateLine,
} from '../../src/backends/ipvs/format.js';
import { endpoint } from '../unit/builders.js';
import { portState, render } from './builders.js';
import { IpvsadmParseError, parseIpvsadmRestore } from './ipvsadm-grammar.js';

const state = render(
  [
    portState({ nodePort: 30080, stickySeconds: 10800, externalIPs: ['192.0.2.10'] }, [
      endpoint('10.180.0.1', { local: true, port: 8080 }),
      endpoint('10.180.0.2', { port: 8080 }),
    ]),
    portState({ name: 'dns', clusterIP: '172.30.0.10', protocol: 'UDP', port: 53 }, []),
  ],
  { interfaces: {}, scheduler: 'mh' },
);

describe('the four sections', () => {
  it('print exactly this for a NodePort service with affinity and a UDP service without endpoints (mh)', () => {
    expect(formatIpvsState(state)).toBe(`### ipset
create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
add KUBE-CLUSTER-IP 172.30.0.10,udp:53
add KUBE-CLUSTER-IP 172.30.0.41,tcp:80
create KUBE-EXTERNAL-IP hash:ip,port family inet hashsize 1024 maxelem 65536
add KUBE-EXTERNAL-IP 192.0.2.10,tcp:80
create KUBE-EXTERNAL-IP-LOCAL hash:ip,port family inet hashsize 1024 maxelem 65536
create KUBE-HEALTH-CHECK-NODE-PORT bitmap:port range 0-65535
create KUBE-IPVS-IPS hash:ip family inet hashsize 1024 maxelem 65536
add KUBE-IPVS-IPS 172.30.0.10
add KUBE-IPVS-IPS 172.30.0.41
add KUBE-IPVS-IPS 192.0.2.10
create KUBE-LOAD-BALANCER hash:ip,port family inet hashsize 1024 maxelem 65536
create KUBE-LOAD-BALANCER-FW hash:ip,port family inet hashsize 1024 maxelem 65536
create KUBE-LOAD-BALANCER-LOCAL hash:ip,port family inet hashsize 1024 maxelem 65536
create KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net family inet hashsize 1024 maxelem 65536
create KUBE-LOAD-BALANCER-SOURCE-IP hash:ip,port,ip family inet hashsize 1024 maxelem 65536
create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536
add KUBE-LOOP-BACK 10.180.0.1,tcp:8080,10.180.0.1
create KUBE-NODE-PORT-LOCAL-SCTP-HASH hash:ip,port family inet hashsize 1024 maxelem 65536
create KUBE-NODE-PORT-LOCAL-TCP bitmap:port range 0-65535
create KUBE-NODE-PORT-LOCAL-UDP bitmap:port range 0-65535
create KUBE-NODE-PORT-SCTP-HASH hash:ip,port family inet hashsize 1024 maxelem 65536
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
add KUBE-NODE-PORT-TCP 30080
create KUBE-NODE-PORT-UDP bitmap:port range 0-65535
### ipvs
-A -t 172.30.0.41:80 -s mh -p 10800 -b mh-port
-a -t 172.30.0.41:80 -r 10.180.0.1:8080 -m -w 1
-a -t 172.30.0.41:80 -r 10.180.0.2:8080 -m -w 1
-A -t 192.0.2.10:80 -s mh -p 10800 -b mh-port
-a -t 192.0.2.10:80 -r 10.180.0.1:8080 -m -w 1
-a -t 192.0.2.10:80 -r 10.180.0.2:8080 -m -w 1
-A -t 192.168.0.2:30080 -s mh -p 10800 -b mh-port
-a -t 192.168.0.2:30080 -r 10.180.0.1:8080 -m -w 1
-a -t 192.168.0.2:30080 -r 10.180.0.2:8080 -m -w 1
-A -u 172.30.0.10:53 -s mh -b mh-port
### kube-ipvs0
172.30.0.10
172.30.0.41
192.0.2.10
### iptables
*filter
:KUBE-FORWARD - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT
-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-POSTROUTING - [0:0]
-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN
-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT
-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -m addrtype --dst-type LOCAL -j ACCEPT
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
COMMIT
`);
  });

  it('--section prints each body alone, which is the full text minus the headers', () => {
    const bodies = IPVS_SECTIONS.map((s) => formatSection(state, s));
    expect(IPVS_SECTIONS.map((s, i) => `### ${s}\n${bodies[i]}`).join('')).toBe(formatIpvsState(state));
    for (const body of bodies) expect(body.endsWith('\n')).toBe(true);
  });

  it('an empty section is an empty body', () => {
    const empty = render([]);
    expect(formatSection(empty, 'ipvs')).toBe('');
    expect(formatSection(empty, 'kube-ipvs0')).toBe('');
    expect(formatIpvsState(empty)).toContain('### ipvs\n### kube-ipvs0\n### iptables\n*filter\n');
  });

  it('creates each set as kube-proxy does: no comment, no -exist', () => {
    expect(ipsetCreateLine({ name: 'KUBE-6-LOOP-BACK', type: 'hash:ip,port,ip', family: 'inet6' })).toBe(
      'create KUBE-6-LOOP-BACK hash:ip,port,ip family inet6 hashsize 1024 maxelem 65536',
    );
    expect(ipsetCreateLine({ name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', family: null })).toBe(
      'create KUBE-NODE-PORT-TCP bitmap:port range 0-65535',
    );
  });
});

describe('the ipvsadm grammar reader used by the property tests', () => {
  it('reads the ipvs section back into the state', () => {
    const parsed = parseIpvsadmRestore(formatSection(state, 'ipvs'));
    expect(
      parsed.map((vs) => [vs.protocol, vs.address, vs.port, vs.scheduler, vs.persistence, vs.flags]),
    ).toEqual(
      state.virtualServers.map((vs) => [
        vs.protocol,
        vs.address,
        vs.port,
        vs.scheduler,
        vs.persistenceSeconds || null,
        vs.flags,
      ]),
    );
    expect(parsed[0]!.realServers).toEqual([
      { address: '10.180.0.1', port: 8080, forwarding: 'masq', weight: 1 },
      { address: '10.180.0.2', port: 8080, forwarding: 'masq', weight: 1 },
    ]);
  });

  it.each([
    ['-A -t 10.0.0.1:80', /no scheduler/],
    ['-A -t 10.0.0.1:80 -s nope', /unknown scheduler/],
    ['-A -t 10.0.0.1:0 -s rr', /illegal port/],
    ['-A -t fd00::1:80 -s rr', /illegal address/],
    ['-A -t [10.0.0.1]:80 -s rr', /illegal address/],
    ['-A -t 010.0.0.1:80 -s rr', /illegal address/],
    ['-A -t 10.0.0.1:80 -s rr -x', /unknown option/],
    ['-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1', /not defined/],
    ['-A -t 10.0.0.1:80 -s rr -s rr', /given twice/],
    ['# comment', /unsupported command/],
  ])('refuses %j', (line, error) => {
    expect(() => parseIpvsadmRestore(line)).toThrow(IpvsadmParseError);
    expect(() => parseIpvsadmRestore(line)).toThrow(error);
  });
});
