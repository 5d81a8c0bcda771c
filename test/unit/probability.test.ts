import { describe, expect, it } from 'vitest';
import { probability } from '../../src/backends/iptables/probability.js';

/**
 * An independent Go `%0.10f`: the float64 is an integer m over 2^e (found by doubling, which
 * is exact), so its exact decimal expansion is m·5^e with e fraction digits. Round that
 * digit string at 10 places; only an exact binary tie (a 5 followed by nothing but zeros)
 * rounds to even.
 */
function referenceFixed10(x: number): { text: string; tie: boolean } {
  let e = 0;
  let scaled = x;
  while (!Number.isInteger(scaled)) {
    scaled *= 2;
    e++;
  }
  const m = BigInt(scaled);
  const exact = (m * 5n ** BigInt(e)).toString().padStart(e + 1, '0');
  const intPart = exact.slice(0, exact.length - e);
  const frac = exact.slice(exact.length - e).padEnd(11, '0');
  const kept = BigInt(intPart + frac.slice(0, 10));
  const rest = frac.slice(10);
  const tie = rest[0] === '5' && /^0*$/.test(rest.slice(1));
  const moreThanHalf = rest[0]! > '5' || (rest[0] === '5' && !tie);
  const roundUp = moreThanHalf || (tie && kept % 2n === 1n);
  const q = (roundUp ? kept + 1n : kept).toString().padStart(11, '0');
  return { text: `${q.slice(0, -10)}.${q.slice(-10)}`, tie };
}

describe('probability (Go %0.10f of 1/k, spec §6)', () => {
  it.each([
    [1, '1.0000000000'],
    [2, '0.5000000000'],
    [3, '0.3333333333'],
    [7, '0.1428571429'],
    [1000, '0.0010000000'],
    [100001, '0.0000099999'],
  ])('1/%i -> %s', (k, expected) => {
    expect(probability(k)).toBe(expected);
  });

  it('rounds the exact tie 1/2048 = 0.00048828125 to even, unlike toFixed', () => {
    expect((1 / 2048).toFixed(10)).toBe('0.0004882813');
    expect(probability(2048)).toBe('0.0004882812');
  });

  it('matches an exact-rational reference for k = 1..5000, and 2048 is the only tie', () => {
    const ties: number[] = [];
    for (let k = 1; k <= 5000; k++) {
      const ref = referenceFixed10(1 / k);
      if (ref.tie) ties.push(k);
      expect(probability(k), `k=${k}`).toBe(ref.text);
      // toFixed rounds ties up: it may differ only at a tie.
      if (!ref.tie) expect((1 / k).toFixed(10), `k=${k}`).toBe(ref.text);
    }
    expect(ties).toEqual([2048]);
  });

  it('the reference itself rounds as expected on known values', () => {
    expect(referenceFixed10(0.5).text).toBe('0.5000000000');
    expect(referenceFixed10(1 / 2048)).toEqual({ text: '0.0004882812', tie: true });
    expect(referenceFixed10(3 / 2048)).toEqual({ text: '0.0014648438', tie: true });
    expect(referenceFixed10(1 / 3).text).toBe('0.3333333333');
  });

  it('returns the same string on repeated calls (cached)', () => {
    expect(probability(12)).toBe('0.0833333333');
    expect(probability(12)).toBe('0.0833333333');
  });
});
