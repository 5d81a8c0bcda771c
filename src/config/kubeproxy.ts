/**
 * kube-proxy's own configuration file, `kubeproxy.config.k8s.io/v1alpha1` `KubeProxyConfiguration`, as
 * kube-proxy 1.34/1.35 reads it (the `config.conf` key of kubeadm's `kube-proxy` ConfigMap).
 *
 * Loading goes: YAML → wire schema (zod; kube-proxy's field names and types, every field optional and
 * nullable, unknown fields reported as warnings like kube-proxy's lenient decoding) → kube-proxy's
 * defaults (v1alpha1 defaults.go plus the Linux platform defaults of cmd/kube-proxy) → kube-proxy's
 * validation (validation.go) with Switchboard's extra refusals (nftables/kernelspace modes) → warnings for
 * fields that Switchboard does not implement, only when they hold something other than zero or
 * kube-proxy's default (kubeadm writes every field with zero values).
 *
 * Durations: the loaded configuration carries every duration as a number of milliseconds in a field
 * named `...Ms` (e.g. `iptables.syncPeriodMs`); `formatGoDuration` prints one back the way Go does.
 */
import { z } from 'zod';
import { IPVS_SCHEDULERS } from '../backends/ipvs/state.js';
import { InputError } from '../errors.js';
import { parseCIDR, parseIP } from '../model/ip.js';
import { formatGoDuration, parseGoDuration } from './duration.js';
import { formatLocation, formatPath, parseSingleYamlDocument, type YamlPath } from './yaml.js';

export const KUBE_PROXY_API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
export const KUBE_PROXY_KIND = 'KubeProxyConfiguration';

/** Proxy modes Switchboard runs; `''` in the file resolves to `iptables` (kube-proxy's Linux default). */
export type ProxyMode = 'iptables' | 'ipvs';
export const LOCAL_MODES = ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'] as const;
export type LocalMode = (typeof LOCAL_MODES)[number];
/** The only keyword kube-proxy 1.34 accepts in nodePortAddresses (alone, instead of CIDRs). */
export const NODE_PORT_ADDRESSES_PRIMARY = 'primary';

const HEALTHZ_PORT = 10256;
const METRICS_PORT = 10249;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** The loaded, defaulted configuration. Durations are milliseconds (`...Ms`). */
export interface KubeProxyConfiguration {
  apiVersion: typeof KUBE_PROXY_API_VERSION;
  kind: typeof KUBE_PROXY_KIND;
  /** Exactly as given (no entry = the gate's default); read them with `featureEnabled`. */
  featureGates: Record<string, boolean>;
  clientConnection: {
    kubeconfig: string;
    acceptContentTypes: string;
    contentType: string;
    qps: number;
    burst: number;
  };
  /** component-base logging options, kept as given; Switchboard does not interpret them. */
  logging: Record<string, unknown>;
  /** As written; kube-proxy trims and lowercases it before using it as the node name. */
  hostnameOverride: string;
  bindAddress: string;
  /** `host:port`, a port appended if the file gave only an address (as kube-proxy does). */
  healthzBindAddress: string;
  metricsBindAddress: string;
  bindAddressHardFail: boolean;
  enableProfiling: boolean;
  showHiddenMetricsForVersion: string;
  mode: ProxyMode;
  iptables: {
    masqueradeAll: boolean;
    masqueradeBit: number;
    localhostNodePorts: boolean;
    snatNodeInternalIP: boolean;
    syncPeriodMs: number;
    minSyncPeriodMs: number;
  };
  ipvs: {
    syncPeriodMs: number;
    minSyncPeriodMs: number;
    scheduler: string;
    excludeCIDRs: string[];
    strictARP: boolean;
    tcpTimeoutMs: number;
    tcpFinTimeoutMs: number;
    udpTimeoutMs: number;
  };
  nftables: {
    masqueradeAll: boolean;
    masqueradeBit: number;
    syncPeriodMs: number;
    minSyncPeriodMs: number;
  };
  winkernel: {
    networkName: string;
    sourceVip: string;
    enableDSR: boolean;
    rootHnsEndpointName: string;
    forwardHealthCheckVip: boolean;
  };
  /** `''` in the file resolves to `ClusterCIDR` (kube-proxy's Linux default). */
  detectLocalMode: LocalMode;
  detectLocal: { bridgeInterface: string; interfaceNamePrefix: string };
  /** As written: empty, one CIDR, or an IPv4,IPv6 pair separated by a comma. */
  clusterCIDR: string;
  /** `clusterCIDR` split at the comma; empty when it is empty. */
  clusterCIDRs: string[];
  /** CIDRs, or `['primary']`; empty means all local addresses. */
  nodePortAddresses: string[];
  oomScoreAdj: number;
  conntrack: {
    maxPerCore: number;
    min: number;
    /** 0 = leave the kernel's value alone. */
    tcpEstablishedTimeoutMs: number;
    tcpCloseWaitTimeoutMs: number;
    tcpBeLiberal: boolean;
    udpTimeoutMs: number;
    udpStreamTimeoutMs: number;
  };
  configSyncPeriodMs: number;
  portRange: string;
  windowsRunAsService: boolean;
  /**
   * The sync periods the proxier uses. v1alpha1 has no top-level syncPeriod/minSyncPeriod: kube-proxy's
   * conversion to its internal config (pkg/proxy/apis/config/v1alpha1/conversion.go) copies them from
   * the section of the active mode, `ipvs.*` in ipvs mode and `iptables.*` otherwise, after defaulting
   * (so `iptables.minSyncPeriod: 0s` becomes 1s; a top-level `syncPeriod` key is an unknown field).
   */
  syncPeriodMs: number;
  minSyncPeriodMs: number;
}

