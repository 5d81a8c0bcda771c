// The Helm chart, checked with a real helm (scripts/fetch-helm.sh installs it at .cache/bin/helm; HELM
// overrides the path): it lints strictly, renders the DaemonSet/RBAC/ConfigMap Switchboard needs, and its
// values schema rejects bad values in both `helm lint --strict` and `helm template`.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMap, isScalar, parse, parseDocument, type YAMLMap } from 'yaml';
import {
  chartDir,
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
  configMap?: { name: string };
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

describe.skipIf(problem !== undefined)('charts/switchboard', () => {
  describe('with default values', () => {
    let objects: K8sObject[] = [];
    const daemonSet = (): DaemonSet => onlyOne<DaemonSet>(objects, 'DaemonSet');
    const pod = (): PodSpec => daemonSet().spec.template.spec;
    const container = (): Container => switchboardContainer(daemonSet());

    beforeAll(async () => {
      objects = await renderChart();
    });

    it('passes helm lint --strict', async () => {
      const result = await lintChart();
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
      expect(pod().dnsPolicy).toBe('ClusterFirstWithHostNet');
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
      const objects = await renderChart([
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
      const objects = await renderChart(['--set', 'config.healthzBindAddress=[::]:10300']);
      const container = switchboardContainer(onlyOne<DaemonSet>(objects, 'DaemonSet'));
      expect(container.livenessProbe?.httpGet).toMatchObject({ path: '/livez', port: 10300 });
    });

    it('passes maxUnavailable, image and extra flags through', async () => {
      const objects = await renderChart([
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
      const base = configChecksum(await renderChart());
      expect(configChecksum(await renderChart())).toBe(base);
      expect(configChecksum(await renderChart(['--set', 'config.clusterCIDR=10.244.0.0/16']))).not.toBe(base);
      expect(configChecksum(await renderChart(['--set', 'config.iptables.masqueradeAll=true']))).not.toBe(
        base,
      );
      expect(configChecksum(await renderChart(['--set', 'resources.limits.memory=1Gi']))).toBe(base);
    });

    it('omits RBAC and the ServiceAccount when asked, using the named account', async () => {
      const objects = await renderChart([
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
      { values: ['--set', 'serviceAccount.create=false'], complaint: '/serviceAccount/name' },
      // The kubelet probes the node IP, so a loopback health server would fail every liveness probe.
      {
        values: ['--set', 'config.healthzBindAddress=127.0.0.1:10256'],
        complaint: '/config/healthzBindAddress',
      },
    ];

    it.each(cases)('$values.1', async ({ values, complaint }) => {
      const lint = await lintChart(values);
      expect(lint.exitCode).not.toBe(0);
      expect(lint.stdout + lint.stderr).toContain(complaint);
      const template = await templateChart(values);
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
