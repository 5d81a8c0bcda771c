/**
 * A node with no service rules coming up, in network namespaces: the API double plays the
 * control plane in the "external" namespace, listening only on 192.168.0.100:6443 (HTTPS, a
 * certificate for that address, a bearer token), which the node namespace reaches over its LAN.
 * `switchboard run` runs in the node namespace with in-cluster configuration exactly as a pod
 * gets it: kubelet's variables for the `kubernetes` Service (ClusterIP 10.96.0.1), the
 * ServiceAccount token and CA at /var/run/secrets/kubernetes.io/serviceaccount (a tmpfs over
 * /run in a private mount namespace, so the host's /run is never written), and, as the chart
 * sets them from apiServer.host/port, KUBERNETES_SERVICE_HOST/PORT.
 *
 * (a) With the control plane's address, the first sync succeeds from empty tables, and the
 *     ClusterIP then works too. (b) With the ClusterIP (no chart value), it cannot connect,
 *     and says once why and which chart value to set, and keeps retrying.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { afterEach, expect, it } from 'vitest';
import { serviceChains } from '../../src/backends/iptables/chain-names.js';
import { EXTERNAL_IPV4, Topology } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import {
  killRuns,
  logRecords,
  NO_SERVERS,
  type Run,
  startCli,
  syncedLogs,
  terminate,
  waitForRun,
} from '../support/cli.js';
import type { KubeObject, Resource } from './fake-apiserver.js';
import { node, service, slice } from './harness.js';

const CONTROL_PLANE = EXTERNAL_IPV4;
const API_PORT = 6443;
const CLUSTER_IP = '10.96.0.1';
const TOKEN = 'node-bootstrap-token';
const SCRIPT = fileURLToPath(new URL('./fake-apiserver.script.ts', import.meta.url));
const CA = fileURLToPath(new URL('./tls/control-plane.crt', import.meta.url));

/** kubelet's variables for default/kubernetes (10.96.0.1:443, port name https). */
const KUBELET_ENV = {
  KUBERNETES_SERVICE_HOST: CLUSTER_IP,
  KUBERNETES_SERVICE_PORT: '443',
  KUBERNETES_SERVICE_PORT_HTTPS: '443',
  KUBERNETES_PORT: `tcp://${CLUSTER_IP}:443`,
  KUBERNETES_PORT_443_TCP: `tcp://${CLUSTER_IP}:443`,
  KUBERNETES_PORT_443_TCP_PROTO: 'tcp',
  KUBERNETES_PORT_443_TCP_PORT: '443',
  KUBERNETES_PORT_443_TCP_ADDR: CLUSTER_IP,
};

/** Mounts the ServiceAccount files where the in-cluster loader reads them, then execs the CLI. */
const WITH_SERVICE_ACCOUNT = [
  'set -e',
  'mount -t tmpfs -o mode=0755,size=1m sb-test-run /run',
  'mkdir -p /run/secrets/kubernetes.io/serviceaccount',
  'cp "$SB_SA_DIR/token" "$SB_SA_DIR/ca.crt" "$SB_SA_DIR/namespace" /run/secrets/kubernetes.io/serviceaccount/',
  'exec "$@"',
].join('\n');

let topology: Topology | null = null;
let api: ResultPromise | null = null;
let dir: string | null = null;

afterEach(async () => {
  await killRuns();
  if (api) {
    api.kill('SIGTERM');
    await api.catch(() => undefined);
  }
  api = null;
  await topology?.teardown();
  topology = null;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

/** The cluster: the kubernetes Service (endpoint: the control plane), one web Service, the Node. */
function clusterObjects(): { resource: Resource; object: KubeObject }[] {
  const kubernetes = service('kubernetes', CLUSTER_IP);
  (kubernetes['spec'] as { ports: unknown[] }).ports = [
    { name: 'https', protocol: 'TCP', port: 443, targetPort: API_PORT },
  ];
  const kubernetesSlice = {
    ...slice('kubernetes', 'kubernetes', [CONTROL_PLANE]),
    ports: [{ name: 'https', protocol: 'TCP', port: API_PORT }],
  };
  return [
    { resource: 'services', object: kubernetes },
    { resource: 'endpointslices', object: kubernetesSlice },
    { resource: 'services', object: service('web', '10.96.10.10') },
    { resource: 'endpointslices', object: slice('web-abc', 'web', ['10.244.1.2']) },
    { resource: 'nodes', object: node('node-1') },
  ];
}

/** Starts the API double in the control-plane namespace; resolves once it listens. */
async function startControlPlane(topo: Topology, workDir: string): Promise<void> {
  const objects = join(workDir, 'objects.json');
  await writeFile(objects, JSON.stringify(clusterObjects()));
  const child = execa(
    'ip',
    [
      'netns',
      'exec',
      topo.external,
      process.execPath,
      '--import',
      'tsx',
      SCRIPT,
      '--host',
      CONTROL_PLANE,
      '--port',
      String(API_PORT),
      '--tls',
      'control-plane',
      '--token',
      TOKEN,
      '--objects',
      objects,
    ],
    { reject: false, buffer: { stdout: false, stderr: true } },
  );
  api = child;
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the API double did not start within 30 s')), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void child.then((r) => {
      clearTimeout(timer);
      reject(new Error(`the API double exited: ${String(r.stderr)}`));
    });
  });
}

