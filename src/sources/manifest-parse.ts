/**
 * Manifest text to plain values, fast enough for a whole cluster's dump
 * (`kubectl get svc,endpointslices,nodes -A -o json|yaml`, tens of MB).
 *
 * - JSON (the text starts with `{` or `[`) goes through JSON.parse: ~100 MB/s here, and
 *   its tree is the smallest to hold.
 * - YAML goes through js-yaml 4 with its YAML 1.2 core schema, the same value rules as
 *   the `yaml` library's core schema used for the configuration file (`yes`/`on` stay
 *   strings, timestamps stay strings, no merge keys). `yaml` builds a full document model
 *   with positions for every node, which costs ~8x the time and memory on a large dump;
 *   js-yaml builds plain values directly.
 * - A YAML text that defines anchors is handed to the `yaml` library instead: js-yaml
 *   shares aliased nodes by reference, and an alias bomb would then explode wherever
 *   objects are serialised (fingerprints, change detection); `yaml` limits alias
 *   expansion (config/yaml.ts). kubectl never prints anchors.
 *
 * Errors are InputErrors `<source>:<line>:<col>: <reason>`. A text that looks like JSON
 * but is not, is tried as YAML (a flow mapping, or documents separated by `---`); when
 * that fails too, the JSON error is reported, at its line and column.
 */
import { CORE_SCHEMA, loadAll, YAMLException } from 'js-yaml';
import { parseYamlDocuments } from '../config/yaml.js';
import { InputError } from '../errors.js';

/** The non-empty documents of a manifest text (JSON or YAML) as plain values. */
export function parseManifestText(text: string, source: string): unknown[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (!looksLikeJson(body)) return parseYaml(body, source);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (jsonError) {
    try {
      return parseYaml(body, source);
    } catch {
      throw new InputError(
        `${jsonErrorPosition(body, jsonError as Error, source)}: ${(jsonError as Error).message}`,
      );
    }
  }
  return value === null ? [] : [value];
}

function looksLikeJson(text: string): boolean {
  const first = /\S/.exec(text.slice(0, 4096));
  return first !== null && (first[0] === '{' || first[0] === '[');
}

function parseYaml(text: string, source: string): unknown[] {
  let anchors = false;
  let documents: unknown[];
  try {
    documents = loadAll(text, undefined, {
      schema: CORE_SCHEMA,
      filename: source,
      // Called for every node; a closing node with an anchor means aliases may follow.
      listener: (event, state) => {
        // js-yaml keeps the node's anchor on its parser state; the typings leave it out.
        if (event === 'close' && (state as { anchor?: string | null }).anchor != null) anchors = true;
      },
    });
  } catch (e) {
    if (!(e instanceof YAMLException)) throw e;
    const mark = e.mark as YAMLException['mark'] | undefined;
    const where = mark ? `${source}:${mark.line + 1}:${mark.column + 1}` : source;
    throw new InputError(`${where}: ${e.reason}`);
  }
  if (anchors) return parseYamlDocuments(text, source);
  return documents.filter((d) => d !== null && d !== undefined);
}

/**
 * `source:line:col` of a JSON.parse error: V8 reports "... at position N", or "Unexpected
 * end of JSON input" (the text's end); `source` when the message has neither.
 */
function jsonErrorPosition(text: string, error: Error, source: string): string {
  const m = /at position (\d+)/.exec(error.message);
  const atEnd = /end of JSON input/.test(error.message);
  if (!m && !atEnd) return source;
  const offset = m ? Number(m[1]) : text.trimEnd().length;
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `${source}:${line}:${offset - lineStart + 1}`;
}
