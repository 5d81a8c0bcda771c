/**
 * List+watch of one API collection, delivering add/update/delete events, with the
 * recovery behaviour of client-go's reflector.
 *
 * Why not client-node's informer (`makeInformer` / `ListWatch`): in 1.4 it stops for good
 * on an HTTP 5xx, a network error or a failed list (it only calls its error handlers),
 * has no backoff (upstream issue #1933: ~1,600 watch requests in 2 s against a server that
 * closes watches at once), and never asks for bookmarks or a watch timeout. A proxy must
 * outlive API server restarts, so this file drives the loop itself, on top of plain list
 * and watch requests (see api-client.ts for why not the library's `Watch` either):
 *
 * - list, remember the list's resourceVersion, and emit events by diffing with what was
 *   known before, so a relist after 410 or an outage emits deletes for objects that
 *   vanished and nothing for unchanged ones (same resourceVersion). Which resourceVersion
 *   a list asks for, and whether it is paged, follows the reflector (see relist()). Of each
 *   object only its resourceVersion and identity are remembered, not its content (see
 *   identityOf);
 * - watch from that resourceVersion with bookmarks and a randomised timeout (5-10 min,
 *   as client-go), following each event's and bookmark's resourceVersion;
 * - a watch the server ends normally is resumed at once from the last resourceVersion,
 *   unless it ended very soon without a single event (client-go's "very short watch"),
 *   which counts as a failure, so a server that closes watches at once is not hammered;
 * - HTTP 410 or an ERROR event with code 410: relist from the last resourceVersion (at
 *   once, unless the previous watch also expired without delivering anything);
 * - any other failure (HTTP error, network error, failed list, no event or bookmark for
 *   the inactivity timeout): retry after exponential backoff with jitter, resuming the
 *   watch from the last resourceVersion (the server answers 410 if that is too old).
 *
 * Nothing is emitted while the API server is unreachable: the proxy keeps its rules.
 */
import type { Logger } from '../log.js';
import { isRecord } from '../model/raw.js';
import type { ObjectEvent, ObjectKind } from '../model/store.js';
import { type ApiClient, ApiError, type QueryParams } from './api-client.js';
import { Backoff, type BackoffOptions, DEFAULT_BACKOFF } from './backoff.js';

export interface ResourceSpec {
  kind: ObjectKind;
  /** apiVersion of the objects, filled into list items (lists omit it per item) */
  apiVersion: string;
  /** collection path, e.g. `/api/v1/services` */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * top-level fields a delete found by a relist carries besides apiVersion, kind and the
   * identity in metadata (see identityOf), e.g. `addressType` for EndpointSlices
   */
  identityFields?: readonly string[];
}

export interface ListWatchTiming {
  /** each watch asks the server to end it after a random time in [min, max] seconds */
  watchTimeoutMinSeconds: number;
  watchTimeoutMaxSeconds: number;
  /**
   * A watch with no event or bookmark for this long is presumed dead and restarted. The
   * API server sends a bookmark about once a minute to watches that ask for them.
   */
  inactivityTimeoutMs: number;
  /** a watch the server ends sooner than this without any event counts as a failure */
  shortWatchMs: number;
  /** a list (and a watch's response headers) must arrive within this time */
  requestTimeoutMs: number;
  /** items per list page, where lists are paged (see ListWatcher.relist) */
  listPageSize: number;
  backoff: BackoffOptions;
}

export const DEFAULT_TIMING: ListWatchTiming = {
  watchTimeoutMinSeconds: 300,
  watchTimeoutMaxSeconds: 600,
  inactivityTimeoutMs: 150_000,
  shortWatchMs: 1000,
  requestTimeoutMs: 60_000,
  listPageSize: 500,
  backoff: DEFAULT_BACKOFF,
};

export interface KnownObject {
  resourceVersion: string | undefined;
  /** what a delete event for the object carries (identityOf) */
  identity: unknown;
}

type WatchOutcome =
  | { kind: 'closed'; events: number; durationMs: number }
  | { kind: 'expired'; events: number }
  | { kind: 'failed'; error: Error }
  | { kind: 'inactive' }
  | { kind: 'stopped' };

