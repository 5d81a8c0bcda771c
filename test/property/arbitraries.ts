/**
 * fast-check generators for valid-but-random clusters: Services of every type with 1-3 ports,
 * both IP families, affinity, traffic policies, LB VIPs (with ipMode), source ranges and
 * externalIPs; EndpointSlices with 0-12 endpoints per Service carrying random conditions,
 * nodes, zones and hints; this proxy's Node; and the renderer's options.
 */
import fc from 'fast-check';
import type { IptablesOptions } from '../../src/backends/iptables/context.js';
import type { IpvsOptions } from '../../src/backends/ipvs/context.js';
import { IPVS_SCHEDULERS } from '../../src/backends/ipvs/state.js';
import type { TopologyOptions } from '../../src/model/categorize.js';
import type { ObjectEvent } from '../../src/model/store.js';
import { add, nodeObject, type Raw, serviceObject, sliceObject } from '../unit/objects.js';

export const NODE_NAME = 'node-1';
const NODES = [NODE_NAME, 'node-2', 'node-3'];
const ZONES = ['zone-a', 'zone-b', 'zone-c'];
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

/** A small address space, so that endpoints collide across slices (de-duplication). */
const endpointV4 = fc
  .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 12 }), fc.boolean())
  .map(([a, b, sloppy]) => (sloppy ? `10.244.00${a}.0${b}` : `10.244.${a}.${b}`));
const endpointV6 = fc
  .tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 12 }), fc.boolean())
  .map(([a, b, upper]) => {
    const text = `fd00:10:244:${a}::${b.toString(16)}`;
    return upper ? text.toUpperCase().replace('FD00:10:244:', 'FD00:0010:0244:') : text;
  });

const names = (pool: readonly string[]) =>
  fc.subarray([...pool]).map((list) => list.map((name) => ({ name })));

export interface PortSpec {
  name: string;
  protocol: (typeof PROTOCOLS)[number];
  port: number;
  nodePort: number;
}

export function portsArb(
  portNames: readonly string[],
  protocols: readonly PortSpec['protocol'][] = PROTOCOLS,
) {
  return fc.uniqueArray(
    fc.record({
      name: fc.constantFrom(...portNames),
      protocol: fc.constantFrom(...protocols),
      port: fc.integer({ min: 1, max: 65535 }),
      nodePort: fc.oneof(fc.constant(0), fc.integer({ min: 30000, max: 32767 })),
    }),
    { minLength: 1, maxLength: 3, selector: (p) => `${p.name}/${p.protocol}` },
  );
}

type HintMode = 'none' | 'random' | 'zones' | 'nodes' | 'both';

function endpointArb(family: 'IPv4' | 'IPv6', hints: HintMode): fc.Arbitrary<Raw> {
  const hintsArb: fc.Arbitrary<Raw | undefined> =
    hints === 'none'
      ? fc.constant(undefined)
      : hints === 'random'
        ? maybe(fc.record({ forZones: names(ZONES), forNodes: names(NODES) }, { requiredKeys: [] }))
        : fc.record({
            forZones: hints === 'nodes' ? fc.constant([]) : names(ZONES),
            forNodes: hints === 'zones' ? fc.constant([]) : names(NODES),
          });
  return fc
    .record({
      address: family === 'IPv4' ? endpointV4 : endpointV6,
      extra: maybe(family === 'IPv4' ? endpointV4 : endpointV6),
      ready: maybe(fc.boolean()),
      serving: maybe(fc.boolean()),
      terminating: maybe(fc.boolean()),
      nodeName: maybe(fc.constantFrom(NODE_NAME, ...NODES)),
      zone: maybe(fc.constantFrom(...ZONES)),
      hints: hintsArb,
    })
    .map((e) => {
      const conditions: Raw = {};
      if (e.ready !== undefined) conditions.ready = e.ready;
      if (e.serving !== undefined) conditions.serving = e.serving;
      if (e.terminating !== undefined) conditions.terminating = e.terminating;
      const out: Raw = { addresses: e.extra ? [e.address, e.extra] : [e.address], conditions };
      if (e.nodeName) out.nodeName = e.nodeName;
      if (e.zone) out.zone = e.zone;
      if (e.hints) out.hints = e.hints;
      return out;
    });
}

