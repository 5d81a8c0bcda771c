/**
 * The manifest source: Services, EndpointSlices and Nodes read from YAML or JSON files or
 * standard input (`-`), e.g. the output of `kubectl get svc,endpointslices,nodes -A -o json`
 * (see manifest-parse.ts for how each format is parsed).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { InputError } from '../errors.js';
import { isRecord } from '../model/raw.js';
import type { ObjectEvent, ObjectKind } from '../model/store.js';
import { parseManifestText } from './manifest-parse.js';

/** The --from path that stands for standard input. */
export const STDIN_PATH = '-';
/** How standard input is named in messages. */
const STDIN_NAME = '<stdin>';

const KINDS: Record<string, { kind: ObjectKind; apiVersion: string }> = {
  Service: { kind: 'Service', apiVersion: 'v1' },
  EndpointSlice: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  Node: { kind: 'Node', apiVersion: 'v1' },
};

export interface ManifestObjects {
  events: ObjectEvent[];
  /** what was ignored and why, for the operator */
  notices: string[];
}

/** Classifies parsed documents: the proxy's three kinds become add events; `kind: List` is unpacked. */
export function objectsFromDocuments(docs: readonly unknown[], source: string): ManifestObjects {
  const events: ObjectEvent[] = [];
  const ignored = new Map<string, number>();
  const notices: string[] = [];
  const visit = (doc: unknown, where: string) => {
    if (!isRecord(doc)) {
      notices.push(`${where}: not an object, ignored`);
      return;
    }
    const kind = typeof doc.kind === 'string' ? doc.kind : '';
    if (kind === 'List' || kind.endsWith('List')) {
      const items = Array.isArray(doc.items) ? doc.items : [];
      items.forEach((item, i) => {
        visit(item, `${where} items[${i}]`);
      });
      return;
    }
    const known = KINDS[kind];
    if (!known) {
      const label = kind === '' ? 'objects without a kind' : `${doc.apiVersion ?? '?'} ${kind}`;
      ignored.set(label, (ignored.get(label) ?? 0) + 1);
      return;
    }
    if (doc.apiVersion !== known.apiVersion) {
      notices.push(
        `${where}: ${kind} with apiVersion ${JSON.stringify(doc.apiVersion)} ignored (expected ${known.apiVersion})`,
      );
      return;
    }
    events.push({ type: 'add', kind: known.kind, object: doc });
  };
  docs.forEach((doc, i) => {
    visit(doc, `${source} document ${i + 1}`);
  });
  for (const [label, count] of ignored)
    notices.push(`${source}: ignored ${count} ${label} (not a proxy input)`);
  return { events, notices };
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** The files a --from path stands for: the file itself, or a directory's manifests (recursively, sorted). */
export async function manifestFiles(path: string): Promise<string[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch {
    throw new InputError(`${path}: no such file or directory`);
  }
  if (!info.isDirectory()) return [path];
  const out: string[] = [];
  const entries = await readdir(path, { withFileTypes: true });
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const full = join(path, e.name);
    if (e.isDirectory()) out.push(...(await manifestFiles(full)));
    else if (MANIFEST_EXTENSIONS.has(extname(e.name))) out.push(full);
  }
  return out;
}

/** Everything on standard input, as text. */
async function readStandardInput(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export interface ReadManifestsOptions {
  /** what `-` reads (standard input by default; tests give their own) */
  readStdin?: () => Promise<string>;
}

/**
 * Reads every --from path (`-`: standard input, once); a syntax error is an InputError
 * naming the file (or `<stdin>`) and line.
 */
export async function readManifests(
  paths: readonly string[],
  options: ReadManifestsOptions = {},
): Promise<ManifestObjects> {
  if (paths.filter((p) => p === STDIN_PATH).length > 1)
    throw new InputError('--from -: standard input can be read only once');
  const events: ObjectEvent[] = [];
  const notices: string[] = [];
  const add = (text: string, source: string) => {
    const result = objectsFromDocuments(parseManifestText(text, source), source);
    for (const e of result.events) events.push(e);
    notices.push(...result.notices);
  };
  for (const path of paths) {
    if (path === STDIN_PATH) {
      add(await (options.readStdin ?? readStandardInput)(), STDIN_NAME);
      continue;
    }
    for (const file of await manifestFiles(path)) add(await readFile(file, 'utf8'), file);
  }
  return { events, notices };
}
