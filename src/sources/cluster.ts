/**
 * The cluster source: Services, discovery.k8s.io/v1 EndpointSlices and this node's own
 * Node, listed and watched from the API server (one ListWatcher each; see list-watch.ts
 * for why this is not client-node's informer).
 *
 * Selectors: Services and EndpointSlices are both filtered with
 * `!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless`, the one
 * label selector kube-proxy's informer factory long used for both kinds: objects handed to
 * another proxy, and the slices of headless Services, never reach this node. Current
 * kube-proxy (cmd/kube-proxy/app/server.go on master) splits it: Services get
 * `!service-proxy-name` plus the field selector `spec.clusterIP!=None` (kubernetes PR
 * #126769), slices `!headless`. That field selector is rejected by API servers that
 * predate it (PR #123905), and the model ignores headless Services anyway, so the label
 * selector alone is used here. The Node is selected with `metadata.name=<node>`.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import type { ObjectEvent } from '../model/store.js';
import type { ObjectSource } from '../sync/backend.js';
import { type ApiClient, KubeApiClient } from './api-client.js';
import { DEFAULT_TIMING, ListWatcher, type ListWatchTiming, type ResourceSpec } from './list-watch.js';

export const PROXY_LABEL_SELECTOR =
  '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless';

/** The three collections the proxy follows. */
export function clusterResources(nodeName: string): ResourceSpec[] {
  return [
    { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services', labelSelector: PROXY_LABEL_SELECTOR },
    {
      kind: 'EndpointSlice',
      apiVersion: 'discovery.k8s.io/v1',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      labelSelector: PROXY_LABEL_SELECTOR,
      // a slice's deletion is tracked per address family (trigger-times.ts)
      identityFields: ['addressType'],
    },
    { kind: 'Node', apiVersion: 'v1', path: '/api/v1/nodes', fieldSelector: `metadata.name=${nodeName}` },
  ];
}

export interface ClusterSourceOptions {
  nodeName: string;
  log: Logger;
  /** where the API server is and how to authenticate (see kubeconfig.ts) */
  kubeConfig?: KubeConfig;
  /** instead of kubeConfig: the API calls themselves (tests) */
  client?: ApiClient;
  /** overrides of the default timings (tests use milliseconds) */
  timing?: Partial<ListWatchTiming>;
  /** for jitter; Math.random by default */
  random?: () => number;
}

export class ClusterSource implements ObjectSource {
  private readonly watchers: ListWatcher[];
  private running = false;
  private readonly log: Logger;

  constructor(private readonly options: ClusterSourceOptions) {
    const timing = { ...DEFAULT_TIMING, ...options.timing };
    this.log = options.log.child({ source: 'cluster' });
    let client: ApiClient;
    if (options.client) client = options.client;
    else if (options.kubeConfig)
      client = new KubeApiClient(options.kubeConfig, { requestTimeoutMs: timing.requestTimeoutMs });
    else throw new Error('ClusterSource needs a kubeConfig or a client');
    this.watchers = clusterResources(options.nodeName).map(
      (resource) =>
        new ListWatcher({
          resource,
          client,
          timing,
          log: this.log,
          ...(options.random ? { random: options.random } : {}),
        }),
    );
  }

  /**
   * Starts listing and watching; resolves at once (an unreachable API server is retried,
   * not fatal). `onSynced` follows once all three collections have been listed. After a
   * stop(), start() relists and delivers only what changed meanwhile (deletes included).
   */
  async start(onEvent: (event: ObjectEvent) => void, onSynced: () => void): Promise<void> {
    if (this.running) throw new Error('ClusterSource already started');
    this.running = true;
    let pending = this.watchers.length;
    const startedAt = Date.now();
    const onListed = () => {
      pending--;
      if (pending > 0) return;
      this.log.info(
        { afterMs: Date.now() - startedAt },
        'initial list of Services, EndpointSlices and Node done',
      );
      onSynced();
    };
    this.log.info(
      { node: this.options.nodeName, labelSelector: PROXY_LABEL_SELECTOR },
      'watching the API server',
    );
    for (const w of this.watchers) w.start({ onEvent, onListed });
  }

  /** Ends every watch, list and retry timer; resolves when all have stopped. */
  async stop(): Promise<void> {
    if (!this.running) return;
    await Promise.all(this.watchers.map((w) => w.stop()));
    this.running = false;
    this.log.info('stopped watching the API server');
  }
}
