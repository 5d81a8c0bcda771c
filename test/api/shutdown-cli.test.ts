/**
 * SIGTERM while the API server holds every watch open and says nothing, as a real one does
 * for minutes: `switchboard run` must stop through its normal path (the "stopped" line, exit
 * status 0), not through the 10 s force-exit, which means every watch request's connection
 * was destroyed and nothing else keeps the event loop alive. Both while the watches have
 * their response headers and while they are still waiting for them (a proxy that holds
 * headers back until the first event). How long the exit took is printed, not asserted.
 */
import { expect, test } from 'vitest';
import { logRecords, terminate, waitFor } from '../support/cli.js';
import { exampleApiPerTest, startDryRunAgainst } from './example-run.js';
import type { HoldMode } from './fake-apiserver.js';

const serveExample = exampleApiPerTest('sb-shutdown-');

test.each<HoldMode>(['after-headers', 'before-headers'])(
  'run exits with 0 through its normal stop path while the API server holds the watches (%s)',
  async (mode) => {
    const { api: fake, dir } = await serveExample();
    fake.holdWatches(mode);
    const run = await startDryRunAgainst(fake, dir);
    await waitFor(() => fake.heldWatches === 3, 'three held watches');

    const signalledAt = Date.now();
    const exit = await terminate(run);
    const exitMs = Date.now() - signalledAt;
    console.info(`shutdown with watches held ${mode}: exited ${exitMs} ms after SIGTERM`);

    expect(exit).toEqual({ code: 0, signal: null });
    const messages = logRecords(run.stderr()).map((l) => l.msg);
    expect(messages).toContain('stopped');
    expect(messages.some((m) => m.includes('exiting anyway'))).toBe(false);
    // The server saw the client close every held watch's connection.
    await waitFor(() => fake.heldWatches === 0, 'the held watches to be closed');
  },
  60_000,
);
