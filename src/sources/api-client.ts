/**
 * The two API calls the cluster source needs — list a collection, watch it — behind a
 * small interface, as plain HTTP requests made with the kubeconfig's agent, TLS settings
 * and headers (`KubeConfig.applyToHTTPSOptions`, which also runs auth plugins and re-reads
 * rotated token files).
 *
 * Lists: not the generated CoreV1Api/DiscoveryV1Api, which rebuild every item into model
 * classes (timestamps become Date objects, unknown fields are dropped) and throw on
 * structurally wrong data (e.g. a number where a list belongs), so one malformed object
 * would fail the whole list. Raw JSON from both calls hands the store identical shapes and
 * lets it report a bad object while keeping the others.
 *
 * Watches: not client-node's `Watch` either. In 1.4 it makes the request with node-fetch 2
 * (a fresh http(s).Agent per request, no keep-alive) and hands out its AbortController
 * only once the response headers are in. A watch still waiting for its headers — an API
 * server busy restarting, or a proxy that holds headers back until the first event, which
 * on a quiet cluster can be minutes — could therefore not be cancelled on stop: the pending
 * request kept its socket and node-fetch's response timer alive, and the process stayed up
 * after logging "stopped". Here every request takes an AbortSignal from the start; aborting
 * destroys the request and its socket in whatever phase it is (connecting, waiting for
 * headers, streaming), and no callback follows. A line that is not a JSON event fails the
 * watch (client-node skipped it silently, losing the event).
 *
 * Content type: JSON only, so clientConnection.contentType (protobuf by default in
 * kube-proxy) cannot be honoured; see kubeconfig.ts.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
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

export type QueryParams = Record<string, string | number | boolean | undefined>;

export interface ApiClient {
  /** GET one page of a collection (`/api/v1/services?limit=...`). */
  list(path: string, query: QueryParams, signal: AbortSignal): Promise<ListPage>;
  /**
   * Starts a watch (`watch=true` is added to the query). `onEvent` gets each event
   * (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR); `onDone` is called once: null when the
   * server ended the stream, else the error (an ApiError, with statusCode when the server
   * answered with an error status). Aborting `signal` ends the watch at once, connection
   * included; neither callback is called after that.
   */
  watch(
    path: string,
    query: QueryParams,
    signal: AbortSignal,
    onEvent: (type: string, object: unknown) => void,
    onDone: (error: ApiError | null) => void,
  ): void;
}

export interface KubeApiClientOptions {
  /** a watch's response headers must arrive within this time, and a list must not stall longer */
  requestTimeoutMs: number;
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
  constructor(
    private readonly kc: KubeConfig,
    private readonly options: KubeApiClientOptions,
  ) {}

  async list(path: string, query: QueryParams, signal: AbortSignal): Promise<ListPage> {
    const res = await this.request(path, query, signal);
    const body = await readBody(res, signal);
    const where = `GET ${path}`;
    if (res.statusCode !== 200) throw httpError(where, res, body);
    return parseListPage(body, where);
  }

  watch(
    path: string,
    query: QueryParams,
    signal: AbortSignal,
    onEvent: (type: string, object: unknown) => void,
    onDone: (error: ApiError | null) => void,
  ): void {
    const where = `watch ${path}`;
    let finished = false;
    const finish = (error: ApiError | null, res?: IncomingMessage) => {
      if (finished || signal.aborted) return;
      finished = true;
      // The stream is over either way; do not leave its socket to the agent.
      res?.destroy();
      onDone(error);
    };
    this.request(path, { ...query, watch: true }, signal).then(
      (res) => {
        if (signal.aborted) return;
        if (res.statusCode !== 200) {
          readBody(res, signal).then(
            (body) => finish(httpError(where, res, body), res),
            (e: unknown) => finish(asApiError(where, e), res),
          );
          return;
        }
        // A watch may be quiet for minutes: from here on the caller's inactivity timer
        // decides when it is dead, not the request timeout.
        res.socket.setTimeout(0);
        res.setEncoding('utf8');
        let pending = '';
        res.on('data', (chunk: string) => {
          pending += chunk;
          let newline = pending.indexOf('\n');
          while (newline !== -1 && !finished && !signal.aborted) {
            const line = pending.slice(0, newline).trim();
            pending = pending.slice(newline + 1);
            if (line !== '') {
              const event = parseWatchEvent(line);
              if (event === null) {
                finish(new ApiError(`${where}: undecodable event: ${line.slice(0, 200)}`), res);
                return;
              }
              onEvent(event.type, event.object);
            }
            newline = pending.indexOf('\n');
          }
        });
        res.on('end', () => finish(null, res));
        res.on('error', (e) => finish(asApiError(where, e), res));
        // Closed before its end: the connection broke mid-stream.
        res.on('close', () => finish(new ApiError(`${where}: connection closed mid-stream`), res));
      },
      (e: unknown) => finish(asApiError(where, e)),
    );
  }

  /**
   * Sends a GET and resolves with the response once its headers are in. Nothing within
   * requestTimeoutMs (connecting, or waiting for headers) is an error; aborting `signal`
   * destroys the request and its socket.
   */
  private async request(path: string, query: QueryParams, signal: AbortSignal): Promise<IncomingMessage> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new ApiError('kubeconfig has no current cluster');
    const url = new URL(cluster.server + path);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    signal.throwIfAborted();
    const transport = url.protocol === 'http:' ? http : https;
    const where = `GET ${url.pathname}`;
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
          new ApiError(`${where}: timeout: nothing received for ${this.options.requestTimeoutMs} ms`),
        );
      });
      req.on('error', (e) => reject(asApiError(where, e)));
      req.on('response', resolve);
      req.end();
    });
  }
}

function asApiError(where: string, e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(`${where}: ${e instanceof Error ? e.message : String(e)}`);
}

/** An answer other than 200, with the Status message when the body has one. */
function httpError(where: string, res: IncomingMessage, body: string): ApiError {
  const code = res.statusCode ?? 0;
  const detail = statusMessage(body) ?? res.statusMessage ?? '';
  return new ApiError(`${where}: HTTP ${code} ${detail}`.trim(), code);
}

/** The whole body of a (list or error) response. */
function readBody(res: IncomingMessage, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('error', reject);
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('close', () => {
      if (!res.complete) reject(signal.reason ?? new Error('connection closed before the response ended'));
    });
  });
}

/** One line of a watch stream: `{"type": ..., "object": ...}`; null if it is not one. */
function parseWatchEvent(line: string): { type: string; object: unknown } | null {
  let event: unknown;
  try {
    event = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isRecord(event) || typeof event.type !== 'string') return null;
  return { type: event.type, object: event.object };
}
