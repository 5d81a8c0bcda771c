/**
 * The two API calls the cluster source needs — list a collection, watch it — behind a
 * small interface, with @kubernetes/client-node underneath.
 *
 * Watches use client-node's `Watch` class: it passes any query parameters through
 * (allowWatchBookmarks, timeoutSeconds, selectors) and handles authentication, TLS and
 * proxies from the kubeconfig. Lists are plain GETs made with the same kubeconfig's
 * agent and headers instead of the generated CoreV1Api/DiscoveryV1Api: those rebuild
 * every item into model classes (timestamps become Date objects, unknown fields are
 * dropped) and throw on structurally wrong data (e.g. a number where a list belongs), so
 * one malformed object would fail the whole list. Raw JSON from both paths hands the
 * store identical shapes and lets it report a bad object while keeping the others.
 *
 * Content type: client-node speaks JSON only, so clientConnection.contentType
 * (protobuf by default in kube-proxy) cannot be honoured; see kubeconfig.ts.
 */
import http from 'node:http';
import https from 'node:https';
import { type Cluster, KubeConfig, Watch } from '@kubernetes/client-node';
import { isRecord } from '../model/raw.js';

/** A failed API call; `statusCode` is set when the server answered. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    message: string,
    readonly statusCode?: number,
  ) {
    super(message);
  }
}

export interface ListPage {
  items: unknown[];
  resourceVersion: string;
  /** set when more pages follow */
  continueToken?: string;
}

export interface WatchHandle {
  abort(): void;
}

export type QueryParams = Record<string, string | number | boolean | undefined>;

export interface ApiClient {
  /** GET one page of a collection (`/api/v1/services?limit=...`). */
  list(path: string, query: QueryParams, signal: AbortSignal): Promise<ListPage>;
  /**
   * Starts a watch. `onEvent` gets each event (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR);
   * `onDone` is called once: null when the server ended the stream, else the error (an
   * ApiError with statusCode for an HTTP error status). The handle may arrive after
   * `onDone` has been called.
   */
  watch(
    path: string,
    query: QueryParams,
    onEvent: (type: string, object: unknown) => void,
    onDone: (error: unknown) => void,
  ): Promise<WatchHandle>;
}

export interface KubeApiClientOptions {
  /** a watch's response headers must arrive within this time, and a list must not stall longer */
  requestTimeoutMs: number;
}

/**
 * A view of a kubeconfig for client-node's `Watch` (which uses only these two methods)
 * that adds node-fetch's response timeout: without it a watch whose response headers
 * never arrive leaves a pending request no one can abort, since `Watch.watch()` hands
 * out its AbortController only once the headers are in.
 */
class ResponseTimeoutKubeConfig extends KubeConfig {
  constructor(
    private readonly base: KubeConfig,
    private readonly timeoutMs: number,
  ) {
    super();
  }

  override getCurrentCluster(): Cluster | null {
    return this.base.getCurrentCluster();
  }

  override async applyToFetchOptions(
    opts: https.RequestOptions,
  ): ReturnType<KubeConfig['applyToFetchOptions']> {
    return { ...(await this.base.applyToFetchOptions(opts)), timeout: this.timeoutMs };
  }
}

function statusMessage(body: string): string | undefined {
  try {
    const status: unknown = JSON.parse(body);
    if (isRecord(status) && typeof status.message === 'string') return status.message;
  } catch {
    // not a Status object
  }
  return undefined;
}

/** Client-node reports an HTTP error status as an Error with `statusCode`; keep the code. */
function watchError(path: string, error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = isRecord(error) && typeof error.statusCode === 'number' ? error.statusCode : undefined;
  const prefix = code === undefined ? `watch ${path}` : `watch ${path}: HTTP ${code}`;
  return new ApiError(`${prefix}: ${message}`, code);
}

/** Parses a list response; a list without items or resourceVersion is an error. */
export function parseListPage(body: string, where: string): ListPage {
  let list: unknown;
  try {
    list = JSON.parse(body);
  } catch (e) {
    throw new ApiError(`${where}: response is not JSON: ${(e as Error).message}`);
  }
  if (!isRecord(list)) throw new ApiError(`${where}: response is not an object`);
  const items = list.items ?? [];
  if (!Array.isArray(items)) throw new ApiError(`${where}: items is not a list`);
  const metadata = isRecord(list.metadata) ? list.metadata : {};
  const { resourceVersion } = metadata;
  if (typeof resourceVersion !== 'string' || resourceVersion === '') {
    throw new ApiError(`${where}: list has no metadata.resourceVersion`);
  }
  const next = metadata.continue;
  return {
    items,
    resourceVersion,
    ...(typeof next === 'string' && next !== '' ? { continueToken: next } : {}),
  };
}

export class KubeApiClient implements ApiClient {
  private readonly watcher: Watch;

  constructor(
    private readonly kc: KubeConfig,
    private readonly options: KubeApiClientOptions,
  ) {
    this.watcher = new Watch(new ResponseTimeoutKubeConfig(kc, options.requestTimeoutMs));
  }

  async list(path: string, query: QueryParams, signal: AbortSignal): Promise<ListPage> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new ApiError('kubeconfig has no current cluster');
    const url = new URL(cluster.server + path);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const body = await this.get(url, opts, signal);
    return parseListPage(body, `GET ${url.pathname}`);
  }

  private get(url: URL, opts: https.RequestOptions, signal: AbortSignal): Promise<string> {
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const req = transport.request(url, {
        ...opts,
        method: 'GET',
        headers: { ...opts.headers, Accept: 'application/json' },
        signal,
        timeout: this.options.requestTimeoutMs,
      });
      req.on('timeout', () => {
        req.destroy(
          new ApiError(`GET ${url.pathname}: nothing received for ${this.options.requestTimeoutMs} ms`),
        );
      });
      req.on('error', (e) =>
        reject(e instanceof ApiError ? e : new ApiError(`GET ${url.pathname}: ${e.message}`)),
      );
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new ApiError(`GET ${url.pathname}: ${e.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          if (code === 200) resolve(text);
          else {
            const detail = statusMessage(text) ?? res.statusMessage ?? '';
            reject(new ApiError(`GET ${url.pathname}: HTTP ${code} ${detail}`.trim(), code));
          }
        });
      });
      req.end();
    });
  }

  async watch(
    path: string,
    query: QueryParams,
    onEvent: (type: string, object: unknown) => void,
    onDone: (error: unknown) => void,
  ): Promise<WatchHandle> {
    const done = (error: unknown) => onDone(error == null ? null : watchError(path, error));
    const controller = await this.watcher.watch(path, query, (type, object) => onEvent(type, object), done);
    return { abort: () => controller.abort() };
  }
}
