/**
 * Reading untyped Kubernetes objects (from YAML files or the API) without trusting
 * their shape. A field that has the wrong type is reported through FieldError with its
 * path, so the caller can skip the object and say exactly what was wrong.
 */
import type { ObjectRef } from '../errors.js';

export type RawObject = Record<string, unknown>;

export class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export function isRecord(v: unknown): v is RawObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An optional object field: undefined/null give {}. */
export function obj(parent: RawObject, key: string, path: string): RawObject {
  const v = parent[key];
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw new FieldError(path, 'must be an object');
  return v;
}

/** An optional array field: undefined/null give []. */
export function arr(parent: RawObject, key: string, path: string): unknown[] {
  const v = parent[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new FieldError(path, 'must be a list');
  return v;
}

/** An optional string field: undefined/null give undefined. */
export function optStr(parent: RawObject, key: string, path: string): string | undefined {
  const v = parent[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new FieldError(path, `must be a string, not ${JSON.stringify(v)}`);
  return v;
}

/** An optional number field: undefined/null give undefined. */
export function optNum(parent: RawObject, key: string, path: string): number | undefined {
  const v = parent[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new FieldError(path, `must be an integer, not ${JSON.stringify(v)}`);
  }
  return v;
}

/** An optional boolean field: undefined/null give undefined. */
export function optBool(parent: RawObject, key: string, path: string): boolean | undefined {
  const v = parent[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new FieldError(path, `must be a boolean, not ${JSON.stringify(v)}`);
  return v;
}

export function optStringMap(parent: RawObject, key: string, path: string): Record<string, string> {
  const m = obj(parent, key, path);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'string') throw new FieldError(`${path}.${k}`, 'must be a string');
    out[k] = v;
  }
  return out;
}

/** kind/namespace/name of an object, for messages; tolerant of any shape. */
export function refOf(kind: string, o: unknown): ObjectRef {
  const meta = isRecord(o) && isRecord(o.metadata) ? o.metadata : {};
  const ref: ObjectRef = { kind };
  if (typeof meta.namespace === 'string') ref.namespace = meta.namespace;
  if (typeof meta.name === 'string') ref.name = meta.name;
  return ref;
}
