/**
 * SIGTERM while the API server holds every watch open and says nothing, as a real one does
 * for minutes: `switchboard run` must stop through its normal path (the "stopped" line, exit
 * status 0), not through the 10 s force-exit, which means every watch request's connection
 * was destroyed and nothing else keeps the event loop alive. Both while the watches have
 * their response headers and while they are still waiting for them (a proxy that holds
 * headers back until the first event). How long the exit took is printed, not asserted.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { parseYamlDocuments } from '../../src/config/yaml.js';
import { ROOT, type Run, startCli, syncedLogs, waitFor } from '../support/cli.js';
import { FakeApiServer, type HoldMode, type KubeObject } from './fake-apiserver.js';

const EXAMPLE = join(ROOT, 'fixtures/example');
const RESOURCE = { Service: 'services', EndpointSlice: 'endpointslices', Node: 'nodes' } as const;

let running: Run | null = null;
let api: FakeApiServer | null = null;
let dir: string | null = null;
afterEach(async () => {
  if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
  running = null;
  await api?.close();
  api = null;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

const logLines = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string });

test.each<HoldMode>(['after-headers', 'before-headers'])(
  'run exits with 0 through its normal stop path while the API server holds the watches (%s)',
  async (mode) => {
    api = await FakeApiServer.start();
    const objects = parseYamlDocuments(
      await readFile(join(EXAMPLE, 'cluster.yaml'), 'utf8'),
      'cluster.yaml',
    ) as (KubeObject & { kind: keyof typeof RESOURCE })[];
    for (const o of objects) api.apply(RESOURCE[o.kind], o);
    api.holdWatches(mode);
    dir = await mkdtemp(join(tmpdir(), 'sb-shutdown-'));
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, api.kubeConfigYaml());

    running = startCli([
      'run',
      '--dry-run',
      '--kubeconfig',
      kubeconfig,
      '--config',
      join(EXAMPLE, 'config.yaml'),
      '--family',
      'ipv4',
      '--healthz-bind-address',
      '127.0.0.1:0',
      '--metrics-bind-address',
      '127.0.0.1:0',
    ]);
    const run = running;
    const fake = api;
    await waitFor(() => syncedLogs(run.stderr()).length === 1, 'the first sync');
    await waitFor(() => fake.heldWatches === 3, 'three held watches');

    const signalledAt = Date.now();
    run.child.kill('SIGTERM');
    const exit = await run.exit;
    const exitMs = Date.now() - signalledAt;
    console.info(`shutdown with watches held ${mode}: exited ${exitMs} ms after SIGTERM`);

    expect(exit).toEqual({ code: 0, signal: null });
    const messages = logLines(run.stderr()).map((l) => l.msg);
    expect(messages).toContain('stopped');
    expect(messages.some((m) => m.includes('exiting anyway'))).toBe(false);
    // The server saw the client close every held watch's connection.
    await waitFor(() => fake.heldWatches === 0, 'the held watches to be closed');
  },
  60_000,
);
