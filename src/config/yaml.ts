import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import { InputError } from '../errors.js';

/** A path into a parsed document: map keys and sequence indexes, e.g. `['iptables', 'masqueradeBit']`. */
export type YamlPath = readonly (string | number)[];

/** One non-empty YAML document, with a way back from a value's path to its line in the source. */
export interface ParsedYamlDocument {
  /** The document as plain JavaScript values (maps become objects, sequences arrays). */
  value: unknown;
  /**
   * 1-based line of the node at `path`; if there is none, of the node at `fallback` (say, the field that
   * made the missing one required), else of the nearest ancestor that exists; undefined if none.
   */
  lineOf(path: YamlPath, fallback?: YamlPath): number | undefined;
}

export interface ParsedYamlStream {
  documents: ParsedYamlDocument[];
  /** Parser warnings (e.g. unknown tags), each formatted as `<source>:<line>:<col>: <reason>`. */
  warnings: string[];
}

/**
 * Parses a multi-document YAML (or JSON) text. YAML 1.2 with the core schema, so `on`, `yes` and `no`
 * stay strings. Empty documents (nothing, only comments, or an explicit null) are skipped.
 * A syntax error throws an InputError `<source>:<line>:<col>: <reason>`.
 */
export function parseYamlStream(text: string, source: string): ParsedYamlStream {
  const lineCounter = new LineCounter();
  // prettyErrors would append "at line N, column M" and a code excerpt to each message; we want the bare
  // reason and our own `file:line:col` prefix, so positions come from the LineCounter instead.
  const docs = parseAllDocuments(text, {
    version: '1.2',
    schema: 'core',
    prettyErrors: false,
    lineCounter,
  });
  const position = (offset: number | undefined): string => {
    if (offset === undefined || offset < 0) return source;
    const { line, col } = lineCounter.linePos(offset);
    return `${source}:${line}:${col}`;
  };

  const list = Array.isArray(docs) ? docs : [docs];
  const documents: ParsedYamlDocument[] = [];
  const warnings: string[] = [];
  for (const doc of list) {
    const firstError = doc.errors[0];
    if (firstError) throw new InputError(`${position(firstError.pos[0])}: ${firstError.message}`);
    for (const warning of doc.warnings) warnings.push(`${position(warning.pos[0])}: ${warning.message}`);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      // toJS refuses alias bombs ("Excessive alias count ...") with a plain ReferenceError.
      throw new InputError(`${position(doc.range[0])}: ${(e as Error).message}`);
    }
    if (value === null || value === undefined) continue;
    documents.push({
      value,
      lineOf: (path, fallback) =>
        lineOfNode(doc, lineCounter, path) ??
        (fallback && lineOfNode(doc, lineCounter, fallback)) ??
        lineOfNearest(doc, lineCounter, path),
    });
  }
  return { documents, warnings };
}

/** The non-empty documents of a YAML/JSON text as plain values. See parseYamlStream. */
export function parseYamlDocuments(text: string, source: string): unknown[] {
  return parseYamlStream(text, source).documents.map((d) => d.value);
}

/** Exactly one non-empty document, with its line lookup; an InputError otherwise. */
export function parseSingleYamlDocument(text: string, source: string): ParsedYamlDocument {
  const { documents } = parseYamlStream(text, source);
  const [first, second] = documents;
  if (!first) throw new InputError(`${source}: no YAML document found (the file is empty)`);
  if (second) {
    const line = second.lineOf([]);
    const where = line === undefined ? source : `${source}:${line}`;
    throw new InputError(`${where}: expected exactly one YAML document, found ${documents.length}`);
  }
  return first;
}

/** The value of exactly one non-empty document; an InputError if there are none or several. */
export function parseYamlDocument(text: string, source: string): unknown {
  return parseSingleYamlDocument(text, source).value;
}

/** `source:line` when the line is known, else `source`. */
export function formatLocation(source: string, line: number | undefined): string {
  return line === undefined ? source : `${source}:${line}`;
}

/** `iptables.masqueradeBit`, `nodePortAddresses[1]`. */
export function formatPath(path: YamlPath): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? key : `.${key}`;
  }
  return out === '' ? '(document)' : out;
}

/**
 * The line of the node at `path`. A map entry is located by its key, because a block mapping or sequence
 * value only starts on the line after `key:`.
 */
function lineOfNode(doc: Document, lineCounter: LineCounter, path: YamlPath): number | undefined {
  let node: unknown = doc.contents;
  let start = isNode(node) ? node.range?.[0] : undefined;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
      if (!pair) return undefined;
      start = isNode(pair.key) ? pair.key.range?.[0] : undefined;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key];
      if (node === undefined) return undefined;
      start = isNode(node) ? node.range?.[0] : undefined;
    } else {
      return undefined;
    }
  }
  return start === undefined ? undefined : lineCounter.linePos(start).line;
}

/** An absent field is reported at its closest existing parent. */
function lineOfNearest(doc: Document, lineCounter: LineCounter, path: YamlPath): number | undefined {
  for (let length = path.length; length >= 0; length--) {
    const line = lineOfNode(doc, lineCounter, path.slice(0, length));
    if (line !== undefined) return line;
  }
  return undefined;
}
