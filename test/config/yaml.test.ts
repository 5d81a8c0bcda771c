import { describe, expect, it } from 'vitest';
import {
  formatPath,
  parseSingleYamlDocument,
  parseYamlDocument,
  parseYamlDocuments,
  parseYamlStream,
} from '../../src/config/yaml.js';
import { InputError } from '../../src/errors.js';

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('parseYamlDocuments', () => {
  it('returns the non-empty documents and skips empty, comment-only and null ones', () => {
    const text = [
      '# header comment',
      '---',
      'a: 1',
      '---',
      '---',
      '# nothing here',
      '---',
      '~',
      '---',
      'b: [x, y]',
    ].join('\n');
    expect(parseYamlDocuments(text, 'm.yaml')).toEqual([{ a: 1 }, { b: ['x', 'y'] }]);
  });

  it('returns nothing for an empty text', () => {
    expect(parseYamlDocuments('', 'm.yaml')).toEqual([]);
    expect(parseYamlDocuments('\n# only a comment\n', 'm.yaml')).toEqual([]);
  });

  it('reads YAML 1.2 core: on/yes/no stay strings, true/false are booleans', () => {
    const [doc] = parseYamlDocuments('a: on\nb: yes\nc: no\nd: true\ne: False\nf: 0x1F\ng: 010\n', 'm.yaml');
    expect(doc).toEqual({ a: 'on', b: 'yes', c: 'no', d: true, e: false, f: 31, g: 10 });
  });

  it('reads JSON, tabs included', () => {
    const json = '{\n\t"kind": "List",\n\t"items": [{"a": 1}, {"b": null}]\n}\n';
    expect(parseYamlDocuments(json, 'm.json')).toEqual([{ kind: 'List', items: [{ a: 1 }, { b: null }] }]);
  });

  it('names the file, line and column of a syntax error', () => {
    const text = 'a: 1\nb:\n  c: [1, 2\nd: 3\n';
    const err = thrown(() => parseYamlDocuments(text, 'cluster.yaml'));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(/^cluster\.yaml:\d+:\d+: \S/);
    expect(err.message).not.toContain('at line');
  });

  it('reports the line of an error in a later document', () => {
    const text = 'a: 1\n---\nb: 2\n---\nc: d: e\n';
    const err = thrown(() => parseYamlDocuments(text, 'x.yaml'));
    expect(err.message).toBe('x.yaml:5:4: Nested mappings are not allowed in compact mappings');
  });

  it('refuses duplicate keys with their line', () => {
    const err = thrown(() => parseYamlDocuments('a: 1\nb: 2\na: 3\n', 'dup.yaml'));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(/^dup\.yaml:3:1: Map keys must be unique/);
  });
});

describe('parseYamlStream line lookup', () => {
  const text = [
    'apiVersion: v1', // 1
    'kind: Thing', // 2
    'spec:', // 3
    '  ports:', // 4
    '  - name: http', // 5
    '    port: 80', // 6
    '  - name: https', // 7
    '    port: 443', // 8
    '---', // 9
    'second: doc', // 10
  ].join('\n');

  it('finds the line of a nested value, including sequence items', () => {
    const { documents } = parseYamlStream(text, 'f.yaml');
    const first = documents[0]!;
    expect(first.lineOf(['kind'])).toBe(2);
    expect(first.lineOf(['spec', 'ports', 1, 'port'])).toBe(8);
    expect(first.lineOf(['spec', 'ports', 0])).toBe(5);
    expect(documents[1]!.lineOf(['second'])).toBe(10);
  });

  it('falls back to the nearest existing parent for a missing field', () => {
    const first = parseYamlStream(text, 'f.yaml').documents[0]!;
    expect(first.lineOf(['spec', 'ports', 1, 'protocol'])).toBe(7);
    expect(first.lineOf(['nothing', 'here'])).toBe(1);
  });
});

describe('parseYamlDocument', () => {
  it('returns the single document', () => {
    expect(parseYamlDocument('---\na: 1\n', 'one.yaml')).toEqual({ a: 1 });
  });

  it('refuses an empty file', () => {
    expect(() => parseYamlDocument('# nothing\n', 'empty.yaml')).toThrow(InputError);
    expect(() => parseYamlDocument('', 'empty.yaml')).toThrow(/^empty\.yaml: no YAML document found/);
  });

  it('refuses several documents, pointing at the second', () => {
    expect(() => parseSingleYamlDocument('a: 1\n---\nb: 2\n', 'two.yaml')).toThrow(
      /^two\.yaml:3: expected exactly one YAML document, found 2$/,
    );
  });
});

describe('formatPath', () => {
  it('joins keys with dots and indexes with brackets', () => {
    expect(formatPath(['iptables', 'masqueradeBit'])).toBe('iptables.masqueradeBit');
    expect(formatPath(['nodePortAddresses', 1])).toBe('nodePortAddresses[1]');
    expect(formatPath(['interfaces', 'eth0', 0])).toBe('interfaces.eth0[0]');
    expect(formatPath([])).toBe('(document)');
  });
});

describe('lineOf for block values', () => {
  it('points at the key line of a map entry whose value is a block mapping or sequence', () => {
    const doc = parseYamlStream('a: 1\nspec:\n  ports:\n  - port: 80\n', 'f.yaml').documents[0]!;
    expect(doc.lineOf(['spec'])).toBe(2);
    expect(doc.lineOf(['spec', 'ports'])).toBe(3);
    expect(doc.lineOf(['spec', 'ports', 0])).toBe(4);
  });

  it('uses the fallback path when the field is absent', () => {
    const doc = parseYamlStream('mode: X\nsection:\n  other: 1\n', 'f.yaml').documents[0]!;
    expect(doc.lineOf(['section', 'missing'], ['mode'])).toBe(1);
    expect(doc.lineOf(['section', 'missing'])).toBe(2);
    expect(doc.lineOf(['section', 'other'], ['mode'])).toBe(3);
  });
});