/** A working directory with the configuration and the ServiceAccount files. */
async function prepare(): Promise<{ workDir: string; config: string; saDir: string }> {
  const workDir = await mkdtemp(join(tmpdir(), 'sb-bootstrap-'));
  dir = workDir;
  const config = join(workDir, 'config.yaml');
  await writeFile(
    config,
    [
      'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
      'kind: KubeProxyConfiguration',
      'clusterCIDR: 10.244.0.0/16',
      'conntrack: {maxPerCore: 0}',
      '',
    ].join('\n'),
  );
  const saDir = join(workDir, 'serviceaccount');
  await execa('mkdir', [saDir]);
  await writeFile(join(saDir, 'token'), TOKEN);
  await writeFile(join(saDir, 'ca.crt'), await readFile(CA, 'utf8'));
  await writeFile(join(saDir, 'namespace'), 'kube-system');
  return { workDir, config, saDir };
}

/** `switchboard run` in the node namespace as the DaemonSet's pod runs it. */
function startNodeProxy(topo: Topology, config: string, saDir: string, apiEnv: Record<string, string>): Run {
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('KUBERNETES_')),
  );
  return startCli(
    ['run', '--config', config, '--hostname-override', 'node-1', '--family', 'ipv4', ...NO_SERVERS],
    {
      prefix: [
        'ip',
        'netns',
        'exec',
        topo.node,
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        WITH_SERVICE_ACCOUNT,
        'sh',
      ],
      env: { ...env, ...KUBELET_ENV, ...apiEnv, SB_SA_DIR: saDir },
    },
  );
}

/** Both iptables backends' nat tables of the node (whichever Switchboard picked). */
async function natRules(topo: Topology): Promise<string> {
  const node = topo.in(topo.node);
  const saves = await Promise.all(
    ['iptables-nft-save', 'iptables-legacy-save'].map((bin) =>
      node.run(bin, ['-t', 'nat'], { reject: false }),
    ),
  );
  return saves.map((s) => s.stdout).join('\n');
}

/** Connects from the node namespace; resolves 'connected' or the error code. */
async function connectFromNode(topo: Topology, host: string, port: number): Promise<string> {
  const script = `const s=require('net').connect(${port},'${host}');s.setTimeout(3000,()=>{console.log('timeout');process.exit(0)});s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',(e)=>{console.log(e.code);process.exit(0)})`;
  return (await topo.in(topo.node).run(process.execPath, ['-e', script])).stdout.trim();
}

describeKernel('a node with empty tables reaching the API server', () => {
  it('(a) with the control plane address as the chart sets it, the first sync succeeds from empty tables', async () => {
    topology = await Topology.create({ pods: 1 });
    const topo = topology;
    const { workDir, config, saDir } = await prepare();
    await startControlPlane(topo, workDir);
    expect(await natRules(topo)).not.toContain('KUBE-SERVICES');
    expect(await connectFromNode(topo, CLUSTER_IP, 443)).not.toBe('connected');

    const run = startNodeProxy(topo, config, saDir, {
      KUBERNETES_SERVICE_HOST: CONTROL_PLANE,
      KUBERNETES_SERVICE_PORT: String(API_PORT),
    });
    await waitForRun(run, () => syncedLogs(run.stderr()).length >= 1, 'the first sync', 60_000);
    expect(logRecords(run.stderr())).toContainEqual(
      expect.objectContaining({
        msg: 'watching the API server',
        server: `https://${CONTROL_PLANE}:${API_PORT}`,
      }),
    );
    expect(logRecords(run.stderr()).filter((r) => r.level >= 50)).toEqual([]);

    const rules = await natRules(topo);
    const web = serviceChains('default/web:http', 'TCP').svc;
    const kubernetes = serviceChains('default/kubernetes:https', 'TCP').svc;
    expect(rules).toMatch(new RegExp(`-A KUBE-SERVICES .*-d 10\\.96\\.10\\.10/32 .*-j ${web}`));
    expect(rules).toMatch(new RegExp(`-A KUBE-SERVICES .*-d 10\\.96\\.0\\.1/32 .*-j ${kubernetes}`));
    expect(rules).toContain(`--to-destination ${CONTROL_PLANE}:${API_PORT}`);
    // The node's own rules now lead the ClusterIP to the control plane as well.
    expect(await connectFromNode(topo, CLUSTER_IP, 443)).toBe('connected');

    expect(await terminate(run)).toEqual({ code: 0, signal: null });
  });

  it("(b) with the kubernetes Service's ClusterIP and no rules, it says once which chart value to set, and keeps retrying", async () => {
    topology = await Topology.create({ pods: 1 });
    const topo = topology;
    const { workDir, config, saDir } = await prepare();
    await startControlPlane(topo, workDir);

    const run = startNodeProxy(topo, config, saDir, {}); // kubelet's KUBERNETES_SERVICE_HOST: the ClusterIP
    const errors = () => logRecords(run.stderr()).filter((r) => r.level >= 50);
    await waitForRun(run, () => errors().length >= 1, 'the ClusterIP error', 60_000);
    const [error] = errors();
    expect(error).toMatchObject({ address: CLUSTER_IP, chartValue: 'apiServer.host' });
    expect(error?.msg).toMatch(
      /^cannot reach the API server at https:\/\/10\.96\.0\.1:443 \(.+\): 10\.96\.0\.1 is the ClusterIP of the "kubernetes" Service .*set the chart value apiServer\.host/,
    );
    // Still running and retrying, still no rules, and the error is not repeated.
    await new Promise((r) => setTimeout(r, 1500));
    expect(run.child.exitCode).toBeNull();
    expect(errors()).toHaveLength(1);
    expect(syncedLogs(run.stderr())).toEqual([]);
    expect(await natRules(topo)).not.toContain('KUBE-SVC-');

    expect(await terminate(run)).toEqual({ code: 0, signal: null });
  });
});
