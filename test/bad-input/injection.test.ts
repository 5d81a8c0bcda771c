/**
 * Restore-text injection: hostile strings in every input that could reach the rules. The
 * render must have exactly the lines of a clean render (no extra rule, no extra table):
 * either the value is refused (the object, endpoint or configuration is rejected) or it
 * never reaches the text.
 */
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import type { IPFamily } from '../../src/model/ip.js';
import { clone, ep, nodeObject, type Raw, serviceObject, sliceObject } from '../unit/objects.js';
import { baseObjects, config, host, NODE_NAME, render } from './cluster.js';

const PAYLOADS = [
  'x" -j ACCEPT "',
  'x\n-A KUBE-SERVICES -j ACCEPT',
  'x\nCOMMIT\n*filter\n-A INPUT -j ACCEPT',
  '*filter',
  'COMMIT',
  "x' -j ACCEPT",
  'x\r-j ACCEPT',
  'x -j ACCEPT',
];

const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

function expectCleanLines(hostile: ReturnType<typeof render>, clean: ReturnType<typeof render>) {
  const text = hostile.render.text;
  expect(text.split('\n').filter((l) => l.startsWith('*'))).toEqual(['*filter', '*nat']);
  expect(text).toBe(clean.render.text);
}

function expectSame(hostileObjects: readonly unknown[], cleanObjects: readonly unknown[]) {
  for (const family of FAMILIES) {
    expectCleanLines(render({ objects: hostileObjects, family }), render({ objects: cleanObjects, family }));
  }
}

/** The base objects with `edit` applied to the object named `name`. */
function editing(name: string, edit: (o: Raw) => void): Raw[] {
  const objects = clone(baseObjects());
  const target = objects.find((o) => (o.metadata as Raw).name === name);
  if (!target) throw new Error(`no object ${name}`);
  edit(target);
  return objects;
}

const specOf = (o: Raw) => o.spec as Raw;
const portsOf = (o: Raw) => specOf(o).ports as Raw[];
const endpointsOf = (o: Raw) => o.endpoints as Raw[];
const metaOf = (o: Raw) => o.metadata as Raw;

