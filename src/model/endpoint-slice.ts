/**
 * discovery.k8s.io/v1 EndpointSlice -> endpoints per service port (spec §2.1).
 *
 * A slice that cannot be attributed (no service-name label, bad metadata) is skipped
 * whole; a single malformed endpoint or port is skipped alone and reported, so one bad
 * address does not take the service's other endpoints with it.
 */

import type { ObjectProblem } from '../errors.js';
import { getOrCreate } from './collections.js';
import { type IPFamily, joinHostPort, parseIP } from './ip.js';
import { invalidDns1123Label, invalidDns1123Subdomain, invalidPort } from './names.js';
import { arr, FieldError, isRecord, obj, optBool, optNum, optStr, type RawObject, refOf } from './raw.js';
import type { Endpoint, Protocol } from './types.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const PROTOCOLS = new Set<string>(['TCP', 'UDP', 'SCTP']);

export interface SlicePort {
  name: string;
  port: number;
  protocol: Protocol;
}

export interface SliceEndpoint {
  /** canonical IP, of the slice's addressType (parsed bytes are not kept: 100,000 endpoints' cost 25 MiB) */
  ip: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName: string | null;
  zone: string | null;
  zoneHints: ReadonlySet<string> | null;
  nodeHints: ReadonlySet<string> | null;
}

export interface ParsedSlice {
  namespace: string;
  name: string;
  serviceName: string;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  ports: SlicePort[];
  endpoints: SliceEndpoint[];
}

export interface SliceParseResult {
  slice: ParsedSlice | null;
  problems: ObjectProblem[];
}

export function parseEndpointSlice(raw: unknown): SliceParseResult {
  const ref = refOf('EndpointSlice', raw);
  const problems: ObjectProblem[] = [];
  const report = (e: FieldError) => problems.push({ ref, field: e.field, message: e.message });
  try {
    if (!isRecord(raw)) throw new FieldError('', 'must be an object');
    return { slice: parseSliceFields(raw, report), problems };
  } catch (e) {
    if (!(e instanceof FieldError)) throw e;
    report(e);
    return { slice: null, problems };
  }
}

function hintNames(hints: RawObject, key: string, path: string): ReadonlySet<string> | null {
  const list = arr(hints, key, path);
  if (list.length === 0) return null;
  return new Set(
    list.map((h, i) => {
      const name = isRecord(h) ? h.name : undefined;
      if (typeof name !== 'string') throw new FieldError(`${path}[${i}].name`, 'must be a string');
      return name;
    }),
  );
}

