import { describe, expect, it } from 'vitest';
import { type ParsedService, parseService, servicePortsForFamily } from '../../src/model/service.js';
import { type Raw, serviceObject } from './objects.js';

function ok(raw: Raw): ParsedService {
  const result = parseService(raw);
  if (!result.ok) throw new Error(`unexpected problem: ${JSON.stringify(result.problem)}`);
  return result.service;
}

const svc = (spec: Raw, status?: Raw) => serviceObject('svc1', { spec, ...(status ? { status } : {}) });

describe('Service -> ServicePorts (spec §1)', () => {
  it('builds one port per spec.ports entry with the name string <N>', () => {
    const s = ok(
      svc({
        ports: [
          { name: 'p80', port: 80, protocol: 'TCP' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      }),
    );
    const ports = servicePortsForFamily(s, 'IPv4');
    expect(ports.map((p) => [p.nameString, p.protocol, p.port, p.serviceKey])).toEqual([
      ['ns1/svc1:p80', 'TCP', 80, 'ns1/svc1'],
      ['ns1/svc1:dns', 'UDP', 53, 'ns1/svc1'],
    ]);
    const unnamed = ok(svc({ ports: [{ port: 80 }] }));
    expect(servicePortsForFamily(unnamed, 'IPv4')[0]).toMatchObject({
      nameString: 'ns1/svc1',
      protocol: 'TCP',
    });
  });

  it('ignores ExternalName and headless Services', () => {
    for (const spec of [
      { type: 'ExternalName', externalName: 'x.example.com' },
      { clusterIP: 'None' },
      { clusterIP: '' },
    ]) {
      const s = ok(svc(spec));
      expect(s.ignored).toBe(true);
      expect(servicePortsForFamily(s, 'IPv4')).toEqual([]);
    }
  });

  it('reads the ClusterIP sloppily and per family', () => {
    expect(servicePortsForFamily(ok(svc({ clusterIP: '172.30.0.041' })), 'IPv4')[0]!.clusterIP).toBe(
      '172.30.0.41',
    );
    const dual = ok(
      svc({
        clusterIP: '172.30.0.41',
        clusterIPs: ['172.30.0.41', 'FD00::0041'],
        ipFamilies: ['IPv4', 'IPv6'],
      }),
    );
    expect(servicePortsForFamily(dual, 'IPv6')[0]!.clusterIP).toBe('fd00::41');
    // without ipFamilies, clusterIP alone decides the family
    expect(servicePortsForFamily(ok(svc({ clusterIP: '172.30.0.41' })), 'IPv6')).toEqual([]);
    const v6only = ok(svc({ clusterIP: 'fd00::41', clusterIPs: ['fd00::41'], ipFamilies: ['IPv6'] }));
    expect(servicePortsForFamily(v6only, 'IPv4')).toEqual([]);
  });

  it('keeps externalIPs, LB VIPs and source ranges of the family, canonical', () => {
    const s = ok(
      svc(
        {
          type: 'LoadBalancer',
          externalIPs: ['192.0.2.010', '2001:db8::1'],
          loadBalancerSourceRanges: [' 203.0.113.000/025 ', '2001:db8::/32'],
        },
        {
          loadBalancer: {
            ingress: [
              { ip: '198.51.100.001' },
              { ip: '198.51.100.2', ipMode: 'VIP' },
              { ip: '198.51.100.3', ipMode: 'Proxy' },
              { hostname: 'lb.example.com' },
              { ip: '2001:db8:1::1' },
            ],
          },
        },
      ),
    );
    const [v4] = servicePortsForFamily(s, 'IPv4');
    expect(v4!.externalIPs).toEqual(['192.0.2.10']);
    expect(v4!.loadBalancerVIPs).toEqual(['198.51.100.1', '198.51.100.2']);
    expect(v4!.loadBalancerSourceRanges).toEqual(['203.0.113.0/25']);
  });

  it('ClientIP affinity: timeoutSeconds, default 10800', () => {
    const port = (spec: Raw) => servicePortsForFamily(ok(svc(spec)), 'IPv4')[0]!;
    expect(port({}).stickySeconds).toBe(0);
    expect(port({ sessionAffinity: 'ClientIP' }).stickySeconds).toBe(10800);
    const cfg = { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } };
    expect(port(cfg).stickySeconds).toBe(60);
  });

  it.each([
    ['LoadBalancer', {}, true],
    ['NodePort', {}, true],
    ['ClusterIP', { externalIPs: ['192.0.2.1'] }, true],
    ['ClusterIP', {}, false],
    [undefined, { externalIPs: ['192.0.2.1'] }, false], // an unset type does not count
  ] as const)('eTP=Local counts for type %s %j: %s', (type, extra, expected) => {
    const s = ok(svc({ type, ...extra, externalTrafficPolicy: 'Local' }));
    expect(s.externalPolicyLocal).toBe(expected);
  });

  it('healthCheckNodePort only for LoadBalancer with eTP=Local', () => {
    const hc = (spec: Raw) => ok(svc({ healthCheckNodePort: 32000, ...spec })).healthCheckNodePort;
    expect(hc({ type: 'LoadBalancer', externalTrafficPolicy: 'Local' })).toBe(32000);
    expect(hc({ type: 'LoadBalancer', externalTrafficPolicy: 'Cluster' })).toBe(0);
    expect(hc({ type: 'NodePort', externalTrafficPolicy: 'Local' })).toBe(0);
  });

  it('iTP=Local, and nodePort 0 when absent (no defaulting)', () => {
    const [p] = servicePortsForFamily(
      ok(svc({ type: 'LoadBalancer', internalTrafficPolicy: 'Local' })),
      'IPv4',
    );
    expect(p).toMatchObject({ internalPolicyLocal: true, nodePort: 0 });
  });
});
