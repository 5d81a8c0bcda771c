/**
 * Go `time.Duration` strings, as kube-proxy's configuration uses them (`metav1.Duration` is parsed with
 * Go's `time.ParseDuration` and printed with `Duration.String`). Values are carried as milliseconds
 * (fractions allowed, so `1ns` is 0.000001); internally everything is integer nanoseconds, like Go.
 */

const NANOS_PER_UNIT: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5 micro sign
  μs: 1_000n, // U+03BC Greek small letter mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX_INT64 = (1n << 63n) - 1n;
const NANOS_PER_MILLI = 1_000_000n;

/** A number followed by a unit, e.g. `1.5` `h`; Go allows `.5` and `5.` too. */
const COMPONENT = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;

/** Parses a Go duration into integer nanoseconds; throws an Error naming the value if it is invalid. */
export function parseGoDurationNanos(text: string): bigint {
  const invalid = (why: string) => new Error(`invalid duration ${JSON.stringify(text)}: ${why}`);
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return 0n;
  if (rest === '') throw invalid('empty');

  let total = 0n;
  while (rest !== '') {
    const match = COMPONENT.exec(rest);
    if (!match) {
      throw invalid(
        /^[\d.]*$/.test(rest) ? 'missing unit' : 'expected a number followed by ns, us, ms, s, m or h',
      );
    }
    const [whole, intDigits = '', fracDigits, unit = ''] = match;
    if (intDigits === '' && (fracDigits === undefined || fracDigits === '')) throw invalid('missing number');
    const scale = NANOS_PER_UNIT[unit];
    if (scale === undefined) throw invalid(`unknown unit ${JSON.stringify(unit)}`);
    total += BigInt(intDigits || '0') * scale;
    if (fracDigits) {
      // Go truncates the fraction's contribution to whole nanoseconds.
      total += (BigInt(fracDigits) * scale) / 10n ** BigInt(fracDigits.length);
    }
    if (total > MAX_INT64) throw invalid('out of range');
    rest = rest.slice(whole.length);
  }
  return negative ? -total : total;
}

/** Parses a Go duration (`30s`, `1m0s`, `1h`, `500ms`, `1.5s`, `0s`, `0`) into milliseconds. */
export function parseGoDuration(text: string): number {
  return nanosToMillis(parseGoDurationNanos(text));
}

/** Formats milliseconds the way Go's `Duration.String` prints them: `30s`, `1m0s`, `1h0m0s`, `500ms`. */
export function formatGoDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new Error(`cannot format ${ms} ms as a duration`);
  // Split so that large whole-millisecond values stay exact (ms * 1e6 would exceed 2^53).
  const whole = Math.trunc(ms);
  return formatGoDurationNanos(
    BigInt(whole) * NANOS_PER_MILLI + BigInt(Math.round((ms - whole) * 1_000_000)),
  );
}

export function formatGoDurationNanos(nanos: bigint): string {
  const negative = nanos < 0n;
  const u = negative ? -nanos : nanos;
  const sign = negative ? '-' : '';
  if (u === 0n) return '0s';
  if (u < 1_000n) return `${sign}${u}ns`;
  if (u < 1_000_000n) return `${sign}${withFraction(u, 3)}µs`;
  if (u < 1_000_000_000n) return `${sign}${withFraction(u, 6)}ms`;

  const seconds = withFraction(u % 60_000_000_000n, 9);
  const totalMinutes = u / 60_000_000_000n;
  if (totalMinutes === 0n) return `${sign}${seconds}s`;
  const minutes = totalMinutes % 60n;
  const hours = totalMinutes / 60n;
  if (hours === 0n) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${hours}h${minutes}m${seconds}s`;
}

export function nanosToMillis(nanos: bigint): number {
  const whole = nanos / NANOS_PER_MILLI;
  const remainder = nanos % NANOS_PER_MILLI;
  return Number(whole) + Number(remainder) / 1_000_000;
}

/** `value / 10^digits` printed without trailing zeros (and without a point when it is whole). */
function withFraction(value: bigint, digits: number): string {
  const divisor = 10n ** BigInt(digits);
  const integer = value / divisor;
  const fraction = (value % divisor).toString().padStart(digits, '0').replace(/0+$/, '');
  return fraction === '' ? `${integer}` : `${integer}.${fraction}`;
}