export interface LoadedKubeProxyConfiguration {
  config: KubeProxyConfiguration;
  /** Each formatted `<source>:<line>: <field.path>: <reason>`. */
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------------
// Feature gates

interface FeatureGateSpec {
  default: boolean;
  /** A GA gate kube-proxy refuses to set to anything but its default. */
  lockedToDefault: boolean;
}

/** The gates that change what the proxy does, with their kube-proxy 1.34 state (pkg/features). */
export const KNOWN_FEATURE_GATES: Readonly<Record<string, FeatureGateSpec>> = {
  // EndpointSlice zone hints. GA (locked) since 1.33.
  TopologyAwareHints: { default: true, lockedToDefault: true },
  // spec.trafficDistribution. GA (locked) since 1.33.
  ServiceTrafficDistribution: { default: true, lockedToDefault: true },
  // PreferSameZone/PreferSameNode and node hints. Beta, on by default in 1.34; GA (locked) in 1.35.
  PreferSameTrafficDistribution: { default: true, lockedToDefault: false },
  // status.loadBalancer.ingress[].ipMode. GA (locked) since 1.32.
  LoadBalancerIPMode: { default: true, lockedToDefault: true },
  // kube-proxy's nftables mode, which Switchboard does not implement. GA (locked) since 1.33.
  NFTablesProxyMode: { default: true, lockedToDefault: true },
};

/** Whether a feature gate is on: the configured value, else kube-proxy 1.34's default (false if unknown). */
export function featureEnabled(config: Pick<KubeProxyConfiguration, 'featureGates'>, name: string): boolean {
  return config.featureGates[name] ?? KNOWN_FEATURE_GATES[name]?.default ?? false;
}

// ---------------------------------------------------------------------------------------------------
// Wire schema: what may appear in the file

/** metav1.Duration: a Go duration string; converted to milliseconds. */
const duration = z
  .string({ error: 'expected a duration string such as "30s" or "1m0s"' })
  .transform((text, ctx) => {
    try {
      return parseGoDuration(text);
    } catch (err) {
      ctx.issues.push({ code: 'custom', message: (err as Error).message, input: text });
      return z.NEVER;
    }
  });

const str = z.string().nullish();
const bool = z.boolean().nullish();
const int32 = z.int32().nullish();
const dur = duration.nullish();

const wireSchema = z.strictObject({
  apiVersion: z.string(),
  kind: z.string(),
  featureGates: z.record(z.string(), z.boolean()).nullish(),
  clientConnection: z
    .strictObject({
      kubeconfig: str,
      acceptContentTypes: str,
      contentType: str,
      qps: z.number().nullish(),
      burst: int32,
    })
    .nullish(),
  logging: z.record(z.string(), z.unknown()).nullish(),
  hostnameOverride: str,
  bindAddress: str,
  healthzBindAddress: str,
  metricsBindAddress: str,
  bindAddressHardFail: bool,
  enableProfiling: bool,
  showHiddenMetricsForVersion: str,
  mode: str,
  iptables: z
    .strictObject({
      masqueradeBit: int32,
      masqueradeAll: bool,
      localhostNodePorts: bool,
      // Present in the newest upstream types; accepted so that such a file is not "unknown".
      snatNodeInternalIP: bool,
      syncPeriod: dur,
      minSyncPeriod: dur,
    })
    .nullish(),
  ipvs: z
    .strictObject({
      syncPeriod: dur,
      minSyncPeriod: dur,
      scheduler: str,
      excludeCIDRs: z.array(z.string()).nullish(),
      strictARP: bool,
      tcpTimeout: dur,
      tcpFinTimeout: dur,
      udpTimeout: dur,
    })
    .nullish(),
  nftables: z
    .strictObject({
      masqueradeBit: int32,
      masqueradeAll: bool,
      syncPeriod: dur,
      minSyncPeriod: dur,
    })
    .nullish(),
  winkernel: z
    .strictObject({
      networkName: str,
      sourceVip: str,
      enableDSR: bool,
      rootHnsEndpointName: str,
      forwardHealthCheckVip: bool,
    })
    .nullish(),
  detectLocalMode: str,
  detectLocal: z.strictObject({ bridgeInterface: str, interfaceNamePrefix: str }).nullish(),
  clusterCIDR: str,
  nodePortAddresses: z.array(z.string()).nullish(),
  oomScoreAdj: int32,
  conntrack: z
    .strictObject({
      maxPerCore: int32,
      min: int32,
      tcpEstablishedTimeout: dur,
      tcpCloseWaitTimeout: dur,
      tcpBeLiberal: bool,
      udpTimeout: dur,
      udpStreamTimeout: dur,
    })
    .nullish(),
  configSyncPeriod: dur,
  portRange: str,
  windowsRunAsService: bool,
});

type WireConfiguration = z.output<typeof wireSchema>;

// ---------------------------------------------------------------------------------------------------
// Defaults

/** kube-proxy's defaults for an empty file (in `mode`, iptables unless given). */
export function defaultKubeProxyConfiguration(mode?: ProxyMode): KubeProxyConfiguration {
  return applyDefaults({
    apiVersion: KUBE_PROXY_API_VERSION,
    kind: KUBE_PROXY_KIND,
    ...(mode ? { mode } : {}),
  });
}

export interface LoadOptions {
  /**
   * Run in this mode whatever the file's `mode` says (`--mode` on the command line): the
   * mode's section is then the one validated and the one the sync periods come from.
   */
  mode?: ProxyMode;
}

/**
 * kube-proxy's SetDefaults_KubeProxyConfiguration: most fields take their default when they hold the
 * zero value (so `syncPeriod: 0s` means 30s), pointer fields only when absent or null. Then the Linux
 * platform defaults (blank mode → iptables, blank detectLocalMode → ClusterCIDR).
 */
function applyDefaults(wire: WireConfiguration): KubeProxyConfiguration {
  const orDefault = <T>(value: T | null | undefined, zero: T, fallback: T): T =>
    value === null || value === undefined || value === zero ? fallback : value;

  const bindAddress = orDefault(wire.bindAddress, '', '0.0.0.0');
  const ipv4Bind = parseIP(bindAddress)?.family === 'IPv4';
  const healthzHost = ipv4Bind ? '0.0.0.0' : '[::]';
  const metricsHost = ipv4Bind ? '127.0.0.1' : '[::1]';

  const cc = wire.clientConnection ?? {};
  const ipt = wire.iptables ?? {};
  const ipvs = wire.ipvs ?? {};
  const nft = wire.nftables ?? {};
  const win = wire.winkernel ?? {};
  const ct = wire.conntrack ?? {};
  const clusterCIDR = wire.clusterCIDR ?? '';
  const mode: ProxyMode = wire.mode === 'ipvs' ? 'ipvs' : 'iptables';

  const iptables = {
    masqueradeAll: ipt.masqueradeAll ?? false,
    masqueradeBit: ipt.masqueradeBit ?? 14,
    localhostNodePorts: ipt.localhostNodePorts ?? true,
    snatNodeInternalIP: ipt.snatNodeInternalIP ?? false,
    syncPeriodMs: orDefault(ipt.syncPeriod, 0, 30 * SECOND),
    minSyncPeriodMs: orDefault(ipt.minSyncPeriod, 0, 1 * SECOND),
  };
  const ipvsSection = {
    syncPeriodMs: orDefault(ipvs.syncPeriod, 0, 30 * SECOND),
    minSyncPeriodMs: ipvs.minSyncPeriod ?? 0,
    scheduler: ipvs.scheduler ?? '',
    excludeCIDRs: ipvs.excludeCIDRs ?? [],
    strictARP: ipvs.strictARP ?? false,
    tcpTimeoutMs: ipvs.tcpTimeout ?? 0,
    tcpFinTimeoutMs: ipvs.tcpFinTimeout ?? 0,
    udpTimeoutMs: ipvs.udpTimeout ?? 0,
  };
  const active = mode === 'ipvs' ? ipvsSection : iptables;

  return {
    apiVersion: KUBE_PROXY_API_VERSION,
    kind: KUBE_PROXY_KIND,
    featureGates: { ...(wire.featureGates ?? {}) },
    clientConnection: {
      kubeconfig: cc.kubeconfig ?? '',
      acceptContentTypes: cc.acceptContentTypes ?? '',
      contentType: orDefault(cc.contentType, '', 'application/vnd.kubernetes.protobuf'),
      qps: orDefault(cc.qps, 0, 5),
      burst: orDefault(cc.burst, 0, 10),
    },
    logging: { ...(wire.logging ?? {}) },
    hostnameOverride: wire.hostnameOverride ?? '',
    bindAddress,
    healthzBindAddress: wire.healthzBindAddress
      ? appendPortIfNeeded(wire.healthzBindAddress, HEALTHZ_PORT)
      : `${healthzHost}:${HEALTHZ_PORT}`,
    metricsBindAddress: wire.metricsBindAddress
      ? appendPortIfNeeded(wire.metricsBindAddress, METRICS_PORT)
      : `${metricsHost}:${METRICS_PORT}`,
    bindAddressHardFail: wire.bindAddressHardFail ?? false,
    enableProfiling: wire.enableProfiling ?? false,
    showHiddenMetricsForVersion: wire.showHiddenMetricsForVersion ?? '',
    mode,
    iptables,
    ipvs: ipvsSection,
    nftables: {
      masqueradeAll: nft.masqueradeAll ?? false,
      masqueradeBit: nft.masqueradeBit ?? 14,
      syncPeriodMs: orDefault(nft.syncPeriod, 0, 30 * SECOND),
      minSyncPeriodMs: orDefault(nft.minSyncPeriod, 0, 1 * SECOND),
    },
    winkernel: {
      networkName: win.networkName ?? '',
      sourceVip: win.sourceVip ?? '',
      enableDSR: win.enableDSR ?? false,
      rootHnsEndpointName: win.rootHnsEndpointName ?? '',
      forwardHealthCheckVip: win.forwardHealthCheckVip ?? false,
    },
    detectLocalMode: (LOCAL_MODES as readonly string[]).includes(wire.detectLocalMode ?? '')
      ? (wire.detectLocalMode as LocalMode)
      : 'ClusterCIDR',
    detectLocal: {
      bridgeInterface: wire.detectLocal?.bridgeInterface ?? '',
      interfaceNamePrefix: wire.detectLocal?.interfaceNamePrefix ?? '',
    },
    clusterCIDR,
    clusterCIDRs: clusterCIDR === '' ? [] : clusterCIDR.split(','),
    nodePortAddresses: wire.nodePortAddresses ?? [],
    oomScoreAdj: wire.oomScoreAdj ?? -999,
    conntrack: {
      maxPerCore: ct.maxPerCore ?? 32 * 1024,
      min: ct.min ?? 128 * 1024,
      tcpEstablishedTimeoutMs: ct.tcpEstablishedTimeout ?? 24 * HOUR,
      tcpCloseWaitTimeoutMs: ct.tcpCloseWaitTimeout ?? 1 * HOUR,
      tcpBeLiberal: ct.tcpBeLiberal ?? false,
      udpTimeoutMs: ct.udpTimeout ?? 0,
      udpStreamTimeoutMs: ct.udpStreamTimeout ?? 0,
    },
    configSyncPeriodMs: orDefault(wire.configSyncPeriod, 0, 15 * MINUTE),
    portRange: wire.portRange ?? '',
    windowsRunAsService: wire.windowsRunAsService ?? false,
    syncPeriodMs: active.syncPeriodMs,
    minSyncPeriodMs: active.minSyncPeriodMs,
  };
}

/** kube-proxy's AppendPortIfNeeded: `ip` → `ip:port` / `[ip]:port`; anything else is left for validation. */
function appendPortIfNeeded(address: string, port: number): string {
  if (splitHostPort(address)) return address;
  const family = parseIP(address)?.family;
  if (family === 'IPv4') return `${address}:${port}`;
  if (family === 'IPv6') return `[${address}]:${port}`;
  return address;
}

/** Go's net.SplitHostPort, enough of it to tell `host:port` and `[v6]:port` from anything else. */
function splitHostPort(text: string): { host: string; port: string } | undefined {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return undefined;
    const host = text.slice(1, close);
    const port = text.slice(close + 2);
    return port.includes(':') || host.includes('[') ? undefined : { host, port };
  }
  const colon = text.lastIndexOf(':');
  if (colon < 0) return undefined;
  const host = text.slice(0, colon);
  if (host.includes(':') || host.includes('[') || host.includes(']')) return undefined;
  return { host, port: text.slice(colon + 1) };
}

