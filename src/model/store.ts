/**
 * The objects the proxy knows about, as sources deliver them, parsed once on arrival.
 *
 * It also keeps the change set: each Service (namespace/name) has a version that moves
 * whenever the Service or one of its EndpointSlices really changes (a re-delivered,
 * identical object is not a change). The sync loop compares versions with those of its
 * last successful sync to know which services a partial sync must rewrite.
 */

import { hash } from 'node:crypto';
import type { ObjectProblem } from '../errors.js';
import { type ParsedSlice, parseEndpointSlice } from './endpoint-slice.js';
import { isRecord, refOf } from './raw.js';
import { type ParsedService, parseService } from './service.js';

export type ObjectKind = 'Service' | 'EndpointSlice' | 'Node';
export type EventType = 'add' | 'update' | 'delete';

export interface ObjectEvent {
  type: EventType;
  kind: ObjectKind;
  object: unknown;
}

/** Label that hands a Service (and its slices) to another proxy (kube-proxy skips them too). */
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';

interface StoredService {
  fingerprint: string;
  parsed: ParsedService | null;
}

interface StoredSlice {
  fingerprint: string;
  serviceKey: string | null;
  parsed: ParsedSlice | null;
}

export interface ApplyResult {
  /** services (namespace/name) whose rules may differ now */
  changedServices: string[];
  nodeChanged: boolean;
}

function metaOf(o: unknown): { namespace: string; name: string; resourceVersion?: string } | null {
  if (!isRecord(o) || !isRecord(o.metadata)) return null;
  const { name, namespace, resourceVersion } = o.metadata;
  if (typeof name !== 'string') return null;
  return {
    name,
    namespace: typeof namespace === 'string' ? namespace : 'default',
    ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}),
  };
}

/**
 * Identity of an object's content: the API's resourceVersion, else (manifests) a digest of
 * the object. A digest, not the JSON text: keeping every object's text doubled the store.
 */
function fingerprintOf(o: unknown): string {
  const rv = metaOf(o)?.resourceVersion;
  return rv !== undefined ? `rv:${rv}` : `sha1:${hash('sha1', JSON.stringify(o), 'base64')}`;
}

function hasProxyNameLabel(o: unknown): boolean {
  if (!isRecord(o) || !isRecord(o.metadata) || !isRecord(o.metadata.labels)) return false;
  return SERVICE_PROXY_NAME_LABEL in o.metadata.labels;
}

export class ObjectStore {
  private readonly services = new Map<string, StoredService>();
  private readonly slices = new Map<string, StoredSlice>();
  /** a list, not a Map per service: 10,000 one-entry Maps cost 5 MiB */
  private readonly slicesByService = new Map<string, ParsedSlice[]>();
  private readonly versions = new Map<string, number>();
  private readonly problems = new Map<string, ObjectProblem[]>();
  private nodeObject: unknown = null;
  private nodeFingerprint = '';
  private versionCounter = 0;
  private sortedKeys: string[] | null = null;

  constructor(private readonly nodeName: string) {}

  /** Applies one event; returns what it changed. Malformed objects are recorded as problems. */
  apply(event: ObjectEvent): ApplyResult {
    switch (event.kind) {
      case 'Service':
        return { changedServices: this.applyService(event), nodeChanged: false };
      case 'EndpointSlice':
        return { changedServices: this.applySlice(event), nodeChanged: false };
      case 'Node':
        return { changedServices: [], nodeChanged: this.applyNode(event) };
    }
  }

  private bump(serviceKey: string): void {
    this.versions.set(serviceKey, ++this.versionCounter);
  }

  private setProblems(key: string, list: ObjectProblem[]): void {
    if (list.length > 0) this.problems.set(key, list);
    else this.problems.delete(key);
  }

