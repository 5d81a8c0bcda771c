/**
 * v1 Service -> ServicePorts (spec §1). A Service is validated as a whole: if any field
 * the proxy reads is malformed, the whole Service is skipped and reported, so the rules
 * never describe half of it.
 */
import type { ObjectProblem } from '../errors.js';
import { keptList, NONE } from './collections.js';
import { type IPFamily, parseCIDR, parseIP } from './ip.js';
import { invalidDns1035Label, invalidDns1123Label, invalidPort } from './names.js';
import { arr, FieldError, isRecord, obj, optNum, optStr, type RawObject, refOf } from './raw.js';
import type { Protocol, ServicePort } from './types.js';

const SERVICE_TYPES = new Set(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']);
const PROTOCOLS = new Set<Protocol>(['TCP', 'UDP', 'SCTP']);
const DEFAULT_STICKY_SECONDS = 10800;

/** A canonical address; the parsed bytes are not kept (a Uint8Array costs ~200 bytes). */
interface AddressText {
  family: IPFamily;
  text: string;
}

interface CIDRText extends AddressText {
  prefix: number;
}

/** A validated Service, family-independent; ports are derived per family from it. */
export interface ParsedService {
  namespace: string;
  name: string;
  /** ExternalName and headless Services are valid but have no proxy rules */
  ignored: boolean;
  /** clusterIP per family, canonical */
  clusterIPs: Partial<Record<IPFamily, string>>;
  type: string | undefined;
  ports: readonly { name: string; protocol: Protocol; port: number; nodePort: number }[];
  externalIPs: readonly AddressText[];
  loadBalancerVIPs: readonly AddressText[];
  sourceRanges: readonly CIDRText[];
  stickySeconds: number;
  externalPolicyLocal: boolean;
  internalPolicyLocal: boolean;
  healthCheckNodePort: number;
}

export type ServiceParseResult = { ok: true; service: ParsedService } | { ok: false; problem: ObjectProblem };

export function parseService(raw: unknown): ServiceParseResult {
  const ref = refOf('Service', raw);
  try {
    if (!isRecord(raw)) throw new FieldError('', 'must be an object');
    return { ok: true, service: parseServiceFields(raw) };
  } catch (e) {
    if (e instanceof FieldError) return { ok: false, problem: { ref, field: e.field, message: e.message } };
    throw e;
  }
}

function ip(text: string, field: string) {
  const parsed = parseIP(text);
  if (!parsed) throw new FieldError(field, `${JSON.stringify(text)} is not a valid IP address`);
  return parsed;
}

function parseServiceFields(raw: RawObject): ParsedService {
  const meta = obj(raw, 'metadata', 'metadata');
  const name = optStr(meta, 'name', 'metadata.name');
  const nameProblem = invalidDns1035Label(name);
  if (nameProblem) throw new FieldError('metadata.name', nameProblem);
  // Objects from the API always carry a namespace; a manifest may omit it, as for kubectl.
  const namespace = optStr(meta, 'namespace', 'metadata.namespace') ?? 'default';
  const nsProblem = invalidDns1123Label(namespace);
  if (nsProblem) throw new FieldError('metadata.namespace', nsProblem);

  const spec = obj(raw, 'spec', 'spec');
  const status = obj(raw, 'status', 'status');
  const type = optStr(spec, 'type', 'spec.type');
  if (type !== undefined && !SERVICE_TYPES.has(type)) {
    throw new FieldError('spec.type', `unsupported value ${JSON.stringify(type)}`);
  }

  const clusterIP = optStr(spec, 'clusterIP', 'spec.clusterIP') ?? '';
  if (type === 'ExternalName' || clusterIP === '' || clusterIP === 'None') {
    return {
      namespace,
      name: name as string,
      ignored: true,
      clusterIPs: {},
      type,
      ports: NONE,
      externalIPs: NONE,
      loadBalancerVIPs: NONE,
      sourceRanges: NONE,
      stickySeconds: 0,
      externalPolicyLocal: false,
      internalPolicyLocal: false,
      healthCheckNodePort: 0,
    };
  }

  const clusterIPs: Partial<Record<IPFamily, string>> = {};
  const families = arr(spec, 'ipFamilies', 'spec.ipFamilies');
  if (families.length === 0) {
    // Version skew: without ipFamilies, clusterIP alone decides the family (GetClusterIPByFamily).
    const parsed = ip(clusterIP, 'spec.clusterIP');
    clusterIPs[parsed.family] = parsed.text;
  } else {
    const list = arr(spec, 'clusterIPs', 'spec.clusterIPs');
    families.forEach((f, i) => {
      if (f !== 'IPv4' && f !== 'IPv6') throw new FieldError(`spec.ipFamilies[${i}]`, 'must be IPv4 or IPv6');
      const text = list[i];
      if (text === undefined) return;
      if (typeof text !== 'string') throw new FieldError(`spec.clusterIPs[${i}]`, 'must be a string');
      const parsed = ip(text, `spec.clusterIPs[${i}]`);
      if (parsed.family !== f) throw new FieldError(`spec.clusterIPs[${i}]`, `is not an ${f} address`);
      clusterIPs[f] = parsed.text;
    });
  }

  const ports: { name: string; protocol: Protocol; port: number; nodePort: number }[] = [];
  const seenPortNames = new Set<string>();
  arr(spec, 'ports', 'spec.ports').forEach((p, i) => {
    const path = `spec.ports[${i}]`;
    if (!isRecord(p)) throw new FieldError(path, 'must be an object');
    const portName = optStr(p, 'name', `${path}.name`) ?? '';
    // The API server validates Service port names as DNS-1123 labels (IANA names are for container ports).
    const nameErr = portName === '' ? null : invalidDns1123Label(portName);
    if (nameErr) throw new FieldError(`${path}.name`, nameErr);
    const protocol = (optStr(p, 'protocol', `${path}.protocol`) ?? 'TCP') as Protocol;
    if (!PROTOCOLS.has(protocol)) {
      throw new FieldError(`${path}.protocol`, `unsupported value ${JSON.stringify(protocol)}`);
    }
    const port = optNum(p, 'port', `${path}.port`);
    const portErr = invalidPort(port);
    if (portErr) throw new FieldError(`${path}.port`, port === undefined ? 'is required' : portErr);
    const nodePort = optNum(p, 'nodePort', `${path}.nodePort`) ?? 0;
    const nodePortErr = invalidPort(nodePort, 0);
    if (nodePortErr) throw new FieldError(`${path}.nodePort`, nodePortErr);
    const key = `${portName}/${protocol}`;
    if (seenPortNames.has(key))
      throw new FieldError(`${path}.name`, `duplicate port ${JSON.stringify(portName)}`);
    seenPortNames.add(key);
    ports.push({ name: portName, protocol, port: port as number, nodePort });
  });

  const externalIPs = arr(spec, 'externalIPs', 'spec.externalIPs').map((e, i) => {
    if (typeof e !== 'string') throw new FieldError(`spec.externalIPs[${i}]`, 'must be a string');
    const { family, text } = ip(e, `spec.externalIPs[${i}]`);
    return { family, text };
  });

  const loadBalancerVIPs: AddressText[] = [];
  const lb = obj(status, 'loadBalancer', 'status.loadBalancer');
  arr(lb, 'ingress', 'status.loadBalancer.ingress').forEach((ing, i) => {
    const path = `status.loadBalancer.ingress[${i}]`;
    if (!isRecord(ing)) throw new FieldError(path, 'must be an object');
    const text = optStr(ing, 'ip', `${path}.ip`);
    const ipMode = optStr(ing, 'ipMode', `${path}.ipMode`);
    if (!text) return; // hostname-only ingress
    const parsed = ip(text, `${path}.ip`);
    // ipMode Proxy: the load balancer proxies itself; traffic never arrives for the VIP.
    if (ipMode !== undefined && ipMode !== 'VIP') return;
    loadBalancerVIPs.push({ family: parsed.family, text: parsed.text });
  });

  const sourceRanges = arr(spec, 'loadBalancerSourceRanges', 'spec.loadBalancerSourceRanges').map((r, i) => {
    const path = `spec.loadBalancerSourceRanges[${i}]`;
    if (typeof r !== 'string') throw new FieldError(path, 'must be a string');
    const cidr = parseCIDR(r.trim());
    if (!cidr) throw new FieldError(path, `${JSON.stringify(r)} is not a valid CIDR`);
    return { family: cidr.family, text: cidr.text, prefix: cidr.prefix };
  });

  let stickySeconds = 0;
  const affinity = optStr(spec, 'sessionAffinity', 'spec.sessionAffinity');
  if (affinity !== undefined && affinity !== 'None' && affinity !== 'ClientIP') {
    throw new FieldError('spec.sessionAffinity', `unsupported value ${JSON.stringify(affinity)}`);
  }
  if (affinity === 'ClientIP') {
    const affinityConfig = obj(spec, 'sessionAffinityConfig', 'spec.sessionAffinityConfig');
    const cfg = obj(affinityConfig, 'clientIP', 'spec.sessionAffinityConfig.clientIP');
    const path = 'spec.sessionAffinityConfig.clientIP.timeoutSeconds';
    const timeout = optNum(cfg, 'timeoutSeconds', path) ?? DEFAULT_STICKY_SECONDS;
    if (timeout < 1 || timeout > 86400) throw new FieldError(path, `${timeout} is out of range 1-86400`);
    stickySeconds = timeout;
  }

  const etp = optStr(spec, 'externalTrafficPolicy', 'spec.externalTrafficPolicy');
  const itp = optStr(spec, 'internalTrafficPolicy', 'spec.internalTrafficPolicy');
  for (const [field, v] of [
    ['spec.externalTrafficPolicy', etp],
    ['spec.internalTrafficPolicy', itp],
  ] as const) {
    // "Global" is the pre-1.21 spelling of Cluster, still accepted by the API's conversion.
    if (v !== undefined && v !== 'Cluster' && v !== 'Local' && v !== 'Global') {
      throw new FieldError(field, `unsupported value ${JSON.stringify(v)}`);
    }
  }
  // The API helper compares the literal type: an unset type is not externally accessible.
  const apiExternallyAccessible =
    type === 'LoadBalancer' || type === 'NodePort' || (type === 'ClusterIP' && externalIPs.length > 0);
  const externalPolicyLocal = apiExternallyAccessible && etp === 'Local';

  const hcnp = optNum(spec, 'healthCheckNodePort', 'spec.healthCheckNodePort') ?? 0;
  const hcnpErr = invalidPort(hcnp, 0);
  if (hcnpErr) throw new FieldError('spec.healthCheckNodePort', hcnpErr);

  // Literals, not `{ ...base, ... }`: V8 gave each spread result a hidden class of its own
  // (~250 bytes per Service).
  return {
    namespace,
    name: name as string,
    ignored: false,
    clusterIPs,
    type,
    ports: keptList(ports),
    externalIPs: keptList(externalIPs),
    loadBalancerVIPs: keptList(loadBalancerVIPs),
    sourceRanges: keptList(sourceRanges),
    stickySeconds,
    externalPolicyLocal,
    internalPolicyLocal: itp === 'Local',
    healthCheckNodePort: type === 'LoadBalancer' && externalPolicyLocal ? hcnp : 0,
  };
}

/** The family's source ranges; a zero-length prefix means "allow any", the same as none (kube-proxy). */
function sourceRangesFor(svc: ParsedService, family: IPFamily): readonly string[] {
  const ranges = svc.sourceRanges.filter((r) => r.family === family);
  return ranges.length === 0 || ranges.some((r) => r.prefix === 0) ? NONE : ranges.map((r) => r.text);
}

/** The ServicePorts of one family (none when the Service has no ClusterIP of it). */
export function servicePortsForFamily(svc: ParsedService, family: IPFamily): ServicePort[] {
  const clusterIP = svc.clusterIPs[family];
  if (svc.ignored || !clusterIP) return [];
  // Computed once for all the ports, which share them (and NONE when empty, the usual case).
  const ofFamily = (list: readonly AddressText[]): readonly string[] => {
    const texts = list.filter((x) => x.family === family).map((x) => x.text);
    return texts.length === 0 ? NONE : texts;
  };
  const externalIPs = ofFamily(svc.externalIPs);
  const loadBalancerVIPs = ofFamily(svc.loadBalancerVIPs);
  const loadBalancerSourceRanges = sourceRangesFor(svc, family);
  const serviceKey = `${svc.namespace}/${svc.name}`;
  return svc.ports.map((p) => ({
    namespace: svc.namespace,
    name: svc.name,
    portName: p.name,
    protocol: p.protocol,
    serviceKey,
    nameString: p.name === '' ? serviceKey : `${serviceKey}:${p.name}`,
    family,
    clusterIP,
    port: p.port,
    nodePort: p.nodePort,
    externalIPs,
    loadBalancerVIPs,
    loadBalancerSourceRanges,
    stickySeconds: svc.stickySeconds,
    externalPolicyLocal: svc.externalPolicyLocal,
    internalPolicyLocal: svc.internalPolicyLocal,
    healthCheckNodePort: svc.healthCheckNodePort,
  }));
}