// ---------------------------------------------------------------------------------------------------
// Validation (kube-proxy's validation.go, with the v1alpha1 field paths)

interface Problem {
  path: YamlPath;
  message: string;
  /** Where to point when the field itself is absent from the file. */
  fallback?: YamlPath;
}

type AddProblem = (path: YamlPath, message: string, fallback?: YamlPath) => void;

function validate(config: KubeProxyConfiguration, wire: WireConfiguration): Problem[] {
  const problems: Problem[] = [];
  const add: AddProblem = (path, message, fallback) => problems.push({ path, message, fallback });

  for (const [name, value] of Object.entries(config.featureGates)) {
    const spec = KNOWN_FEATURE_GATES[name];
    if (spec?.lockedToDefault && value !== spec.default) {
      add(
        ['featureGates', name],
        `cannot set feature gate ${name} to ${value}, feature is locked to ${spec.default}`,
      );
    }
  }

  validateMode(wire.mode ?? '', add);
  const localMode = wire.detectLocalMode ?? '';
  if (localMode !== '' && !(LOCAL_MODES as readonly string[]).includes(localMode)) {
    add(['detectLocalMode'], `must be one of ${LOCAL_MODES.join(', ')} or blank (blank means ClusterCIDR)`);
  }

  const bit = config.iptables.masqueradeBit;
  if (bit < 0 || bit > 31)
    add(['iptables', 'masqueradeBit'], `must be within the range [0, 31] (got ${bit})`);

  const section = config.mode === 'ipvs' ? 'ipvs' : 'iptables';
  const { syncPeriodMs, minSyncPeriodMs } = config[section];
  if (syncPeriodMs <= 0)
    add([section, 'syncPeriod'], `must be greater than 0 (got ${formatGoDuration(syncPeriodMs)})`);
  if (minSyncPeriodMs < 0) {
    add(
      [section, 'minSyncPeriod'],
      `must be greater than or equal to 0 (got ${formatGoDuration(minSyncPeriodMs)})`,
    );
  }
  if (minSyncPeriodMs > syncPeriodMs) {
    add(
      [section, 'syncPeriod'],
      `must be greater than or equal to ${section}.minSyncPeriod (${formatGoDuration(syncPeriodMs)} < ${formatGoDuration(minSyncPeriodMs)})`,
    );
  }

  if (config.mode === 'ipvs') {
    const ipvs = config.ipvs;
    for (const [field, ms] of [
      ['tcpTimeout', ipvs.tcpTimeoutMs],
      ['tcpFinTimeout', ipvs.tcpFinTimeoutMs],
      ['udpTimeout', ipvs.udpTimeoutMs],
    ] as const) {
      if (ms < 0) add(['ipvs', field], 'must be greater than or equal to 0');
    }
    if (ipvs.scheduler !== '' && !(IPVS_SCHEDULERS as readonly string[]).includes(ipvs.scheduler)) {
      add(
        ['ipvs', 'scheduler'],
        `must be one of ${IPVS_SCHEDULERS.join(', ')} or blank (blank means rr), not ${JSON.stringify(ipvs.scheduler)}`,
      );
    }
    ipvs.excludeCIDRs.forEach((cidr, i) => {
      if (!parseCIDR(cidr))
        add(['ipvs', 'excludeCIDRs', i], `must be a valid CIDR (got ${JSON.stringify(cidr)})`);
    });
  }

  const ct = config.conntrack;
  if (ct.maxPerCore < 0) add(['conntrack', 'maxPerCore'], 'must be greater than or equal to 0');
  if (ct.min < 0) add(['conntrack', 'min'], 'must be greater than or equal to 0');
  for (const [field, ms] of [
    ['tcpEstablishedTimeout', ct.tcpEstablishedTimeoutMs],
    ['tcpCloseWaitTimeout', ct.tcpCloseWaitTimeoutMs],
    ['udpTimeout', ct.udpTimeoutMs],
    ['udpStreamTimeout', ct.udpStreamTimeoutMs],
  ] as const) {
    if (ms < 0) add(['conntrack', field], 'must be greater than or equal to 0');
  }

  if (config.clientConnection.burst < 0)
    add(['clientConnection', 'burst'], 'must be greater than or equal to 0');
  if (config.oomScoreAdj < -1000 || config.oomScoreAdj > 1000) {
    add(['oomScoreAdj'], `must be within the range [-1000, 1000] (got ${config.oomScoreAdj})`);
  }
  if (config.configSyncPeriodMs <= 0) add(['configSyncPeriod'], 'must be greater than 0');

  if (parseIP(config.bindAddress) === null) {
    add(
      ['bindAddress'],
      `not a valid textual representation of an IP address: ${JSON.stringify(config.bindAddress)}`,
    );
  }
  validateHostPort(config.healthzBindAddress, ['healthzBindAddress'], add);
  validateHostPort(config.metricsBindAddress, ['metricsBindAddress'], add);

  validateClusterCIDRs(config.clusterCIDRs, add);
  validateNodePortAddresses(config.nodePortAddresses, add);
  validateDetectLocal(config, add);
  return problems;
}

