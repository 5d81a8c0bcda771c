import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ObjectEvent } from '../../src/model/store.js';
import { diffObjects, keyObjects, ManifestSource } from '../../src/sources/manifest-source.js';
import { collectingLogger } from './helpers.js';

function serviceYaml(name: string, clusterIP: string, namespace = 'ns'): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  clusterIP: ${clusterIP}
  ports:
  - name: http
    port: 80
    protocol: TCP
`;
}

const nodeYaml = `apiVersion: v1
kind: Node
metadata:
  name: node-1
`;

/** Polls (real time: file watching is real) until the condition holds. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const summary = (events: readonly ObjectEvent[]) =>
  events.map((e) => {
    const meta = (e.object as { metadata: { name: string; namespace?: string } }).metadata;
    return `${e.type} ${e.kind} ${meta.namespace ?? ''}/${meta.name}`;
  });

describe('diffObjects', () => {
  it('emits deletes, adds and updates, and nothing for unchanged objects', () => {
    const obj = (name: string, ip: string, namespace = 'ns') => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace },
      spec: { clusterIP: ip },
    });
    const before = keyObjects([
      { type: 'add', kind: 'Service', object: obj('a', '10.96.0.1') },
      { type: 'add', kind: 'Service', object: obj('b', '10.96.0.2') },
      { type: 'add', kind: 'Service', object: obj('c', '10.96.0.3') },
    ]);
    const after = keyObjects([
      { type: 'add', kind: 'Service', object: obj('a', '10.96.0.1') },
      { type: 'add', kind: 'Service', object: obj('c', '10.96.0.9') },
      { type: 'add', kind: 'Service', object: obj('b', '10.96.0.2', 'other') },
    ]);
    expect(summary(diffObjects(before, after))).toEqual([
      'delete Service ns/b',
      'update Service ns/c',
      'add Service other/b',
    ]);
  });

  it('keys objects by kind, namespace and name; a later duplicate wins', () => {
    const keyed = keyObjects([
      { type: 'add', kind: 'Service', object: { metadata: { name: 'a' }, spec: { v: 1 } } },
      {
        type: 'add',
        kind: 'Service',
        object: { metadata: { name: 'a', namespace: 'default' }, spec: { v: 2 } },
      },
      { type: 'add', kind: 'Node', object: { metadata: { name: 'a' } } },
    ]);
    expect([...keyed.keys()]).toEqual(['Service/default/a', 'Node//a']);
    expect(keyed.get('Service/default/a')!.object).toMatchObject({ spec: { v: 2 } });
  });
});

describe('ManifestSource', () => {
  let dir: string;
  let source: ManifestSource | null;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-manifests-'));
    source = null;
  });
  afterEach(async () => {
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function startOn(paths: string[]) {
    const { log, records } = collectingLogger();
    const events: ObjectEvent[] = [];
    let synced = 0;
    source = new ManifestSource(paths, { log, debounceMs: 50 });
    await source.start(
      (e) => events.push(e),
      () => synced++,
    );
    return { events, records, synced: () => synced };
  }

  it('delivers the initial objects as adds, reports synced, then follows changes in a directory', async () => {
    await writeFile(join(dir, 'a.yaml'), `${serviceYaml('a', '10.96.0.1')}---\n${nodeYaml}`);
    await writeFile(join(dir, 'b.yaml'), serviceYaml('b', '10.96.0.2'));
    await writeFile(join(dir, 'notes.txt'), 'not a manifest');
    const { events, synced } = await startOn([dir]);
    expect(summary(events)).toEqual(['add Service ns/a', 'add Node /node-1', 'add Service ns/b']);
    expect(synced()).toBe(1);

    events.length = 0;
    await writeFile(join(dir, 'b.yaml'), serviceYaml('b', '10.96.0.22'));
    await waitFor(() => events.length > 0, 'the update');
    expect(summary(events)).toEqual(['update Service ns/b']);

    events.length = 0;
    await rm(join(dir, 'b.yaml'));
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'c.yaml'), serviceYaml('c', '10.96.0.3'));
    await waitFor(() => events.length >= 2, 'the delete and the add');
    expect(summary(events)).toEqual(['delete Service ns/b', 'add Service ns/c']);

    // A file in the new subdirectory is watched too.
    events.length = 0;
    await writeFile(join(dir, 'sub', 'c.yaml'), serviceYaml('c', '10.96.0.33'));
    await waitFor(() => events.length > 0, 'the update in the subdirectory');
    expect(summary(events)).toEqual(['update Service ns/c']);
    expect(synced()).toBe(1);
  });

  it('follows a single file that an editor replaces by renaming a new file over it', async () => {
    const file = join(dir, 'cluster.yaml');
    await writeFile(file, serviceYaml('a', '10.96.0.1'));
    await writeFile(join(dir, 'unrelated.yaml'), serviceYaml('x', '10.96.0.100'));
    const { events } = await startOn([file]);
    expect(summary(events)).toEqual(['add Service ns/a']);

    for (const ip of ['10.96.0.2', '10.96.0.3']) {
      events.length = 0;
      await writeFile(`${file}.tmp`, serviceYaml('a', ip));
      await rename(`${file}.tmp`, file);
      await waitFor(() => events.length > 0, `the update to ${ip}`);
      expect(summary(events)).toEqual(['update Service ns/a']);
      expect(JSON.stringify(events[0]!.object)).toContain(ip);
    }
  });

  it('keeps the previous objects when a re-read fails, and recovers when the file is fixed', async () => {
    const file = join(dir, 'cluster.yaml');
    await writeFile(file, `${serviceYaml('a', '10.96.0.1')}---\n${serviceYaml('b', '10.96.0.2')}`);
    const { events, records } = await startOn([file]);
    events.length = 0;

    await writeFile(
      file,
      `${serviceYaml('a', '10.96.0.1')}---\napiVersion: v1\nkind: Service\nmetadata: {name: [b\n`,
    );
    await waitFor(() => records.some((r) => r.level === 50), 'the error log');
    const error = records.find((r) => r.level === 50)!;
    expect(String(error.msg)).toContain('keeping the previous objects');
    expect(String(error.msg)).toContain('cluster.yaml:');
    expect(events).toEqual([]);

    await writeFile(file, serviceYaml('a', '10.96.0.1'));
    await waitFor(() => events.length > 0, 'the delete after the fix');
    expect(summary(events)).toEqual(['delete Service ns/b']);
  });

  it('confirms deletions with a second read, so a file caught empty mid-write deletes nothing', async () => {
    const file = join(dir, 'cluster.yaml');
    const content = `${serviceYaml('a', '10.96.0.1')}---\n${serviceYaml('b', '10.96.0.2')}`;
    await writeFile(file, content);
    const { log, records } = collectingLogger();
    const events: ObjectEvent[] = [];
    source = new ManifestSource([file], { log, debounceMs: 400 });
    await source.start(
      (e) => events.push(e),
      () => {},
    );
    await writeFile(file, '');
    await waitFor(
      () => records.some((r) => String(r.msg).includes('reading again')),
      'the confirmation read',
    );
    await writeFile(file, content.replace('10.96.0.2', '10.96.0.20'));
    await waitFor(() => events.length > 2, 'the update');
    expect(summary(events)).toEqual(['add Service ns/a', 'add Service ns/b', 'update Service ns/b']);

    events.length = 0;
    await writeFile(file, serviceYaml('a', '10.96.0.1'));
    await waitFor(() => events.length > 0, 'the confirmed delete');
    expect(summary(events)).toEqual(['delete Service ns/b']);
  });

  it('fails to start on an invalid manifest, naming the file', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'kind: Service\nmetadata: {name: [x\n');
    await expect(startOn([file])).rejects.toThrow(/bad\.yaml:\d+:\d+/);
  });

  it('does not watch when asked not to', async () => {
    const file = join(dir, 'cluster.yaml');
    await writeFile(file, serviceYaml('a', '10.96.0.1'));
    const { log } = collectingLogger();
    const events: ObjectEvent[] = [];
    source = new ManifestSource([file], { log, watch: false, debounceMs: 10 });
    await source.start(
      (e) => events.push(e),
      () => {},
    );
    await writeFile(file, serviceYaml('a', '10.96.0.2'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(summary(events)).toEqual(['add Service ns/a']);
  });
});
