/**
 * `/configz` on the metrics server: the configuration in effect, as kube-proxy serves it.
 *
 * kube-proxy registers its *internal* KubeProxyConfiguration (pkg/proxy/apis/config, 1.34)
 * with component-base's configz under the group name, and configz answers
 * `json.Marshal(map[name]config)`. The internal types carry no json tags, so the field names
 * are Go's (`Linux.Conntrack.MaxPerCore`, `IPTables.MasqueradeBit`, `SyncPeriod`), durations
 * are metav1.Duration strings (`30s`, `1h0m0s`), pointers are numbers, nil maps and slices are
 * `null`, and map keys come sorted. The internal shape differs from v1alpha1 where kube-proxy's
 * conversion moves things: `masqueradeAll` and `oomScoreAdj` and `conntrack` live under `Linux`,
 * `clusterCIDR` becomes `DetectLocal.ClusterCIDRs`, the active mode's sync periods become the
 * top-level ones. Logging is component-base's versioned type (with json tags) after
 * kube-proxy's recommended defaults.
 */
import { formatGoDuration } from '../config/duration.js';
import type { KubeProxyConfiguration } from '../config/kubeproxy.js';
import { isRecord } from '../model/raw.js';

export const CONFIGZ_GROUP = 'kubeproxy.config.k8s.io';

/** component-base's recommended logging defaults, as a dumped kube-proxy configuration has them. */
const LOGGING_DEFAULTS = {
  format: 'text',
  flushFrequency: '5s',
  verbosity: 0,
  options: { text: { infoBufferSize: '0' }, json: { infoBufferSize: '0' } },
};

/** `given` laid over `defaults`, recursively (objects only). */
function overlay(defaults: Record<string, unknown>, given: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(given)) {
    const base = out[key];
    out[key] = isRecord(base) && isRecord(value) ? overlay(base, value) : value;
  }
  return out;
}

/** Go marshals a map with its keys sorted; a nil (here: empty) map is null. */
function goMap<T>(map: Record<string, T>): Record<string, T> | null {
  const keys = Object.keys(map).sort();
  if (keys.length === 0) return null;
  return Object.fromEntries(keys.map((k) => [k, map[k] as T]));
}

/** A nil slice marshals as null, an empty one as []; the loaded configuration cannot tell, so empty is nil. */
const goSlice = <T>(items: readonly T[]): T[] | null => (items.length === 0 ? null : [...items]);

const duration = (ms: number): string => formatGoDuration(ms);

/** kube-proxy's internal KubeProxyConfiguration, as Go's json.Marshal writes it. */
function internalConfiguration(config: KubeProxyConfiguration): Record<string, unknown> {
  const ct = config.conntrack;
  return {
    Linux: {
      Conntrack: {
        MaxPerCore: ct.maxPerCore,
        Min: ct.min,
        TCPEstablishedTimeout: duration(ct.tcpEstablishedTimeoutMs),
        TCPCloseWaitTimeout: duration(ct.tcpCloseWaitTimeoutMs),
        TCPBeLiberal: ct.tcpBeLiberal,
        UDPTimeout: duration(ct.udpTimeoutMs),
        UDPStreamTimeout: duration(ct.udpStreamTimeoutMs),
      },
      // conversion.go: from iptables.masqueradeAll in iptables and ipvs mode.
      MasqueradeAll: config.iptables.masqueradeAll,
      OOMScoreAdj: config.oomScoreAdj,
    },
    Windows: { RunAsService: config.windowsRunAsService },
    FeatureGates: goMap(config.featureGates),
    ClientConnection: {
      Kubeconfig: config.clientConnection.kubeconfig,
      AcceptContentTypes: config.clientConnection.acceptContentTypes,
      ContentType: config.clientConnection.contentType,
      QPS: config.clientConnection.qps,
      Burst: config.clientConnection.burst,
    },
    Logging: overlay(LOGGING_DEFAULTS, config.logging),
    HostnameOverride: config.hostnameOverride,
    BindAddress: config.bindAddress,
    HealthzBindAddress: config.healthzBindAddress,
    MetricsBindAddress: config.metricsBindAddress,
    BindAddressHardFail: config.bindAddressHardFail,
    EnableProfiling: config.enableProfiling,
    ShowHiddenMetricsForVersion: config.showHiddenMetricsForVersion,
    Mode: config.mode,
    IPTables: {
      MasqueradeBit: config.iptables.masqueradeBit,
      LocalhostNodePorts: config.iptables.localhostNodePorts,
    },
    IPVS: {
      Scheduler: config.ipvs.scheduler,
      ExcludeCIDRs: goSlice(config.ipvs.excludeCIDRs),
      StrictARP: config.ipvs.strictARP,
      TCPTimeout: duration(config.ipvs.tcpTimeoutMs),
      TCPFinTimeout: duration(config.ipvs.tcpFinTimeoutMs),
      UDPTimeout: duration(config.ipvs.udpTimeoutMs),
    },
    Winkernel: {
      NetworkName: config.winkernel.networkName,
      SourceVip: config.winkernel.sourceVip,
      EnableDSR: config.winkernel.enableDSR,
      RootHnsEndpointName: config.winkernel.rootHnsEndpointName,
      ForwardHealthCheckVip: config.winkernel.forwardHealthCheckVip,
    },
    NFTables: { MasqueradeBit: config.nftables.masqueradeBit },
    DetectLocalMode: config.detectLocalMode,
    DetectLocal: {
      BridgeInterface: config.detectLocal.bridgeInterface,
      ClusterCIDRs: goSlice(config.clusterCIDRs),
      InterfaceNamePrefix: config.detectLocal.interfaceNamePrefix,
    },
    NodePortAddresses: goSlice(config.nodePortAddresses),
    SyncPeriod: duration(config.syncPeriodMs),
    MinSyncPeriod: duration(config.minSyncPeriodMs),
    ConfigSyncPeriod: duration(config.configSyncPeriodMs),
  };
}

/**
 * The `/configz` body: `{"kubeproxy.config.k8s.io": {...}}`, with Go's HTML-safe escaping of
 * `<`, `>`, `&` and the line separators U+2028/U+2029.
 */
export function configzBody(config: KubeProxyConfiguration): string {
  return JSON.stringify({ [CONFIGZ_GROUP]: internalConfiguration(config) }).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