function validateMode(rawMode: string, add: AddProblem): void {
  switch (rawMode) {
    case '':
    case 'iptables':
    case 'ipvs':
      return;
    case 'nftables':
      add(['mode'], 'kube-proxy\'s nftables mode is not supported by Switchboard; use "iptables" (or blank)');
      return;
    case 'kernelspace':
      add(['mode'], '"kernelspace" is kube-proxy\'s Windows mode; Switchboard runs "iptables" mode on Linux');
      return;
    default:
      add(['mode'], `must be iptables, ipvs or blank (blank means iptables), not ${JSON.stringify(rawMode)}`);
  }
}

function validateHostPort(value: string, path: YamlPath, add: AddProblem): void {
  const parts = splitHostPort(value);
  if (!parts) {
    add(path, `must be IP:port (got ${JSON.stringify(value)})`);
    return;
  }
  if (parseIP(parts.host) === null) add(path, `must be a valid IP (got ${JSON.stringify(parts.host)})`);
  // Go's strconv.Atoi: optional sign, decimal digits.
  const port = /^[+-]?\d+$/.test(parts.port) ? Number(parts.port) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) add(path, `must be a valid port (got ${JSON.stringify(parts.port)})`);
}

function validateClusterCIDRs(cidrs: string[], add: AddProblem): void {
  if (cidrs.length > 2) {
    add(['clusterCIDR'], 'may only contain at most one IPv4 CIDR and one IPv6 CIDR');
  } else if (cidrs.length === 2) {
    const families = cidrs.map((c) => parseCIDR(c)?.family);
    if (!(families.includes('IPv4') && families.includes('IPv6'))) {
      add(['clusterCIDR'], 'must be a valid DualStack CIDR (e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)');
    }
  } else if (cidrs.length === 1 && !parseCIDR(cidrs[0] ?? '')) {
    add(['clusterCIDR'], 'must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)');
  }
}

