// The Helm chart, checked with a real helm (scripts/fetch-helm.sh installs it at .cache/bin/helm; HELM
// overrides the path): it lints strictly, renders the DaemonSet/RBAC/ConfigMap Switchboard needs, and its
// values schema rejects bad values in both `helm lint --strict` and `helm template`.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMap, isScalar, parse, parseDocument, type YAMLMap } from 'yaml';
import {
  chartDir,
  helm,
  helmBin,
  helmProblem,
  type K8sObject,
  lintChart,
  onlyOne,
  renderChart,
  templateChart,
} from './helm.js';

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  securityContext?: { privileged?: boolean };
  livenessProbe?: { httpGet?: { path: string; port: number | string } };
  readinessProbe?: unknown;
  resources?: unknown;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string; items?: { key: string; path: string }[] };
}

interface PodSpec {
  hostNetwork?: boolean;
  dnsPolicy?: string;
  priorityClassName?: string;
  serviceAccountName?: string;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
  nodeSelector?: Record<string, string>;
  containers: Container[];
  volumes?: Volume[];
}

interface DaemonSet extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    updateStrategy: { type: string; rollingUpdate?: { maxUnavailable?: number | string } };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
}

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
}

interface ConfigMap extends K8sObject {
  data: Record<string, string>;
}

const ciIsSet = process.env['CI'] !== undefined && process.env['CI'] !== '' && process.env['CI'] !== 'false';
const problem = await helmProblem();
const missingHelm = `helm is not usable at ${helmBin} (${problem}); run scripts/fetch-helm.sh or set HELM to a helm binary`;

if (problem !== undefined) {
  if (ciIsSet) {
    it('has a helm binary to test the chart with', () => {
      throw new Error(missingHelm);
    });
  } else {
    console.warn(`\n*** SKIPPING the Helm chart tests: ${missingHelm}\n`);
  }
}

function switchboardContainer(daemonSet: DaemonSet): Container {
  const container = daemonSet.spec.template.spec.containers.find((c) => c.name === 'switchboard');
  if (!container) throw new Error('the DaemonSet has no container named switchboard');
  return container;
}

function configChecksum(objects: readonly K8sObject[]): string {
  const checksum = onlyOne<DaemonSet>(objects, 'DaemonSet').spec.template.metadata.annotations?.[
    'checksum/config'
  ];
  if (checksum === undefined) throw new Error('the pod template has no checksum/config annotation');
  return checksum;
}

function renderedConfig(objects: readonly K8sObject[]): Record<string, unknown> {
  const configMap = onlyOne<ConfigMap>(objects, 'ConfigMap');
  const text = configMap.data['config.yaml'];
  if (text === undefined) throw new Error('the ConfigMap has no config.yaml key');
  return parse(text) as Record<string, unknown>;
}

/** The chart refuses to render without a way to reach the API server; most tests give it one. */
const API_SERVER = ['--set', 'apiServer.host=192.168.0.10'];
const render = (values: readonly string[] = []): Promise<K8sObject[]> =>
  renderChart([...API_SERVER, ...values]);