/** One EndpointSlice for `service`, its ports drawn from the Service's (plus a stray one). */
export function sliceArb(
  namespace: string,
  service: string,
  sliceName: string,
  body: Pick<ServiceBody, 'ports' | 'families'>,
  maxEndpoints: number,
): fc.Arbitrary<Raw> {
  const own: ServiceBody['families'] = body.families.length ? body.families : ['IPv4'];
  const family = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...own) },
    { weight: 1, arbitrary: fc.constantFrom('IPv4' as const, 'IPv6' as const) },
  );
  return fc
    .record({
      family,
      ports: fc.oneof(
        { weight: 4, arbitrary: fc.subarray([...body.ports], { minLength: 1 }) },
        { weight: 1, arbitrary: fc.subarray([...body.ports]) },
      ),
      stray: fc.boolean(),
      targetPort: fc.integer({ min: 1, max: 65535 }),
      hints: fc.constantFrom<HintMode>('none', 'random', 'zones', 'nodes', 'both'),
    })
    .chain((s) =>
      fc.array(endpointArb(s.family, s.hints), { maxLength: maxEndpoints }).map((endpoints) => {
        const ports: Raw[] = s.ports.map((p, i) => ({
          name: p.name,
          port: s.targetPort + i,
          protocol: p.protocol,
        }));
        if (s.stray) ports.push({ name: 'stray', port: 9999, protocol: 'TCP' });
        return sliceObject(sliceName, endpoints, { namespace, service, addressType: s.family, ports });
      }),
    );
}

const V4_EXTERNAL = ['192.0.2.1', '192.0.2.02', '192.0.2.3'];
const V6_EXTERNAL = ['2001:db8::1', '2001:DB8::2'];
const V4_VIPS = ['198.51.100.1', '198.51.100.2'];
const V6_VIPS = ['2001:db8:1::1', '2001:db8:1::2'];
const SOURCE_RANGES = [
  '203.0.113.0/24',
  ' 10.0.0.0/8 ',
  '192.168.0.0/16',
  '192.168.000.000/24',
  '2001:db8::/32',
  '::/0',
];

export interface ServiceBody {
  spec: Raw;
  status: Raw;
  ports: PortSpec[];
  /** the families the Service has a ClusterIP of */
  families: ('IPv4' | 'IPv6')[];
}

