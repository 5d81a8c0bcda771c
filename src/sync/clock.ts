/**
 * Time as the sync loop sees it. Production uses the system clock; tests drive a fake one,
 * so timing rules (min sync period, backoff, hourly full syncs) are checked without sleeping.
 */

/** An opaque timer handle; only the clock that made it can cancel it. */
export type TimerHandle = unknown;

export interface Clock {
  /** milliseconds since the epoch */
  now(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, Math.max(0, delayMs)),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
