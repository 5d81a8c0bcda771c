/**
 * Choosing the API server: --kubeconfig, clientConnection.kubeconfig, in-cluster; the
 * clientConnection fields the client cannot honour are reported.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { KubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { InputError } from '../../src/errors.js';
import { ObjectStore } from '../../src/model/store.js';
import { ClusterSource } from '../../src/sources/cluster.js';
import { loadKubeConfig } from '../../src/sources/kubeconfig.js';
import { FakeApiServer } from './fake-apiserver.js';
import { captureLogger, FAST_TIMING, NODE_NAME, node, service, waitFor } from './harness.js';

const DEFAULTS: KubeProxyConfiguration['clientConnection'] = {
  kubeconfig: '',
  acceptContentTypes: '',
  contentType: 'application/vnd.kubernetes.protobuf',
  qps: 5,
  burst: 10,
};

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-kubeconfig-'));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  vi.unstubAllEnvs();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * A cluster source with `kubeConfig` syncs `fake`'s one Service (default/web) and keeps its
 * three watches open, every request authenticated (the double answers 401 otherwise); then
 * the source and the double are stopped.
 */
async function expectSyncsThrough(fake: FakeApiServer, kubeConfig: KubeConfig, what: string): Promise<void> {
  const source = new ClusterSource({
    nodeName: NODE_NAME,
    log: captureLogger().log,
    kubeConfig,
    timing: FAST_TIMING,
  });
  const store = new ObjectStore(NODE_NAME);
  let synced = false;
  try {
    await source.start(
      (e) => store.apply(e),
      () => {
        synced = true;
      },
    );
    await waitFor(() => synced && fake.openWatches === 3, what);
    expect(store.serviceKeys()).toEqual(['default/web']);
    expect(fake.requests.every((r) => r.status === 200)).toBe(true);
  } finally {
    await source.stop();
    await fake.close();
  }
}

