/**
 * Raw Kubernetes objects as `kubectl get -o yaml` would give them, for tests that go through
 * the parsers, the store or renderOnce. Each builder takes a partial spec merged over a
 * realistic default.
 */
import type { ObjectEvent } from '../../src/model/store.js';

export type Raw = Record<string, unknown>;

export interface ServiceOptions {
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  spec?: Raw;
  status?: Raw;
}

export function serviceObject(name: string, opts: ServiceOptions = {}): Raw {
  const metadata: Raw = { name, namespace: opts.namespace ?? 'ns1' };
  if (opts.labels) metadata.labels = opts.labels;
  if (opts.annotations) metadata.annotations = opts.annotations;
  if (opts.resourceVersion) metadata.resourceVersion = opts.resourceVersion;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata,
    spec: {
      type: 'ClusterIP',
      clusterIP: '172.30.0.41',
      ports: [{ name: 'p80', port: 80, protocol: 'TCP', targetPort: 8080 }],
      ...opts.spec,
    },
    ...(opts.status ? { status: opts.status } : {}),
  };
}

export interface SliceOptions {
  namespace?: string;
  service?: string | null;
  labels?: Record<string, string>;
  resourceVersion?: string;
  addressType?: string;
  ports?: unknown[];
}

export function sliceObject(name: string, endpoints: unknown[], opts: SliceOptions = {}): Raw {
  const labels: Record<string, string> = { ...opts.labels };
  const service = opts.service === undefined ? 'svc1' : opts.service;
  if (service !== null) labels['kubernetes.io/service-name'] = service;
  const metadata: Raw = { name, namespace: opts.namespace ?? 'ns1', labels };
  if (opts.resourceVersion) metadata.resourceVersion = opts.resourceVersion;
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata,
    addressType: opts.addressType ?? 'IPv4',
    ports: opts.ports ?? [{ name: 'p80', port: 8080, protocol: 'TCP' }],
    endpoints,
  };
}

/** One slice endpoint: ready on `nodeName` unless told otherwise. */
export function ep(address: string, extra: Raw = {}): Raw {
  return { addresses: [address], conditions: { ready: true, serving: true, terminating: false }, ...extra };
}

export function nodeObject(
  name = 'node-1',
  opts: { zone?: string; ips?: string[]; podCIDRs?: string[] } = {},
): Raw {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name };
  if (opts.zone) labels['topology.kubernetes.io/zone'] = opts.zone;
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels },
    spec: { podCIDRs: opts.podCIDRs ?? ['10.244.1.0/24'] },
    status: {
      addresses: [
        ...(opts.ips ?? ['192.168.0.2']).map((address) => ({ type: 'InternalIP', address })),
        { type: 'Hostname', address: name },
      ],
    },
  };
}

export function add(object: Raw): ObjectEvent {
  const kind = object.kind as ObjectEvent['kind'];
  return { type: 'add', kind, object };
}

export function del(object: Raw): ObjectEvent {
  const kind = object.kind as ObjectEvent['kind'];
  return { type: 'delete', kind, object };
}

/** A deep copy, so a test can mutate one field of a shared object. */
export function clone<T>(o: T): T {
  return structuredClone(o);
}
