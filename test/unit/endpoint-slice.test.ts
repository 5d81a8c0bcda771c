import { describe, expect, it } from 'vitest';
import {
  mergeSlices,
  type ParsedSlice,
  parseEndpointSlice,
  portKey,
} from '../../src/model/endpoint-slice.js';

type RawEndpoint = Record<string, unknown>;

function rawSlice(
  name: string,
  endpoints: RawEndpoint[],
  opts: { addressType?: string; ports?: unknown[]; service?: string; namespace?: string } = {},
) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: opts.namespace ?? 'ns1',
      labels: { 'kubernetes.io/service-name': opts.service ?? 'svc1' },
    },
    addressType: opts.addressType ?? 'IPv4',
    ports: opts.ports ?? [{ name: 'p80', port: 80, protocol: 'TCP' }],
    endpoints,
  };
}

const NODE = 'node-1';

function parsed(raw: unknown): ParsedSlice {
  const { slice, problems } = parseEndpointSlice(raw, NODE);
  expect(problems).toEqual([]);
  return slice!;
}

const KEY = portKey('p80', 'TCP');

function merged(slices: unknown[], family: 'IPv4' | 'IPv6' = 'IPv4') {
  return mergeSlices(slices.map(parsed), family);
}

/** The endpoints of the slice's only port. */
function endpointsOf(slice: ParsedSlice) {
  expect(slice.ports).toHaveLength(1);
  return slice.ports[0]!.endpoints;
}

