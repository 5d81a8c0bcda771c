/**
 * `/configz`: the configuration in effect, in the shape kube-proxy's configz handler gives it
 * (the internal KubeProxyConfiguration through Go's json.Marshal: Go field names, duration
 * strings, null for nil maps and slices).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defaultKubeProxyConfiguration, loadKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { CONFIGZ_GROUP, configzBody } from '../../src/server/configz.js';
import { MetricsServer, ProxyMetrics } from '../../src/server/metrics.js';
import { httpGet, memoryLogger } from './helpers.js';

/** What kube-proxy 1.34 serves for an empty configuration file on Linux (hand-derived from its types). */
const KUBE_PROXY_DEFAULTS = {
  Linux: {
    Conntrack: {
      MaxPerCore: 32768,
      Min: 131072,
      TCPEstablishedTimeout: '24h0m0s',
      TCPCloseWaitTimeout: '1h0m0s',
      TCPBeLiberal: false,
      UDPTimeout: '0s',
      UDPStreamTimeout: '0s',
    },
    MasqueradeAll: false,
    OOMScoreAdj: -999,
  },
  Windows: { RunAsService: false },
  FeatureGates: null,
  ClientConnection: {
    Kubeconfig: '',
    AcceptContentTypes: '',
    ContentType: 'application/vnd.kubernetes.protobuf',
    QPS: 5,
    Burst: 10,
  },
  Logging: {
    format: 'text',
    flushFrequency: '5s',
    verbosity: 0,
    options: { text: { infoBufferSize: '0' }, json: { infoBufferSize: '0' } },
  },
  HostnameOverride: '',
  BindAddress: '0.0.0.0',
  HealthzBindAddress: '0.0.0.0:10256',
  MetricsBindAddress: '127.0.0.1:10249',
  BindAddressHardFail: false,
  EnableProfiling: false,
  ShowHiddenMetricsForVersion: '',
  Mode: 'iptables',
  IPTables: { MasqueradeBit: 14, LocalhostNodePorts: true },
  IPVS: {
    Scheduler: '',
    ExcludeCIDRs: null,
    StrictARP: false,
    TCPTimeout: '0s',
    TCPFinTimeout: '0s',
    UDPTimeout: '0s',
  },
  Winkernel: {
    NetworkName: '',
    SourceVip: '',
    EnableDSR: false,
    RootHnsEndpointName: '',
    ForwardHealthCheckVip: false,
  },
  NFTables: { MasqueradeBit: 14 },
  DetectLocalMode: 'ClusterCIDR',
  DetectLocal: { BridgeInterface: '', ClusterCIDRs: null, InterfaceNamePrefix: '' },
  NodePortAddresses: null,
  SyncPeriod: '30s',
  MinSyncPeriod: '1s',
  ConfigSyncPeriod: '15m0s',
};

describe('configzBody', () => {
  it("gives kube-proxy's defaults under the group name, in Go's field order", () => {
    const body = configzBody(defaultKubeProxyConfiguration());
    const parsed = JSON.parse(body) as Record<string, Record<string, unknown>>;
    expect(Object.keys(parsed)).toEqual([CONFIGZ_GROUP]);
    expect(parsed[CONFIGZ_GROUP]).toEqual(KUBE_PROXY_DEFAULTS);
    expect(Object.keys(parsed[CONFIGZ_GROUP] ?? {})).toEqual(Object.keys(KUBE_PROXY_DEFAULTS));
    expect(body.startsWith('{"kubeproxy.config.k8s.io":{"Linux":{"Conntrack":{"MaxPerCore":32768,')).toBe(
      true,
    );
  });

  it('carries the values of a loaded file, moved where kube-proxy keeps them internally', () => {
    const { config } = loadKubeProxyConfiguration(
      [
        'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
        'kind: KubeProxyConfiguration',
        'clusterCIDR: 10.244.0.0/16,fd00:10:244::/56',
        'oomScoreAdj: -500',
        'featureGates: {PreferSameTrafficDistribution: true, LoadBalancerIPMode: true}',
        'iptables: {masqueradeAll: true, masqueradeBit: 15, syncPeriod: 1m, minSyncPeriod: 0s}',
        'conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 2h, udpTimeout: 90s}',
        'nodePortAddresses: [192.168.0.0/16]',
        'logging: {verbosity: 4}',
        'clientConnection: {kubeconfig: /var/lib/kube-proxy/kubeconfig.conf}',
        '',
      ].join('\n'),
      'config.yaml',
    );
    const internal = (JSON.parse(configzBody(config)) as Record<string, Record<string, unknown>>)[
      CONFIGZ_GROUP
    ];
    expect(internal).toMatchObject({
      Linux: {
        Conntrack: { MaxPerCore: 0, TCPEstablishedTimeout: '2h0m0s', UDPTimeout: '1m30s' },
        MasqueradeAll: true,
        OOMScoreAdj: -500,
      },
      FeatureGates: { LoadBalancerIPMode: true, PreferSameTrafficDistribution: true },
      ClientConnection: { Kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf' },
      Logging: { format: 'text', flushFrequency: '5s', verbosity: 4 },
      IPTables: { MasqueradeBit: 15, LocalhostNodePorts: true },
      DetectLocal: { ClusterCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'] },
      NodePortAddresses: ['192.168.0.0/16'],
      SyncPeriod: '1m0s',
      MinSyncPeriod: '1s',
    });
    // Go sorts map keys.
    expect(Object.keys(internal?.['FeatureGates'] as object)).toEqual([
      'LoadBalancerIPMode',
      'PreferSameTrafficDistribution',
    ]);
  });

  it("escapes <, > and & as Go's encoder does", () => {
    const config = { ...defaultKubeProxyConfiguration(), hostnameOverride: 'a<b>&c' };
    const body = configzBody(config);
    expect(body).toContain('"HostnameOverride":"a\\u003cb\\u003e\\u0026c"');
    expect(
      (JSON.parse(body) as Record<string, { HostnameOverride: string }>)[CONFIGZ_GROUP]?.HostnameOverride,
    ).toBe('a<b>&c');
  });
});

describe('/configz on the metrics server', () => {
  let server: MetricsServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('answers application/json with the body', async () => {
    const body = configzBody(defaultKubeProxyConfiguration());
    server = new MetricsServer(new ProxyMetrics({ processMetrics: false }), {
      address: '127.0.0.1:0',
      proxyMode: 'iptables',
      configz: body,
      log: memoryLogger().log,
    });
    const { port } = await server.start();
    const answer = await httpGet(port, '/configz');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
    expect(answer.body).toBe(body);
  });

  it('is a 404 when no configuration was given', async () => {
    server = new MetricsServer(new ProxyMetrics({ processMetrics: false }), {
      address: '127.0.0.1:0',
      proxyMode: 'iptables',
      log: memoryLogger().log,
    });
    const { port } = await server.start();
    expect(await httpGet(port, '/configz')).toMatchObject({ status: 404, body: '404 page not found\n' });
  });
});