describe.skipIf(problem !== undefined)('charts/switchboard', () => {
  describe('with default values (plus apiServer.host)', () => {
    let objects: K8sObject[] = [];
    const daemonSet = (): DaemonSet => onlyOne<DaemonSet>(objects, 'DaemonSet');
    const pod = (): PodSpec => daemonSet().spec.template.spec;
    const container = (): Container => switchboardContainer(daemonSet());

    beforeAll(async () => {
      objects = await render();
    });

    it('passes helm lint --strict', async () => {
      const result = await lintChart(API_SERVER);
      expect(result.stderr).toBe('');
      expect(result.exitCode).toBe(0);
    });

    it('renders exactly the objects a node proxy needs', () => {
      expect(objects.map((o) => o.kind).sort()).toEqual([
        'ClusterRole',
        'ClusterRoleBinding',
        'ConfigMap',
        'DaemonSet',
        'ServiceAccount',
      ]);
      for (const object of objects) {
        expect(object.metadata.labels).toMatchObject({
          'app.kubernetes.io/name': 'switchboard',
          'app.kubernetes.io/instance': 'sb',
          'app.kubernetes.io/managed-by': 'Helm',
          'app.kubernetes.io/version': '0.1.0',
        });
      }
    });

    it('runs the DaemonSet in the host network namespace, privileged and node-critical', () => {
      expect(pod().hostNetwork).toBe(true);
      // Never cluster DNS: it sits behind a ClusterIP, which works only once this proxy has synced.
      expect(pod().dnsPolicy).toBe('Default');
      expect(container().securityContext?.privileged).toBe(true);
      expect(pod().priorityClassName).toBe('system-node-critical');
      expect(pod().nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    });

    it('tolerates every taint', () => {
      const tolerateAll = pod().tolerations?.filter((t) => t.operator === 'Exists' && t.key === undefined);
      expect(tolerateAll).toEqual([{ operator: 'Exists' }]);
    });

    it('rolls out node by node', () => {
      expect(daemonSet().spec.updateStrategy).toEqual({
        type: 'RollingUpdate',
        rollingUpdate: { maxUnavailable: 1 },
      });
      expect(daemonSet().spec.template.metadata.labels).toMatchObject(daemonSet().spec.selector.matchLabels);
    });

    it('probes liveness on /livez of the healthz port, with no readiness probe', () => {
      expect(container().livenessProbe?.httpGet).toMatchObject({ path: '/livez', port: 10256 });
      expect(container().readinessProbe).toBeUndefined();
    });

    it('mounts the xtables lock, the kernel modules and the config', () => {
      const volumes = pod().volumes ?? [];
      expect(volumes.find((v) => v.name === 'xtables-lock')?.hostPath).toEqual({
        path: '/run/xtables.lock',
        type: 'FileOrCreate',
      });
      expect(volumes.find((v) => v.name === 'lib-modules')?.hostPath).toEqual({ path: '/lib/modules' });
      expect(volumes.find((v) => v.name === 'config')?.configMap).toEqual({
        name: onlyOne(objects, 'ConfigMap').metadata.name,
      });
      expect(container().volumeMounts).toEqual(
        expect.arrayContaining([
          { name: 'config', mountPath: '/etc/switchboard', readOnly: true },
          { name: 'xtables-lock', mountPath: '/run/xtables.lock' },
          { name: 'lib-modules', mountPath: '/lib/modules', readOnly: true },
        ]),
      );
    });

    it('runs `run --config` with the node name from the downward API', () => {
      expect(container().image).toBe('ghcr.io/switchboard-proxy/switchboard:0.1.0');
      expect(container().args).toEqual([
        'run',
        '--config',
        '/etc/switchboard/config.yaml',
        '--hostname-override',
        '$(NODE_NAME)',
      ]);
      expect(container().env).toContainEqual({
        name: 'NODE_NAME',
        valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } },
      });
    });

    it('runs as its own ServiceAccount, bound to its ClusterRole', () => {
      const serviceAccount = onlyOne(objects, 'ServiceAccount');
      expect(pod().serviceAccountName).toBe(serviceAccount.metadata.name);
      expect(serviceAccount.metadata.namespace).toBe('kube-system');
      expect(onlyOne(objects, 'ClusterRoleBinding')).toMatchObject({
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: onlyOne(objects, 'ClusterRole').metadata.name,
        },
        subjects: [{ kind: 'ServiceAccount', name: serviceAccount.metadata.name, namespace: 'kube-system' }],
      });
    });

    it('grants only reads of services, endpointslices and nodes and writes of events', () => {
      expect(onlyOne(objects, 'ClusterRole')['rules']).toEqual([
        { apiGroups: [''], resources: ['services', 'nodes'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch', 'update'] },
      ]);
    });

    it('writes a KubeProxyConfiguration with kube-proxy defaults and no hostnameOverride', () => {
      const config = renderedConfig(objects);
      expect(config).toMatchObject({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        mode: 'iptables',
        healthzBindAddress: '0.0.0.0:10256',
        metricsBindAddress: '127.0.0.1:10249',
        iptables: { masqueradeBit: 14, masqueradeAll: false, localhostNodePorts: true, minSyncPeriod: '1s' },
      });
      expect(config).not.toHaveProperty('hostnameOverride');
    });
  });

  describe('with values set', () => {
    it('carries config values into config.yaml', async () => {
      const objects = await render([
        '--set',
        'config.clusterCIDR=10.244.0.0/16\\,fd00:10:244::/56',
        '--set',
        'config.mode=ipvs',
        '--set',
        'config.iptables.masqueradeBit=15',
        '--set',
        'config.featureGates.SomeGate=true',
        '--set-json',
        'config.nodePortAddresses=["192.168.0.0/16","primary"]',
      ]);
      expect(renderedConfig(objects)).toMatchObject({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clusterCIDR: '10.244.0.0/16,fd00:10:244::/56',
        mode: 'ipvs',
        iptables: { masqueradeBit: 15, syncPeriod: '30s' },
        featureGates: { SomeGate: true },
        nodePortAddresses: ['192.168.0.0/16', 'primary'],
      });
    });

    it('probes the port of a non-default healthzBindAddress', async () => {
      const objects = await render(['--set', 'config.healthzBindAddress=[::]:10300']);
      const container = switchboardContainer(onlyOne<DaemonSet>(objects, 'DaemonSet'));
      expect(container.livenessProbe?.httpGet).toMatchObject({ path: '/livez', port: 10300 });
    });

    it('passes maxUnavailable, image and extra flags through', async () => {
      const objects = await render([
        '--set',
        'updateStrategy.maxUnavailable=10%',
        '--set',
        'image.repository=registry.example/sb',
        '--set-string',
        'image.tag=1.2.3',
        '--set-json',
        'extraArgs=["--extra-flag=1"]',
      ]);
      const daemonSet = onlyOne<DaemonSet>(objects, 'DaemonSet');
      const container = switchboardContainer(daemonSet);
      expect(daemonSet.spec.updateStrategy.rollingUpdate?.maxUnavailable).toBe('10%');
      expect(container.image).toBe('registry.example/sb:1.2.3');
      expect(container.args?.at(-1)).toBe('--extra-flag=1');
    });

    it('changes the checksum annotation when, and only when, the config changes', async () => {
      const base = configChecksum(await render());
      expect(configChecksum(await render())).toBe(base);
      expect(configChecksum(await render(['--set', 'config.clusterCIDR=10.244.0.0/16']))).not.toBe(base);
      expect(configChecksum(await render(['--set', 'config.iptables.masqueradeAll=true']))).not.toBe(base);
      expect(configChecksum(await render(['--set', 'resources.limits.memory=1Gi']))).toBe(base);
    });

    it('caps the V8 heap at 70% of the memory limit, or as maxOldSpaceSizeMiB says (0: no cap)', async () => {
      const nodeOptions = async (values: string[]) =>
        (switchboardContainer(onlyOne<DaemonSet>(await render(values), 'DaemonSet')).env ?? []).find(
          (e) => e.name === 'NODE_OPTIONS',
        )?.value;
      expect(await nodeOptions([])).toBe('--max-old-space-size=448');
      expect(await nodeOptions(['--set', 'resources.limits.memory=1Gi'])).toBe('--max-old-space-size=716');
      expect(await nodeOptions(['--set', 'maxOldSpaceSizeMiB=300'])).toBe('--max-old-space-size=300');
      expect(await nodeOptions(['--set', 'maxOldSpaceSizeMiB=0'])).toBeUndefined();
      // Not whole Mi or Gi: no derived cap (set maxOldSpaceSizeMiB).
      expect(await nodeOptions(['--set', 'resources.limits.memory=700M'])).toBeUndefined();
    });

    it('omits RBAC and the ServiceAccount when asked, using the named account', async () => {
      const objects = await render([
        '--set',
        'rbac.create=false',
        '--set',
        'serviceAccount.create=false',
        '--set',
        'serviceAccount.name=kube-proxy',
      ]);
      expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'DaemonSet']);
      expect(onlyOne<DaemonSet>(objects, 'DaemonSet').spec.template.spec.serviceAccountName).toBe(
        'kube-proxy',
      );
    });
  });

  describe('reaching the API server', () => {
    const daemonSetOf = (objects: readonly K8sObject[]) => onlyOne<DaemonSet>(objects, 'DaemonSet');
    const envOf = (objects: readonly K8sObject[]) =>
      Object.fromEntries(
        (switchboardContainer(daemonSetOf(objects)).env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]),
      );

    // (helm lint renders in lint mode, where `fail` is only reported; ci/*.yaml give it an address.)
    it('refuses helm template and helm install without apiServer.host or kubeconfig.fromConfigMap, saying why', async () => {
      const results = [
        await templateChart(),
        await helm(['install', '--dry-run=client', 'sb', chartDir, '--namespace', 'kube-system']),
      ];
      for (const result of results) {
        expect(result.exitCode).not.toBe(0);
        const text = result.stdout + result.stderr;
        for (const phrase of [
          "Switchboard needs the API server's own address: set apiServer.host",
          'kubeconfig.fromConfigMap',
          'the ClusterIP of the "kubernetes"',
          'it leads to the API server only once a service\nproxy has written',
          'Switchboard is that service proxy',
          '--set apiServer.viaClusterIP=true',
        ]) {
          expect(text).toContain(phrase);
        }
      }
    });

    it('apiServer.host and apiServer.port become KUBERNETES_SERVICE_HOST/PORT, keeping the in-cluster credentials', async () => {
      const objects = await renderChart(['--set', 'apiServer.host=192.168.0.10']);
      expect(envOf(objects)).toMatchObject({
        KUBERNETES_SERVICE_HOST: '192.168.0.10',
        KUBERNETES_SERVICE_PORT: '6443',
      });
      const container = switchboardContainer(daemonSetOf(objects));
      expect(container.args).not.toContain('--kubeconfig');
      expect(daemonSetOf(objects).spec.template.spec.volumes?.map((v) => v.name)).not.toContain('kubeconfig');
      expect(
        envOf(await renderChart(['--set', 'apiServer.host=api.example.com', '--set', 'apiServer.port=8443'])),
      ).toMatchObject({ KUBERNETES_SERVICE_HOST: 'api.example.com', KUBERNETES_SERVICE_PORT: '8443' });
      expect(envOf(await renderChart(['--set', 'apiServer.host=fd00:192:168::10']))).toMatchObject({
        KUBERNETES_SERVICE_HOST: 'fd00:192:168::10',
      });
    });

    it("kubeconfig.fromConfigMap mounts the ConfigMap's key and passes it as --kubeconfig", async () => {
      const objects = await renderChart(['--set', 'kubeconfig.fromConfigMap.name=kube-proxy']);
      const daemonSet = daemonSetOf(objects);
      const container = switchboardContainer(daemonSet);
      expect(daemonSet.spec.template.spec.volumes).toContainEqual({
        name: 'kubeconfig',
        configMap: { name: 'kube-proxy', items: [{ key: 'kubeconfig.conf', path: 'kubeconfig.conf' }] },
      });
      expect(container.volumeMounts).toContainEqual({
        name: 'kubeconfig',
        mountPath: '/var/lib/switchboard',
        readOnly: true,
      });
      expect(container.args?.slice(-2)).toEqual(['--kubeconfig', '/var/lib/switchboard/kubeconfig.conf']);
      expect(envOf(objects)).not.toHaveProperty('KUBERNETES_SERVICE_HOST');
      const custom = daemonSetOf(
        await renderChart([
          '--set',
          'kubeconfig.fromConfigMap.name=my-kubeconfig',
          '--set',
          'kubeconfig.fromConfigMap.key=config',
        ]),
      );
      expect(custom.spec.template.spec.volumes?.find((v) => v.name === 'kubeconfig')?.configMap).toEqual({
        name: 'my-kubeconfig',
        items: [{ key: 'config', path: 'kubeconfig.conf' }],
      });
    });

    it('with kubeconfig.fromConfigMap, a clientConnection.kubeconfig copied from kubeadm is overridden by the flag', async () => {
      const objects = await renderChart([
        '--set',
        'kubeconfig.fromConfigMap.name=kube-proxy',
        '--set',
        'config.clientConnection.kubeconfig=/var/lib/kube-proxy/kubeconfig.conf',
      ]);
      expect(switchboardContainer(daemonSetOf(objects)).args).toContain('--kubeconfig');
    });

    it('apiServer.viaClusterIP: true renders the in-cluster default on purpose', async () => {
      const objects = await renderChart(['--set', 'apiServer.viaClusterIP=true']);
      expect(envOf(objects)).not.toHaveProperty('KUBERNETES_SERVICE_HOST');
      expect(switchboardContainer(daemonSetOf(objects)).args).not.toContain('--kubeconfig');
    });

    it.each([
      {
        values: ['--set', 'apiServer.host=192.168.0.10', '--set', 'kubeconfig.fromConfigMap.name=kube-proxy'],
        complaint: 'apiServer.host and kubeconfig.fromConfigMap both say how to reach the API server',
      },
      {
        values: ['--set', 'apiServer.host=192.168.0.10', '--set', 'apiServer.viaClusterIP=true'],
        complaint: "apiServer.viaClusterIP: true asks for the kubernetes Service's ClusterIP",
      },
      {
        values: [
          '--set',
          'apiServer.host=192.168.0.10',
          '--set',
          'config.clientConnection.kubeconfig=/var/lib/kube-proxy/kubeconfig.conf',
        ],
        complaint:
          'config.clientConnection.kubeconfig is "/var/lib/kube-proxy/kubeconfig.conf", a file the pod does not have',
      },
      { values: ['--set', 'apiServer.host=https://192.168.0.10'], complaint: '/apiServer/host' },
      { values: ['--set', 'apiServer.host=192.168.0.10:6443'], complaint: '/apiServer/host' },
      { values: ['--set', 'apiServer.host=a', '--set', 'apiServer.port=0'], complaint: '/apiServer/port' },
      {
        values: ['--set', 'apiServer.host=a', '--set', 'apiServer.port=65536'],
        complaint: '/apiServer/port',
      },
      {
        values: ['--set', 'kubeconfig.fromConfigMap.name=Kube_Proxy'],
        complaint: '/kubeconfig/fromConfigMap/name',
      },
      { values: ['--set', 'apiServer.url=x'], complaint: "additional properties 'url' not allowed" },
    ])('refuses $complaint', async ({ values, complaint }) => {
      const template = await templateChart(values);
      expect(template.exitCode).not.toBe(0);
      expect(template.stderr).toContain(complaint);
    });

    it.each(readdirSync(path.join(chartDir, 'ci')))('passes helm lint --strict with ci/%s', async (file) => {
      const result = await lintChart(['-f', path.join(chartDir, 'ci', file)]);
      expect(result.stderr).toBe('');
      expect(result.exitCode).toBe(0);
    });
  });

  describe('rejects bad values in both helm lint --strict and helm template', () => {
    const cases: { values: string[]; complaint: string }[] = [
      { values: ['--set', 'updateStrategy.maxUnavailable=-1'], complaint: '/updateStrategy/maxUnavailable' },
      { values: ['--set', 'updateStrategy.maxUnavailable=0'], complaint: '/updateStrategy/maxUnavailable' },
      { values: ['--set', 'notAValue=1'], complaint: "additional properties 'notAValue' not allowed" },
      { values: ['--set', 'config.mode=bogus'], complaint: '/config/mode' },
      { values: ['--set', 'config.iptables.masqueradeBit=32'], complaint: '/config/iptables/masqueradeBit' },
      { values: ['--set', 'config.iptables.syncPeriod=soon'], complaint: '/config/iptables/syncPeriod' },
      { values: ['--set', 'config.clusterCIDR=10.0.0.0'], complaint: '/config/clusterCIDR' },
      { values: ['--set', 'config.detectLocalMode=Magic'], complaint: '/config/detectLocalMode' },
      { values: ['--set', 'config.iptables.masquerade=true'], complaint: "'masquerade' not allowed" },
      { values: ['--set', 'config.hostnameOverride=node-1'], complaint: "'hostnameOverride' not allowed" },
      { values: ['--set', 'image.pullPolicy=Sometimes'], complaint: '/image/pullPolicy' },
      { values: ['--set', 'maxOldSpaceSizeMiB=-1'], complaint: '/maxOldSpaceSizeMiB' },
      { values: ['--set', 'serviceAccount.create=false'], complaint: '/serviceAccount/name' },
      // The kubelet probes the node IP, so a loopback health server would fail every liveness probe.
      {
        values: ['--set', 'config.healthzBindAddress=127.0.0.1:10256'],
        complaint: '/config/healthzBindAddress',
      },
    ];

    it.each(cases)('$values.1', async ({ values, complaint }) => {
      const lint = await lintChart([...API_SERVER, ...values]);
      expect(lint.exitCode).not.toBe(0);
      expect(lint.stdout + lint.stderr).toContain(complaint);
      const template = await templateChart([...API_SERVER, ...values]);
      expect(template.exitCode).not.toBe(0);
      expect(template.stderr).toContain(complaint);
    });
  });

  describe('values.yaml', () => {
    const valuesText = readFileSync(path.join(chartDir, 'values.yaml'), 'utf8');

    it('documents every value with a comment', () => {
      const schema = JSON.parse(
        readFileSync(path.join(chartDir, 'values.schema.json'), 'utf8'),
      ) as SchemaNode;
      const undocumented: string[] = [];
      // Walks the chart's own structure (schema nodes with properties); pass-through Kubernetes maps such
      // as nodeSelector or resources.requests are documented as a whole.
      const visit = (map: YAMLMap, node: SchemaNode, prefix: string): void => {
        map.items.forEach((pair, index) => {
          const key = isScalar(pair.key) ? String(pair.key.value) : '?';
          // yaml attaches the comment above a nested map's first key to the map itself.
          const ownComment = isScalar(pair.key) ? pair.key.commentBefore : undefined;
          const comment = ownComment ?? (index === 0 ? map.commentBefore : undefined);
          if (!comment) undocumented.push(prefix + key);
          const child = node.properties?.[key];
          if (isMap(pair.value) && child?.properties) visit(pair.value, child, `${prefix}${key}.`);
        });
      };
      const doc = parseDocument(valuesText);
      if (!isMap(doc.contents)) throw new Error('values.yaml is not a map');
      visit(doc.contents, schema, '');
      expect(undocumented).toEqual([]);
    });
  });
});
