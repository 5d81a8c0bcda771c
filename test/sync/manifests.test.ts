/**
 * Reading manifests in the forms kubectl prints them: `-o json` (one object or a List),
 * `-o yaml` (a List, or documents separated by `---`), from files or standard input; and
 * the errors, which name the file (or `<stdin>`), line and column.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseYamlDocuments } from '../../src/config/yaml.js';
import { InputError } from '../../src/errors.js';
import { parseManifestText } from '../../src/sources/manifest-parse.js';
import { ManifestSource } from '../../src/sources/manifest-source.js';
import { readManifests } from '../../src/sources/manifests.js';
import { collectingLogger } from './helpers.js';

const EXAMPLE = new URL('../../fixtures/example/cluster.yaml', import.meta.url).pathname;

let dir = '';
let objects: unknown[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchboard-manifests-'));
  objects = parseYamlDocuments(await readFile(EXAMPLE, 'utf8'), EXAMPLE);
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const kubectlList = (items: unknown[]) => ({
  apiVersion: 'v1',
  items,
  kind: 'List',
  metadata: { resourceVersion: '' },
});

/** The events as `add Kind ns/name`, for comparing two reads. */
const summary = (events: { type: string; kind: string; object: unknown }[]) =>
  events.map((e) => {
    const meta = (e.object as { metadata: { name: string; namespace?: string } }).metadata;
    return `${e.type} ${e.kind} ${meta.namespace ?? ''}/${meta.name}`;
  });

describe('parseManifestText', () => {
  it('gives the same values for kubectl JSON, kubectl YAML and the documents they came from', () => {
    const list = kubectlList(objects);
    const fromJson = parseManifestText(JSON.stringify(list, null, 4), 'c.json');
    const fromYaml = parseManifestText(dump(list, { noArrayIndent: true }), 'c.yaml');
    expect(fromJson).toEqual([list]);
    expect(fromYaml).toEqual([list]);
    const documents = objects.map((o) => `---\n${dump(o)}`).join('');
    expect(parseManifestText(documents, 'c.yaml')).toEqual(objects);
  });

  it("keeps YAML 1.2 core values, as the configuration's parser does", () => {
    const text = 'a: yes\nb: on\nc: 2024-01-01T00:00:00Z\nd: 0o17\ne: 012\nf: ~\ng: "80"\n';
    expect(parseManifestText(text, 'f.yaml')).toEqual(parseYamlDocuments(text, 'f.yaml'));
    expect(parseManifestText(text, 'f.yaml')).toEqual([
      { a: 'yes', b: 'on', c: '2024-01-01T00:00:00Z', d: 15, e: 12, f: null, g: '80' },
    ]);
  });

  it('skips empty documents; a byte order mark is ignored', () => {
    expect(parseManifestText('# nothing\n---\n---\nkind: Node\n', 'f.yaml')).toEqual([{ kind: 'Node' }]);
    expect(parseManifestText('', 'f.yaml')).toEqual([]);
    expect(parseManifestText('\ufeff{"kind": "Node"}', 'f.json')).toEqual([{ kind: 'Node' }]);
  });

  it('reads YAML flow mappings that look like JSON, and resolves anchors with the careful parser', () => {
    expect(parseManifestText('{kind: Node}\n---\n{kind: Service}\n', 'f.yaml')).toEqual([
      { kind: 'Node' },
      { kind: 'Service' },
    ]);
    const aliased = parseManifestText('a: &labels {app: web}\nb: *labels\n', 'f.yaml');
    expect(aliased).toEqual([{ a: { app: 'web' }, b: { app: 'web' } }]);
  });

  it('refuses an alias bomb', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    expect(() => parseManifestText(lines.join('\n'), 'bomb.yaml')).toThrow(
      /^bomb\.yaml:1:1: Excessive alias count/,
    );
  });

  it.each([
    [
      'a YAML syntax error',
      'kind: Service\nmetadata: {name: [x\n',
      'f.yaml:3:1: unexpected end of the stream',
    ],
    ['a duplicate key', 'kind: Service\nmetadata: {}\nmetadata: {}\n', 'f.yaml:3:1: duplicated mapping key'],
    ['broken JSON', '{\n  "kind": "List",\n  "items": [\n    {"a" 1}\n  ]\n}\n', 'f.yaml:4:10: '],
    ['truncated JSON', '{\n  "kind": "List",\n  "items": [\n', 'f.yaml:3:13: Unexpected end of JSON input'],
  ])('%s is an InputError naming file, line and column', (_what, text, message) => {
    expect(() => parseManifestText(text, 'f.yaml')).toThrow(InputError);
    expect(() => parseManifestText(text, 'f.yaml')).toThrow(message);
  });
});

describe('readManifests', () => {
  it('unpacks kubectl Lists from files and standard input into the same events as the documents', async () => {
    const list = kubectlList(objects);
    await writeFile(join(dir, 'list.json'), JSON.stringify(list, null, 4));
    await writeFile(join(dir, 'list.yaml'), dump(list, { noArrayIndent: true }));
    const documents = summary((await readManifests([EXAMPLE])).events);
    expect(documents.length).toBeGreaterThan(5);
    expect(summary((await readManifests([join(dir, 'list.json')])).events)).toEqual(documents);
    expect(summary((await readManifests([join(dir, 'list.yaml')])).events)).toEqual(documents);
    const stdin = await readManifests(['-'], { readStdin: async () => JSON.stringify(list) });
    expect(summary(stdin.events)).toEqual(documents);
  });

  it('names <stdin> and the document in notices and errors', async () => {
    const text = JSON.stringify(
      kubectlList([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }]),
    );
    const { notices } = await readManifests(['-'], { readStdin: async () => text });
    expect(notices).toEqual(['<stdin>: ignored 1 v1 ConfigMap (not a proxy input)']);
    const bad = { readStdin: async () => 'kind: Service\nkind: Node\n' };
    await expect(readManifests(['-'], bad)).rejects.toThrow('<stdin>:2:1: duplicated mapping key');
    const wrongVersion = { readStdin: async () => '{"kind": "List", "items": [{"kind": "Service"}]}' };
    expect((await readManifests(['-'], wrongVersion)).notices).toEqual([
      '<stdin> document 1 items[0]: Service with apiVersion undefined ignored (expected v1)',
    ]);
  });

  it('reads standard input only once', async () => {
    await expect(readManifests(['-', '-'], { readStdin: async () => '' })).rejects.toThrow(
      /standard input can be read only once/,
    );
  });
});

describe('ManifestSource and standard input', () => {
  it('cannot follow changes on standard input; once is fine', () => {
    const { log } = collectingLogger();
    expect(() => new ManifestSource(['-'], { log })).toThrow(InputError);
    expect(() => new ManifestSource(['-'], { log })).toThrow(/use run --once, or a file/);
    expect(() => new ManifestSource(['-'], { log, watch: false })).not.toThrow();
  });
});
