/**
 * A small API server double speaking the Kubernetes list/watch protocol for Services,
 * EndpointSlices and Nodes, so the real @kubernetes/client-node can be driven through
 * disconnects, expiries and failures.
 *
 * - Lists: `GET <collection>` returns a `<Kind>List` with `metadata.resourceVersion`, honouring
 *   labelSelector (`key`, `!key`, `key=value`, `key!=value`), fieldSelector (`path=value`,
 *   `path!=value`, e.g. `metadata.name=node-1`) and limit/continue paging, with the real
 *   server's resourceVersion semantics (k8s.io/apiserver's cacher and etcd store):
 *   - with the watch cache (the default): `resourceVersion=0` is served from the cache and
 *     ignores `limit` (one page, the cache's current state); `resourceVersion=N` without a
 *     limit is "not older than N" from the cache (504 "Too large resource version" when N is
 *     ahead of the server);
 *   - from etcd (no watch cache, or a limit with `resourceVersion=N`): `N` is an exact read,
 *     410 once compacted; no resourceVersion is a consistent read of the current state;
 *     both paged by `limit`; a `continue` token from before a compaction is 410, and a
 *     resourceVersion next to a continue token is 400, as on the real server.
 * - Watches: `?watch=true&resourceVersion=RV` answers 200 and streams newline-delimited JSON
 *   events: first the changes after RV from an in-memory history, then live ones. An object
 *   that starts or stops matching the selector arrives as ADDED / DELETED, as the real server
 *   does. BOOKMARKs are sent when the client allows them (every `bookmarkIntervalMs`, or on
 *   `sendBookmarks()`); `timeoutSeconds` ends the stream.
 * - Test controls: apply/remove objects (each bumps the global resourceVersion), compact the
 *   history (older RVs get 410, as HTTP 410 or as an ERROR event), fail the next N requests,
 *   drop open watches, make watches silent (headers, then nothing) or stall requests (no
 *   answer at all), hold watches the way a real server or proxy does (open for good, client
 *   half-closes ignored), end watches at once, reset or refuse connections, and a log of
 *   every request received with its query parameters.
 *
 * It listens on 127.0.0.1 only (or the given host), on a port the OS picks.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export type Resource = 'services' | 'endpointslices' | 'nodes';

interface ResourceInfo {
  path: string;
  kind: string;
  apiVersion: string;
  namespaced: boolean;
}

export const RESOURCES: Record<Resource, ResourceInfo> = {
  services: { path: '/api/v1/services', kind: 'Service', apiVersion: 'v1', namespaced: true },
  endpointslices: {
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    namespaced: true,
  },
  nodes: { path: '/api/v1/nodes', kind: 'Node', apiVersion: 'v1', namespaced: false },
};

const RESOURCE_BY_PATH = new Map(
  Object.entries(RESOURCES).map(([name, info]) => [info.path, name as Resource]),
);

export interface KubeObject {
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
  [field: string]: unknown;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEntry {
  rv: number;
  resource: Resource;
  type: EventType;
  object: KubeObject;
  previous: KubeObject | null;
}

export interface RecordedRequest {
  atMs: number;
  resource: Resource | null;
  watch: boolean;
  query: Record<string, string>;
  status: number;
}

type Matcher = (o: KubeObject) => boolean;

interface OpenWatch {
  resource: Resource;
  res: http.ServerResponse;
  matches: Matcher;
  bookmarks: boolean;
  silent: boolean;
  timers: NodeJS.Timeout[];
}

/** How held watches are answered; see holdWatches(). */
export type HoldMode = 'after-headers' | 'before-headers';

export interface FakeApiServerOptions {
  /** serve lists from a watch cache (default true); false models `--watch-cache=false` */
  watchCache?: boolean;
  /** bearer token clients must send (401 otherwise) */
  token?: string;
  /** send a BOOKMARK this often to watches that allow them (0: only on sendBookmarks()) */
  bookmarkIntervalMs?: number;
  /** serve HTTPS with this key and certificate (PEM); plain HTTP otherwise */
  tls?: { key: string; cert: string };
  /** the address to listen on (127.0.0.1 by default) */
  host?: string;
  /** the port (one the OS picks by default) */
  port?: number;
}