describe('a kubeconfig file', () => {
  test('from --kubeconfig drives the cluster source, token and all', async () => {
    const fake = await FakeApiServer.start({ token: 'sekret', bookmarkIntervalMs: 50 });
    const file = join(tempDir(), 'kubeconfig');
    writeFileSync(file, fake.kubeConfigYaml());
    // The configuration's path is overridden by the flag.
    const loaded = loadKubeConfig({
      kubeconfigFlag: file,
      clientConnection: { ...DEFAULTS, kubeconfig: '/nonexistent/kubeconfig' },
    });
    expect(loaded.origin).toBe(file);
    expect(loaded.server).toBe(fake.url);
    expect(loaded.notices).toEqual([]);
    fake.apply('services', service('web', '10.96.0.10'));
    fake.apply('nodes', node(NODE_NAME));
    await expectSyncsThrough(fake, loaded.kubeConfig, 'synced with open watches');
  });

  test('over TLS, lists and watches trust the kubeconfig CA; a server it does not trust is retried, never used', async () => {
    const tls = {
      key: readFileSync(new URL('./tls/server.key', import.meta.url), 'utf8'),
      cert: readFileSync(new URL('./tls/server.crt', import.meta.url), 'utf8'),
    };
    const fake = await FakeApiServer.start({ tls, token: 'sekret', bookmarkIntervalMs: 50 });
    fake.apply('services', service('web', '10.96.0.10'));
    const file = join(tempDir(), 'kubeconfig');
    writeFileSync(file, fake.kubeConfigYaml());
    const { kubeConfig, server } = loadKubeConfig({ kubeconfigFlag: file, clientConnection: DEFAULTS });
    expect(server).toBe(fake.url);
    expect(server.startsWith('https://127.0.0.1:')).toBe(true);
    const trusting = new ClusterSource({
      nodeName: NODE_NAME,
      log: captureLogger().log,
      kubeConfig,
      timing: FAST_TIMING,
    });
    // Without the CA the client falls back to the system trust store, which does not know this
    // self-signed certificate: the TLS handshake fails before any request reaches the server.
    const untrusting = captureLogger();
    const strangerConfig = fake.kubeConfig();
    strangerConfig.clusters = strangerConfig.clusters.map((c) => ({ ...c, caData: undefined }));
    const stranger = new ClusterSource({
      nodeName: NODE_NAME,
      log: untrusting.log,
      kubeConfig: strangerConfig,
      timing: FAST_TIMING,
    });
    const store = new ObjectStore(NODE_NAME);
    let synced = false;
    const strangerEvents: unknown[] = [];
    try {
      await trusting.start(
        (e) => store.apply(e),
        () => {
          synced = true;
        },
      );
      await stranger.start(
        (e) => strangerEvents.push(e),
        () => {},
      );
      await waitFor(() => synced && fake.openWatches === 3, 'synced over TLS with open watches');
      expect(store.serviceKeys()).toEqual(['default/web']);
      await waitFor(
        () => untrusting.lines.filter((l) => /list failed: .*certificate/.test(String(l.msg))).length >= 3,
        'certificate errors for the untrusting source',
      );
      expect(strangerEvents).toEqual([]);
      // Every request that reached the handler came from the trusting client.
      expect(fake.requests.every((r) => r.status === 200)).toBe(true);
    } finally {
      await trusting.stop();
      await stranger.stop();
      await fake.close();
    }
  });

  test("kubeadm's kube-proxy kubeconfig.conf: CA and token files, the token re-read from tokenFile", async () => {
    const tls = {
      key: readFileSync(new URL('./tls/server.key', import.meta.url), 'utf8'),
      cert: readFileSync(new URL('./tls/server.crt', import.meta.url), 'utf8'),
    };
    const fake = await FakeApiServer.start({ tls, token: 'sekret', bookmarkIntervalMs: 50 });
    fake.apply('services', service('web', '10.96.0.10'));
    const dir = tempDir();
    mkdirSync(join(dir, 'serviceaccount'));
    writeFileSync(join(dir, 'serviceaccount', 'ca.crt'), tls.cert);
    // As kubelet writes it: no trailing newline.
    writeFileSync(join(dir, 'serviceaccount', 'token'), 'sekret');
    const file = join(dir, 'kubeconfig.conf');
    // kubeadm's text, with its absolute /var/run/secrets paths made relative to this directory.
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- cluster:',
        '    certificate-authority: serviceaccount/ca.crt',
        `    server: ${fake.url}`,
        '  name: default',
        'contexts:',
        '- context:',
        '    cluster: default',
        '    namespace: default',
        '    user: default',
        '  name: default',
        'current-context: default',
        'users:',
        '- name: default',
        '  user:',
        '    tokenFile: serviceaccount/token',
        '',
      ].join('\n'),
    );
    const { kubeConfig, server } = loadKubeConfig({ kubeconfigFlag: file, clientConnection: DEFAULTS });
    expect(server).toBe(fake.url);
    expect(kubeConfig.getCurrentUser()?.authProvider).toEqual({
      name: 'tokenFile',
      config: { tokenFile: join(dir, 'serviceaccount', 'token') },
    });
    await expectSyncsThrough(fake, kubeConfig, 'synced with the token from tokenFile');
  });

  test('a rejected token: 401s are retried with backoff and nothing is emitted', async () => {
    const fake = await FakeApiServer.start({ token: 'right' });
    fake.apply('services', service('web', '10.96.0.10'));
    const file = join(tempDir(), 'kubeconfig');
    writeFileSync(file, fake.kubeConfigYaml().replace('token: right', 'token: wrong'));
    const { kubeConfig } = loadKubeConfig({ kubeconfigFlag: file, clientConnection: DEFAULTS });
    const source = new ClusterSource({
      nodeName: NODE_NAME,
      log: captureLogger().log,
      kubeConfig,
      timing: FAST_TIMING,
    });
    const events: unknown[] = [];
    let synced = false;
    try {
      await source.start(
        (e) => events.push(e),
        () => {
          synced = true;
        },
      );
      await waitFor(() => fake.requests.length >= 6, 'retries');
      expect(fake.requests.every((r) => r.status === 401)).toBe(true);
      expect(events).toEqual([]);
      expect(synced).toBe(false);
    } finally {
      await source.stop();
      await fake.close();
    }
  });

  test('from clientConnection.kubeconfig when there is no flag', () => {
    const file = join(tempDir(), 'config');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: prod',
        '  cluster:',
        '    server: https://10.0.0.1:6443',
        'users:',
        '- name: me',
        '  user:',
        '    token: abc',
        'contexts:',
        '- name: prod',
        '  context: {cluster: prod, user: me}',
        'current-context: prod',
      ].join('\n'),
    );
    const loaded = loadKubeConfig({ clientConnection: { ...DEFAULTS, kubeconfig: file } });
    expect(loaded.server).toBe('https://10.0.0.1:6443');
    expect(loaded.origin).toBe(file);
  });

  test('errors name the file and what is wrong', () => {
    const dir = tempDir();
    expect(() =>
      loadKubeConfig({ kubeconfigFlag: join(dir, 'missing'), clientConnection: DEFAULTS }),
    ).toThrow(new RegExp(`^kubeconfig ${join(dir, 'missing')}: .*no such file`, 'i'));
    const noContext = join(dir, 'no-context');
    writeFileSync(noContext, 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n');
    expect(() => loadKubeConfig({ kubeconfigFlag: noContext, clientConnection: DEFAULTS })).toThrow(
      InputError,
    );
    expect(() => loadKubeConfig({ kubeconfigFlag: noContext, clientConnection: DEFAULTS })).toThrow(
      /no current context/,
    );
    const plain = join(dir, 'plain-http');
    writeFileSync(
      plain,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: local',
        '  cluster: {server: "http://127.0.0.1:8080"}',
        'users:',
        '- name: me',
        '  user: {token: abc}',
        'contexts:',
        '- name: local',
        '  context: {cluster: local, user: me}',
        'current-context: local',
      ].join('\n'),
    );
    expect(() => loadKubeConfig({ kubeconfigFlag: plain, clientConnection: DEFAULTS })).toThrow(
      /cluster "local" uses plain http; set insecure-skip-tls-verify: true/,
    );
  });
});