describe('parseEndpointSlice (spec §2.1)', () => {
  it('reads conditions with kube-proxy defaults: ready/serving default true, terminating false', () => {
    const slice = parsed(
      rawSlice('s1', [
        { addresses: ['10.0.0.1'] },
        { addresses: ['10.0.0.2'], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ['10.0.0.3'], conditions: { ready: null, serving: null, terminating: null } },
      ]),
    );
    expect(endpointsOf(slice).map((e) => [e.ready, e.serving, e.terminating])).toEqual([
      [true, true, false],
      [false, true, true],
      [true, true, false],
    ]);
  });

  it('keeps nodeName, zone and hints; empty hint lists count as no hints', () => {
    const slice = parsed(
      rawSlice('s1', [
        {
          addresses: ['10.0.0.1'],
          nodeName: 'node-1',
          zone: 'zone-a',
          hints: { forZones: [{ name: 'zone-a' }], forNodes: [{ name: 'node-1' }] },
        },
        { addresses: ['10.0.0.2'], hints: { forZones: [], forNodes: [] } },
      ]),
    );
    const [a, b] = endpointsOf(slice);
    expect(a).toMatchObject({ nodeName: 'node-1', zone: 'zone-a' });
    expect([...a!.zoneHints!]).toEqual(['zone-a']);
    expect([...a!.nodeHints!]).toEqual(['node-1']);
    expect(b).toMatchObject({ nodeName: null, zone: null, zoneHints: null, nodeHints: null });
  });

  it('ignores ports with no name (nil) or no/zero port number; "" is a valid name', () => {
    const slice = parsed(
      rawSlice('s1', [], {
        ports: [
          { port: 80, protocol: 'TCP' },
          { name: 'a', protocol: 'TCP' },
          { name: 'b', port: 0 },
          { name: '', port: 81 },
          { name: 'c', port: 82, protocol: 'UDP' },
        ],
      }),
    );
    expect(slice.ports).toEqual([
      { name: '', port: 81, protocol: 'TCP', endpoints: [] },
      { name: 'c', port: 82, protocol: 'UDP', endpoints: [] },
    ]);
  });

  it('skips FQDN slices endpoints without complaint', () => {
    const slice = parsed(rawSlice('s1', [{ addresses: ['example.com'] }], { addressType: 'FQDN' }));
    expect(endpointsOf(slice)).toEqual([]);
  });

  it('reports a bad endpoint and keeps the others', () => {
    const { slice, problems } = parseEndpointSlice(
      rawSlice('s1', [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.300'] }, { addresses: [] }]),
      NODE,
    );
    expect(endpointsOf(slice!).map((e) => e.ip)).toEqual(['10.0.0.1']);
    expect(problems.map((p) => p.field)).toEqual(['endpoints[1].addresses[0]', 'endpoints[2].addresses']);
    expect(problems[0]!.ref).toEqual({ kind: 'EndpointSlice', namespace: 'ns1', name: 's1' });
  });

  it('refuses a slice without the service-name label', () => {
    const raw = rawSlice('s1', [{ addresses: ['10.0.0.1'] }]);
    raw.metadata.labels = {} as typeof raw.metadata.labels;
    const { slice, problems } = parseEndpointSlice(raw, NODE);
    expect(slice).toBeNull();
    expect(problems[0]!.field).toBe('metadata.labels["kubernetes.io/service-name"]');
  });
});

describe('mergeSlices (spec §2.1)', () => {
  it('uses addresses[0] only, canonicalised', () => {
    const m = merged([rawSlice('s1', [{ addresses: ['10.180.00.001', '10.180.0.2'] }])]);
    expect(m.get(KEY)!.map((e) => e.endpoint)).toEqual(['10.180.0.1:80']);
  });

  it('sorts byte-wise by endpoint string: 10.1.1.11:11 before 10.1.1.1:11', () => {
    const ports = [{ name: 'p80', port: 11, protocol: 'TCP' }];
    const m = merged([
      rawSlice(
        's1',
        [{ addresses: ['10.1.1.1'] }, { addresses: ['10.1.1.2'] }, { addresses: ['10.1.1.11'] }],
        {
          ports,
        },
      ),
    ]);
    expect(m.get(KEY)!.map((e) => e.endpoint)).toEqual(['10.1.1.11:11', '10.1.1.1:11', '10.1.1.2:11']);
  });

  it('de-duplicates across slices by endpoint string', () => {
    const m = merged([
      rawSlice('s1', [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.2'] }]),
      rawSlice('s2', [
        { addresses: ['10.0.0.2'] },
        { addresses: ['010.0.0.1'] },
        { addresses: ['10.0.0.3'] },
      ]),
    ]);
    expect(m.get(KEY)!.map((e) => e.endpoint)).toEqual(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
  });

  it('a local duplicate wins, whichever slice it is in', () => {
    const remoteFirst = merged([
      rawSlice('a', [{ addresses: ['10.0.0.1'], nodeName: 'node-2', conditions: { ready: false } }]),
      rawSlice('b', [{ addresses: ['10.0.0.1'], nodeName: 'node-1' }]),
    ]);
    const localFirst = merged([
      rawSlice('a', [{ addresses: ['10.0.0.1'], nodeName: 'node-1' }]),
      rawSlice('b', [{ addresses: ['10.0.0.1'], nodeName: 'node-2', conditions: { ready: false } }]),
    ]);
    for (const m of [remoteFirst, localFirst]) {
      const [only, ...rest] = m.get(KEY)!;
      expect(rest).toEqual([]);
      expect(only).toMatchObject({ isLocal: true, nodeName: 'node-1', ready: true });
    }
  });

  it('the same endpoint on different ports is two endpoints, keyed by port name and protocol', () => {
    const m = merged([
      rawSlice('s1', [{ addresses: ['10.0.0.1'] }], {
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns', port: 53, protocol: 'TCP' },
          { name: '', port: 8080 },
        ],
      }),
    ]);
    expect([...m.keys()].sort()).toEqual(['/TCP', 'dns/TCP', 'dns/UDP']);
    expect(m.get('dns/UDP')!.map((e) => e.endpoint)).toEqual(['10.0.0.1:53']);
    expect(m.get('/TCP')!.map((e) => e.endpoint)).toEqual(['10.0.0.1:8080']);
  });

  it('keeps only the requested family (slice addressType and address family)', () => {
    const slices = [
      rawSlice('v4', [{ addresses: ['10.0.0.1'] }]),
      rawSlice('v6', [{ addresses: ['FD00::0001'] }], { addressType: 'IPv6' }),
      // an IPv6 address in an IPv4 slice is of neither list
      rawSlice('odd', [{ addresses: ['fd00::9'] }]),
    ];
    expect(
      merged(slices, 'IPv4')
        .get(KEY)!
        .map((e) => e.endpoint),
    ).toEqual(['10.0.0.1:80']);
    expect(
      merged(slices, 'IPv6')
        .get(KEY)!
        .map((e) => e.endpoint),
    ).toEqual(['[fd00::1]:80']);
  });

  it('marks endpoints local by nodeName only', () => {
    const m = merged([
      rawSlice('s1', [
        { addresses: ['10.0.0.1'], nodeName: 'node-1' },
        { addresses: ['10.0.0.2'], nodeName: 'node-10' },
        { addresses: ['10.0.0.3'] },
      ]),
    ]);
    expect(m.get(KEY)!.map((e) => e.isLocal)).toEqual([true, false, false]);
  });
});
