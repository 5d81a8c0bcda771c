/**
 * discovery.k8s.io/v1 EndpointSlice -> endpoints per service port (spec §2.1).
 *
 * A slice that cannot be attributed (no service-name label, bad metadata) is skipped
 * whole; a single malformed endpoint or port is skipped alone and reported, so one bad
 * address does not take the service's other endpoints with it.
 */

import type { ObjectProblem } from '../errors.js';
import { getOrCreate, keptList } from './collections.js';
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
  /**
   * The slice's endpoints on this port, in the form snapshots hand to the renderers:
   * de-duplicated (preferDuplicate) and sorted byte-wise by endpoint string. A service
   * port whose endpoints all come from this one slice port uses this very array.
   */
  endpoints: readonly Endpoint[];
}

export interface ParsedSlice {
  namespace: string;
  name: string;
  serviceName: string;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  ports: SlicePort[];
}

export interface SliceParseResult {
  slice: ParsedSlice | null;
  problems: ObjectProblem[];
}

/**
 * Parses a slice for the proxy on node `nodeName` (fixed for the process): each endpoint's
 * isLocal is decided here, once, so that slices hold the endpoints snapshots use.
 */
export function parseEndpointSlice(raw: unknown, nodeName: string): SliceParseResult {
  const ref = refOf('EndpointSlice', raw);
  const problems: ObjectProblem[] = [];
  const report = (e: FieldError) => problems.push({ ref, field: e.field, message: e.message });
  try {
    if (!isRecord(raw)) throw new FieldError('', 'must be an object');
    return { slice: parseSliceFields(raw, nodeName, report), problems };
  } catch (e) {
    if (!(e instanceof FieldError)) throw e;
    report(e);
    return { slice: null, problems };
  }
}

/**
 * The names of a hints list, or null when it is empty. `shared` holds the sets already made
 * for the slice: its endpoints mostly carry the same few hints, and a Set costs ~150 bytes.
 */
function hintNames(
  hints: RawObject,
  key: string,
  path: string,
  shared: Map<string, ReadonlySet<string>>,
): ReadonlySet<string> | null {
  const list = arr(hints, key, path);
  if (list.length === 0) return null;
  const names = list.map((h, i) => {
    const name = isRecord(h) ? h.name : undefined;
    if (typeof name !== 'string') throw new FieldError(`${path}[${i}].name`, 'must be a string');
    return name;
  });
  return getOrCreate(shared, JSON.stringify(names), () => new Set(names));
}

function parseSliceFields(raw: RawObject, nodeName: string, report: (e: FieldError) => void): ParsedSlice {
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

  const ports: { name: string; port: number; protocol: Protocol }[] = [];
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

  // One Endpoint per (endpoint, port), in slice order until sorted below.
  const perPort: Endpoint[][] = ports.map(() => []);
  const hintSets = new Map<string, ReadonlySet<string>>();
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
      const ready = optBool(cond, 'ready', `${path}.conditions.ready`) ?? true;
      const serving = optBool(cond, 'serving', `${path}.conditions.serving`) ?? true;
      const terminating = optBool(cond, 'terminating', `${path}.conditions.terminating`) ?? false;
      const epNode = optStr(ep, 'nodeName', `${path}.nodeName`) ?? null;
      const zone = optStr(ep, 'zone', `${path}.zone`) ?? null;
      const zoneHints = hintNames(hints, 'forZones', `${path}.hints.forZones`, hintSets);
      const nodeHints = hintNames(hints, 'forNodes', `${path}.hints.forNodes`, hintSets);
      // An address of the other family is of neither family's endpoints.
      if (ip.family !== addressType) return;
      const isLocal = epNode !== null && epNode === nodeName;
      for (let p = 0; p < ports.length; p++) {
        const port = ports[p]!.port;
        perPort[p]!.push({
          ip: ip.text,
          port,
          endpoint: joinHostPort(ip, port),
          ready,
          serving,
          terminating,
          isLocal,
          nodeName: epNode,
          zone,
          zoneHints,
          nodeHints,
        });
      }
    } catch (e) {
      if (!(e instanceof FieldError)) throw e;
      report(e);
    }
  });

  return {
    namespace,
    name: name as string,
    serviceName,
    addressType,
    // A literal, not a spread: V8 gives each object made by `{ ...sp, endpoints }` a hidden
    // class of its own (~250 bytes apiece).
    ports: ports.map((sp, p) => ({
      name: sp.name,
      port: sp.port,
      protocol: sp.protocol,
      endpoints: keptList(sortedUnique(perPort[p]!)),
    })),
  };
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
function preferDuplicate(candidate: Endpoint, existing: Endpoint): boolean {
  if (candidate.terminating !== existing.terminating) return !candidate.terminating;
  return candidate.isLocal && !existing.isLocal;
}

const byEndpoint = (a: Endpoint, b: Endpoint) =>
  a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0;

/**
 * `list` (in slice order, then slice-name order) sorted byte-wise by endpoint string, one
 * copy of each endpoint (see preferDuplicate). The sort is stable, so among the copies of
 * an endpoint the earliest listed comes first, as the merge's "first seen" wants. Sorts
 * `list` in place and returns it when there is no duplicate.
 */
function sortedUnique(list: Endpoint[]): Endpoint[] {
  list.sort(byEndpoint);
  let out = 0;
  for (let i = 0; i < list.length; i++) {
    const ep = list[i]!;
    if (out > 0 && list[out - 1]!.endpoint === ep.endpoint) {
      if (preferDuplicate(ep, list[out - 1]!)) list[out - 1] = ep;
    } else list[out++] = ep;
  }
  list.length = out;
  return list;
}

/**
 * Merges the slices of one Service into endpoint lists per port key, for one family:
 * de-duplicated by endpoint string (see preferDuplicate) and sorted byte-wise by it, the
 * order the probability rules follow. A port key served by a single slice port (the usual
 * case) gets that slice port's array itself, so each endpoint exists once in the process
 * and an unchanged slice keeps its arrays.
 */
export function mergeSlices(
  slices: readonly ParsedSlice[],
  family: IPFamily,
): Map<string, readonly Endpoint[]> {
  const sources = new Map<string, (readonly Endpoint[])[]>();
  const ordered =
    slices.length > 1 ? [...slices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : slices;
  for (const slice of ordered) {
    if (slice.addressType !== family) continue;
    for (const sp of slice.ports)
      getOrCreate(sources, portKey(sp.name, sp.protocol), () => []).push(sp.endpoints);
  }
  const out = new Map<string, readonly Endpoint[]>();
  for (const [key, lists] of sources)
    out.set(key, lists.length === 1 ? lists[0]! : sortedUnique(lists.flat()));
  return out;
}
