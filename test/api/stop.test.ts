/**
 * stop() ends everything: watches, lists, retry and inactivity timers. Checked the blunt
 * way: a process that used the source must exit on its own after stopping it.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test } from 'vitest';
import { createHarness, type Harness, NODE_NAME, node, service, sleep, waitFor } from './harness.js';

const SCRIPT = fileURLToPath(new URL('./stop-exits.script.ts', import.meta.url));

function runScript(scenario: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', SCRIPT, scenario],
      { timeout: 20_000, cwd: fileURLToPath(new URL('../..', import.meta.url)) },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
      },
    );
  });
}

test.each(['synced', 'backoff', 'silent'])(
  'a process exits by itself after stop() (state: %s)',
  async (scenario) => {
    const result = await runScript(scenario);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(`stopped ${scenario}\n`);
    expect(result.code).toBe(0);
  },
  30_000,
);

let h: Harness | null = null;
afterEach(async () => {
  await h?.stop();
  h = null;
});

test('stop() closes the watches and nothing is delivered afterwards', async () => {
  h = await createHarness({
    seed: (f) => {
      f.apply('services', service('web', '10.96.0.10'));
      f.apply('nodes', node(NODE_NAME));
    },
  });
  const harness = h;
  await harness.start();
  await waitFor(
    () => harness.syncedCount() === 1 && harness.fake.openWatches === 3,
    'synced with open watches',
  );
  await harness.source.stop();
  await waitFor(() => harness.fake.openWatches === 0, 'the server to see the watches closed');
  const seen = harness.events.length;
  const requests = harness.fake.requests.length;
  harness.fake.apply('services', service('late', '10.96.0.11'));
  harness.fake.dropWatches();
  await sleep(150);
  expect(harness.events.length).toBe(seen);
  expect(harness.fake.requests.length).toBe(requests);
  expect(harness.logLines.some((l) => l.msg === 'stopped watching the API server')).toBe(true);
});

test('start() after stop() relists and delivers only what changed meanwhile, then syncs again', async () => {
  h = await createHarness({
    seed: (f) => {
      f.apply('services', service('a', '10.96.0.1'));
      f.apply('services', service('b', '10.96.0.2'));
      f.apply('services', service('c', '10.96.0.3'));
      f.apply('nodes', node(NODE_NAME));
    },
  });
  const harness = h;
  await harness.start();
  await waitFor(() => harness.syncedCount() === 1, 'synced');
  await harness.source.stop();
  const from = harness.events.length;
  harness.fake.remove('services', 'b');
  harness.fake.apply('services', service('c', '10.96.0.33'));
  harness.fake.apply('services', service('d', '10.96.0.4'));
  await harness.start();
  await waitFor(() => harness.syncedCount() === 2, 'synced again');
  expect(harness.described(from).sort()).toEqual([
    'add Service default/d',
    'delete Service default/b',
    'update Service default/c',
  ]);
  expect(harness.store.serviceKeys()).toEqual(['default/a', 'default/c', 'default/d']);
  await expect(harness.start()).rejects.toThrow(/already started/);
});