function metadataOf(o: unknown): Record<string, unknown> {
  return isRecord(o) && isRecord(o.metadata) ? o.metadata : {};
}

function resourceVersionOf(o: unknown): string | undefined {
  const rv = metadataOf(o).resourceVersion;
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}

/** The identity the API server uses: namespace/name (a nameless object is keyed by content). */
export function objectKeyOf(o: unknown): string {
  const { namespace, name } = metadataOf(o);
  if (typeof name !== 'string') return `?${JSON.stringify(o)}`;
  return `${typeof namespace === 'string' ? namespace : ''}/${name}`;
}

const IDENTITY_METADATA = ['name', 'namespace', 'uid', 'resourceVersion', 'labels'] as const;

/**
 * What is remembered of an object to report its deletion when a relist no longer has it:
 * apiVersion, kind, the `fields` given (addressType for EndpointSlices) and its metadata's
 * name, namespace, uid, resourceVersion and labels, which is all a delete's consumers read.
 * Not its content: keeping every object whole for that was a sixth of the proxy's memory at
 * 10,000 services, next to what the store parsed from it. A nameless object (malformed; keyed
 * by content) is kept whole.
 */
export function identityOf(o: unknown, fields: readonly string[] = []): unknown {
  if (!isRecord(o) || !isRecord(o.metadata) || typeof o.metadata.name !== 'string') return o;
  const identity: Record<string, unknown> = {};
  for (const field of ['apiVersion', 'kind', ...fields]) if (field in o) identity[field] = o[field];
  const metadata: Record<string, unknown> = {};
  for (const field of IDENTITY_METADATA) if (field in o.metadata) metadata[field] = o.metadata[field];
  identity.metadata = metadata;
  return identity;
}

/**
 * Events that turn `known` into `listed`: deletes first (carrying the object's identity,
 * see identityOf), then adds and updates in list order. An object whose resourceVersion did
 * not change produces no event.
 */
export function diffListed(
  known: ReadonlyMap<string, KnownObject>,
  listed: readonly unknown[],
  identityFields: readonly string[] = [],
) {
  const next = new Map<string, KnownObject>();
  const objects = new Map<string, unknown>();
  for (const object of listed) {
    const key = objectKeyOf(object);
    next.set(key, {
      resourceVersion: resourceVersionOf(object),
      identity: identityOf(object, identityFields),
    });
    objects.set(key, object);
  }
  const events: { type: ObjectEvent['type']; object: unknown }[] = [];
  for (const [key, old] of known) if (!next.has(key)) events.push({ type: 'delete', object: old.identity });
  for (const [key, cur] of next) {
    const old = known.get(key);
    if (!old) events.push({ type: 'add', object: objects.get(key) });
    else if (old.resourceVersion !== cur.resourceVersion || cur.resourceVersion === undefined) {
      events.push({ type: 'update', object: objects.get(key) });
    }
  }
  return { events, next };
}

/** `ERROR` events carry a Status; its code says what went wrong (410: resourceVersion too old). */
function statusCodeOf(o: unknown): number | undefined {
  return isRecord(o) && typeof o.code === 'number' ? o.code : undefined;
}

/** 410 Gone: the resourceVersion (or continue token) is older than the server keeps. */
function isExpired(e: unknown): boolean {
  return e instanceof ApiError && e.statusCode === 410;
}

/** 504 "Too large resource version": the server has not seen that resourceVersion yet. */
function isTooLargeResourceVersion(e: unknown): boolean {
  return e instanceof ApiError && e.statusCode === 504 && /too large resource version/i.test(e.message);
}

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export interface ListWatcherOptions {
  resource: ResourceSpec;
  client: ApiClient;
  timing: ListWatchTiming;
  log: Logger;
  random?: () => number;
}

export interface EventSink {
  onEvent: (event: ObjectEvent) => void;
  /** called once per start(), after the first complete list has been delivered */
  onListed: () => void;
}

