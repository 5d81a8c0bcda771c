/**
 * IPVS mode gets the same guarantees as iptables mode: hostile strings in any input that
 * could reach the four texts (ipset entries, ipvsadm lines, kube-ipvs0 addresses, helper
 * rules) are either refused (the object or the configuration) or never printed. A hostile
 * render must print exactly what a clean one prints.
 */
import { describe, expect, it } from 'vitest';
import { formatIpvsState } from '../../src/backends/ipvs/format.js';
import type { HostFacts } from '../../src/config/host.js';
import { type KubeProxyConfiguration, loadKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { InputError } from '../../src/errors.js';
import type { IPFamily } from '../../src/model/ip.js';
import { renderIpvsOnce } from '../../src/sync/render-once.js';
import { add, clone, ep, nodeObject, type Raw } from '../unit/objects.js';
import { baseObjects, config, host, NODE_NAME } from './cluster.js';

const PAYLOADS = [
  'x" -j ACCEPT "',
  'x\n-A KUBE-SERVICES -j ACCEPT',
  'x\nCOMMIT\n*filter\n-A INPUT -j ACCEPT',
  'x\n### ipvs\n-A -t 10.0.0.1:80 -s rr',
  'x\ncreate EVIL hash:ip',
  'x,tcp:80',
  "x' -j ACCEPT",
  'x\r-j ACCEPT',
  'x -s rr',
];
const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

interface Input {
  objects: readonly Raw[];
  config?: KubeProxyConfiguration;
  host?: HostFacts;
  family?: IPFamily;
}

function renderText(input: Input) {
  const result = renderIpvsOnce({
    events: input.objects.map((o) => add(o)),
    config: input.config ?? config({ mode: 'ipvs' }),
    host: input.host ?? host(),
    family: input.family ?? 'IPv4',
  });
  return { text: formatIpvsState(result.render), problems: result.problems };
}

function expectSame(hostile: readonly Raw[], clean: readonly Raw[], extra: Omit<Input, 'objects'> = {}) {
  for (const family of FAMILIES) {
    const h = renderText({ ...extra, objects: hostile, family }).text;
    expect(h.split('\n').filter((l) => l.startsWith('### '))).toEqual([
      '### ipset',
      '### ipvs',
      '### kube-ipvs0',
      '### iptables',
    ]);
    expect(h).toBe(renderText({ ...extra, objects: clean, family }).text);
  }
}

const metaOf = (o: Raw) => o.metadata as Raw;
const specOf = (o: Raw) => o.spec as Raw;

function editing(name: string, edit: (o: Raw) => void): Raw[] {
  const objects = clone(baseObjects());
  edit(objects.find((o) => metaOf(o).name === name)!);
  return objects;
}
const without = (name: string) => baseObjects().filter((o) => metaOf(o).name !== name);

describe.each(PAYLOADS)('payload %j in IPVS mode', (payload) => {
  it('in a Service name, port name, address or LB field: the Service is refused and nothing of it printed', () => {
    const edits: [string, (o: Raw) => void][] = [
      [
        'web',
        (o) => {
          metaOf(o).name = `web${payload}`;
        },
      ],
      [
        'web',
        (o) => {
          (specOf(o).ports as Raw[])[0]!.name = `http${payload}`;
        },
      ],
      [
        'web',
        (o) => {
          specOf(o).clusterIP = `172.30.0.42${payload}`;
        },
      ],
      [
        'web',
        (o) => {
          specOf(o).externalIPs = [`192.0.2.10${payload}`];
        },
      ],
      [
        'lb',
        (o) => {
          (o.status as Raw).loadBalancer = { ingress: [{ ip: `198.51.100.7${payload}` }] };
        },
      ],
      [
        'lb',
        (o) => {
          specOf(o).loadBalancerSourceRanges = [`203.0.113.0/24${payload}`];
        },
      ],
    ];
    for (const [name, edit] of edits) {
      const objects = editing(name, edit);
      expect(renderText({ objects }).problems).toHaveLength(1);
      expectSame(objects, without(name));
    }
  });

  it('in an endpoint address: only that endpoint is refused', () => {
    const objects = editing('web-1', (o) => {
      (o.endpoints as Raw[]).push(ep(`10.180.1.3${payload}`, { nodeName: NODE_NAME }));
    });
    expect(renderText({ objects }).problems).toHaveLength(1);
    expectSame(objects, baseObjects());
  });

  it('in node names, zones, labels and annotations: never printed', () => {
    const hostile = editing('web-1', (o) => {
      (o.endpoints as Raw[]).push(ep('10.180.1.3', { nodeName: payload, zone: payload }));
      metaOf(o).annotations = { note: payload };
    });
    const clean = editing('web-1', (o) => {
      (o.endpoints as Raw[]).push(ep('10.180.1.3', { nodeName: 'node-9', zone: 'zone-q' }));
    });
    expectSame(hostile, clean);
  });

  it('in the Node addresses and host facts: bad IPs are dropped, interface names never printed', () => {
    const swapNode = (n: Raw) => [n, ...baseObjects().slice(1)];
    const hostileNode = nodeObject(NODE_NAME, { ips: [`192.168.0.2${payload}`] });
    const cleanNode = nodeObject(NODE_NAME, { ips: [] });
    expectSame(swapNode(hostileNode), swapNode(cleanNode));
    const interfaces = { eth0: ['192.168.0.2/24', 'fd00::2/64'] };
    expectSame(baseObjects(), baseObjects(), {
      host: host({ interfaces: { [`eth0${payload}`]: interfaces.eth0 }, nodeIPs: [`10.9.9.9${payload}`] }),
    });
    for (const family of FAMILIES) {
      expect(
        renderText({
          objects: baseObjects(),
          family,
          host: host({ interfaces: { [`eth0${payload}`]: interfaces.eth0 } }),
        }).text,
      ).toBe(renderText({ objects: baseObjects(), family, host: host({ interfaces }) }).text);
    }
  });

  it('in the ipvs configuration: the scheduler, excludeCIDRs and detector settings are refused', () => {
    for (const cfg of [
      config({ mode: 'ipvs', ipvs: { ...config().ipvs, scheduler: `rr${payload}` } }),
      config({ mode: 'ipvs', ipvs: { ...config().ipvs, excludeCIDRs: [`10.0.0.0/8${payload}`] } }),
      config({ mode: 'ipvs', clusterCIDR: `10.244.0.0/16${payload}` }),
      config({ mode: 'ipvs', nodePortAddresses: [`192.168.0.0/16${payload}`] }),
      config({
        mode: 'ipvs',
        detectLocalMode: 'BridgeInterface',
        detectLocal: { bridgeInterface: `cbr0${payload}`, interfaceNamePrefix: '' },
      }),
    ]) {
      expect(() => renderText({ objects: baseObjects(), config: cfg })).toThrow(InputError);
    }
  });
});

describe('the ipvs block of the configuration file', () => {
  const HEADER =
    'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n';
  it.each([
    [
      '  scheduler: "rr -j ACCEPT"\n',
      /^ipvs\.yaml:5: ipvs\.scheduler: must be one of .* not "rr -j ACCEPT"$/,
    ],
    ['  udpTimeout: -5s\n', /^ipvs\.yaml:5: ipvs\.udpTimeout: must be greater than or equal to 0$/],
    ['  tcpFinTimeout: soon\n', /^ipvs\.yaml:5: ipvs\.tcpFinTimeout: /],
    [
      '  excludeCIDRs:\n  - 10.0.0.0/8\n  - "10.0.0.0/8\\n-A INPUT -j ACCEPT"\n',
      /^ipvs\.yaml:7: ipvs\.excludeCIDRs\[1\]: must be a valid CIDR/,
    ],
  ])('%j names file, line and field', (body, message) => {
    let error: unknown;
    try {
      loadKubeProxyConfiguration(HEADER + body, 'ipvs.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(message);
  });
});
