/**
 * Assertions over connection results: where connections landed, and whether they were
 * spread. Spreading is random (`-m statistic --mode random`), so it is checked with wide
 * statistical bounds, never exact counts: each of n endpoints must get between 45% and
 * 155% of its fair share 1/n (300 connections over 3 endpoints: 15% to 52% each). With
 * at least 100 connections per test the chance of a false failure is below one in a
 * million per endpoint.
 */
import { expect } from 'vitest';
import { type ConnectResult, tally } from '../kernel/netns.js';

/** The names that answered, as a sorted list of distinct names (failures as `!ERROR`). */
export function landedOn(results: readonly ConnectResult[]): string[] {
  return Object.keys(tally(results)).sort();
}

/** Every connection succeeded, each endpoint in `names` got a fair share, and nothing else answered. */
export function expectSpread(results: readonly ConnectResult[], names: readonly string[]): void {
  const counts = tally(results);
  expect(landedOn(results), `connections landed on ${JSON.stringify(counts)}`).toEqual([...names].sort());
  const fair = results.length / names.length;
  for (const name of names) {
    const got = counts[name] ?? 0;
    expect(got, `${name} got ${got} of ${results.length}: ${JSON.stringify(counts)}`).toBeGreaterThanOrEqual(
      0.45 * fair,
    );
    expect(got, `${name} got ${got} of ${results.length}: ${JSON.stringify(counts)}`).toBeLessThanOrEqual(
      1.55 * fair,
    );
  }
}

/** Every attempt failed with `error` (ECONNREFUSED, TIMEOUT, ...). */
export function expectAllFailed(results: readonly ConnectResult[], error: string): void {
  expect(tally(results)).toEqual({ [`!${error}`]: results.length });
}

/** The source address each answering endpoint saw. */
export function peersSeen(results: readonly ConnectResult[]): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const r of results) {
    if (!r.ok) continue;
    const seen = out[r.name] ?? new Set<string>();
    seen.add(r.peer);
    out[r.name] = seen;
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
}