export class ListWatcher {
  private known = new Map<string, KnownObject>();
  /** the last resourceVersion synced: of the last list, watch event or bookmark */
  private resourceVersion = '';
  /** the last list answered 410 or "too large": the next one is a consistent read */
  private resourceVersionUnavailable = false;
  /** a resourceVersion=0 list came back in pages: no watch cache, so relists are paged too */
  private serverPages = false;
  private listed = false;
  private sink: EventSink | null = null;
  private stopping = false;
  private running: Promise<void> | null = null;
  /** ends the current watch, list or backoff wait early (set while one is in progress) */
  private interrupt: (() => void) | null = null;
  private readonly backoff: Backoff;
  private readonly random: () => number;
  private readonly log: Logger;
  /** set while the API server is failing, to log the recovery once */
  private failingSince: number | null = null;

  constructor(private readonly options: ListWatcherOptions) {
    this.random = options.random ?? Math.random;
    this.backoff = new Backoff(options.timing.backoff, this.random);
    this.log = options.log.child({ resource: options.resource.kind });
  }

  /**
   * Lists, then watches until stop(). What was delivered is remembered across stop() and
   * start(): a restarted watcher relists and delivers only the differences.
   */
  start(sink: EventSink): void {
    if (this.running) throw new Error(`list-watch of ${this.options.resource.path} already running`);
    this.sink = sink;
    this.stopping = false;
    this.listed = false;
    this.running = this.run().finally(() => {
      this.running = null;
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.interrupt?.();
    await this.running;
  }

  private async run(): Promise<void> {
    let needList = true;
    let expiredWithoutEvents = false;
    while (!this.stopping) {
      if (needList) {
        const failure = await this.relist();
        if (this.stopping) return;
        if (failure !== null) {
          await this.retryLater(failure);
          continue;
        }
        needList = false;
      }
      const outcome = await this.watchOnce();
      switch (outcome.kind) {
        case 'stopped':
          return;
        case 'closed':
          if (outcome.events === 0 && outcome.durationMs < this.options.timing.shortWatchMs) {
            await this.retryLater(`watch ended after ${outcome.durationMs} ms without any event`);
          } else {
            this.log.debug({ resourceVersion: this.resourceVersion }, 'watch ended; resuming');
          }
          break;
        case 'expired':
          this.log.info(
            { resourceVersion: this.resourceVersion },
            'resourceVersion expired (410); relisting',
          );
          needList = true;
          // Two expiries in a row without progress: do not spin between list and watch.
          if (expiredWithoutEvents && outcome.events === 0)
            await this.retryLater('relisted state expired at once');
          expiredWithoutEvents = outcome.events === 0;
          continue;
        case 'inactive':
          await this.retryLater(`no event or bookmark for ${this.options.timing.inactivityTimeoutMs} ms`);
          break;
        case 'failed':
          await this.retryLater(`watch failed: ${outcome.error.message}`);
          break;
      }
      expiredWithoutEvents = false;
    }
  }

  /** Logs a failure and waits out the backoff (or until stop). */
  private async retryLater(reason: string): Promise<void> {
    if (this.failingSince === null) this.failingSince = Date.now();
    const delayMs = Math.round(this.backoff.nextDelay(Date.now()));
    this.log.warn(
      { delayMs, attempt: this.backoff.attempts, resourceVersion: this.resourceVersion || undefined },
      `${reason}; retrying after backoff`,
    );
    await this.sleep(delayMs);
  }

  /** The API server answered properly again: log it once after failures. */
  private recovered(): void {
    if (this.failingSince === null) return;
    this.log.info({ failingForMs: Date.now() - this.failingSince }, 'API server reachable again');
    this.failingSince = null;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.interrupt = () => {
        this.interrupt = null;
        done();
      };
    });
  }

  private selectorParams(): QueryParams {
    const { labelSelector, fieldSelector } = this.options.resource;
    return {
      ...(labelSelector ? { labelSelector } : {}),
      ...(fieldSelector ? { fieldSelector } : {}),
    };
  }

  /**
   * The resourceVersion the next list asks for, as client-go's reflector
   * (relistResourceVersion) chooses it. The first list asks for "0": any version, served
   * from the API server's watch cache without touching etcd. Later lists (after a watch
   * answered 410, or a restart of this watcher) ask for the last resourceVersion synced,
   * which lists "not older than" it, again from the cache. Only after a list itself was
   * answered 410 or "too large" does the next one ask for nothing: a consistent read from
   * etcd. With one Switchboard per node, a control-plane restart makes every node relist
   * at once; from the watch cache that costs the API server memory copies, from etcd it
   * costs a quorum read per page per node.
   */
  private listResourceVersion(): string {
    if (this.resourceVersionUnavailable) return '';
    return this.resourceVersion === '' ? '0' : this.resourceVersion;
  }