export function serviceBodyArb(portNames: readonly string[], protocols?: readonly PortSpec['protocol'][]) {
  return fc
    .record({
      type: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer', undefined) },
        { weight: 1, arbitrary: fc.constant('ExternalName') },
      ),
      families: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom('v4', 'v6', 'dual', 'legacy-v4') },
        { weight: 1, arbitrary: fc.constant('headless') },
      ),
      ipIndex: fc.integer({ min: 1, max: 250 }),
      ports: portsArb(portNames, protocols),
      externalIPs: fc.subarray([...V4_EXTERNAL, ...V6_EXTERNAL]),
      vips: fc.subarray([...V4_VIPS, ...V6_VIPS]),
      proxyMode: fc.boolean(),
      hostnameIngress: fc.boolean(),
      sourceRanges: fc.subarray(SOURCE_RANGES),
      affinity: fc.constantFrom('None', 'ClientIP', undefined),
      timeout: maybe(fc.integer({ min: 1, max: 86400 })),
      etp: fc.constantFrom('Cluster', 'Local', undefined),
      itp: fc.constantFrom('Cluster', 'Local', undefined),
      healthCheckNodePort: fc.oneof(fc.constant(0), fc.integer({ min: 30000, max: 32767 })),
    })
    .map((g): ServiceBody => {
      const v4 = `172.30.0.${g.ipIndex}`;
      const v6 = `fd00:30::${g.ipIndex.toString(16)}`;
      const ipSpec: Raw =
        g.families === 'v4'
          ? { clusterIP: v4, clusterIPs: [v4], ipFamilies: ['IPv4'] }
          : g.families === 'v6'
            ? { clusterIP: v6, clusterIPs: [v6], ipFamilies: ['IPv6'] }
            : g.families === 'dual'
              ? { clusterIP: v4, clusterIPs: [v4, v6], ipFamilies: ['IPv4', 'IPv6'] }
              : g.families === 'legacy-v4'
                ? { clusterIP: `172.030.0.${g.ipIndex}` }
                : { clusterIP: 'None' };
      const spec: Raw = {
        type: g.type,
        ...ipSpec,
        ports: g.ports.map((p) => ({
          ...(p.name === '' ? {} : { name: p.name }),
          protocol: p.protocol,
          port: p.port,
          ...(p.nodePort ? { nodePort: p.nodePort } : {}),
        })),
        externalIPs: g.externalIPs,
        loadBalancerSourceRanges: g.sourceRanges,
        externalTrafficPolicy: g.etp,
        internalTrafficPolicy: g.itp,
        healthCheckNodePort: g.healthCheckNodePort || undefined,
      };
      if (g.affinity) spec.sessionAffinity = g.affinity;
      if (g.affinity === 'ClientIP' && g.timeout)
        spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: g.timeout } };
      const ingress: Raw[] = g.vips.map((ip, i) =>
        g.proxyMode && i === 0 ? { ip, ipMode: 'Proxy' } : { ip },
      );
      if (g.hostnameIngress) ingress.push({ hostname: 'lb.example.com' });
      const families: ServiceBody['families'] =
        g.type === 'ExternalName' || g.families === 'headless'
          ? []
          : g.families === 'dual'
            ? ['IPv4', 'IPv6']
            : g.families === 'v6'
              ? ['IPv6']
              : ['IPv4'];
      return { spec, status: { loadBalancer: { ingress } }, ports: g.ports, families };
    });
}

const NAMESPACES = ['ns1', 'ns2', 'a-b'];
const SERVICE_NAMES = ['svc1', 'svc2', 'web', 'a', 'a-b'];
const PORT_NAMES = ['', 'http', 'https', 'dns', 'p80', 'metrics'];

/** A whole cluster as add events (Services, their slices, an orphan slice maybe, the Node). */
export interface Cluster {
  objects: Raw[];
  serviceKeys: string[];
}

export const clusterArb: fc.Arbitrary<Cluster> = fc
  .uniqueArray(fc.tuple(fc.constantFrom(...NAMESPACES), fc.constantFrom(...SERVICE_NAMES)), {
    maxLength: 6,
    selector: ([ns, name]) => `${ns}/${name}`,
  })
  .chain((keys) =>
    fc.tuple(
      ...keys.map(([ns, name]) =>
        serviceBodyArb(PORT_NAMES).chain((body) =>
          fc
            .tuple(sliceArb(ns, name, `${name}-a`, body, 7), sliceArb(ns, name, `${name}-b`, body, 5))
            .chain(([a, b]) =>
              fc
                .constantFrom<Raw[]>([], [a], [a, b], [a, b])
                .map((slices) => [
                  serviceObject(name, { namespace: ns, spec: body.spec, status: body.status }),
                  ...slices,
                ]),
            ),
        ),
      ),
    ),
  )
  .map((groups) => {
    const objects = groups.flat();
    const serviceKeys = objects
      .filter((o) => o.kind === 'Service')
      .map((o) => {
        const meta = o.metadata as { namespace: string; name: string };
        return `${meta.namespace}/${meta.name}`;
      });
    return { objects, serviceKeys };
  });

export const nodeArb = fc
  .record({
    zone: maybe(fc.constantFrom(...ZONES)),
    ips: fc.subarray(['192.168.0.2', 'fd00::2']),
  })
  .map((n) =>
    nodeObject(NODE_NAME, {
      ips: n.ips,
      podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
      ...(n.zone ? { zone: n.zone } : {}),
    }),
  );

export const INTERFACES = {
  lo: ['127.0.0.1/8', '::1/128'],
  eth0: ['192.168.0.2/24', 'fd00::2/64'],
  eth1: ['10.0.0.5/8'],
};

