/**
 * An error caused by input (a manifest, the configuration, host facts) rather than by
 * Switchboard itself. Its message is meant for the operator: it names the file or the
 * object and the field.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/** Where a problem was found: a Kubernetes object, or a place in a file. */
export interface ObjectRef {
  kind: string;
  namespace?: string;
  name?: string;
}

export function describeRef(ref: ObjectRef): string {
  const ns = ref.namespace ? `${ref.namespace}/` : '';
  return `${ref.kind} ${ns}${ref.name ?? '<unnamed>'}`;
}

/** A problem with one object: it is skipped and reported, everything else goes on. */
export interface ObjectProblem {
  ref: ObjectRef;
  /** The field path, e.g. `spec.ports[1].port`. */
  field: string;
  message: string;
}

export function formatProblem(p: ObjectProblem): string {
  return `${describeRef(p.ref)}: ${p.field}: ${p.message}`;
}