function validateNodePortAddresses(addresses: string[], add: AddProblem): void {
  for (const [i, entry] of addresses.entries()) {
    if (entry === NODE_PORT_ADDRESSES_PRIMARY) {
      if (addresses.length !== 1) add(['nodePortAddresses', i], "can't use both 'primary' and CIDRs");
      return;
    }
    if (!parseCIDR(entry)) {
      add(
        ['nodePortAddresses', i],
        `must be a valid CIDR or the keyword 'primary' (got ${JSON.stringify(entry)})`,
      );
    }
  }
}

function validateDetectLocal(config: KubeProxyConfiguration, add: AddProblem): void {
  if (config.detectLocalMode === 'BridgeInterface' && config.detectLocal.bridgeInterface === '') {
    add(['detectLocal', 'bridgeInterface'], 'must not be empty when detectLocalMode is BridgeInterface', [
      'detectLocalMode',
    ]);
  }
  if (config.detectLocalMode === 'InterfaceNamePrefix' && config.detectLocal.interfaceNamePrefix === '') {
    add(
      ['detectLocal', 'interfaceNamePrefix'],
      'must not be empty when detectLocalMode is InterfaceNamePrefix',
      ['detectLocalMode'],
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Fields Switchboard does not implement: reported only when they differ from zero and from kube-proxy's
// default, so that kubeadm's all-zero file (and a dump of kube-proxy's defaults) loads without noise.

interface IgnoredField {
  path: YamlPath;
  /** Values (besides zero/null/absent) that mean "as kube-proxy's default"; durations in ms. */
  defaults?: readonly unknown[];
  /** When set, the field is implemented (so not reported) in this mode. */
  implementedInMode?: ProxyMode;
}

const IGNORED_FIELDS: readonly IgnoredField[] = [
  { path: ['bindAddressHardFail'] },
  { path: ['enableProfiling'] },
  { path: ['showHiddenMetricsForVersion'] },
  { path: ['portRange'] },
  { path: ['windowsRunAsService'] },
  { path: ['iptables', 'snatNodeInternalIP'] },
  { path: ['ipvs', 'syncPeriod'], defaults: [30 * SECOND], implementedInMode: 'ipvs' },
  { path: ['ipvs', 'minSyncPeriod'], defaults: [1 * SECOND], implementedInMode: 'ipvs' },
  { path: ['ipvs', 'scheduler'], defaults: ['rr'], implementedInMode: 'ipvs' },
  { path: ['ipvs', 'excludeCIDRs'], implementedInMode: 'ipvs' },
  { path: ['ipvs', 'strictARP'], implementedInMode: 'ipvs' },
  { path: ['ipvs', 'tcpTimeout'], implementedInMode: 'ipvs' },
  { path: ['ipvs', 'tcpFinTimeout'], implementedInMode: 'ipvs' },
  { path: ['ipvs', 'udpTimeout'], implementedInMode: 'ipvs' },
  { path: ['nftables', 'masqueradeAll'] },
  { path: ['nftables', 'masqueradeBit'], defaults: [14] },
  { path: ['nftables', 'syncPeriod'], defaults: [30 * SECOND] },
  { path: ['nftables', 'minSyncPeriod'], defaults: [1 * SECOND] },
  { path: ['winkernel', 'networkName'] },
  { path: ['winkernel', 'sourceVip'] },
  { path: ['winkernel', 'enableDSR'] },
  { path: ['winkernel', 'rootHnsEndpointName'] },
  { path: ['winkernel', 'forwardHealthCheckVip'] },
];

/** component-base's recommended logging defaults, which a dumped kube-proxy config contains. */
const LOGGING_DEFAULTS: Readonly<Record<string, readonly unknown[]>> = {
  format: ['text'],
  flushFrequency: ['5s', 5_000_000_000],
};

function isZeroValue(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object') return Object.values(value).every(isZeroValue);
  return false;
}

function unimplementedFieldWarnings(wire: WireConfiguration, raw: unknown, mode: ProxyMode): Problem[] {
  const problems: Problem[] = [];
  for (const field of IGNORED_FIELDS) {
    if (field.implementedInMode === mode) continue;
    const value = valueAt(wire, field.path);
    if (isZeroValue(value) || field.defaults?.includes(value)) continue;
    problems.push({ path: field.path, message: `${describe(valueAt(raw, field.path))}: ${NOT_IMPLEMENTED}` });
  }
  collectLoggingWarnings(wire.logging ?? {}, ['logging'], problems);
  return problems;
}

const NOT_IMPLEMENTED = 'Switchboard does not implement this field; ignored';

function collectLoggingWarnings(value: unknown, path: YamlPath, problems: Problem[]): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) collectLoggingWarnings(child, [...path, key], problems);
    return;
  }
  const leaf = path[path.length - 1];
  const defaults = path.length === 2 && typeof leaf === 'string' ? LOGGING_DEFAULTS[leaf] : undefined;
  // infoBufferSize is a resource.Quantity, written as the string "0" when unset.
  if (isZeroValue(value) || value === '0' || value === '0s' || defaults?.includes(value)) return;
  problems.push({ path, message: `${describe(value)}: ${NOT_IMPLEMENTED}` });
}

