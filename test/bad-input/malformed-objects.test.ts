/**
 * Malformed objects through renderOnce: each is reported with kind, namespace/name and the
 * field, and skipped, while everything else renders exactly as if it were not there.
 */
import { describe, expect, it } from 'vitest';
import type { IPFamily } from '../../src/model/ip.js';
import { objectsFromDocuments } from '../../src/sources/manifests.js';
import { renderOnce } from '../../src/sync/render-once.js';
import { clone, ep, type Raw, serviceObject, sliceObject } from '../unit/objects.js';
import { baseObjects, config, host, problemsOf, render } from './cluster.js';

const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

function expectSameRender(withBad: readonly unknown[], clean: readonly unknown[]) {
  for (const family of FAMILIES) {
    const bad = render({ objects: withBad, family });
    const good = render({ objects: clean, family });
    expect(good.problems).toEqual([]);
    expect(bad.render.text, family).toBe(good.render.text);
  }
}

const badService = (name: string, spec: Raw, extra: { status?: Raw; namespace?: string } = {}) =>
  serviceObject(name, { spec, ...extra });

describe('a malformed Service is reported and skipped as a whole', () => {
  const cases: [string, Raw, string][] = [
    [
      'bad-ip',
      badService('bad-ip', { clusterIP: '10.0.0.300' }),
      'Service ns1/bad-ip: spec.clusterIP: "10.0.0.300"',
    ],
    [
      'port out of range',
      badService('big-port', { ports: [{ name: 'p', port: 70000 }] }),
      'Service ns1/big-port: spec.ports[0].port: 70000 is out of range',
    ],
    [
      'nodePort out of range',
      badService('big-np', { type: 'NodePort', ports: [{ port: 80, nodePort: 65536 }] }),
      'Service ns1/big-np: spec.ports[0].nodePort: 65536 is out of range',
    ],
    [
      'port not a number',
      badService('str-port', { ports: [{ port: '80' }] }),
      'Service ns1/str-port: spec.ports[0].port: must be an integer',
    ],
    [
      'unknown protocol',
      badService('http-proto', { ports: [{ port: 80, protocol: 'HTTP' }] }),
      'Service ns1/http-proto: spec.ports[0].protocol: unsupported value "HTTP"',
    ],
    [
      'lower-case protocol',
      badService('tcp-proto', { ports: [{ port: 80, protocol: 'tcp' }] }),
      'Service ns1/tcp-proto: spec.ports[0].protocol',
    ],
    [
      'missing port',
      badService('no-port', { ports: [{ name: 'p' }] }),
      'Service ns1/no-port: spec.ports[0].port: is required',
    ],
    [
      'duplicate port',
      badService('dup', {
        ports: [
          { name: 'p', port: 80 },
          { name: 'p', port: 81 },
        ],
      }),
      'Service ns1/dup: spec.ports[1].name: duplicate port "p"',
    ],
    ['invalid name', badService('Bad_Name', {}), 'Service ns1/Bad_Name: metadata.name'],
    ['name starting with a digit', badService('1svc', {}), 'Service ns1/1svc: metadata.name'],
    [
      'missing name',
      { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'ns1' }, spec: {} },
      'Service ns1/<unnamed>: metadata.name: is missing',
    ],
    ['invalid namespace', badService('ok', {}, { namespace: 'NS_1' }), 'Service NS_1/ok: metadata.namespace'],
    [
      'invalid port name',
      badService('pname', { ports: [{ name: 'P_80', port: 80 }] }),
      'Service ns1/pname: spec.ports[0].name',
    ],
    [
      'bad externalIP',
      badService('ext', { externalIPs: ['192.0.2.1', '192.0.2'] }),
      'Service ns1/ext: spec.externalIPs[1]: "192.0.2" is not a valid IP address',
    ],
    [
      'bad LB ingress IP',
      badService(
        'lbip',
        { type: 'LoadBalancer' },
        { status: { loadBalancer: { ingress: [{ ip: 'lb.example.com' }] } } },
      ),
      'Service ns1/lbip: status.loadBalancer.ingress[0].ip',
    ],
    [
      'bad source range',
      badService('src', { loadBalancerSourceRanges: ['10.0.0.0/33'] }),
      'Service ns1/src: spec.loadBalancerSourceRanges[0]: "10.0.0.0/33" is not a valid CIDR',
    ],
    [
      'spec not an object',
      { ...badService('spec', {}), spec: 'ClusterIP' },
      'Service ns1/spec: spec: must be an object',
    ],
    [
      'ports not a list',
      badService('plist', { ports: { port: 80 } }),
      'Service ns1/plist: spec.ports: must be a list',
    ],
    [
      'unknown type',
      badService('typ', { type: 'Internal' }),
      'Service ns1/typ: spec.type: unsupported value "Internal"',
    ],
    [
      'clusterIPs of the wrong family',
      badService('fam', { clusterIPs: ['fd00::1'], ipFamilies: ['IPv4'] }),
      'Service ns1/fam: spec.clusterIPs[0]: is not an IPv4 address',
    ],
    [
      'unknown ipFamily',
      badService('fam2', { clusterIPs: ['10.0.0.1'], ipFamilies: ['IPv5'] }),
      'Service ns1/fam2: spec.ipFamilies[0]',
    ],
    [
      'affinity timeout out of range',
      badService('aff', {
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } },
      }),
      'Service ns1/aff: spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is out of range',
    ],
    [
      'unknown traffic policy',
      badService('etp', { externalTrafficPolicy: 'Sometimes' }),
      'Service ns1/etp: spec.externalTrafficPolicy: unsupported value "Sometimes"',
    ],
    [
      'healthCheckNodePort out of range',
      badService('hc', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: -1 }),
      'Service ns1/hc: spec.healthCheckNodePort',
    ],
  ];
  it.each(cases)('%s', (_, bad, message) => {
    const objects = [...baseObjects(), bad];
    const result = render({ objects });
    expect(problemsOf(result)).toEqual([expect.stringContaining(message)]);
    expectSameRender(objects, baseObjects());
  });

  it('names the field of a malformed sessionAffinityConfig.clientIP', () => {
    const bad = badService('affcfg', {
      sessionAffinity: 'ClientIP',
      sessionAffinityConfig: { clientIP: 'yes' },
    });
    const result = render({ objects: [...baseObjects(), bad] });
    expect(problemsOf(result)).toEqual([
      'Service ns1/affcfg: spec.sessionAffinityConfig.clientIP: must be an object',
    ]);
  });

  it('a Service that turns malformed loses its rules, and only its own', () => {
    const base = baseObjects();
    const broken = clone(base);
    const web = broken.find((o) => (o.metadata as Raw).name === 'web')!;
    (web.spec as Raw).clusterIP = '172.30.0.999';
    const result = render({ objects: broken });
    expect(problemsOf(result)).toEqual([expect.stringContaining('Service ns2/web: spec.clusterIP')]);
    expectSameRender(
      broken,
      base.filter((o) => (o.metadata as Raw).name !== 'web'),
    );
  });

  it('a non-object is reported and skipped', () => {
    const good = baseObjects().map((object) => ({
      type: 'add' as const,
      kind: object.kind as 'Service',
      object,
    }));
    for (const kind of ['Service', 'EndpointSlice'] as const) {
      const result = renderOnce({
        events: [
          ...good,
          { type: 'add', kind, object: 'just a string' },
          { type: 'add', kind, object: [1, 2] },
        ],
        config: config(),
        host: host(),
        family: 'IPv4',
      });
      expect(problemsOf(result)).toEqual([
        `${kind} <unnamed>: metadata.name: is missing`,
        `${kind} <unnamed>: metadata.name: is missing`,
      ]);
      expect(result.render.text).toBe(render({ objects: baseObjects() }).render.text);
    }
  });

  it('a manifest document that is not an object is noticed and ignored', () => {
    const { events, notices } = objectsFromDocuments(
      ['text', 42, [serviceObject('x')], ...baseObjects()],
      'c.yaml',
    );
    expect(notices).toEqual([
      'c.yaml document 1: not an object, ignored',
      'c.yaml document 2: not an object, ignored',
      'c.yaml document 3: not an object, ignored',
    ]);
    expect(events).toHaveLength(baseObjects().length);
  });
});