describe.each(PAYLOADS)('payload %j', (payload) => {
  it('in a Service name, namespace or port name: the Service is refused', () => {
    for (const edit of [
      (o: Raw) => {
        metaOf(o).name = `web${payload}`;
      },
      (o: Raw) => {
        metaOf(o).namespace = `ns2${payload}`;
      },
      (o: Raw) => {
        portsOf(o)[0]!.name = `http${payload}`;
      },
      (o: Raw) => {
        portsOf(o)[0]!.protocol = `TCP${payload}`;
      },
      (o: Raw) => {
        specOf(o).clusterIP = `172.30.0.42${payload}`;
      },
      (o: Raw) => {
        specOf(o).externalIPs = [`192.0.2.10${payload}`];
      },
      (o: Raw) => {
        specOf(o).type = `NodePort${payload}`;
      },
      (o: Raw) => {
        specOf(o).externalTrafficPolicy = `Local${payload}`;
      },
    ]) {
      const objects = editing('web', edit);
      const result = render({ objects });
      expect(result.problems).toHaveLength(1);
      expectSame(
        objects,
        baseObjects().filter((o) => metaOf(o).name !== 'web'),
      );
    }
  });

  it('in LB ingress IPs and source ranges: the Service is refused', () => {
    for (const edit of [
      (o: Raw) => {
        (o.status as Raw).loadBalancer = { ingress: [{ ip: `198.51.100.7${payload}` }] };
      },
      (o: Raw) => {
        specOf(o).loadBalancerSourceRanges = [`203.0.113.0/24${payload}`];
      },
    ]) {
      const objects = editing('lb', edit);
      expect(render({ objects }).problems).toHaveLength(1);
      expectSame(
        objects,
        baseObjects().filter((o) => metaOf(o).name !== 'lb'),
      );
    }
  });

  it('in annotations and labels: ignored, the Service renders as without them', () => {
    const objects = editing('web', (o) => {
      metaOf(o).annotations = { [`note${payload.replace(/\W/g, '')}`]: payload, plain: payload };
      metaOf(o).labels = { app: payload };
    });
    expect(render({ objects }).problems).toEqual([]);
    expectSame(objects, baseObjects());
  });

  it('in an endpoint address: only that endpoint is refused', () => {
    const objects = editing('web-1', (o) => {
      endpointsOf(o).push(ep(`10.180.1.3${payload}`, { nodeName: NODE_NAME }));
    });
    expect(render({ objects }).problems).toHaveLength(1);
    expectSame(objects, baseObjects());
  });

  it('in a slice port name, protocol or service label: refused', () => {
    for (const edit of [
      (o: Raw) => {
        (o.ports as Raw[])[0]!.name = `http${payload}`;
      },
      (o: Raw) => {
        (o.ports as Raw[])[0]!.protocol = `TCP${payload}`;
      },
      (o: Raw) => {
        (metaOf(o).labels as Raw)['kubernetes.io/service-name'] = `web${payload}`;
      },
      (o: Raw) => {
        metaOf(o).name = `web-1${payload}`;
      },
    ]) {
      const objects = editing('web-1', edit);
      expect(render({ objects }).problems).toHaveLength(1);
      expectSame(
        objects,
        baseObjects().filter((o) => metaOf(o).name !== 'web-1'),
      );
    }
  });

  it('in nodeName, zone and hints: never printed, the endpoint is simply not local / not hinted here', () => {
    const hostile = editing('web-1', (o) => {
      endpointsOf(o).push(
        ep('10.180.1.3', {
          nodeName: payload,
          zone: payload,
          hints: { forZones: [{ name: payload }], forNodes: [{ name: payload }] },
        }),
      );
    });
    const clean = editing('web-1', (o) => {
      endpointsOf(o).push(
        ep('10.180.1.3', {
          nodeName: 'node-9',
          zone: 'zone-q',
          hints: { forZones: [{ name: 'zone-q' }], forNodes: [{ name: 'node-9' }] },
        }),
      );
    });
    expect(render({ objects: hostile }).problems).toEqual([]);
    expectSame(hostile, clean);
  });

  it('in the Node: labels, addresses and pod CIDRs never reach the text', () => {
    const hostileNode = nodeObject(NODE_NAME, {
      zone: payload,
      ips: [`192.168.0.2${payload}`],
      podCIDRs: [`10.244.1.0/24${payload}`],
    });
    const cleanNode = nodeObject(NODE_NAME, { zone: 'zone-q', ips: [], podCIDRs: [] });
    const swapNode = (n: Raw) => [n, ...baseObjects().slice(1)];
    const nodeCIDR = config({ detectLocalMode: 'NodeCIDR' });
    for (const family of FAMILIES) {
      for (const cfg of [config(), nodeCIDR]) {
        expectCleanLines(
          render({ objects: swapNode(hostileNode), family, config: cfg }),
          render({ objects: swapNode(cleanNode), family, config: cfg }),
        );
      }
    }
  });

  it('in the node name (hostnameOverride, host facts): never printed', () => {
    for (const family of FAMILIES) {
      const clean = render({ objects: baseObjects(), family, host: host({ nodeName: 'elsewhere' }) });
      expectCleanLines(render({ objects: baseObjects(), family, host: host({ nodeName: payload }) }), clean);
      const viaConfig = render({
        objects: baseObjects(),
        family,
        config: config({ hostnameOverride: payload }),
        host: { ...host(), nodeName: undefined },
      });
      expectCleanLines(viaConfig, clean);
    }
  });

  it('in host facts: interface names are never printed, bad node IPs are dropped', () => {
    const cfg = config({ nodePortAddresses: ['192.168.0.0/16', 'fd00::/8'] });
    for (const family of FAMILIES) {
      const clean = render({
        objects: baseObjects(),
        family,
        config: cfg,
        host: host({ interfaces: { eth0: ['192.168.0.2/24', 'fd00::2/64'] } }),
      });
      const hostile = render({
        objects: baseObjects(),
        family,
        config: cfg,
        host: host({
          interfaces: { [`eth0${payload}`]: ['192.168.0.2/24', 'fd00::2/64'] },
          nodeIPs: [`10.9.9.9${payload}`],
        }),
      });
      expectCleanLines(hostile, clean);
    }
  });

  it('in the local-traffic detector settings: the configuration is refused', () => {
    const cases = [
      config({ clusterCIDR: `10.244.0.0/16${payload}` }),
      config({ nodePortAddresses: [`192.168.0.0/16${payload}`] }),
    ];
    // "cbr0COMMIT" is a legal interface name: only payloads with other characters must be refused
    if (!/^[A-Za-z0-9_.@:-]*$/.test(payload)) {
      cases.push(
        config({
          detectLocalMode: 'BridgeInterface',
          detectLocal: { bridgeInterface: `cbr0${payload}`, interfaceNamePrefix: '' },
        }),
        config({
          detectLocalMode: 'InterfaceNamePrefix',
          detectLocal: { bridgeInterface: '', interfaceNamePrefix: `veth${payload}` },
        }),
      );
    }
    for (const cfg of cases) {
      expect(() => render({ objects: baseObjects(), config: cfg })).toThrow(InputError);
    }
  });
});

describe('values that look like rule syntax but are valid', () => {
  it('a Service and namespace called "commit", "filter", "j" and "accept" render normally', () => {
    const objects = [
      ...baseObjects(),
      serviceObject('commit', {
        namespace: 'filter',
        spec: { clusterIP: '172.30.0.90', ports: [{ name: 'j', port: 80 }] },
      }),
      sliceObject('commit-1', [ep('10.180.9.1')], {
        namespace: 'filter',
        service: 'commit',
        ports: [{ name: 'j', port: 80 }],
      }),
    ];
    const { render: r, problems } = render({ objects });
    expect(problems).toEqual([]);
    expect(r.text).toContain(
      '-A KUBE-SERVICES -m comment --comment "filter/commit:j cluster IP" -m tcp -p tcp -d 172.30.0.90 --dport 80',
    );
    expect(r.text.split('\n').filter((l) => l === 'COMMIT')).toHaveLength(2);
  });
});