function featureGateWarnings(gates: Record<string, boolean>): Problem[] {
  return Object.keys(gates)
    .filter((name) => !(name in KNOWN_FEATURE_GATES))
    .map((name) => ({
      path: ['featureGates', name],
      message: `not a feature gate that Switchboard knows (${Object.keys(KNOWN_FEATURE_GATES).join(', ')}); ignored`,
    }));
}

/** A top-level key that newer (unreleased) kube-proxy config versions have but v1alpha1 does not. */
const TOP_LEVEL_HINTS: Readonly<Record<string, string>> = {
  syncPeriod:
    'v1alpha1 has no top-level syncPeriod; kube-proxy reads iptables.syncPeriod (ipvs.syncPeriod in ipvs mode)',
  minSyncPeriod:
    'v1alpha1 has no top-level minSyncPeriod; kube-proxy reads iptables.minSyncPeriod (ipvs.minSyncPeriod in ipvs mode)',
};

function unknownFieldMessage(path: YamlPath): string {
  const hint = path.length === 1 ? TOP_LEVEL_HINTS[String(path[0])] : undefined;
  return `unknown field${hint ? ` (${hint})` : ''}; ignored, as kube-proxy's lenient decoding does`;
}

// ---------------------------------------------------------------------------------------------------
// Loading