describe('a malformed EndpointSlice', () => {
  const extraSlice = (endpoints: unknown[], opts: Parameters<typeof sliceObject>[2] = {}) =>
    sliceObject('svc1-extra', endpoints, { ports: [{ name: 'p80', port: 8080, protocol: 'TCP' }], ...opts });

  it('without the service-name label is reported and skipped', () => {
    const bad = extraSlice([ep('10.180.9.9')], { service: null });
    const result = render({ objects: [...baseObjects(), bad] });
    expect(problemsOf(result)).toEqual([
      'EndpointSlice ns1/svc1-extra: metadata.labels["kubernetes.io/service-name"]: is missing: the slice belongs to no Service',
    ]);
    expectSameRender([...baseObjects(), bad], baseObjects());
  });

  it.each([
    ['bad name', { metadata: { name: 'Bad_Slice' } }, 'EndpointSlice ns1/Bad_Slice: metadata.name'],
    [
      'bad addressType',
      { addressType: 'IPv5' },
      'EndpointSlice ns1/svc1-extra: addressType: must be IPv4, IPv6 or FQDN',
    ],
    ['missing addressType', { addressType: undefined }, 'EndpointSlice ns1/svc1-extra: addressType'],
    ['endpoints not a list', { endpoints: 'x' }, 'EndpointSlice ns1/svc1-extra: endpoints: must be a list'],
    [
      'labels not an object',
      { metadata: { labels: ['x'] } },
      'EndpointSlice ns1/svc1-extra: metadata.labels',
    ],
    [
      'service label not a DNS label',
      { metadata: { labels: { 'kubernetes.io/service-name': 'svc1"' } } },
      'EndpointSlice ns1/svc1-extra: metadata.labels["kubernetes.io/service-name"]',
    ],
  ] as const)('%s: the whole slice is skipped', (_, patch, message) => {
    const bad = extraSlice([ep('10.180.9.9')]);
    for (const [k, v] of Object.entries(patch)) {
      bad[k] = typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...(bad[k] as Raw), ...v } : v;
    }
    const result = render({ objects: [...baseObjects(), bad] });
    expect(problemsOf(result)).toEqual([expect.stringContaining(message)]);
    expectSameRender([...baseObjects(), bad], baseObjects());
  });

  it.each([
    [
      'an invalid address',
      ep('10.180.9.300'),
      'endpoints[1].addresses[0]: "10.180.9.300" is not a valid IP address',
    ],
    ['a hostname as address', ep('pod.example.com'), 'endpoints[1].addresses[0]'],
    ['no addresses', { addresses: [] }, 'endpoints[1].addresses: must not be empty'],
    [
      'a non-boolean condition',
      ep('10.180.9.8', { conditions: { ready: 'yes' } }),
      'endpoints[1].conditions.ready',
    ],
    ['a non-string nodeName', ep('10.180.9.8', { nodeName: 7 }), 'endpoints[1].nodeName'],
    [
      'a hint without a name',
      ep('10.180.9.8', { hints: { forZones: [{}] } }),
      'endpoints[1].hints.forZones[0].name',
    ],
    ['an endpoint that is not an object', 'x', 'endpoints[1]: must be an object'],
  ])('%s: only that endpoint is skipped', (_, badEndpoint, field) => {
    const good1 = ep('10.180.9.1');
    const good2 = ep('10.180.9.2');
    const withBad = extraSlice([good1, badEndpoint, good2]);
    const result = render({ objects: [...baseObjects(), withBad] });
    expect(problemsOf(result)).toEqual([expect.stringContaining(`EndpointSlice ns1/svc1-extra: ${field}`)]);
    expectSameRender([...baseObjects(), withBad], [...baseObjects(), extraSlice([good1, good2])]);
  });

  it.each([
    [
      'port out of range',
      { name: 'p80', port: 70000, protocol: 'TCP' },
      'ports[0].port: 70000 is out of range',
    ],
    [
      'unknown protocol',
      { name: 'p80', port: 8080, protocol: 'QUIC' },
      'ports[0].protocol: unsupported value "QUIC"',
    ],
    ['invalid port name', { name: 'P 80', port: 8080, protocol: 'TCP' }, 'ports[0].name'],
  ])('a port with %s is skipped', (_, badPort, field) => {
    const good = { name: 'dns', port: 5353, protocol: 'UDP' };
    const withBad = extraSlice([ep('10.180.9.1')], { ports: [badPort, good] });
    const result = render({ objects: [...baseObjects(), withBad] });
    expect(problemsOf(result)).toEqual([expect.stringContaining(`EndpointSlice ns1/svc1-extra: ${field}`)]);
    expectSameRender(
      [...baseObjects(), withBad],
      [...baseObjects(), extraSlice([ep('10.180.9.1')], { ports: [good] })],
    );
  });

  it('duplicate endpoints are merged silently, as kube-proxy does', () => {
    const dup = extraSlice([
      ep('10.180.0.2', { nodeName: 'node-2' }),
      ep('10.180.0.2', { nodeName: 'node-2' }),
    ]);
    const result = render({ objects: [...baseObjects(), dup] });
    expect(result.problems).toEqual([]);
    expectSameRender([...baseObjects(), dup], baseObjects());
  });
});