  /** Lists every page and applies the difference; returns why it failed, or null. */
  private async relist(): Promise<string | null> {
    const controller = new AbortController();
    this.interrupt = () => controller.abort();
    let listed: { items: unknown[]; resourceVersion: string; paginated: boolean };
    const requested = this.listResourceVersion();
    try {
      try {
        listed = await this.listAll(requested, controller.signal);
      } catch (e) {
        if (requested === '' || !(isExpired(e) || isTooLargeResourceVersion(e))) throw e;
        // As the reflector: that resourceVersion is not available; a consistent read at once.
        this.resourceVersionUnavailable = true;
        this.log.info(
          { resourceVersion: requested, reason: describeError(e) },
          'resourceVersion not available for a list; listing from etcd',
        );
        listed = await this.listAll('', controller.signal);
      }
    } catch (e) {
      return `list failed${isExpired(e) ? ' (resourceVersion expired)' : ''}: ${describeError(e)}`;
    } finally {
      this.interrupt = null;
    }
    if (this.stopping) return 'stopping';
    // Only a resourceVersion=0 list tells whether the server has a watch cache: a consistent
    // read comes back in pages either way.
    if (requested === '0' && listed.paginated) this.serverPages = true;
    this.resourceVersionUnavailable = false;
    const { items, resourceVersion } = listed;
    const { events, next } = diffListed(this.known, items, this.options.resource.identityFields);
    this.known = next;
    this.resourceVersion = resourceVersion;
    this.recovered();
    const count = (type: string) => events.filter((e) => e.type === type).length;
    this.log.info(
      {
        objects: next.size,
        resourceVersion,
        requestedResourceVersion: requested === '' ? 'none (consistent read)' : requested,
        added: count('add'),
        updated: count('update'),
        deleted: count('delete'),
      },
      this.listed ? 'relisted' : 'listed',
    );
    for (const e of events) this.emit(e.type, e.object);
    if (!this.listed) {
      this.listed = true;
      this.sink?.onListed();
    }
    return null;
  }

  /**
   * One whole list at `resourceVersion` ('' for a consistent read), paged as client-go's
   * pager and reflector page it:
   * - "0" and consistent reads send `limit`. The watch cache ignores the limit for "0" and
   *   answers in one piece (in the API server versions this targets); a server without a
   *   watch cache pages from etcd, which is what the limit is for.
   * - "not older than" a resourceVersion sends no limit unless a "0" list came back paged:
   *   the watch cache serves such a list only without a limit; with one it would be an
   *   exact read from etcd, the thundering herd this avoids.
   * - Continue pages carry the token and no resourceVersion (the server refuses both). A
   *   continue token that expired (410) is followed by one unpaged list at the same
   *   resourceVersion, as the pager's FullListIfExpired does, so a slow list makes progress.
   */
  private async listAll(
    resourceVersion: string,
    signal: AbortSignal,
  ): Promise<{ items: unknown[]; resourceVersion: string; paginated: boolean }> {
    const { resource, client, timing } = this.options;
    const paged = resourceVersion === '' || resourceVersion === '0' || this.serverPages;
    const first = {
      ...this.selectorParams(),
      ...(resourceVersion === '' ? {} : { resourceVersion }),
    };
    const items: unknown[] = [];
    let page = await client.list(
      resource.path,
      { ...first, ...(paged ? { limit: timing.listPageSize } : {}) },
      signal,
    );
    let paginated = false;
    for (;;) {
      for (const item of page.items) items.push(this.withTypeMeta(item));
      if (!page.continueToken || this.stopping) break;
      paginated = true;
      const query = { ...this.selectorParams(), limit: timing.listPageSize, continue: page.continueToken };
      try {
        page = await client.list(resource.path, query, signal);
      } catch (e) {
        if (!isExpired(e)) throw e;
        this.log.info(
          { resourceVersion: resourceVersion || undefined },
          'continue token expired (410); listing in one piece',
        );
        const whole = await client.list(resource.path, first, signal);
        return {
          items: whole.items.map((item) => this.withTypeMeta(item)),
          resourceVersion: whole.resourceVersion,
          paginated,
        };
      }
    }
    return { items, resourceVersion: page.resourceVersion, paginated };
  }

