/**
 * The manifest source as an ObjectSource: reads every --from path, delivers the objects
 * as add events, reports synced, then watches the files and delivers what changed.
 *
 * Watching is by directory (a file's parent, or every directory of a --from tree): editors
 * that save by writing a new file and renaming it over the old one replace the inode, which
 * a watch on the file itself would lose. Changes are debounced, then everything is re-read
 * and compared with what was delivered, object by object (kind/namespace/name). A re-read
 * that fails (a half-written file, a YAML error) is logged and changes nothing: the proxy
 * keeps the previous objects rather than dropping rules. A read that would delete objects is
 * confirmed by a second read a debounce period later, because a file caught between an
 * editor's truncate and write parses fine as empty.
 */
import { createHash, hash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import type { Logger } from '../log.js';
import { isRecord } from '../model/raw.js';
import type { ObjectEvent, ObjectKind } from '../model/store.js';
import type { ObjectSource } from '../sync/backend.js';
import { readManifests, STDIN_PATH } from './manifests.js';

export interface ManifestSourceOptions {
  log: Logger;
  /** keep watching after the first read (false for `run --once`) */
  watch?: boolean;
  /** quiet time after the last file event before re-reading */
  debounceMs?: number;
}

export interface KeyedObject {
  kind: ObjectKind;
  object: unknown;
  /** a digest of the object's content, for comparison (the JSON text itself would double the memory held) */
  digest: string;
}

/** `Service/ns/name`, `EndpointSlice/ns/name`, `Node//name`: the identity the API server would use. */
export function objectKey(kind: ObjectKind, object: unknown, digest: string): string {
  const meta = isRecord(object) && isRecord(object.metadata) ? object.metadata : {};
  // Unnamed objects are invalid; the store reports them. Keyed by content so they stay stable.
  if (typeof meta.name !== 'string') return `${kind}/?/${digest}`;
  const namespace = kind === 'Node' ? '' : typeof meta.namespace === 'string' ? meta.namespace : 'default';
  return `${kind}/${namespace}/${meta.name}`;
}

/** The objects of a read, by key; a later duplicate replaces an earlier one (as applying them in order would). */
export function keyObjects(events: readonly ObjectEvent[]): Map<string, KeyedObject> {
  const out = new Map<string, KeyedObject>();
  for (const e of events) {
    const digest = hash('sha1', JSON.stringify(e.object), 'base64');
    out.set(objectKey(e.kind, e.object, digest), { kind: e.kind, object: e.object, digest });
  }
  return out;
}

/** Events that turn `previous` into `next`: deletes first, then adds and updates in file order. */
export function diffObjects(
  previous: ReadonlyMap<string, KeyedObject>,
  next: ReadonlyMap<string, KeyedObject>,
): ObjectEvent[] {
  const events: ObjectEvent[] = [];
  for (const [key, old] of previous) {
    if (!next.has(key)) events.push({ type: 'delete', kind: old.kind, object: old.object });
  }
  for (const [key, cur] of next) {
    const old = previous.get(key);
    if (!old) events.push({ type: 'add', kind: cur.kind, object: cur.object });
    else if (old.digest !== cur.digest) events.push({ type: 'update', kind: cur.kind, object: cur.object });
  }
  return events;
}

function contentHash(objects: ReadonlyMap<string, KeyedObject>): string {
  const all = createHash('sha256');
  for (const [key, o] of objects) all.update(key).update('\0').update(o.digest).update('\0');
  return all.digest('hex');
}

/** Which directories to watch, and which file names in each matter (null: all). */
async function watchTargets(paths: readonly string[]): Promise<Map<string, Set<string> | null>> {
  const targets = new Map<string, Set<string> | null>();
  const addDir = async (dir: string): Promise<void> => {
    targets.set(dir, null);
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) await addDir(join(dir, e.name));
  };
  for (const p of paths) {
    const full = resolve(p);
    const info = await stat(full).catch(() => null);
    if (info?.isDirectory()) {
      await addDir(full);
      continue;
    }
    const dir = dirname(full);
    const names = targets.get(dir);
    if (names === null) continue;
    targets.set(dir, new Set([...(names ?? []), basename(full)]));
  }
  return targets;
}

type EventSink = (event: ObjectEvent) => void;

export class ManifestSource implements ObjectSource {
  private objects = new Map<string, KeyedObject>();
  private readonly watchers = new Map<string, { watcher: FSWatcher; names: Set<string> | null }>();
  private onEvent: EventSink | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private reading: Promise<void> | null = null;
  private rereadRequested = false;
  /** content hash of a read with deletions, waiting for a second read to confirm it */
  private unconfirmed: string | null = null;
  private stopped = false;
  private readonly log: Logger;
  private readonly debounceMs: number;