const clone = <T>(o: T): T => structuredClone(o);

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function keyOf(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** Parses a label selector into a matcher; throws on syntax this double does not support. */
export function labelMatcher(selector: string): Matcher {
  const terms = selector
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const tests = terms.map((term): Matcher => {
    const labels = (o: KubeObject) => o.metadata.labels ?? {};
    let m = /^!([\w./-]+)$/.exec(term);
    if (m) {
      const key = m[1]!;
      return (o) => !(key in labels(o));
    }
    m = /^([\w./-]+)\s*!=\s*([\w.-]*)$/.exec(term);
    if (m) {
      const [, key, value] = m as unknown as [string, string, string];
      return (o) => labels(o)[key] !== value;
    }
    m = /^([\w./-]+)\s*==?\s*([\w.-]*)$/.exec(term);
    if (m) {
      const [, key, value] = m as unknown as [string, string, string];
      return (o) => labels(o)[key] === value;
    }
    m = /^([\w./-]+)$/.exec(term);
    if (m) {
      const key = m[1]!;
      return (o) => key in labels(o);
    }
    throw new Error(`unsupported label selector term ${JSON.stringify(term)}`);
  });
  return (o) => tests.every((t) => t(o));
}

/** Parses a field selector (`a.b=v`, `a.b==v`, `a.b!=v`, comma-separated). */
export function fieldMatcher(selector: string): Matcher {
  const terms = selector
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const tests = terms.map((term): Matcher => {
    const m = /^([\w.]+)\s*(!=|==|=)\s*(.*)$/.exec(term);
    if (!m) throw new Error(`unsupported field selector term ${JSON.stringify(term)}`);
    const [, path, op, value] = m as unknown as [string, string, string, string];
    const get = (o: KubeObject): string => {
      let v: unknown = o;
      for (const part of path.split('.'))
        v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
      return v === undefined || v === null ? '' : String(v);
    };
    return op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value;
  });
  return (o) => tests.every((t) => t(o));
}

export class FakeApiServer {
  private readonly server: http.Server | https.Server;
  private readonly objects: Record<Resource, Map<string, KubeObject>> = {
    services: new Map(),
    endpointslices: new Map(),
    nodes: new Map(),
  };
  private history: HistoryEntry[] = [];
  private readonly watches = new Set<OpenWatch>();
  private readonly sockets = new Set<Socket>();
  private readonly listSnapshots = new Map<string, { rv: number; items: KubeObject[] }>();
  private rv = 100;
  private compactedRv = 0;
  private goneAs: 'http' | 'event' = 'event';
  private failures: { remaining: number; code: number; resource?: Resource } = { remaining: 0, code: 500 };
  private endWatchesAtOnce = false;
  private holding: HoldMode | null = null;
  /** held watch requests whose client has not closed its side of the connection */
  private readonly held = new Set<http.ServerResponse>();
  private stalled = false;
  private silent = false;
  private resetting = false;
  private snapshotCounter = 0;
  private port = 0;
  /** every request received, in order */
  readonly requests: RecordedRequest[] = [];
  /** called with each request as it arrives, before it is answered (tests change state here) */
  onRequest: ((request: RecordedRequest) => void) | null = null;
  /** TCP connections destroyed at once while resetConnections() is on */
  resetCount = 0;

  private constructor(private readonly options: FakeApiServerOptions) {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res);
    this.server = options.tls ? https.createServer(options.tls, handler) : http.createServer(handler);
    this.server.on('connection', (socket) => {
      if (this.resetting) {
        this.resetCount++;
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const fake = new FakeApiServer(options);
    await fake.listen(options.port ?? 0);
    return fake;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, this.host, () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `${this.options.tls ? 'https' : 'http'}://${host}:${this.port}`;
  }

  /** The port it listens on. */
  get listeningPort(): number {
    return this.port;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /**
   * A kubeconfig for this server: over TLS it trusts `caCert` (the server's own certificate
   * by default); plain HTTP needs skipTLSVerify in client-node.
   */
  kubeConfig(caCert = this.options.tls?.cert): KubeConfig {
    const kc = new KubeConfig();
    const trust = this.options.tls
      ? { caData: Buffer.from(caCert ?? '').toString('base64'), skipTLSVerify: false }
      : { skipTLSVerify: true };
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, ...trust }],
      users: [{ name: 'fake', token: this.options.token ?? 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** The same as a kubeconfig file's text. */
  kubeConfigYaml(): string {
    const trust = this.options.tls
      ? `certificate-authority-data: ${Buffer.from(this.options.tls.cert).toString('base64')}`
      : 'insecure-skip-tls-verify: true';
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: fake\n  cluster:\n    server: ${this.url}\n    ${trust}`,
      'users:',
      `- name: fake\n  user:\n    token: ${this.options.token ?? 'fake-token'}`,
      'contexts:',
      '- name: fake\n  context:\n    cluster: fake\n    user: fake',
      'current-context: fake',
      '',
    ].join('\n');
  }

  // ---- state ------------------------------------------------------------------------------

  /** Creates or replaces an object; returns its new resourceVersion. */
  apply(resource: Resource, object: KubeObject): string {
    const info = RESOURCES[resource];
    const stored = clone(object);
    stored.apiVersion = info.apiVersion;
    stored.kind = info.kind;
    if (info.namespaced) stored.metadata.namespace ??= 'default';
    stored.metadata.resourceVersion = String(++this.rv);
    const previous = this.objects[resource].get(keyOf(stored)) ?? null;
    this.objects[resource].set(keyOf(stored), stored);
    this.record({ rv: this.rv, resource, type: previous ? 'MODIFIED' : 'ADDED', object: stored, previous });
    return stored.metadata.resourceVersion;
  }

  remove(
    resource: Resource,
    name: string,
    namespace = RESOURCES[resource].namespaced ? 'default' : undefined,
  ): void {
    const key = `${namespace ?? ''}/${name}`;
    const previous = this.objects[resource].get(key);
    if (!previous) throw new Error(`fake API server: no ${resource} ${key} to delete`);
    this.objects[resource].delete(key);
    const deleted = clone(previous);
    deleted.metadata.resourceVersion = String(++this.rv);
    this.record({ rv: this.rv, resource, type: 'DELETED', object: deleted, previous });
  }

  private record(entry: HistoryEntry): void {
    this.history.push(entry);
    for (const w of this.watches) if (w.resource === entry.resource) this.deliver(w, entry);
  }

  // ---- test controls ----------------------------------------------------------------------

  /**
   * Forgets the history up to now: a watch from an older resourceVersion (or a continue
   * token from before) gets 410 Gone, as an HTTP status or as an ERROR event.
   */
  compact(as: 'http' | 'event'): void {
    this.goneAs = as;
    this.compactedRv = this.rv;
    this.history = [];
  }

  /** The next `count` requests (for `resource`, or any) are answered with `code` (a Status body). */
  failNext(count: number, code = 500, resource?: Resource): void {
    this.failures = { remaining: count, code, ...(resource ? { resource } : {}) };
  }

  /** Watches get their headers and are ended at once, without any event (upstream issue #1933). */
  closeWatchesAtOnce(on: boolean): void {
    this.endWatchesAtOnce = on;
  }

  /** Ends every open watch normally (as a server restart or a load balancer would). */
  dropWatches(): void {
    for (const w of [...this.watches]) this.endWatch(w);
  }

  /** Watches opened from now on get their headers and then nothing, ever; open ones fall silent too. */
  silence(on: boolean): void {
    this.silent = on;
    if (on) for (const w of this.watches) w.silent = true;
  }

  /**
   * Watches opened from now on are held the way a real API server holds them (minutes, with
   * nothing to say) and never ended by this server: 'after-headers' answers 200 and then
   * sends nothing, no bookmarks, timeoutSeconds ignored; 'before-headers' does not even send
   * the headers (a proxy that holds them back until the first event). A client that only
   * half-closes its side is ignored too: a held watch goes away only when the client
   * destroys its connection. Lists are answered as usual. `null` stops holding new watches.
   */
  holdWatches(mode: HoldMode | null): void {
    this.holding = mode;
    // Node's HTTP server ends its side when the client's FIN arrives, unless told to allow
    // half-open connections (an undocumented but long-standing http.Server property).
    if (mode) (this.server as { httpAllowHalfOpen?: boolean }).httpAllowHalfOpen = true;
  }

  /** Held watch requests whose client has not closed its side of the connection. */
  get heldWatches(): number {
    return this.held.size;
  }

  /** Requests from now on are read and never answered (not even headers) until stall(false) or a drop. */
  stall(on: boolean): void {
    this.stalled = on;
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watch that allows them. */
  sendBookmarks(): void {
    for (const w of this.watches) this.bookmark(w);
  }

  /** Accepts TCP connections and destroys them at once (counted in resetCount). */
  resetConnections(on: boolean): void {
    this.resetting = on;
    if (on) this.dropConnections();
  }

  /** Stops listening (connections are refused) and drops every connection. */
  async refuse(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropConnections();
    await closed;
  }

  /** Listens again on the same port. */
  async resume(): Promise<void> {
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.refuse();
  }

  /** Requests for one collection, optionally only lists or only watches. */
  requestsFor(resource: Resource, kind?: 'list' | 'watch'): RecordedRequest[] {
    return this.requests.filter(
      (r) => r.resource === resource && (kind === undefined || r.watch === (kind === 'watch')),
    );
  }

  get openWatches(): number {
    return this.watches.size;
  }

  private dropConnections(): void {
    for (const w of [...this.watches]) this.endWatch(w, true);
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  // ---- protocol ---------------------------------------------------------------------------

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const resource = RESOURCE_BY_PATH.get(url.pathname) ?? null;
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true' || query.watch === '1';
    const entry: RecordedRequest = { atMs: Date.now(), resource, watch, query, status: 0 };
    this.requests.push(entry);
    this.onRequest?.(entry);
    const answer = (code: number, body: unknown) => {
      entry.status = code;
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };

    if (this.stalled) return;
    if (this.failures.remaining > 0 && (!this.failures.resource || this.failures.resource === resource)) {
      this.failures.remaining--;
      answer(this.failures.code, status(this.failures.code, 'InternalError', 'injected failure'));
      return;
    }
    if (this.options.token !== undefined && req.headers.authorization !== `Bearer ${this.options.token}`) {
      answer(401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    if (!resource || req.method !== 'GET') {
      answer(404, status(404, 'NotFound', `the server could not find ${req.method} ${url.pathname}`));
      return;
    }
    let matches: Matcher;
    try {
      const label = labelMatcher(query.labelSelector ?? '');
      const field = fieldMatcher(query.fieldSelector ?? '');
      matches = (o) => label(o) && field(o);
    } catch (e) {
      answer(400, status(400, 'BadRequest', (e as Error).message));
      return;
    }
    if (watch) this.startWatch(resource, query, matches, entry, res);
    else this.list(resource, query, matches, answer);
  }

  private list(
    resource: Resource,
    query: Record<string, string>,
    matches: Matcher,
    answer: (code: number, body: unknown) => void,
  ): void {
    const info = RESOURCES[resource];
    const limit = Number(query.limit ?? 0);
    const requested = query.resourceVersion;
    const cached = this.options.watchCache ?? true;
    let snapshot: { rv: number; items: KubeObject[] };
    let offset = 0;
    let paged = limit > 0;
    if (query.continue) {
      if (requested !== undefined && requested !== '') {
        answer(
          400,
          status(400, 'BadRequest', 'specifying resource version is not allowed when using continue'),
        );
        return;
      }
      const [id, at] = query.continue.split(':');
      const found = this.listSnapshots.get(id ?? '');
      if (!found || found.rv < this.compactedRv) {
        answer(410, status(410, 'Expired', 'The provided continue parameter is too old'));
        return;
      }
      snapshot = found;
      offset = Number(at);
    } else {
      const rv = requested === undefined || requested === '' ? null : Number(requested);
      if (rv !== null && !Number.isInteger(rv)) {
        answer(400, status(400, 'BadRequest', `invalid resourceVersion ${requested}`));
        return;
      }
      if (rv !== null && rv > this.rv) {
        // The real cache waits up to 3 s for it first; etcd refuses a future revision.
        answer(504, status(504, 'Timeout', `Too large resource version: ${rv}, current: ${this.rv}`));
        return;
      }
      let items: KubeObject[];
      if (rv === null || (rv === 0 && !cached) || (rv > 0 && !paged)) {
        // Consistent read, "any" from etcd, or "not older than" (cache or etcd): now.
        items = [...this.objects[resource].values()];
      } else if (rv === 0) {
        // From the watch cache, which ignores the limit for resourceVersion=0.
        items = [...this.objects[resource].values()];
        paged = false;
      } else {
        const past = this.stateAt(resource, rv);
        if (past === null) {
          answer(410, status(410, 'Expired', `The resourceVersion for the provided list is too old (${rv})`));
          return;
        }
        items = past;
      }
      items = items.filter(matches).sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
      snapshot = { rv: rv !== null && rv > 0 && paged ? rv : this.rv, items };
    }
    const end = paged ? Math.min(snapshot.items.length, offset + limit) : snapshot.items.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(snapshot.rv) };
    if (end < snapshot.items.length) {
      const id = String(++this.snapshotCounter);
      this.listSnapshots.set(id, snapshot);
      metadata.continue = `${id}:${end}`;
      metadata.remainingItemCount = snapshot.items.length - end;
    }
    // Like the real server, list items carry no kind/apiVersion of their own.
    const items = snapshot.items.slice(offset, end).map((o) => {
      const { kind: _kind, apiVersion: _apiVersion, ...rest } = clone(o);
      return rest;
    });
    answer(200, { kind: `${info.kind}List`, apiVersion: info.apiVersion, metadata, items });
  }

  /** The collection as it was at `rv` (an exact read from etcd); null once compacted. */
  private stateAt(resource: Resource, rv: number): KubeObject[] | null {
    if (rv < this.compactedRv) return null;
    const state = new Map(this.objects[resource]);
    for (let i = this.history.length - 1; i >= 0; i--) {
      const h = this.history[i]!;
      if (h.rv <= rv) break;
      if (h.resource !== resource) continue;
      if (h.previous) state.set(keyOf(h.previous), h.previous);
      else state.delete(keyOf(h.object));
    }
    return [...state.values()];
  }

  private startWatch(
    resource: Resource,
    query: Record<string, string>,
    matches: Matcher,
    entry: RecordedRequest,
    res: http.ServerResponse,
  ): void {
    const requested = query.resourceVersion ?? '';
    const fromRv = requested === '' || requested === '0' ? null : Number(requested);
    if (fromRv !== null && !Number.isInteger(fromRv)) {
      entry.status = 400;
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(status(400, 'BadRequest', `invalid resourceVersion ${requested}`)));
      return;
    }
    const expired = fromRv !== null && fromRv < this.compactedRv;
    if (expired && this.goneAs === 'http') {
      entry.status = 410;
      res.writeHead(410, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify(status(410, 'Expired', `too old resource version: ${fromRv} (${this.compactedRv})`)),
      );
      return;
    }
    if (this.holding) {
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      // Half-open: the connection stays, but the client has closed its side.
      res.socket?.on('end', () => this.held.delete(res));
      if (this.holding === 'before-headers') return;
      entry.status = 200;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      res.flushHeaders();
      return;
    }
    entry.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const w: OpenWatch = {
      resource,
      res,
      matches,
      bookmarks: query.allowWatchBookmarks === 'true',
      silent: this.silent,
      timers: [],
    };
    this.watches.add(w);
    res.on('close', () => this.endWatch(w));
    if (w.silent) return;
    if (this.endWatchesAtOnce) {
      this.endWatch(w);
      return;
    }
    if (expired) {
      this.write(w, {
        type: 'ERROR',
        object: status(410, 'Expired', `too old resource version: ${fromRv} (${this.compactedRv})`),
      });
      this.endWatch(w);
      return;
    }
    if (fromRv === null) {
      // "Start at most recent": the current state as ADDED events first.
      for (const o of this.objects[resource].values())
        if (matches(o)) this.write(w, { type: 'ADDED', object: o });
    } else {
      for (const h of this.history) if (h.resource === resource && h.rv > fromRv) this.deliver(w, h);
    }
    const timeoutSeconds = Number(query.timeoutSeconds ?? 0);
    if (timeoutSeconds > 0) w.timers.push(setTimeout(() => this.endWatch(w), timeoutSeconds * 1000));
    const every = this.options.bookmarkIntervalMs ?? 0;
    if (w.bookmarks && every > 0) w.timers.push(setInterval(() => this.bookmark(w), every));
  }

  /** Sends one history entry as this watch sees it through its selector. */
  private deliver(w: OpenWatch, h: HistoryEntry): void {
    const was = h.previous !== null && w.matches(h.previous);
    const is = h.type !== 'DELETED' && w.matches(h.object);
    if (h.type === 'DELETED') {
      if (was) this.write(w, { type: 'DELETED', object: h.object });
    } else if (is) {
      this.write(w, { type: was ? 'MODIFIED' : 'ADDED', object: h.object });
    } else if (was) {
      // Left the selection: the real server sends the previous state at the new resourceVersion.
      const gone = clone(h.previous as KubeObject);
      gone.metadata.resourceVersion = String(h.rv);
      this.write(w, { type: 'DELETED', object: gone });
    }
  }

  private bookmark(w: OpenWatch): void {
    if (!w.bookmarks) return;
    const info = RESOURCES[w.resource];
    this.write(w, {
      type: 'BOOKMARK',
      object: {
        kind: info.kind,
        apiVersion: info.apiVersion,
        metadata: { resourceVersion: String(this.rv) },
      },
    });
  }

  private write(w: OpenWatch, event: { type: string; object: unknown }): void {
    if (w.silent || w.res.writableEnded) return;
    w.res.write(`${JSON.stringify(event)}\n`);
  }

  private endWatch(w: OpenWatch, destroy = false): void {
    if (!this.watches.delete(w)) return;
    for (const t of w.timers) clearTimeout(t);
    if (destroy) w.res.destroy();
    else if (!w.res.writableEnded) w.res.end();
  }
}