/**
 * Loads a KubeProxyConfiguration file. Invalid values throw an InputError listing every problem, one per
 * line, as `<source>:<line>: <field.path>: <reason>`; warnings (unknown fields, unimplemented fields set to
 * a non-default value, unknown feature gates) come back in the same format.
 */
export function loadKubeProxyConfiguration(
  text: string,
  source: string,
  options: LoadOptions = {},
): LoadedKubeProxyConfiguration {
  const document = parseSingleYamlDocument(text, source);
  // Problems come out in file order, so that a long list reads top to bottom.
  const format = (problems: Problem[]): string[] =>
    problems
      .map((p) => ({ p, line: document.lineOf(p.path, p.fallback) }))
      .sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
      .map(({ p, line }) => `${formatLocation(source, line)}: ${formatPath(p.path)}: ${p.message}`);
  const fail = (problems: Problem[]): never => {
    throw new InputError(format(problems).join('\n'));
  };

  const raw = document.value;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InputError(
      `${formatLocation(source, document.lineOf([]))}: expected a ${KUBE_PROXY_KIND} mapping, got ${Array.isArray(raw) ? 'a list' : typeof raw}`,
    );
  }
  checkTypeMeta(raw as Record<string, unknown>, fail);

  const parsed = parseWire(raw, fail);
  const { unknownFields } = parsed;
  const wire = options.mode ? { ...parsed.wire, mode: options.mode } : parsed.wire;
  const config = applyDefaults(wire);
  const problems = validate(config, wire);
  if (problems.length > 0) fail(problems);

  const warnings = [
    ...unknownFields.map((path) => ({ path, message: unknownFieldMessage(path) })),
    ...unimplementedFieldWarnings(wire, raw, config.mode),
    ...featureGateWarnings(config.featureGates),
  ];
  return { config, warnings: format(warnings) };
}

