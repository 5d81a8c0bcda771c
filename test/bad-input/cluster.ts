/**
 * A small, valid cluster that bad-input tests add malformed objects to, and the render
 * helpers that compare a render with and without them.
 */
import { stringify } from 'yaml';
import { type HostFacts, neutralHostFacts } from '../../src/config/host.js';
import { defaultKubeProxyConfiguration, type KubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { formatProblem } from '../../src/errors.js';
import type { IPFamily } from '../../src/model/ip.js';
import { type RenderOnceResult, renderOnce } from '../../src/sync/render-once.js';
import { add, ep, nodeObject, type Raw, serviceObject, sliceObject } from '../unit/objects.js';

export const NODE_NAME = 'node-1';

export function baseObjects(): Raw[] {
  return [
    nodeObject(NODE_NAME, { zone: 'zone-a', ips: ['192.168.0.2', 'fd00::2'] }),
    serviceObject('svc1', {
      spec: {
        clusterIP: '172.30.0.41',
        clusterIPs: ['172.30.0.41', 'fd00:30::41'],
        ipFamilies: ['IPv4', 'IPv6'],
        ports: [
          { name: 'p80', port: 80, protocol: 'TCP' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      },
    }),
    sliceObject(
      'svc1-abc',
      [ep('10.180.0.1', { nodeName: NODE_NAME, zone: 'zone-a' }), ep('10.180.0.2', { nodeName: 'node-2' })],
      {
        ports: [
          { name: 'p80', port: 8080, protocol: 'TCP' },
          { name: 'dns', port: 5353, protocol: 'UDP' },
        ],
      },
    ),
    sliceObject('svc1-v6', [ep('fd00:180::1', { nodeName: NODE_NAME })], {
      addressType: 'IPv6',
      ports: [{ name: 'p80', port: 8080, protocol: 'TCP' }],
    }),
    serviceObject('web', {
      namespace: 'ns2',
      spec: {
        type: 'NodePort',
        clusterIP: '172.30.0.42',
        externalTrafficPolicy: 'Local',
        externalIPs: ['192.0.2.10'],
        ports: [{ name: 'http', port: 80, nodePort: 30080, protocol: 'TCP' }],
      },
    }),
    sliceObject(
      'web-1',
      [ep('10.180.1.1', { nodeName: NODE_NAME }), ep('10.180.1.2', { nodeName: 'node-2' })],
      {
        namespace: 'ns2',
        service: 'web',
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      },
    ),
    serviceObject('lb', {
      namespace: 'ns2',
      spec: {
        type: 'LoadBalancer',
        clusterIP: '172.30.0.43',
        loadBalancerSourceRanges: ['203.0.113.0/24'],
        sessionAffinity: 'ClientIP',
        ports: [{ name: 'https', port: 443, nodePort: 30443, protocol: 'TCP' }],
      },
      status: { loadBalancer: { ingress: [{ ip: '198.51.100.7' }] } },
    }),
    sliceObject(
      'lb-1',
      [
        ep('10.180.2.1'),
        ep('10.180.2.2', { conditions: { ready: false, serving: true, terminating: true } }),
      ],
      {
        namespace: 'ns2',
        service: 'lb',
        ports: [{ name: 'https', port: 8443, protocol: 'TCP' }],
      },
    ),
    serviceObject('empty', { spec: { clusterIP: '172.30.0.44' } }),
  ];
}

export function config(overrides: Partial<KubeProxyConfiguration> = {}): KubeProxyConfiguration {
  return {
    ...defaultKubeProxyConfiguration(),
    hostnameOverride: NODE_NAME,
    clusterCIDR: '10.244.0.0/16',
    ...overrides,
  };
}

export function host(overrides: Partial<HostFacts> = {}): HostFacts {
  return { ...neutralHostFacts(), nodeName: NODE_NAME, ...overrides };
}

export interface RenderInput {
  objects: readonly unknown[];
  config?: KubeProxyConfiguration;
  host?: HostFacts;
  family?: IPFamily;
}

export function render(input: RenderInput): RenderOnceResult {
  return renderOnce({
    events: input.objects.map((o) => add(o as Raw)),
    config: input.config ?? config(),
    host: input.host ?? host(),
    family: input.family ?? 'IPv4',
  });
}

export function problemsOf(result: RenderOnceResult): string[] {
  return result.problems.map(formatProblem);
}

/** The manifests as one multi-document YAML file, as `kubectl get -o yaml` might split them. */
export function toYaml(objects: readonly unknown[]): string {
  return objects.map((o) => stringify(o)).join('---\n');
}
