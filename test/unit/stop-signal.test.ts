/** `run`'s stop signal: the first SIGTERM/SIGINT resolves, the listeners stay, a second exits at once. */
import { afterEach, describe, expect, it } from 'vitest';
import { listenForStop, type StopSignal } from '../../src/stop-signal.js';

describe('listenForStop', () => {
  let stop: StopSignal | null = null;
  afterEach(() => stop?.dispose());

  it('resolves on the first signal and keeps listening, so nothing else decides the process dies', async () => {
    const exits: number[] = [];
    const before = process.listenerCount('SIGTERM');
    stop = listenForStop((code) => exits.push(code));
    process.emit('SIGTERM', 'SIGTERM');
    expect(await stop.received).toBe('SIGTERM');
    // still listening: a library counting listeners (signal-exit) sees someone handling it
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    expect(exits).toEqual([]);
    process.emit('SIGINT', 'SIGINT');
    expect(exits).toEqual([130]);
    stop.dispose();
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});