function checkTypeMeta(raw: Record<string, unknown>, fail: (problems: Problem[]) => never): void {
  const problems: Problem[] = [];
  const { apiVersion, kind } = raw;
  if (apiVersion !== KUBE_PROXY_API_VERSION) {
    problems.push({
      path: ['apiVersion'],
      message: `must be ${KUBE_PROXY_API_VERSION} (got ${apiVersion === undefined ? 'nothing' : describe(apiVersion)})`,
    });
  }
  if (kind !== KUBE_PROXY_KIND) {
    const data = raw['data'] as Record<string, unknown> | undefined;
    const hint =
      kind === 'ConfigMap' && data && typeof data['config.conf'] === 'string'
        ? `; this is a ConfigMap: give Switchboard the text of its data["config.conf"]`
        : '';
    problems.push({
      path: ['kind'],
      message: `must be ${KUBE_PROXY_KIND} (got ${kind === undefined ? 'nothing' : describe(kind)})${hint}`,
    });
  }
  if (problems.length > 0) fail(problems);
}

/**
 * Runs the wire schema. Unknown keys are not errors: they are collected, removed, and the rest parsed
 * again, which is what kube-proxy does when strict decoding fails and it falls back to lenient decoding.
 */
function parseWire(
  raw: object,
  fail: (problems: Problem[]) => never,
): { wire: WireConfiguration; unknownFields: YamlPath[] } {
  const first = wireSchema.safeParse(raw);
  if (first.success) return { wire: first.data, unknownFields: [] };

  const unknownFields: YamlPath[] = [];
  const errors: Problem[] = [];
  for (const issue of first.error.issues) {
    const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) unknownFields.push([...path, key]);
    } else {
      errors.push({ path, message: issue.message });
    }
  }
  if (errors.length > 0) fail(errors);

  const stripped = structuredClone(raw) as Record<string, unknown>;
  for (const path of unknownFields) deleteAt(stripped, path);
  const second = wireSchema.safeParse(stripped);
  if (!second.success) {
    // Unreachable in practice: the only issues were unknown keys, and those are gone now.
    return fail(second.error.issues.map((i) => ({ path: i.path as YamlPath, message: i.message })));
  }
  return { wire: second.data, unknownFields };
}

// ---------------------------------------------------------------------------------------------------
// Small helpers

function valueAt(root: unknown, path: YamlPath): unknown {
  let node: unknown = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

function deleteAt(root: Record<string, unknown>, path: YamlPath): void {
  const parent = valueAt(root, path.slice(0, -1));
  const key = path[path.length - 1];
  if (parent !== null && typeof parent === 'object' && key !== undefined) {
    delete (parent as Record<string | number, unknown>)[key];
  }
}

function describe(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}