describe('in-cluster', () => {
  test('is the default, from the service environment and the mounted service account', () => {
    const prefix = tempDir();
    const sa = join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), 'token-from-file');
    writeFileSync(join(sa, 'ca.crt'), 'not really a certificate');
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '10.96.0.1');
    vi.stubEnv('KUBERNETES_SERVICE_PORT', '443');
    const loaded = loadKubeConfig({ clientConnection: DEFAULTS, serviceAccountPrefix: prefix });
    expect(loaded.origin).toBe('in-cluster');
    expect(loaded.server).toBe('https://10.96.0.1:443');
    expect(loaded.kubeConfig.getCurrentCluster()?.caFile).toBe(join(sa, 'ca.crt'));
  });

  test('outside a pod, without a kubeconfig, says what is missing', () => {
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '');
    vi.stubEnv('KUBERNETES_SERVICE_PORT', '');
    expect(() => loadKubeConfig({ clientConnection: DEFAULTS })).toThrow(
      /no kubeconfig given \(--kubeconfig or clientConnection.kubeconfig\) and not running in a pod/,
    );
  });

  test('without the service account token, says which file is missing', () => {
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '10.96.0.1');
    vi.stubEnv('KUBERNETES_SERVICE_PORT', '443');
    const prefix = tempDir();
    expect(() => loadKubeConfig({ clientConnection: DEFAULTS, serviceAccountPrefix: prefix })).toThrow(
      `in-cluster configuration: the service account token ${prefix}/var/run/secrets/kubernetes.io/serviceaccount/token does not exist`,
    );
  });
});

describe('clientConnection fields the client cannot honour', () => {
  test('kube-proxy defaults and JSON pass silently; anything else is reported', () => {
    const file = join(tempDir(), 'kubeconfig');
    writeFileSync(
      file,
      'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "https://h:6443"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n',
    );
    const notices = (cc: Partial<KubeProxyConfiguration['clientConnection']>) =>
      loadKubeConfig({ kubeconfigFlag: file, clientConnection: { ...DEFAULTS, ...cc } }).notices;
    expect(notices({})).toEqual([]);
    expect(notices({ contentType: 'application/json', acceptContentTypes: 'application/json' })).toEqual([]);
    expect(notices({ qps: 50, burst: 100 })).toEqual([
      'clientConnection.qps 50 / burst 100: the client has no rate limiter; ignored (requests are few and backed off)',
    ]);
    expect(notices({ acceptContentTypes: 'application/vnd.kubernetes.protobuf,application/json' })).toEqual([
      'clientConnection.acceptContentTypes "application/vnd.kubernetes.protobuf,application/json": the client speaks JSON only; ignored',
    ]);
    expect(notices({ contentType: 'application/yaml' })).toEqual([
      'clientConnection.contentType "application/yaml": the client speaks JSON only; ignored',
    ]);
  });
});