  constructor(
    private readonly paths: readonly string[],
    private readonly options: ManifestSourceOptions,
  ) {
    if ((options.watch ?? true) && paths.includes(STDIN_PATH)) {
      throw new InputError(
        '--from -: standard input can be read only once, so its changes cannot be followed; use run --once, or a file',
      );
    }
    this.log = options.log.child({ source: 'manifests' });
    this.debounceMs = options.debounceMs ?? 200;
  }

  /** Reads everything once (an unreadable or invalid manifest fails the start), then watches. */
  async start(onEvent: EventSink, onSynced: () => void): Promise<void> {
    const { events, notices } = await readManifests(this.paths);
    for (const n of notices) this.log.info(n);
    if (!(this.options.watch ?? true)) {
      // Read once (`run --once`): nothing to compare later, so the objects are not kept
      // here; the store ends up the same, a later duplicate replacing an earlier one.
      for (const e of events) onEvent(e);
      this.log.info({ objects: events.length, paths: this.paths }, 'manifests read');
      onSynced();
      return;
    }
    this.objects = keyObjects(events);
    this.onEvent = onEvent;
    for (const o of this.objects.values()) onEvent({ type: 'add', kind: o.kind, object: o.object });
    this.log.info({ objects: this.objects.size, paths: this.paths }, 'manifests read');
    onSynced();
    await this.updateWatchers();
    // Catches a change made between the first read and the watchers' start.
    this.fileChanged();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = null;
    for (const { watcher } of this.watchers.values()) watcher.close();
    this.watchers.clear();
    if (this.reading) await this.reading;
  }

  private fileChanged(): void {
    if (this.stopped) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.reread();
    }, this.debounceMs);
  }

  private async reread(): Promise<void> {
    if (this.reading) {
      this.rereadRequested = true;
      return;
    }
    this.reading = (async () => {
      do {
        this.rereadRequested = false;
        await this.rereadOnce();
      } while (this.rereadRequested && !this.stopped);
    })();
    try {
      await this.reading;
    } finally {
      this.reading = null;
    }
  }

  private async rereadOnce(): Promise<void> {
    let events: ObjectEvent[];
    try {
      events = (await readManifests(this.paths)).events;
    } catch (e) {
      this.log.error(
        { err: e },
        `re-reading manifests failed, keeping the previous objects: ${(e as Error).message}`,
      );
      return;
    }
    if (this.stopped) return;
    const next = keyObjects(events);
    const changes = diffObjects(this.objects, next);
    if (changes.some((c) => c.type === 'delete')) {
      const hash = contentHash(next);
      if (this.unconfirmed !== hash) {
        this.unconfirmed = hash;
        this.log.debug('objects disappeared; reading again to be sure the files are complete');
        this.fileChanged();
        return;
      }
    }
    this.unconfirmed = null;
    this.objects = next;
    if (changes.length > 0) {
      const count = (type: string) => changes.filter((c) => c.type === type).length;
      this.log.info(
        { added: count('add'), updated: count('update'), deleted: count('delete') },
        'manifests changed',
      );
    }
    for (const change of changes) this.onEvent?.(change);
    // New subdirectories may have appeared; a file written in one before its watcher
    // existed is caught by reading once more.
    if ((await this.updateWatchers()) > 0) this.fileChanged();
  }

  /** Watches what the paths now cover; returns how many directories are newly watched. */
  private async updateWatchers(): Promise<number> {
    const targets = await watchTargets(this.paths);
    if (this.stopped) return 0;
    let added = 0;
    for (const [dir, entry] of this.watchers) {
      if (!targets.has(dir)) {
        entry.watcher.close();
        this.watchers.delete(dir);
      }
    }
    for (const [dir, names] of targets) {
      const existing = this.watchers.get(dir);
      if (existing) {
        existing.names = names;
        continue;
      }
      try {
        const entry = { watcher: watch(dir), names };
        entry.watcher.on('change', (_type, filename) => {
          const name = typeof filename === 'string' ? filename : filename?.toString();
          if (entry.names === null || name === undefined || entry.names.has(name)) this.fileChanged();
        });
        entry.watcher.on('error', (e) => {
          this.log.warn({ err: e, dir }, 'watching a manifest directory failed');
          entry.watcher.close();
          if (this.watchers.get(dir) === entry) this.watchers.delete(dir);
          this.fileChanged();
        });
        this.watchers.set(dir, entry);
        added++;
      } catch (e) {
        this.log.warn({ err: e, dir }, 'cannot watch a manifest directory; its changes will be missed');
      }
    }
    return added;
  }
}
