import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatGoDuration,
  formatGoDurationNanos,
  parseGoDuration,
  parseGoDurationNanos,
} from '../../src/config/duration.js';

describe('parseGoDuration', () => {
  it.each([
    ['30s', 30_000],
    ['1m0s', 60_000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1h0m0s', 3_600_000],
    ['2h22m', 8_520_000],
    ['500ms', 500],
    ['1.5s', 1_500],
    ['.5s', 500],
    ['5.s', 5_000],
    ['1.5h', 5_400_000],
    ['0s', 0],
    ['0', 0],
    ['-0', 0],
    ['-1s', -1_000],
    ['+2s', 2_000],
    ['1h2m3.5s', 3_723_500],
    ['1ms500us', 1.5],
    ['1us', 0.001],
    ['1µs', 0.001],
    ['1μs', 0.001],
    ['1ns', 0.000001],
    ['24h0m0s', 86_400_000],
    ['15m0s', 900_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBe(ms);
  });

  it.each([
    ['', 'empty'],
    ['30', 'missing unit'],
    ['1.5', 'missing unit'],
    ['s', 'missing number'],
    ['.s', 'missing number'],
    ['1d', 'expected a number'],
    ['1 s', 'expected a number'],
    [' 1s', 'expected a number'],
    ['1s ', 'expected a number'],
    ['--1s', 'expected a number'],
    ['1sec', 'expected a number'],
    ['thirty seconds', 'expected a number'],
    ['3000000h', 'out of range'],
  ])('rejects %j (%s) and names the value', (text, why) => {
    expect(() => parseGoDuration(text)).toThrow(`invalid duration ${JSON.stringify(text)}: ${why}`);
  });
});

describe('formatGoDuration', () => {
  it.each([
    [30_000, '30s'],
    [60_000, '1m0s'],
    [90_000, '1m30s'],
    [3_600_000, '1h0m0s'],
    [86_400_000, '24h0m0s'],
    [900_000, '15m0s'],
    [500, '500ms'],
    [1_500, '1.5s'],
    [60_500, '1m0.5s'],
    [1.5, '1.5ms'],
    [0.001, '1µs'],
    [0.0015, '1.5µs'],
    [0.000001, '1ns'],
    [0, '0s'],
    [-1_000, '-1s'],
    [-90_000, '-1m30s'],
  ])('%d ms prints as %s', (ms, text) => {
    expect(formatGoDuration(ms)).toBe(text);
  });

  it('round-trips every nanosecond count through Go text', () => {
    const maxInt64 = (1n << 63n) - 1n;
    fc.assert(
      fc.property(fc.bigInt({ min: -maxInt64, max: maxInt64 }), (nanos) => {
        expect(parseGoDurationNanos(formatGoDurationNanos(nanos))).toBe(nanos);
      }),
    );
  });

  it('round-trips whole milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e12 }), (ms) => {
        expect(parseGoDuration(formatGoDuration(ms))).toBe(ms);
      }),
    );
  });
});
