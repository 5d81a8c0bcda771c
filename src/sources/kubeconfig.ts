/**
 * Where the API server is and how to authenticate, as kube-proxy decides it: the
 * `--kubeconfig` flag, else the configuration's `clientConnection.kubeconfig`, else the
 * in-cluster service account (KUBERNETES_SERVICE_HOST/PORT and the mounted token and CA).
 *
 * The rest of clientConnection cannot be honoured with @kubernetes/client-node:
 * - contentType / acceptContentTypes: the library speaks JSON only (kube-proxy defaults to
 *   protobuf, which only saves API server CPU and bandwidth; the objects are the same);
 * - qps / burst: the library has no client-side rate limiter. Switchboard's request rate is
 *   small anyway: three long watches, relists only after 410, and exponential backoff
 *   (list-watch.ts) when the API server fails.
 * A non-default value of these fields is reported as a notice, never silently dropped.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import type { KubeProxyConfiguration } from '../config/kubeproxy.js';
import { InputError } from '../errors.js';
import { isRecord } from '../model/raw.js';

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const KUBE_PROXY_DEFAULT_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';
const KUBE_PROXY_DEFAULT_QPS = 5;
const KUBE_PROXY_DEFAULT_BURST = 10;

export interface KubeConfigChoice {
  /** `--kubeconfig FILE` (wins over the configuration file) */
  kubeconfigFlag?: string;
  clientConnection: KubeProxyConfiguration['clientConnection'];
  /** prefix of the service account mount, for tests ('' in a pod) */
  serviceAccountPrefix?: string;
}

export interface LoadedKubeConfig {
  kubeConfig: KubeConfig;
  /** for logs: the file, or `in-cluster` */
  origin: string;
  server: string;
  /** clientConnection settings that cannot be honoured */
  notices: string[];
}

function clientConnectionNotices(cc: KubeProxyConfiguration['clientConnection']): string[] {
  const notices: string[] = [];
  const json = (t: string) => t === '' || t === 'application/json';
  if (!json(cc.contentType) && cc.contentType !== KUBE_PROXY_DEFAULT_CONTENT_TYPE) {
    notices.push(
      `clientConnection.contentType ${JSON.stringify(cc.contentType)}: the client speaks JSON only; ignored`,
    );
  }
  if (!json(cc.acceptContentTypes)) {
    notices.push(
      `clientConnection.acceptContentTypes ${JSON.stringify(cc.acceptContentTypes)}: the client speaks JSON only; ignored`,
    );
  }
  if (cc.qps !== KUBE_PROXY_DEFAULT_QPS || cc.burst !== KUBE_PROXY_DEFAULT_BURST) {
    notices.push(
      `clientConnection.qps ${cc.qps} / burst ${cc.burst}: the client has no rate limiter; ignored (requests are few and backed off)`,
    );
  }
  return notices;
}

function loadInCluster(prefix: string): KubeConfig {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new InputError(
      'no kubeconfig given (--kubeconfig or clientConnection.kubeconfig) and not running in a pod ' +
        '(KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set)',
    );
  }
  const tokenFile = `${prefix}${SERVICE_ACCOUNT_DIR}/token`;
  if (!existsSync(tokenFile)) {
    throw new InputError(`in-cluster configuration: the service account token ${tokenFile} does not exist`);
  }
  const kc = new KubeConfig();
  // client-node re-reads the token file every 60 s, so rotated (bound) tokens are picked up.
  kc.loadFromCluster(prefix);
  return kc;
}

/**
 * kubectl's `tokenFile` (what kubeadm's kube-proxy `kubeconfig.conf` uses: the pod's own
 * ServiceAccount token) as client-node's file-token provider, which re-reads the file every
 * minute so rotated tokens are picked up. client-node itself only knows `token-file`, read once.
 */
function withTokenFiles(kc: KubeConfig, text: string, file: string): void {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch {
    return; // client-node parsed it; nothing more to find
  }
  const entries = isRecord(raw) && Array.isArray(raw.users) ? raw.users : [];
  const tokenFiles = new Map<string, string>();
  for (const entry of entries) {
    if (!isRecord(entry) || typeof entry.name !== 'string' || !isRecord(entry.user)) continue;
    const { tokenFile, token } = entry.user;
    if (typeof tokenFile === 'string' && tokenFile !== '' && !token)
      tokenFiles.set(entry.name, resolve(dirname(file), tokenFile));
  }
  if (tokenFiles.size === 0) return;
  kc.loadFromOptions({
    clusters: kc.clusters,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
    users: kc.users.map((user) => {
      const tokenFile = tokenFiles.get(user.name);
      return tokenFile && !user.authProvider
        ? { ...user, authProvider: { name: 'tokenFile', config: { tokenFile } } }
        : user;
    }),
  });
}

function loadFile(file: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    const text = readFileSync(file, 'utf8');
    kc.loadFromString(text);
    kc.makePathsAbsolute(dirname(file));
    withTokenFiles(kc, text, file);
  } catch (e) {
    throw new InputError(`kubeconfig ${file}: ${(e as Error).message}`);
  }
  return kc;
}

/** Loads the kubeconfig; throws InputError naming the file or the missing piece. */
export function loadKubeConfig(choice: KubeConfigChoice): LoadedKubeConfig {
  const file = choice.kubeconfigFlag || choice.clientConnection.kubeconfig;
  const kubeConfig = file ? loadFile(file) : loadInCluster(choice.serviceAccountPrefix ?? '');
  const origin = file || 'in-cluster';
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) {
    const context = kubeConfig.getCurrentContext();
    throw new InputError(
      `kubeconfig ${origin}: ${context ? `current context ${JSON.stringify(context)} names no known cluster` : 'no current context'}`,
    );
  }
  if (!/^https?:\/\//.test(cluster.server)) {
    throw new InputError(
      `kubeconfig ${origin}: cluster ${JSON.stringify(cluster.name)} server ${JSON.stringify(cluster.server)} is not an http(s) URL`,
    );
  }
  if (cluster.server.startsWith('http:') && !cluster.skipTLSVerify) {
    // client-node refuses plain HTTP unless told to skip TLS verification; say so now, not on every retry.
    throw new InputError(
      `kubeconfig ${origin}: cluster ${JSON.stringify(cluster.name)} uses plain http; set insecure-skip-tls-verify: true to allow it`,
    );
  }
  return {
    kubeConfig,
    origin,
    server: cluster.server,
    notices: clientConnectionNotices(choice.clientConnection),
  };
}
