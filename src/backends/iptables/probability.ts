/**
 * `1/k` printed like Go's `%0.10f` (spec §6): the float64 value of 1/k, rounded
 * correctly to 10 decimals with exact ties to even. JavaScript's toFixed rounds ties
 * up, which differs for k = 2048 (0.0004882812 in Go, ...13 in JS).
 */
const cache: string[] = [];
const SCALE = 10n ** 10n;

function goFixed10(x: number): string {
  // x = mantissa * 2^exponent exactly; do the rounding in integers.
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const rawExp = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exp: number;
  if (rawExp === 0) exp = -1074;
  else {
    mantissa |= 1n << 52n;
    exp = rawExp - 1075;
  }
  let q: bigint;
  if (exp >= 0) q = mantissa * SCALE * (1n << BigInt(exp));
  else {
    const num = mantissa * SCALE;
    const den = 1n << BigInt(-exp);
    q = num / den;
    const twiceRem = (num % den) * 2n;
    if (twiceRem > den || (twiceRem === den && q % 2n === 1n)) q += 1n;
  }
  const digits = q.toString().padStart(11, '0');
  return `${digits.slice(0, -10)}.${digits.slice(-10)}`;
}

export function probability(k: number): string {
  let s = cache[k];
  if (s === undefined) {
    s = goFixed10(1 / k);
    cache[k] = s;
  }
  return s;
}