/** The option fields both modes take alike: masquerading, local-traffic detection, random-fully. */
const sharedOptionArbs = {
  masqueradeAll: fc.boolean(),
  masqueradeBit: fc.integer({ min: 0, max: 31 }),
  detectLocalMode: fc.constantFrom('ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'),
  clusterCIDR: fc.constantFrom('', '10.244.0.0/16', 'fd00:10:244::/56', '10.244.0.0/16,fd00:10:244::/56'),
  bridgeInterface: fc.constant('cbr0'),
  interfaceNamePrefix: fc.constant('veth'),
  randomFully: fc.boolean(),
};

export const optionsArb: fc.Arbitrary<IptablesOptions> = fc.record({
  ...sharedOptionArbs,
  localhostNodePorts: fc.boolean(),
  nodePortAddresses: fc.oneof(
    fc.constant([] as string[]),
    fc.constant(['primary']),
    fc.subarray(['192.168.0.0/16', '127.0.0.0/8', '10.0.0.0/8', 'fd00::/8', '::1/128', '0.0.0.0/0'], {
      minLength: 1,
    }),
  ),
  interfaces: fc.constant(INTERFACES),
  nfacct: fc.subarray(['ct_state_invalid_dropped_pkts', 'localhost_nps_accepted_pkts']),
  tcpBeLiberal: fc.boolean(),
});

/** IPVS mode's renderer options, every field random. */
export const ipvsOptionsArb: fc.Arbitrary<IpvsOptions> = fc.record({
  ...sharedOptionArbs,
  scheduler: fc.constantFrom('', ...IPVS_SCHEDULERS),
  nodePortAddresses: fc.oneof(
    fc.constant([] as string[]),
    fc.constant(['primary']),
    fc.subarray(['192.168.0.0/16', '127.0.0.0/8', '10.0.0.0/8', 'fd00::/8', 'fe80::/10', '10.96.0.0/12'], {
      minLength: 1,
    }),
  ),
  interfaces: fc.constantFrom<Record<string, string[]>>(
    INTERFACES,
    {},
    {
      ...INTERFACES,
      docker0: ['172.17.0.1/16', 'fe80::1/64'],
      'kube-ipvs0': ['10.96.0.10/32', 'fd00:96::10/128'],
    },
  ),
  excludeCIDRs: fc.subarray(['10.96.0.0/12', 'fd00:96::/64']),
  strictARP: fc.boolean(),
  tcpTimeoutMs: fc.nat(),
  tcpFinTimeoutMs: fc.nat(),
  udpTimeoutMs: fc.nat(),
});

export const topologyArb: fc.Arbitrary<TopologyOptions> = fc.record({ preferSameNode: fc.boolean() });

/** A Service with 1001 endpoints per family, to cross the large-cluster threshold (spec §17). */
export function bulkService(): Raw[] {
  const endpointsV4: Raw[] = [];
  const endpointsV6: Raw[] = [];
  for (let i = 0; i < 1001; i++) {
    endpointsV4.push({ addresses: [`10.250.${i >> 8}.${i & 255}`], nodeName: i % 2 ? NODE_NAME : 'node-2' });
    endpointsV6.push({ addresses: [`fd00:250::${i.toString(16)}`] });
  }
  const spec = {
    type: 'NodePort',
    clusterIP: '172.30.1.1',
    clusterIPs: ['172.30.1.1', 'fd00:30:1::1'],
    ipFamilies: ['IPv4', 'IPv6'],
    ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
  };
  const ports = [{ name: 'http', port: 8080, protocol: 'TCP' }];
  return [
    serviceObject('bulk', { namespace: 'big', spec }),
    sliceObject('bulk-v4', endpointsV4, { namespace: 'big', service: 'bulk', ports }),
    sliceObject('bulk-v6', endpointsV6, { namespace: 'big', service: 'bulk', ports, addressType: 'IPv6' }),
  ];
}

export const events = (objects: readonly Raw[]): ObjectEvent[] => objects.map((o) => add(o));
