/**
 * Predicting how iptables-save prints a rule of IPVS mode's helper chains, so a full sync
 * can tell whether the kernel already holds them (a restart then writes nothing). The
 * transformations are those measured with iptables 1.8.9 (notes/iptables-save-form.md):
 * - `-s`/`-d` get a host prefix (`/32`, `/128`) and, with `-i`, `-o` and `-p`, move before
 *   every `-m` module, in the order `-s -d -i -o -p` (a `!` stays with its option);
 * - `-j MARK --or-mark V` → `--set-xmark V/V`, `--xor-mark V` → `--set-xmark V/0x0`, and
 *   mark values lose their leading zeros (`0x00004000` → `0x4000`);
 * - `-j REJECT` gains `--reject-with icmp-port-unreachable` (`icmp6-port-unreachable`);
 * - `-m ipvs` prints its options in libxt_ipvs's order (`--vproto`, `--vaddr`, `--vport`,
 *   `--vdir`, `--vmethod`, `--vportctl`), the protocol as a number and a host `--vaddr`
 *   without its prefix: `--vaddr 10.0.0.1 --vproto tcp --vport 80` comes back as
 *   `--vproto 6 --vaddr 10.0.0.1 --vport 80` (measured with iptables 1.8.9, nft and legacy,
 *   on Debian 12's kernel in the VM guest: these hosts have no xt_ipvs).
 * Quoting is not part of the comparison (rules are compared as words). A form this does not
 * know just compares as different: the chains are then rewritten, as kube-proxy always does.
 */

import type { IPFamily } from '../../model/ip.js';
import { splitRuleWords } from '../iptables/cleanup.js';

const GENERIC_ORDER = ['-s', '-d', '-i', '-o', '-p'] as const;

function hex(value: string): string {
  if (!/^0x[0-9a-fA-F]+$/.test(value)) return value;
  return `0x${Number.parseInt(value.slice(2), 16).toString(16)}`;
}

function markValue(value: string): string {
  const [v, m] = value.split('/');
  return m === undefined ? hex(v!) : `${hex(v!)}/${hex(m)}`;
}

function withPrefix(address: string, family: IPFamily): string {
  return address.includes('/') ? address : `${address}/${family === 'IPv4' ? 32 : 128}`;
}

const IPVS_OPTION_ORDER = ['--vproto', '--vaddr', '--vport', '--vdir', '--vmethod', '--vportctl'] as const;
const PROTOCOL_NUMBER: Readonly<Record<string, string>> = { tcp: '6', udp: '17', sctp: '132' };

/**
 * The options of one `-m ipvs` match starting at `rest[start]` (after `-m ipvs`), in the
 * order and form iptables-save prints them, and where the match ends; null for a form this
 * does not know (`--ipvs`, a negation), which then compares as different.
 */
function ipvsMatch(
  rest: readonly string[],
  start: number,
  family: IPFamily,
): { words: string[]; end: number } | null {
  const values = new Map<string, string>();
  let i = start;
  for (; i < rest.length; i += 2) {
    const option = rest[i]!;
    if (!(IPVS_OPTION_ORDER as readonly string[]).includes(option)) break;
    const value = rest[i + 1];
    if (value === undefined || values.has(option)) return null;
    values.set(option, value);
  }
  if (values.size === 0) return null;
  const words: string[] = [];
  for (const option of IPVS_OPTION_ORDER) {
    let value = values.get(option);
    if (value === undefined) continue;
    if (option === '--vproto') value = PROTOCOL_NUMBER[value.toLowerCase()] ?? value;
    if (option === '--vaddr') value = value.replace(family === 'IPv4' ? /\/32$/ : /\/128$/, '');
    words.push(option, value);
  }
  return { words, end: i };
}

/** The words iptables-save prints for the rule `line` (`-A CHAIN ...`) restored as given. */
export function predictSavedWords(line: string, family: IPFamily): string[] {
  const words = splitRuleWords(line);
  const head = words.slice(0, 2);
  const generic = new Map<string, string[]>();
  const rest: string[] = [];
  for (let i = 2; i < words.length; i++) {
    const negated = words[i] === '!' && (GENERIC_ORDER as readonly string[]).includes(words[i + 1] ?? '');
    const option = negated ? words[i + 1]! : words[i]!;
    if ((GENERIC_ORDER as readonly string[]).includes(option) && words[i + (negated ? 2 : 1)] !== undefined) {
      let value = words[i + (negated ? 2 : 1)]!;
      if (option === '-s' || option === '-d') value = withPrefix(value, family);
      generic.set(option, negated ? ['!', option, value] : [option, value]);
      i += negated ? 2 : 1;
      continue;
    }
    rest.push(words[i]!);
  }
  const out = [...head, ...GENERIC_ORDER.flatMap((o) => generic.get(o) ?? [])];
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i]!;
    const next = rest[i + 1];
    if (w === '--or-mark' && next !== undefined) {
      out.push('--set-xmark', `${hex(next)}/${hex(next)}`);
      i++;
    } else if (w === '--xor-mark' && next !== undefined) {
      out.push('--set-xmark', `${hex(next)}/0x0`);
      i++;
    } else if (w === '--mark' && next !== undefined) {
      out.push('--mark', markValue(next));
      i++;
    } else if (w === '-m' && next === 'ipvs' && ipvsMatch(rest, i + 2, family) !== null) {
      const match = ipvsMatch(rest, i + 2, family)!;
      out.push('-m', 'ipvs', ...match.words);
      i = match.end - 1;
    } else {
      out.push(w);
    }
  }
  const j = out.indexOf('-j');
  if (out[j + 1] === 'REJECT' && !out.includes('--reject-with')) {
    out.splice(
      j + 2,
      0,
      '--reject-with',
      family === 'IPv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable',
    );
  }
  return out;
}