  private applyService(event: ObjectEvent): string[] {
    const meta = metaOf(event.object);
    if (!meta) {
      this.problems.set(`Service/?${this.problems.size}`, [
        { ref: refOf('Service', event.object), field: 'metadata.name', message: 'is missing' },
      ]);
      return [];
    }
    const key = `${meta.namespace}/${meta.name}`;
    const problemKey = `Service/${key}`;
    if (event.type === 'delete' || hasProxyNameLabel(event.object)) {
      this.setProblems(problemKey, []);
      if (!this.services.delete(key)) return [];
      this.sortedKeys = null;
      this.bump(key);
      return [key];
    }
    const fingerprint = fingerprintOf(event.object);
    const existing = this.services.get(key);
    if (existing && existing.fingerprint === fingerprint) return [];
    const result = parseService(event.object);
    this.setProblems(problemKey, result.ok ? [] : [result.problem]);
    if (!existing) this.sortedKeys = null;
    this.services.set(key, { fingerprint, parsed: result.ok ? result.service : null });
    this.bump(key);
    return [key];
  }

  private applySlice(event: ObjectEvent): string[] {
    const meta = metaOf(event.object);
    if (!meta) {
      this.problems.set(`EndpointSlice/?${this.problems.size}`, [
        { ref: refOf('EndpointSlice', event.object), field: 'metadata.name', message: 'is missing' },
      ]);
      return [];
    }
    const key = `${meta.namespace}/${meta.name}`;
    const problemKey = `EndpointSlice/${key}`;
    const existing = this.slices.get(key);
    const changed = new Set<string>();
    const detach = () => {
      if (!existing?.serviceKey) return;
      const list = this.slicesByService.get(existing.serviceKey);
      const at = list && existing.parsed ? list.indexOf(existing.parsed) : -1;
      if (at !== -1) list!.splice(at, 1);
      if (list?.length === 0) this.slicesByService.delete(existing.serviceKey);
      changed.add(existing.serviceKey);
    };
    if (event.type === 'delete' || hasProxyNameLabel(event.object)) {
      this.setProblems(problemKey, []);
      detach();
      this.slices.delete(key);
    } else {
      const fingerprint = fingerprintOf(event.object);
      if (existing && existing.fingerprint === fingerprint) return [];
      const { slice, problems } = parseEndpointSlice(event.object, this.nodeName);
      this.setProblems(problemKey, problems);
      detach();
      const serviceKey = slice ? `${slice.namespace}/${slice.serviceName}` : null;
      this.slices.set(key, { fingerprint, serviceKey, parsed: slice });
      if (slice && serviceKey) {
        // A literal, not push onto []: a pushed-to array keeps 16 spare slots.
        const list = this.slicesByService.get(serviceKey);
        if (list) list.push(slice);
        else this.slicesByService.set(serviceKey, [slice]);
        changed.add(serviceKey);
      }
    }
    for (const svc of changed) this.bump(svc);
    return [...changed];
  }

  private applyNode(event: ObjectEvent): boolean {
    const meta = metaOf(event.object);
    if (!meta || meta.name !== this.nodeName) return false;
    if (event.type === 'delete') {
      const had = this.nodeObject !== null;
      this.nodeObject = null;
      this.nodeFingerprint = '';
      return had;
    }
    const fingerprint = fingerprintOf(event.object);
    if (fingerprint === this.nodeFingerprint) return false;
    this.nodeObject = event.object;
    this.nodeFingerprint = fingerprint;
    return true;
  }

  /** The Node object of this proxy's node, if known. */
  get node(): unknown {
    return this.nodeObject;
  }

  get name(): string {
    return this.nodeName;
  }

  /** Service keys in the order rules are emitted: byte-wise by `namespace/name`. */
  serviceKeys(): readonly string[] {
    if (!this.sortedKeys) this.sortedKeys = [...this.services.keys()].sort((a, b) => (a < b ? -1 : 1));
    return this.sortedKeys;
  }

  service(key: string): ParsedService | null {
    return this.services.get(key)?.parsed ?? null;
  }

  slicesOf(serviceKey: string): readonly ParsedSlice[] {
    return this.slicesByService.get(serviceKey) ?? [];
  }

  version(serviceKey: string): number {
    return this.versions.get(serviceKey) ?? 0;
  }

  /** All service versions, for remembering what a successful sync saw. */
  versionsSnapshot(): Map<string, number> {
    return new Map(this.versions);
  }

  /** Services whose version differs from the one recorded at the last successful sync. */
  changedSince(previous: ReadonlyMap<string, number>): Set<string> {
    const out = new Set<string>();
    for (const [key, v] of this.versions) if (previous.get(key) !== v) out.add(key);
    return out;
  }

  currentProblems(): ObjectProblem[] {
    return [...this.problems.values()].flat();
  }
}