  /** List items carry no kind/apiVersion; give them the ones watch events have. */
  private withTypeMeta(item: unknown): unknown {
    if (!isRecord(item) || (item.kind !== undefined && item.apiVersion !== undefined)) return item;
    const { apiVersion, kind } = this.options.resource;
    return { apiVersion, kind, ...item };
  }

  private emit(type: ObjectEvent['type'], object: unknown): void {
    try {
      this.sink?.onEvent({ type, kind: this.options.resource.kind, object });
    } catch (e) {
      // A consumer bug must not kill the watch loop; the store reports bad objects itself.
      this.log.error({ err: e }, `handling a ${type} event failed: ${describeError(e)}`);
    }
  }

  /** Applies one watch event to the known set; returns false for events it does not understand. */
  private applyWatchEvent(type: string, object: unknown): boolean {
    const rv = resourceVersionOf(object);
    if (type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return true;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return false;
    const key = objectKeyOf(object);
    const old = this.known.get(key);
    if (type === 'DELETED') {
      if (old) {
        this.known.delete(key);
        this.emit('delete', object);
      }
    } else if (!old || old.resourceVersion !== rv || rv === undefined) {
      const identity = identityOf(object, this.options.resource.identityFields);
      this.known.set(key, { resourceVersion: rv, identity });
      this.emit(old ? 'update' : 'add', object);
    }
    if (rv) this.resourceVersion = rv;
    return true;
  }

  private watchTimeoutSeconds(): number {
    const { watchTimeoutMinSeconds: min, watchTimeoutMaxSeconds: max } = this.options.timing;
    return Math.round(min + this.random() * Math.max(0, max - min));
  }

  /** One watch, from the last resourceVersion until it ends; never throws. */
  private watchOnce(): Promise<WatchOutcome> {
    const { resource, client, timing } = this.options;
    const startedAt = Date.now();
    let events = 0;
    let settled = false;
    // Aborting destroys the watch request and its connection, whatever phase it is in.
    const controller = new AbortController();
    let inactivity: NodeJS.Timeout | undefined;
    return new Promise<WatchOutcome>((resolve) => {
      const finish = (outcome: WatchOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(inactivity);
        this.interrupt = null;
        controller.abort();
        resolve(outcome);
      };
      const armInactivityTimer = () => {
        clearTimeout(inactivity);
        inactivity = setTimeout(() => finish({ kind: 'inactive' }), timing.inactivityTimeoutMs);
      };
      this.interrupt = () => finish({ kind: 'stopped' });
      if (this.stopping) {
        finish({ kind: 'stopped' });
        return;
      }
      armInactivityTimer();
      const onEvent = (type: string, object: unknown) => {
        if (settled) return;
        armInactivityTimer();
        events++;
        if (type === 'ERROR') {
          const code = statusCodeOf(object);
          if (code === 410) finish({ kind: 'expired', events: events - 1 });
          else {
            const message =
              isRecord(object) && typeof object.message === 'string' ? object.message : 'no message';
            finish({
              kind: 'failed',
              error: new ApiError(`ERROR event (code ${code ?? '?'}): ${message}`, code),
            });
          }
          return;
        }
        this.recovered();
        if (!this.applyWatchEvent(type, object))
          this.log.warn({ type }, 'ignoring a watch event of unknown type');
      };
      const onDone = (error: ApiError | null) => {
        if (error === null) finish({ kind: 'closed', events, durationMs: Date.now() - startedAt });
        else if (error.statusCode === 410) finish({ kind: 'expired', events });
        else finish({ kind: 'failed', error });
      };
      this.log.debug({ resourceVersion: this.resourceVersion }, 'watching');
      client.watch(
        resource.path,
        {
          ...this.selectorParams(),
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: this.watchTimeoutSeconds(),
        },
        controller.signal,
        onEvent,
        onDone,
      );
    });
  }
}