function parseSliceFields(raw: RawObject, report: (e: FieldError) => void): ParsedSlice {
  const meta = obj(raw, 'metadata', 'metadata');
  const name = optStr(meta, 'name', 'metadata.name');
  const nameErr = invalidDns1123Subdomain(name);
  if (nameErr) throw new FieldError('metadata.name', nameErr);
  const namespace = optStr(meta, 'namespace', 'metadata.namespace') ?? 'default';
  const nsErr = invalidDns1123Label(namespace);
  if (nsErr) throw new FieldError('metadata.namespace', nsErr);
  const labels = obj(meta, 'labels', 'metadata.labels');
  const serviceName = labels[SERVICE_NAME_LABEL];
  const labelPath = `metadata.labels["${SERVICE_NAME_LABEL}"]`;
  if (serviceName === undefined)
    throw new FieldError(labelPath, 'is missing: the slice belongs to no Service');
  const svcErr = invalidDns1123Label(serviceName);
  if (svcErr || typeof serviceName !== 'string')
    throw new FieldError(labelPath, svcErr ?? 'must be a string');

  const addressType = optStr(raw, 'addressType', 'addressType');
  if (addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN') {
    throw new FieldError('addressType', `must be IPv4, IPv6 or FQDN, not ${JSON.stringify(addressType)}`);
  }

  const ports: SlicePort[] = [];
  arr(raw, 'ports', 'ports').forEach((p, i) => {
    const path = `ports[${i}]`;
    try {
      if (!isRecord(p)) throw new FieldError(path, 'must be an object');
      const portName = optStr(p, 'name', `${path}.name`);
      const port = optNum(p, 'port', `${path}.port`);
      // kube-proxy ignores ports without a name (nil) or without a number.
      if (portName === undefined || port === undefined || port === 0) return;
      if (portName !== '') {
        const err = invalidDns1123Label(portName);
        if (err) throw new FieldError(`${path}.name`, err);
      }
      const portErr = invalidPort(port);
      if (portErr) throw new FieldError(`${path}.port`, portErr);
      const protocol = optStr(p, 'protocol', `${path}.protocol`) ?? 'TCP';
      if (!PROTOCOLS.has(protocol)) {
        throw new FieldError(`${path}.protocol`, `unsupported value ${JSON.stringify(protocol)}`);
      }
      ports.push({ name: portName, port, protocol: protocol as Protocol });
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      report(e);
    }
  });

  const endpoints: SliceEndpoint[] = [];
  arr(raw, 'endpoints', 'endpoints').forEach((ep, i) => {
    const path = `endpoints[${i}]`;
    try {
      if (!isRecord(ep)) throw new FieldError(path, 'must be an object');
      const addresses = arr(ep, 'addresses', `${path}.addresses`);
      if (addresses.length === 0) throw new FieldError(`${path}.addresses`, 'must not be empty');
      const first = addresses[0];
      // Only addresses[0] is used (kube-proxy); FQDN slices carry names, not IPs.
      if (addressType === 'FQDN') return;
      const ip = typeof first === 'string' ? parseIP(first) : null;
      if (!ip)
        throw new FieldError(`${path}.addresses[0]`, `${JSON.stringify(first)} is not a valid IP address`);
      const cond = obj(ep, 'conditions', `${path}.conditions`);
      const hints = obj(ep, 'hints', `${path}.hints`);
      const endpoint: SliceEndpoint = {
        ip: ip.text,
        ready: optBool(cond, 'ready', `${path}.conditions.ready`) ?? true,
        serving: optBool(cond, 'serving', `${path}.conditions.serving`) ?? true,
        terminating: optBool(cond, 'terminating', `${path}.conditions.terminating`) ?? false,
        nodeName: optStr(ep, 'nodeName', `${path}.nodeName`) ?? null,
        zone: optStr(ep, 'zone', `${path}.zone`) ?? null,
        zoneHints: hintNames(hints, 'forZones', `${path}.hints.forZones`),
        nodeHints: hintNames(hints, 'forNodes', `${path}.hints.forNodes`),
      };
      // An address of the other family is of neither family's endpoints.
      if (ip.family === addressType) endpoints.push(endpoint);
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      report(e);
    }
  });

  return { namespace, name: name as string, serviceName, addressType, ports, endpoints };
}

/** Key of an endpoint list: port name and protocol (spec §2.1). */
export function portKey(portName: string, protocol: Protocol): string {
  return `${portName}/${protocol}`;
}

/**
 * Which copy of an endpoint listed twice wins: a non-terminating one (current
 * kube-proxy), then a local one (older kube-proxy); otherwise the first in slice-name
 * order. kube-proxy iterates slices in Go map order, so among equals its pick is random.
 */
function preferDuplicate(candidate: SliceEndpoint, candidateLocal: boolean, existing: Endpoint): boolean {
  if (candidate.terminating !== existing.terminating) return !candidate.terminating;
  return candidateLocal && !existing.isLocal;
}

/**
 * Merges the slices of one Service into endpoint lists per port key, for one family.
 * Endpoints are de-duplicated by endpoint string (see preferDuplicate) and sorted
 * byte-wise by it, the order the probability rules follow.
 */
export function mergeSlices(
  slices: readonly ParsedSlice[],
  family: IPFamily,
  nodeName: string,
): Map<string, Endpoint[]> {
  const byPort = new Map<string, Map<string, Endpoint>>();
  const ordered = [...slices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const slice of ordered) {
    if (slice.addressType !== family) continue;
    for (const sp of slice.ports) {
      const key = portKey(sp.name, sp.protocol);
      const set = getOrCreate(byPort, key, () => new Map<string, Endpoint>());
      for (const ep of slice.endpoints) {
        const endpoint = joinHostPort({ family, text: ep.ip }, sp.port);
        const isLocal = ep.nodeName !== null && ep.nodeName === nodeName;
        const existing = set.get(endpoint);
        if (existing && !preferDuplicate(ep, isLocal, existing)) continue;
        set.set(endpoint, {
          ip: ep.ip,
          port: sp.port,
          endpoint,
          ready: ep.ready,
          serving: ep.serving,
          terminating: ep.terminating,
          isLocal,
          nodeName: ep.nodeName,
          zone: ep.zone,
          zoneHints: ep.zoneHints,
          nodeHints: ep.nodeHints,
        });
      }
    }
  }
  const out = new Map<string, Endpoint[]>();
  for (const [key, set] of byPort) {
    out.set(
      key,
      [...set.values()].sort((a, b) => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0)),
    );
  }
  return out;
}
