import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  mergeSlices,
  type ParsedSlice,
  parseEndpointSlice,
  portKey,
} from '../../src/model/endpoint-slice.js';
import { joinHostPort, parseIP } from '../../src/model/ip.js';
import type { Endpoint, Protocol } from '../../src/model/types.js';

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

describe('slices hold the endpoints snapshots use (each endpoint exists once)', () => {
  it('parses each port into its own sorted list of Endpoints, isLocal against the given node', () => {
    const raw = rawSlice(
      's1',
      [
        { addresses: ['10.0.0.2'], nodeName: 'node-2' },
        { addresses: ['10.0.0.1'], nodeName: 'node-1' },
      ],
      {
        ports: [
          { name: 'a', port: 80 },
          { name: 'b', port: 81, protocol: 'UDP' },
        ],
      },
    );
    const slice = parseEndpointSlice(raw, 'node-1').slice!;
    expect(
      slice.ports.map((p) => [p.name, p.protocol, p.endpoints.map((e) => [e.endpoint, e.isLocal])]),
    ).toEqual([
      [
        'a',
        'TCP',
        [
          ['10.0.0.1:80', true],
          ['10.0.0.2:80', false],
        ],
      ],
      [
        'b',
        'UDP',
        [
          ['10.0.0.1:81', true],
          ['10.0.0.2:81', false],
        ],
      ],
    ]);
    // The IP string is one string for both ports' copies of an endpoint.
    expect(slice.ports[0]!.endpoints[0]!.ip).toBe(slice.ports[1]!.endpoints[0]!.ip);
    const onNode2 = parseEndpointSlice(raw, 'node-2').slice!;
    expect(onNode2.ports[0]!.endpoints.map((e) => e.isLocal)).toEqual([false, true]);
  });

  it('de-duplicates within a slice as across slices: non-terminating, then local, then first', () => {
    const slice = parsed(
      rawSlice('s1', [
        { addresses: ['10.0.0.1'], nodeName: 'node-2', zone: 'first' },
        { addresses: ['10.0.0.1'], nodeName: 'node-2', zone: 'second' },
        { addresses: ['10.0.0.2'], nodeName: 'node-1', conditions: { terminating: true } },
        { addresses: ['10.0.0.2'], nodeName: 'node-2' },
        { addresses: ['10.0.0.3'], nodeName: 'node-2' },
        { addresses: ['10.0.0.3'], nodeName: 'node-1' },
      ]),
    );
    expect(endpointsOf(slice).map((e) => [e.endpoint, e.zone ?? e.nodeName])).toEqual([
      ['10.0.0.1:80', 'first'],
      ['10.0.0.2:80', 'node-2'],
      ['10.0.0.3:80', 'node-1'],
    ]);
  });

  it('shares one hint Set among the endpoints of a slice that carry the same hints', () => {
    const hints = { forZones: [{ name: 'zone-a' }] };
    const slice = parsed(
      rawSlice('s1', [
        { addresses: ['10.0.0.1'], hints },
        { addresses: ['10.0.0.2'], hints },
        { addresses: ['10.0.0.3'], hints: { forZones: [{ name: 'zone-b' }] } },
      ]),
    );
    const [a, b, c] = endpointsOf(slice);
    expect(a!.zoneHints).toBe(b!.zoneHints);
    expect([...c!.zoneHints!]).toEqual(['zone-b']);
  });

  it('a port key served by one slice port gets that very array', () => {
    const one = parsed(rawSlice('s1', [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.2'] }]));
    const other = parsed(rawSlice('v6', [{ addresses: ['fd00::1'] }], { addressType: 'IPv6' }));
    const m = mergeSlices([one, other], 'IPv4');
    expect(m.get(KEY)).toBe(one.ports[0]!.endpoints);
    expect(mergeSlices([one, other], 'IPv6').get(KEY)).toBe(other.ports[0]!.endpoints);
  });

  it('a port key served by several slices gets a new merged array, and the slices keep theirs', () => {
    const a = parsed(rawSlice('a', [{ addresses: ['10.0.0.3'] }, { addresses: ['10.0.0.1'] }]));
    const b = parsed(rawSlice('b', [{ addresses: ['10.0.0.2'] }, { addresses: ['10.0.0.1'] }]));
    const before = [a, b].map((s) => [...s.ports[0]!.endpoints]);
    const m = mergeSlices([b, a], 'IPv4').get(KEY)!;
    expect(m.map((e) => e.endpoint)).toEqual(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
    // The copy of 10.0.0.1 that wins is slice a's (first by name), not a new object.
    expect(m[0]).toBe(a.ports[0]!.endpoints[0]);
    expect([a, b].map((s) => s.ports[0]!.endpoints)).toEqual(before);
  });
});

/**
 * The merge as it was when slices held SliceEndpoints and mergeSlices built the Endpoints:
 * one Map per port key, slices in name order, each slice's endpoints in listed order, a
 * later copy replacing an earlier one only when preferred; then sorted.
 */
function referenceMerge(raws: ReturnType<typeof rawSlice>[], family: 'IPv4' | 'IPv6', nodeName: string) {
  const byPort = new Map<string, Map<string, Endpoint>>();
  const ordered = [...raws].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  for (const raw of ordered) {
    if (raw.addressType !== family) continue;
    for (const sp of parsed(raw).ports) {
      const key = portKey(sp.name, sp.protocol);
      if (!byPort.has(key)) byPort.set(key, new Map());
      const set = byPort.get(key)!;
      for (const ep of raw.endpoints as unknown as RefEndpoint[]) {
        const ip = parseIP(ep.addresses[0]!)!;
        if (ip.family !== family) continue;
        const candidate: Endpoint = {
          ip: ip.text,
          port: sp.port,
          endpoint: joinHostPort(ip, sp.port),
          ready: ep.conditions.ready,
          serving: ep.conditions.serving,
          terminating: ep.conditions.terminating,
          isLocal: ep.nodeName === nodeName,
          nodeName: ep.nodeName ?? null,
          zone: ep.zone,
          zoneHints: null,
          nodeHints: null,
        };
        const existing = set.get(candidate.endpoint);
        const preferred =
          !existing ||
          (candidate.terminating !== existing.terminating
            ? !candidate.terminating
            : candidate.isLocal && !existing.isLocal);
        if (preferred) set.set(candidate.endpoint, candidate);
      }
    }
  }
  const out = new Map<string, Endpoint[]>();
  for (const [key, set] of byPort) {
    out.set(
      key,
      [...set.values()].sort((a, b) => (a.endpoint < b.endpoint ? -1 : 1)),
    );
  }
  return out;
}

interface RefEndpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  nodeName?: string;
  zone: string;
}

describe('mergeSlices gives what the merge gave before the slices held Endpoints', () => {
  // Few addresses and ports, so that duplicates within and across slices are common; the
  // zone tells apart copies of one endpoint.
  const endpointArb = fc.record({
    addresses: fc.tuple(fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.10', '010.0.0.1', 'fd00::1')),
    conditions: fc.record({ ready: fc.boolean(), serving: fc.boolean(), terminating: fc.boolean() }),
    nodeName: fc.option(fc.constantFrom('node-1', 'node-2'), { nil: undefined }),
    zone: fc.string({ minLength: 1, maxLength: 4 }),
  });
  const portArb = fc.record({
    name: fc.constantFrom('', 'a', 'b'),
    port: fc.constantFrom(80, 81),
    protocol: fc.constantFrom<Protocol>('TCP', 'UDP'),
  });
  const sliceArb = fc.record({
    addressType: fc.constantFrom('IPv4', 'IPv6'),
    ports: fc.array(portArb, { maxLength: 3 }),
    endpoints: fc.array(endpointArb, { maxLength: 6 }),
  });

  it('for any set of slices (property)', () => {
    fc.assert(
      fc.property(fc.array(sliceArb, { maxLength: 4 }), (specs) => {
        const raws = specs.map((s, i) =>
          rawSlice(`s${(i * 7) % 5}${i}`, s.endpoints, { addressType: s.addressType, ports: s.ports }),
        );
        const slices = raws.map(parsed);
        for (const family of ['IPv4', 'IPv6'] as const) {
          const actual = mergeSlices(slices, family);
          const expected = referenceMerge(raws, family, NODE);
          expect(new Map([...actual].map(([k, v]) => [k, [...v]]))).toEqual(expected);
        }
      }),
      { numRuns: 300 },
    );
  });
});
