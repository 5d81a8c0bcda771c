import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IPVS_SCHEDULERS } from '../../src/backends/ipvs/state.js';
import {
  defaultKubeProxyConfiguration,
  featureEnabled,
  type KubeProxyConfiguration,
  loadKubeProxyConfiguration,
} from '../../src/config/kubeproxy.js';
import { parseYamlDocument } from '../../src/config/yaml.js';
import { InputError } from '../../src/errors.js';

const HEADER = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n';

/** Loads HEADER + body as `config.yaml`; body lines therefore start at line 3. */
function load(body: string) {
  return loadKubeProxyConfiguration(HEADER + body, 'config.yaml');
}

function loadError(body: string): InputError {
  try {
    load(body);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected the configuration to be refused');
}

/** What kube-proxy 1.34 runs with for an empty v1alpha1 file (defaults.go + Linux platform defaults). */
const KUBE_PROXY_DEFAULTS: KubeProxyConfiguration = {
  apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
  kind: 'KubeProxyConfiguration',
  featureGates: {},
  clientConnection: {
    kubeconfig: '',
    acceptContentTypes: '',
    contentType: 'application/vnd.kubernetes.protobuf',
    qps: 5,
    burst: 10,
  },
  logging: {},
  hostnameOverride: '',
  bindAddress: '0.0.0.0',
  healthzBindAddress: '0.0.0.0:10256',
  metricsBindAddress: '127.0.0.1:10249',
  bindAddressHardFail: false,
  enableProfiling: false,
  showHiddenMetricsForVersion: '',
  mode: 'iptables',
  iptables: {
    masqueradeAll: false,
    masqueradeBit: 14,
    localhostNodePorts: true,
    snatNodeInternalIP: false,
    syncPeriodMs: 30_000,
    minSyncPeriodMs: 1_000,
  },
  ipvs: {
    syncPeriodMs: 30_000,
    minSyncPeriodMs: 0,
    scheduler: '',
    excludeCIDRs: [],
    strictARP: false,
    tcpTimeoutMs: 0,
    tcpFinTimeoutMs: 0,
    udpTimeoutMs: 0,
  },
  nftables: { masqueradeAll: false, masqueradeBit: 14, syncPeriodMs: 30_000, minSyncPeriodMs: 1_000 },
  winkernel: {
    networkName: '',
    sourceVip: '',
    enableDSR: false,
    rootHnsEndpointName: '',
    forwardHealthCheckVip: false,
  },
  detectLocalMode: 'ClusterCIDR',
  detectLocal: { bridgeInterface: '', interfaceNamePrefix: '' },
  clusterCIDR: '',
  clusterCIDRs: [],
  nodePortAddresses: [],
  oomScoreAdj: -999,
  conntrack: {
    maxPerCore: 32_768,
    min: 131_072,
    tcpEstablishedTimeoutMs: 86_400_000,
    tcpCloseWaitTimeoutMs: 3_600_000,
    tcpBeLiberal: false,
    udpTimeoutMs: 0,
    udpStreamTimeoutMs: 0,
  },
  configSyncPeriodMs: 900_000,
  portRange: '',
  windowsRunAsService: false,
  syncPeriodMs: 30_000,
  minSyncPeriodMs: 1_000,
};

describe('defaults', () => {
  it("match kube-proxy's", () => {
    expect(defaultKubeProxyConfiguration()).toEqual(KUBE_PROXY_DEFAULTS);
  });

  it('are what a file with only apiVersion and kind loads as, without warnings', () => {
    expect(load('')).toEqual({ config: KUBE_PROXY_DEFAULTS, warnings: [] });
  });

  it('replace zero values, as kube-proxy does (so minSyncPeriod: 0s means 1s)', () => {
    const { config } = load(
      'iptables:\n  syncPeriod: 0s\n  minSyncPeriod: 0s\nclientConnection:\n  qps: 0\n  burst: 0\nconfigSyncPeriod: 0s\n',
    );
    expect(config.iptables.syncPeriodMs).toBe(30_000);
    expect(config.iptables.minSyncPeriodMs).toBe(1_000);
    expect(config.clientConnection).toMatchObject({ qps: 5, burst: 10 });
    expect(config.configSyncPeriodMs).toBe(900_000);
  });

  it('derive the health and metrics addresses from an IPv6 bindAddress', () => {
    const { config } = load('bindAddress: "::"\n');
    expect(config.healthzBindAddress).toBe('[::]:10256');
    expect(config.metricsBindAddress).toBe('[::1]:10249');
  });

  it('append the default port to a bare address', () => {
    const { config } = load('healthzBindAddress: 0.0.0.0\nmetricsBindAddress: "::"\n');
    expect(config.healthzBindAddress).toBe('0.0.0.0:10256');
    expect(config.metricsBindAddress).toBe('[::]:10249');
  });
});

describe('real-world files', () => {
  it("load kubeadm 1.34's ConfigMap config.conf (every field with a zero value) with no warnings", () => {
    const configMap = parseYamlDocument(
      readFileSync(new URL('fixtures/kubeadm-1.34-kube-proxy-configmap.yaml', import.meta.url), 'utf8'),
      'kube-proxy-configmap.yaml',
    ) as { data: Record<string, string> };
    const text = configMap.data['config.conf']!;
    const { config, warnings } = loadKubeProxyConfiguration(text, 'config.conf');
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      ...KUBE_PROXY_DEFAULTS,
      clientConnection: {
        ...KUBE_PROXY_DEFAULTS.clientConnection,
        kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf',
      },
      logging: {
        flushFrequency: 0,
        options: { json: { infoBufferSize: '0' }, text: { infoBufferSize: '0' } },
        verbosity: 0,
      },
      clusterCIDR: '10.244.0.0/16',
      clusterCIDRs: ['10.244.0.0/16'],
    });
  });

  it("load a dump of kube-proxy's own defaulted configuration with no warnings", () => {
    const dump = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 10
  contentType: application/vnd.kubernetes.protobuf
  kubeconfig: ""
  qps: 5
clusterCIDR: ""
configSyncPeriod: 15m0s
conntrack:
  maxPerCore: 32768
  min: 131072
  tcpBeLiberal: false
  tcpCloseWaitTimeout: 1h0m0s
  tcpEstablishedTimeout: 24h0m0s
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: 0.0.0.0:10256
hostnameOverride: ""
iptables:
  localhostNodePorts: true
  masqueradeAll: false
  masqueradeBit: 14
  minSyncPeriod: 1s
  syncPeriod: 30s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 30s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
logging:
  flushFrequency: 5s
  format: text
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: 127.0.0.1:10249
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: 14
  minSyncPeriod: 1s
  syncPeriod: 30s
nodePortAddresses: null
oomScoreAdj: -999
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
`;
    const { config, warnings } = loadKubeProxyConfiguration(dump, 'dump.yaml');
    expect(warnings).toEqual([]);
    expect({ ...config, logging: {} }).toEqual(KUBE_PROXY_DEFAULTS);
  });

  it('accept JSON', () => {
    const json = JSON.stringify({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clusterCIDR: '10.244.0.0/16,fd00:10:244::/56',
      iptables: { masqueradeAll: true, syncPeriod: '1m0s' },
    });
    const { config, warnings } = loadKubeProxyConfiguration(json, 'config.json');
    expect(warnings).toEqual([]);
    expect(config.clusterCIDRs).toEqual(['10.244.0.0/16', 'fd00:10:244::/56']);
    expect(config.iptables.masqueradeAll).toBe(true);
    expect(config.syncPeriodMs).toBe(60_000);
  });
});

describe('warnings', () => {
  it('name an unknown field with its line', () => {
    const { warnings } = load('iptables:\n  masqueradeBitt: 14\nnodePortAdresses: []\n');
    expect(warnings).toEqual([
      "config.yaml:4: iptables.masqueradeBitt: unknown field; ignored, as kube-proxy's lenient decoding does",
      "config.yaml:5: nodePortAdresses: unknown field; ignored, as kube-proxy's lenient decoding does",
    ]);
  });

  it('ignore a top-level syncPeriod (v1alpha1 has none) and say where kube-proxy reads it', () => {
    const { config, warnings } = load('syncPeriod: 10s\nminSyncPeriod: 2s\n');
    expect(config.syncPeriodMs).toBe(30_000);
    expect(config.minSyncPeriodMs).toBe(1_000);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^config\.yaml:3: syncPeriod: unknown field \(.*iptables\.syncPeriod/);
    expect(warnings[1]).toMatch(/^config\.yaml:4: minSyncPeriod: unknown field \(.*iptables\.minSyncPeriod/);
  });

  it('name an unimplemented field set to a non-default value', () => {
    const { warnings } = load(
      ['ipvs:', '  strictARP: true', 'logging:', '  verbosity: 4', 'enableProfiling: true', ''].join('\n'),
    );
    expect(warnings).toEqual([
      'config.yaml:4: ipvs.strictARP: true: Switchboard does not implement this field; ignored',
      'config.yaml:6: logging.verbosity: 4: Switchboard does not implement this field; ignored',
      'config.yaml:7: enableProfiling: true: Switchboard does not implement this field; ignored',
    ]);
  });

  it('stay quiet for the conntrack settings and oomScoreAdj, which are applied at start', () => {
    const { config, warnings } = load(
      [
        'oomScoreAdj: -500',
        'conntrack:',
        '  maxPerCore: 65536',
        '  min: 262144',
        '  tcpEstablishedTimeout: 2h',
        '  tcpCloseWaitTimeout: 30m',
        '  udpTimeout: 30s',
        '  udpStreamTimeout: 2m',
        '',
      ].join('\n'),
    );
    expect(warnings).toEqual([]);
    expect(config.oomScoreAdj).toBe(-500);
    expect(config.conntrack).toMatchObject({
      maxPerCore: 65_536,
      min: 262_144,
      tcpEstablishedTimeoutMs: 7_200_000,
      tcpCloseWaitTimeoutMs: 1_800_000,
      udpTimeoutMs: 30_000,
      udpStreamTimeoutMs: 120_000,
    });
  });

  it('stay quiet for unimplemented fields at zero or at their default', () => {
    const { warnings } = load(
      'oomScoreAdj: -999\nconntrack:\n  maxPerCore: 0\n  tcpEstablishedTimeout: 0s\nipvs:\n  syncPeriod: 30s\n  scheduler: rr\n',
    );
    expect(warnings).toEqual([]);
  });

  it('treat ipvs sync periods as implemented in ipvs mode, which then takes its periods from ipvs.*', () => {
    const { config, warnings } = load('mode: ipvs\nipvs:\n  syncPeriod: 45s\n  minSyncPeriod: 2s\n');
    expect(warnings).toEqual([]);
    expect(config.mode).toBe('ipvs');
    expect(config.syncPeriodMs).toBe(45_000);
    expect(config.minSyncPeriodMs).toBe(2_000);
  });

  it('report ipvs sync periods as ignored in iptables mode', () => {
    const { warnings } = load('ipvs:\n  syncPeriod: 45s\n');
    expect(warnings).toEqual([
      'config.yaml:4: ipvs.syncPeriod: "45s": Switchboard does not implement this field; ignored',
    ]);
  });

  it('name a feature gate Switchboard does not know', () => {
    const { warnings } = load('featureGates:\n  SomeFutureGate: true\n');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^config\.yaml:4: featureGates\.SomeFutureGate: not a feature gate that Switchboard knows/,
    );
  });
});

describe('feature gates', () => {
  it("default to kube-proxy 1.34's values", () => {
    const config = defaultKubeProxyConfiguration();
    expect(featureEnabled(config, 'PreferSameTrafficDistribution')).toBe(true);
    expect(featureEnabled(config, 'TopologyAwareHints')).toBe(true);
    expect(featureEnabled(config, 'ServiceTrafficDistribution')).toBe(true);
    expect(featureEnabled(config, 'NoSuchGate')).toBe(false);
  });

  it('can turn a beta gate off', () => {
    const { config, warnings } = load('featureGates:\n  PreferSameTrafficDistribution: false\n');
    expect(warnings).toEqual([]);
    expect(featureEnabled(config, 'PreferSameTrafficDistribution')).toBe(false);
  });

  it('refuse to move a GA gate off its locked default', () => {
    expect(loadError('featureGates:\n  TopologyAwareHints: false\n').message).toBe(
      'config.yaml:4: featureGates.TopologyAwareHints: cannot set feature gate TopologyAwareHints to false, feature is locked to true',
    );
  });

  it('refuse a non-boolean value', () => {
    expect(loadError('featureGates:\n  PreferSameTrafficDistribution: "yes"\n').message).toMatch(
      /^config\.yaml:4: featureGates\.PreferSameTrafficDistribution: .*boolean/,
    );
  });
});

describe('errors', () => {
  it('name the field and line of an invalid masqueradeBit', () => {
    expect(loadError('iptables:\n  masqueradeAll: false\n  masqueradeBit: 32\n').message).toBe(
      'config.yaml:5: iptables.masqueradeBit: must be within the range [0, 31] (got 32)',
    );
  });

  it('name the field and line of a bad duration', () => {
    expect(loadError('iptables:\n  syncPeriod: 30 seconds\n').message).toBe(
      'config.yaml:4: iptables.syncPeriod: invalid duration "30 seconds": expected a number followed by ns, us, ms, s, m or h',
    );
  });

  it('refuse a duration written as a bare number, as kube-proxy does', () => {
    expect(loadError('configSyncPeriod: 30\n').message).toMatch(
      /^config\.yaml:3: configSyncPeriod: expected a duration string/,
    );
  });

  it('name the field and line of a bad clusterCIDR', () => {
    expect(loadError('clusterCIDR: 10.244.0.0/33\n').message).toMatch(
      /^config\.yaml:3: clusterCIDR: must be a valid CIDR block/,
    );
    expect(loadError('clusterCIDR: 10.244.0.0/16,10.96.0.0/12\n').message).toMatch(
      /^config\.yaml:3: clusterCIDR: must be a valid DualStack CIDR/,
    );
    expect(loadError('clusterCIDR: 10.0.0.0/8,fd00::/48,10.1.0.0/16\n').message).toMatch(
      /^config\.yaml:3: clusterCIDR: may only contain at most one IPv4 CIDR and one IPv6 CIDR/,
    );
  });

  it('name the entry and line of a bad nodePortAddresses item', () => {
    expect(loadError('nodePortAddresses:\n- 192.168.0.0/16\n- eth0\n').message).toBe(
      `config.yaml:5: nodePortAddresses[1]: must be a valid CIDR or the keyword 'primary' (got "eth0")`,
    );
    expect(loadError('nodePortAddresses: [primary, 10.0.0.0/8]\n').message).toBe(
      "config.yaml:3: nodePortAddresses[0]: can't use both 'primary' and CIDRs",
    );
    expect(load('nodePortAddresses: [primary]\n').config.nodePortAddresses).toEqual(['primary']);
  });

  it('name the field and line of a bad mode', () => {
    expect(loadError('mode: userspace\n').message).toBe(
      'config.yaml:3: mode: must be iptables, ipvs or blank (blank means iptables), not "userspace"',
    );
  });

  it('report nftables and kernelspace modes as not supported', () => {
    expect(loadError('mode: nftables\n').message).toMatch(
      /^config\.yaml:3: mode: .*nftables mode is not supported/,
    );
    expect(loadError('mode: kernelspace\n').message).toMatch(/^config\.yaml:3: mode: .*Windows mode/);
  });

  it('check detectLocalMode and the interface it needs', () => {
    expect(loadError('detectLocalMode: PodCIDR\n').message).toMatch(
      /^config\.yaml:3: detectLocalMode: must be one of/,
    );
    expect(loadError('detectLocalMode: BridgeInterface\n').message).toBe(
      'config.yaml:3: detectLocal.bridgeInterface: must not be empty when detectLocalMode is BridgeInterface',
    );
    expect(
      loadError('detectLocalMode: InterfaceNamePrefix\ndetectLocal:\n  bridgeInterface: cbr0\n').message,
    ).toBe(
      'config.yaml:3: detectLocal.interfaceNamePrefix: must not be empty when detectLocalMode is InterfaceNamePrefix',
    );
    const { config } = load('detectLocalMode: BridgeInterface\ndetectLocal:\n  bridgeInterface: cbr0\n');
    expect(config.detectLocalMode).toBe('BridgeInterface');
    expect(config.detectLocal.bridgeInterface).toBe('cbr0');
  });

  it('check the sync periods as kube-proxy does', () => {
    expect(loadError('iptables:\n  syncPeriod: 1s\n  minSyncPeriod: 2s\n').message).toBe(
      'config.yaml:4: iptables.syncPeriod: must be greater than or equal to iptables.minSyncPeriod (1s < 2s)',
    );
    expect(loadError('iptables:\n  syncPeriod: -5s\n').message).toMatch(
      /^config\.yaml:4: iptables\.syncPeriod: must be greater than 0/,
    );
    expect(loadError('iptables:\n  minSyncPeriod: -1s\n').message).toMatch(
      /^config\.yaml:4: iptables\.minSyncPeriod: must be greater than or equal to 0/,
    );
  });

  it('check bind addresses', () => {
    expect(loadError('bindAddress: 10.0.0.1:80\n').message).toMatch(
      /^config\.yaml:3: bindAddress: not a valid/,
    );
    expect(loadError('metricsBindAddress: 127.0.0.1:99999\n').message).toBe(
      'config.yaml:3: metricsBindAddress: must be a valid port (got "99999")',
    );
    expect(loadError('healthzBindAddress: localhost:10256\n').message).toBe(
      'config.yaml:3: healthzBindAddress: must be a valid IP (got "localhost")',
    );
  });

  it('name a field with the wrong type', () => {
    expect(loadError('iptables:\n  masqueradeAll: "yes"\n').message).toMatch(
      /^config\.yaml:4: iptables\.masqueradeAll: .*expected boolean/,
    );
  });

  it('report every problem, one per line, in file order', () => {
    const lines = loadError('iptables:\n  masqueradeBit: 40\nmode: bogus\nclusterCIDR: nope\n').message.split(
      '\n',
    );
    expect(lines).toEqual([
      'config.yaml:4: iptables.masqueradeBit: must be within the range [0, 31] (got 40)',
      'config.yaml:5: mode: must be iptables, ipvs or blank (blank means iptables), not "bogus"',
      'config.yaml:6: clusterCIDR: must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)',
    ]);
  });

  it('refuse a wrong apiVersion or kind', () => {
    expect(() =>
      loadKubeProxyConfiguration(
        'apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n',
        'c.yaml',
      ),
    ).toThrow(
      'c.yaml:1: apiVersion: must be kubeproxy.config.k8s.io/v1alpha1 (got "kubeproxy.config.k8s.io/v1alpha2")',
    );
    expect(() =>
      loadKubeProxyConfiguration('apiVersion: kubeproxy.config.k8s.io/v1alpha1\n', 'c.yaml'),
    ).toThrow('c.yaml:1: kind: must be KubeProxyConfiguration (got nothing)');
  });

  it('recognise a whole ConfigMap given by mistake', () => {
    const text = readFileSync(
      new URL('fixtures/kubeadm-1.34-kube-proxy-configmap.yaml', import.meta.url),
      'utf8',
    );
    expect(() => loadKubeProxyConfiguration(text, 'cm.yaml')).toThrow(/data\["config\.conf"\]/);
  });

  it('name the file and line of a YAML syntax error', () => {
    expect(() => load('iptables:\n  masqueradeBit: [14\nmode: ""\n')).toThrow(/^config\.yaml:\d+:\d+: /);
  });

  it('refuse a document that is not a mapping', () => {
    expect(() => loadKubeProxyConfiguration('- a\n- b\n', 'c.yaml')).toThrow(
      'c.yaml:1: expected a KubeProxyConfiguration mapping, got a list',
    );
  });
});

describe('the ipvs block (mode: ipvs)', () => {
  it('accepts every scheduler kube-proxy can run, mh included, and blank', () => {
    // The list itself (mh included) is pinned by the unknown-scheduler message below.
    for (const scheduler of [...IPVS_SCHEDULERS, '""']) {
      const { config, warnings } = load(`mode: ipvs\nipvs:\n  scheduler: ${scheduler}\n`);
      expect(config.ipvs.scheduler).toBe(scheduler === '""' ? '' : scheduler);
      expect(warnings).toEqual([]);
    }
  });

  it('names file, line and field of an unknown scheduler', () => {
    expect(loadError('mode: ipvs\nipvs:\n  scheduler: fastest\n').message).toBe(
      'config.yaml:5: ipvs.scheduler: must be one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh or blank (blank means rr), not "fastest"',
    );
  });

  it('names file, line and field of a negative timeout and of a bad excludeCIDR', () => {
    const message = loadError(
      'mode: ipvs\nipvs:\n  tcpTimeout: -1s\n  excludeCIDRs: [10.0.0.0/8, "10.0.0.0/33"]\n',
    ).message;
    expect(message.split('\n')).toEqual([
      'config.yaml:5: ipvs.tcpTimeout: must be greater than or equal to 0',
      'config.yaml:6: ipvs.excludeCIDRs[1]: must be a valid CIDR (got "10.0.0.0/33")',
    ]);
  });

  it('carries excludeCIDRs, strictARP and the timeouts without warnings in ipvs mode', () => {
    const { config, warnings } = load(
      'mode: ipvs\nipvs:\n  excludeCIDRs: [10.0.0.0/8]\n  strictARP: true\n  tcpTimeout: 900s\n  tcpFinTimeout: 2m\n  udpTimeout: 10s\n',
    );
    expect(warnings).toEqual([]);
    expect(config.ipvs).toMatchObject({
      excludeCIDRs: ['10.0.0.0/8'],
      strictARP: true,
      tcpTimeoutMs: 900_000,
      tcpFinTimeoutMs: 120_000,
      udpTimeoutMs: 10_000,
    });
  });

  it('a mode given by the caller overrides the file: its section is validated and sets the periods', () => {
    const text = `${HEADER}mode: iptables\nipvs:\n  syncPeriod: 45s\n  scheduler: mh\n`;
    const { config, warnings } = loadKubeProxyConfiguration(text, 'config.yaml', { mode: 'ipvs' });
    expect(config.mode).toBe('ipvs');
    expect(config.syncPeriodMs).toBe(45_000);
    expect(warnings).toEqual([]);
    expect(() =>
      loadKubeProxyConfiguration(`${HEADER}ipvs:\n  scheduler: bogus\n`, 'config.yaml', { mode: 'ipvs' }),
    ).toThrow(/config\.yaml:4: ipvs\.scheduler: /);
    // kube-proxy checks the ipvs block only in ipvs mode
    expect(
      loadKubeProxyConfiguration(`${HEADER}ipvs:\n  scheduler: bogus\n`, 'config.yaml').config.mode,
    ).toBe('iptables');
    expect(defaultKubeProxyConfiguration('ipvs').mode).toBe('ipvs');
  });
});
