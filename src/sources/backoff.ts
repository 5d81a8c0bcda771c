/**
 * Exponential backoff with jitter for reconnecting to the API server, in the manner of
 * client-go's reflector backoff: the delay doubles with each failure up to a cap, and a
 * failure that comes long after the previous one starts again from the initial delay (the
 * connection was healthy in between).
 */

export interface BackoffOptions {
  /** delay before the first retry (before jitter) */
  initialMs: number;
  /** the delay never exceeds this */
  maxMs: number;
  /** a failure this long after the previous one starts again at initialMs */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 10_000, resetAfterMs: 60_000 };

export class Backoff {
  private failures = 0;
  private lastFailureAtMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * Records a failure at `nowMs` and returns how long to wait before the next attempt.
   * "Equal jitter": half the step is fixed, half random, so retries of many nodes spread
   * out but none retries sooner than half the step.
   */
  nextDelay(nowMs: number): number {
    if (nowMs - this.lastFailureAtMs >= this.options.resetAfterMs) this.failures = 0;
    this.lastFailureAtMs = nowMs;
    const step = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.failures);
    this.failures++;
    return step / 2 + (this.random() * step) / 2;
  }

  /** failures since the last reset (for logs) */
  get attempts(): number {
    return this.failures;
  }
}
