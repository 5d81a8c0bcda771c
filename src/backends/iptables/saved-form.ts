/**
 * The text `iptables-save` prints for a rule, derived from the rule as Switchboard writes
 * it (or as iptables-save printed it: the result is the same). Two rules are the same
 * kernel rule when their saved forms are equal, so the kernel's rules can be compared
 * with a render chain by chain (spec §17, notes/iptables-save-form.md). No I/O.
 *
 * Exact for the vocabulary Switchboard emits, and only for it: every match and target the
 * iptables mode (src/backends/iptables/*) and the IPVS mode's helper chains
 * (src/backends/ipvs/render.ts) write, each option in the order and spelling its module's
 * save function prints (iptables 1.8.9, nft and legacy backends alike;
 * test/kernel/saved-form.test.ts checks every golden file against the real tools,
 * test/ipvs-apply/save-form.test.ts the IPVS helper rules, and the VM check
 * test/vm/guest/checks/iptables-matches.ts `-m ipvs`, which these hosts lack). It is the one
 * model of iptables-save's form: the in-memory iptables (src/kernel/fakes/iptables.ts)
 * holds rules in it too. Anything else — another module, an
 * option, value or spelling the renderer never produces — gives null, which callers must
 * treat as "different" (rewrite the chain): a rule we cannot be sure of is never
 * assumed equal.
 *
 * How iptables-save prints a rule:
 * - `-s`, `-d` (with the prefix length, `/32` or `/128` added; left out when it is /0),
 *   `-i`, `-p`, in that order, before every `-m`; a `!` stays in front of its option;
 * - then each match in the order given, `-m NAME` and its options in the module's order;
 * - then `-j TARGET` and its options; a rule without a target prints none.
 * Values are canonicalised as the kernel stores them: addresses as inet_ntop prints them,
 * marks in plain hex, statistic probabilities as the 32-bit fraction the kernel keeps,
 * `-m ipvs`'s protocol as its number.
 */
import type { IPFamily } from '../../model/ip.js';
import { parseCIDR, parseIP } from '../../model/ip.js';

/** Splits a rule into words the way iptables-restore does: `"..."` groups, `\\` escapes inside quotes. */
export function ruleWords(line: string): string[] | null {
  // Most rules have no quotes and single spaces: one split.
  if (line.indexOf('"') === -1 && line.indexOf('  ') === -1 && line.indexOf('\t') === -1) {
    const words = line.split(' ');
    return words[0] === '' || words[words.length - 1] === '' ? null : words;
  }
  const words: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line.charCodeAt(i);
    if (c === 32 || c === 9) {
      i++;
      continue;
    }
    if (c === 34 /* " */) {
      let word = '';
      let j = i + 1;
      for (;;) {
        const q = line.indexOf('"', j);
        const b = line.indexOf('\\', j);
        if (q === -1) return null; // unterminated quote
        if (b !== -1 && b < q) {
          if (b + 1 >= n) return null;
          word += line.slice(j, b) + line[b + 1];
          j = b + 2;
          continue;
        }
        word += line.slice(j, q);
        j = q + 1;
        break;
      }
      // `"a"b` is one word to iptables; we never write that, so refuse it.
      if (j < n && line.charCodeAt(j) !== 32 && line.charCodeAt(j) !== 9) return null;
      words.push(word);
      i = j;
      continue;
    }
    let j = i;
    while (j < n) {
      const d = line.charCodeAt(j);
      if (d === 32 || d === 9) break;
      if (d === 34) return null; // a quote inside a word
      j++;
    }
    words.push(line.slice(i, j));
    i = j;
  }
  return words;
}

const NO_QUOTE = /^[A-Za-z0-9_-]+$/;

/** libxtables' xtables_save_string: bare when only `[A-Za-z0-9_-]`, else quoted with `"`, `\`, `'` escaped. */
export function saveString(value: string): string {
  if (NO_QUOTE.test(value)) return value;
  return `"${value.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

/**
 * What `--probability <text>` prints as after a round trip through the kernel:
 * libxt_statistic stores lround(2^31 * strtod(text)) and prints that fraction with
 * printf's `%.11f` (exact decimal expansion, ties to even). JavaScript's Number() rounds
 * decimal text to the nearest double as strtod does. Null for anything not a plain
 * decimal in [0, 1].
 */
export function savedProbability(text: string): string | null {
  if (!/^(0|1)(\.[0-9]+)?$/.test(text)) return null;
  const p = Number(text);
  if (!(p >= 0 && p <= 1)) return null;
  const scaled = p * 2 ** 31; // exact: a power-of-two scaling
  const floor = Math.floor(scaled);
  const stored = BigInt(scaled - floor >= 0.5 ? floor + 1 : floor); // lround, half away from zero
  // stored / 2^31 * 10^11 = stored * 5^11 / 2^20, rounded to an integer, ties to even.
  const num = stored * 48828125n;
  const den = 1n << 20n;
  let q = num / den;
  const twice = (num % den) * 2n;
  if (twice > den || (twice === den && q % 2n === 1n)) q += 1n;
  const digits = q.toString().padStart(12, '0');
  return `${digits.slice(0, -11)}.${digits.slice(-11)}`;
}

/** True when glibc's inet_ntop prints this IPv6 address differently from RFC 5952 (`::a.b.c.d`). */
function ntopPrintsDotted(bytes: Uint8Array): boolean {
  for (let i = 0; i < 12; i++) if (bytes[i] !== 0) return false;
  return bytes[12] !== 0 || bytes[13] !== 0;
}

/** Whether `text[from, to)` is an IPv4 address in canonical form (no leading zeros). */
function canonicalIPv4(text: string, from: number, to: number): boolean {
  let octets = 0;
  let i = from;
  while (i < to) {
    let j = i;
    let value = 0;
    while (j < to) {
      const c = text.charCodeAt(j);
      if (c === 46 /* . */) break;
      if (c < 48 || c > 57) return false;
      value = value * 10 + (c - 48);
      j++;
    }
    const len = j - i;
    if (len === 0 || len > 3 || value > 255 || (len > 1 && text.charCodeAt(i) === 48)) return false;
    octets++;
    if (j === to) break;
    i = j + 1;
    if (i === to) return false;
  }
  return octets === 4;
}

function canonicalIPv6(text: string): boolean {
  const ip = parseIP(text);
  return ip !== null && ip.family === 'IPv6' && ip.text === text && !ntopPrintsDotted(ip.bytes);
}

/**
 * `-s`/`-d` value as saved (`10.0.0.1/32`, `fd00::/64`); '' for a /0 (not printed);
 * null when not canonical text of the family (we only write canonical text).
 */
function savedAddress(text: string, family: IPFamily): string | null {
  const slash = text.indexOf('/');
  if (slash === -1) {
    if (family === 'IPv4') return canonicalIPv4(text, 0, text.length) ? `${text}/32` : null;
    return canonicalIPv6(text) ? `${text}/128` : null;
  }
  const cidr = parseCIDR(text);
  if (!cidr || cidr.family !== family || cidr.text !== text) return null;
  if (family === 'IPv6' && ntopPrintsDotted(cidr.bytes)) return null;
  return cidr.prefix === 0 ? '' : text;
}

/** A port as we write it (1-65535, no leading zeros). */
function isPort(text: string, from = 0): boolean {
  const len = text.length - from;
  if (len < 1 || len > 5 || text.charCodeAt(from) === 48) return false;
  let value = 0;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
    value = value * 10 + (c - 48);
  }
  return value <= 65535;
}

/** `IP:port` / `[IPv6]:port` as DNAT saves it (as we write it), or null. */
function savedEndpoint(text: string, family: IPFamily): string | null {
  const colon = text.lastIndexOf(':');
  if (colon === -1 || !isPort(text, colon + 1)) return null;
  if (family === 'IPv4') return canonicalIPv4(text, 0, colon) ? text : null;
  if (text.charCodeAt(0) !== 91 /* [ */ || text.charCodeAt(colon - 1) !== 93 /* ] */) return null;
  return canonicalIPv6(text.slice(1, colon - 1)) ? text : null;
}

/** A 32-bit value as libxt_mark/libxt_MARK print it (`0x4000`). */
function hex32(text: string): string | null {
  if (!/^0x[0-9a-fA-F]{1,8}$/.test(text)) return null;
  return `0x${Number.parseInt(text.slice(2), 16).toString(16)}`;
}

/** `value[/mask]` of mark and MARK, as [value, mask] in saved hex (mask 0xffffffff when absent). */
function valueMask(text: string): [string, string] | null {
  const slash = text.indexOf('/');
  const value = hex32(slash === -1 ? text : text.slice(0, slash));
  const mask = slash === -1 ? '0xffffffff' : hex32(text.slice(slash + 1));
  return value === null || mask === null ? null : [value, mask];
}

const probabilities = new Map<string, string | null>();

function cachedProbability(text: string): string | null {
  let saved = probabilities.get(text);
  if (saved === undefined) {
    saved = savedProbability(text);
    // Probabilities are 1/k for small k: few distinct texts, but bound it anyway.
    if (probabilities.size < 10_000) probabilities.set(text, saved);
  }
  return saved;
}

const CT_STATES = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'] as const;
const NAME = /^[A-Za-z0-9_-]{1,28}$/;
const NFACCT_NAME = /^[A-Za-z0-9_-]{1,31}$/;
const IFACE = /^[A-Za-z0-9_.@:-]{1,15}\+?$/;
/** An ipset name (IPSET_MAXNAMELEN 32, with its NUL), and libxt_set's src/dst flags (at most 6). */
const SET_NAME = /^[A-Za-z0-9_-]{1,31}$/;
const SET_FLAGS = /^(src|dst)(,(src|dst)){0,5}$/;
const PROTOCOL_NUMBER: Readonly<Record<string, string>> = { tcp: '6', udp: '17', sctp: '132' };
const HOST_PREFIX: Record<IPFamily, string> = { IPv4: '/32', IPv6: '/128' };
const ALL_ONES: Record<IPFamily, string> = {
  IPv4: '255.255.255.255',
  IPv6: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
};

/** An option as given: its value (undefined for flags), a second value, and whether `!` preceded it. */
interface Option {
  name: string;
  value: string | undefined;
  second?: string;
  negated: boolean;
}

interface Module {
  /** option name -> how many values follow it (0 for a flag) */
  options: Readonly<Record<string, 0 | 1 | 2>>;
  /** the saved text after `-m NAME` / `-j NAME` (with its leading space), or null */
  save(o: readonly Option[], family: IPFamily): string | null;
}

function find(o: readonly Option[], name: string): Option | undefined {
  for (const opt of o) if (opt.name === name) return opt;
  return undefined;
}

/** The value of a plain (not negated) option that must be present. */
function plain(o: readonly Option[], name: string): string | null {
  const opt = find(o, name);
  return opt && !opt.negated && opt.value !== undefined ? opt.value : null;
}

/** Present (true), absent (false), or negated (null: we never write that). */
function flag(o: readonly Option[], name: string): boolean | null {
  const opt = find(o, name);
  if (!opt) return false;
  return opt.negated ? null : true;
}

const portMatch: Module = {
  options: { '--dport': 1 },
  save(o) {
    if (o.length === 0) return '';
    const p = plain(o, '--dport');
    return p !== null && isPort(p) ? ` --dport ${p}` : null;
  },
};

const MATCHES: Readonly<Record<string, Module>> = {
  comment: {
    options: { '--comment': 1 },
    save(o) {
      const c = plain(o, '--comment');
      return c !== null && c.length <= 255 ? ` --comment ${saveString(c)}` : null;
    },
  },
  tcp: portMatch,
  udp: portMatch,
  sctp: portMatch,
  statistic: {
    options: { '--mode': 1, '--probability': 1 },
    save(o) {
      const p = plain(o, '--probability');
      const saved = p === null ? null : cachedProbability(p);
      return plain(o, '--mode') === 'random' && saved !== null
        ? ` --mode random --probability ${saved}`
        : null;
    },
  },
  conntrack: {
    options: { '--ctstate': 1 },
    save(o) {
      const opt = o[0];
      if (!opt || opt.value === undefined) return null;
      const given = opt.value.split(',');
      const set = new Set(given);
      if (set.size !== given.length || !given.every((s) => (CT_STATES as readonly string[]).includes(s)))
        return null;
      const states = CT_STATES.filter((s) => set.has(s)).join(',');
      return `${opt.negated ? ' !' : ''} --ctstate ${states}`;
    },
  },
  mark: {
    options: { '--mark': 1 },
    save(o) {
      const opt = o[0];
      const vm = opt?.value === undefined ? null : valueMask(opt.value);
      if (!opt || vm === null) return null;
      const shown = vm[1] === '0xffffffff' ? vm[0] : `${vm[0]}/${vm[1]}`;
      return `${opt.negated ? ' !' : ''} --mark ${shown}`;
    },
  },
  addrtype: {
    options: { '--src-type': 1, '--dst-type': 1 },
    save(o) {
      if (o.length === 0) return null;
      let out = '';
      for (const name of ['--src-type', '--dst-type']) {
        const opt = find(o, name);
        if (!opt) continue;
        if (opt.value !== 'LOCAL') return null;
        out += `${opt.negated ? ' !' : ''} ${name} LOCAL`;
      }
      return out;
    },
  },
  recent: {
    options: {
      '--name': 1,
      '--set': 0,
      '--rcheck': 0,
      '--seconds': 1,
      '--reap': 0,
      '--mask': 1,
      '--rsource': 0,
    },
    save(o, family) {
      const name = plain(o, '--name');
      const set = flag(o, '--set');
      const rcheck = flag(o, '--rcheck');
      const reap = flag(o, '--reap');
      const rsource = flag(o, '--rsource');
      if (name === null || !NAME.test(name) || set === null || rcheck === null || reap === null) return null;
      if (rsource === null || set === rcheck) return null;
      const mask = find(o, '--mask');
      if (mask && (mask.negated || mask.value !== ALL_ONES[family])) return null;
      const tail = ` --name ${name} --mask ${ALL_ONES[family]} --rsource`;
      if (set) return find(o, '--seconds') || reap ? null : ` --set${tail}`;
      const seconds = plain(o, '--seconds');
      if (seconds === null || !/^[1-9][0-9]{0,9}$/.test(seconds) || Number(seconds) > 0xffffffff) return null;
      return ` --rcheck --seconds ${seconds}${reap ? ' --reap' : ''}${tail}`;
    },
  },
  set: {
    options: { '--match-set': 2 },
    save(o) {
      const opt = o[0];
      if (!opt || opt.negated || opt.value === undefined || opt.second === undefined) return null;
      // libxt_set prints the name as it is, not through xtables_save_string.
      if (!SET_NAME.test(opt.value) || !SET_FLAGS.test(opt.second)) return null;
      return ` --match-set ${opt.value} ${opt.second}`;
    },
  },
  physdev: {
    options: { '--physdev-is-in': 0 },
    save(o) {
      const opt = o[0];
      return opt ? `${opt.negated ? ' !' : ''} --physdev-is-in` : null;
    },
  },
  ipvs: {
    // libxt_ipvs prints --vproto, --vaddr, --vport in that order, whatever the input's. Its
    // other options (--ipvs, --vdir, ...) print differently under nft and legacy (the VM
    // check saw it): not modelled.
    options: { '--vproto': 1, '--vaddr': 1, '--vport': 1 },
    save(o, family) {
      if (o.length === 0 || o.some((opt) => opt.negated)) return null;
      let out = '';
      const proto = find(o, '--vproto')?.value;
      if (proto !== undefined) {
        const number =
          PROTOCOL_NUMBER[proto] ?? (Object.values(PROTOCOL_NUMBER).includes(proto) ? proto : null);
        if (number === null) return null;
        out += ` --vproto ${number}`;
      }
      const vaddr = find(o, '--vaddr')?.value;
      if (vaddr !== undefined) {
        // A host address prints without its prefix, a network with it.
        const saved = savedAddress(vaddr, family);
        if (saved === null || saved === '') return null;
        out += ` --vaddr ${saved.endsWith(HOST_PREFIX[family]) ? saved.slice(0, -HOST_PREFIX[family].length) : saved}`;
      }
      const vport = find(o, '--vport')?.value;
      if (vport !== undefined) {
        if (!isPort(vport)) return null;
        out += ` --vport ${vport}`;
      }
      return out;
    },
  },
  nfacct: {
    options: { '--nfacct-name': 1 },
    save(o) {
      const name = plain(o, '--nfacct-name');
      // libxt_nfacct prints its option with a second space.
      return name !== null && NFACCT_NAME.test(name) ? ` --nfacct-name  ${name}` : null;
    },
  },
};

const TARGETS: Readonly<Record<string, Module>> = {
  REJECT: {
    options: { '--reject-with': 1 },
    save(o, family) {
      const dflt = family === 'IPv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
      const given = o.length === 0 ? dflt : plain(o, '--reject-with');
      return given === dflt ? ` --reject-with ${dflt}` : null;
    },
  },
  DNAT: {
    options: { '--to-destination': 1 },
    save(o, family) {
      const to = plain(o, '--to-destination');
      const saved = to === null ? null : savedEndpoint(to, family);
      return saved !== null ? ` --to-destination ${saved}` : null;
    },
  },
  MARK: {
    options: { '--or-mark': 1, '--xor-mark': 1, '--set-xmark': 1 },
    save(o) {
      const opt = o[0];
      if (o.length !== 1 || !opt || opt.negated || opt.value === undefined) return null;
      if (opt.name === '--set-xmark') {
        const vm = valueMask(opt.value);
        return vm === null ? null : ` --set-xmark ${vm[0]}/${vm[1]}`;
      }
      const bits = hex32(opt.value);
      if (bits === null) return null;
      return ` --set-xmark ${bits}/${opt.name === '--or-mark' ? bits : '0x0'}`;
    },
  },
  MASQUERADE: {
    options: { '--random-fully': 0 },
    save(o) {
      if (o.length === 0) return '';
      return flag(o, '--random-fully') === true ? ' --random-fully' : null;
    },
  },
};

/** Every option of every module: no two modules we know share an option name. */
const OPTION_OWNERS = new Map<string, { module: Module; values: 0 | 1 | 2 }>();
for (const module of [...new Set([...Object.values(MATCHES), ...Object.values(TARGETS)])]) {
  for (const [name, values] of Object.entries(module.options)) {
    if (OPTION_OWNERS.has(name)) throw new Error(`saved-form: option ${name} has two owners`);
    OPTION_OWNERS.set(name, { module, values });
  }
}

const VERDICTS = new Set(['ACCEPT', 'DROP', 'RETURN']);
const USER_CHAIN = /^KUBE-[A-Z0-9-]{1,23}$/;
const CHAIN = /^[A-Za-z0-9_-]{1,28}$/;

interface Loaded {
  name: string;
  module: Module;
  options: Option[];
}

/**
 * The line iptables-save prints for this rule (`-A CHAIN ...`), or null when the rule
 * uses anything this module does not model exactly. Accepts Switchboard's restore form
 * and iptables-save's form alike; the saved form of a saved line is itself.
 */
export function savedForm(line: string, family: IPFamily): string | null {
  const fast = commonShape(line, family);
  return fast === undefined ? parsedSavedForm(line, family) : fast;
}

// The shapes most rules of a large cluster have (endpoint and dispatch chains without
// comments), in the form we write them. Each gives exactly what the general path gives
// (test/unit/saved-form.test.ts compares them); anything else takes the general path.
const MASQ_SOURCE = /^-A ([A-Za-z0-9_-]{1,28}) -s ([^ /]+) -j KUBE-MARK-MASQ$/;
const DNAT_PORT = /^-A ([A-Za-z0-9_-]{1,28}) -m (tcp|udp|sctp) -p \2 -j DNAT --to-destination (\S+)$/;
const BARE_JUMP = /^-A ([A-Za-z0-9_-]{1,28}) -j (KUBE-[A-Z0-9-]{1,23})$/;
const RANDOM_JUMP =
  /^-A ([A-Za-z0-9_-]{1,28}) -m statistic --mode random --probability (\S+) -j (KUBE-[A-Z0-9-]{1,23})$/;

/** The saved form of a rule of a common shape, or undefined for the general path to judge. */
function commonShape(line: string, family: IPFamily): string | undefined {
  const c = line.charCodeAt(line.length - 1);
  if (line.endsWith(' -j KUBE-MARK-MASQ')) {
    const m = MASQ_SOURCE.exec(line);
    if (!m) return undefined;
    const src = savedAddress(m[2]!, family);
    return src === null || src === '' ? undefined : `-A ${m[1]} -s ${src} -j KUBE-MARK-MASQ`;
  }
  if (line.includes(' -j DNAT ')) {
    const m = DNAT_PORT.exec(line);
    if (!m) return undefined;
    const to = savedEndpoint(m[3]!, family);
    return to === null ? undefined : `-A ${m[1]} -p ${m[2]} -m ${m[2]} -j DNAT --to-destination ${to}`;
  }
  if (c < 48 || c > 90) return undefined; // jumps to KUBE- chains end in [0-9A-Z]
  const bare = BARE_JUMP.exec(line);
  if (bare) return line;
  const random = RANDOM_JUMP.exec(line);
  if (!random) return undefined;
  const p = cachedProbability(random[2]!);
  return p === null
    ? undefined
    : `-A ${random[1]} -m statistic --mode random --probability ${p} -j ${random[3]}`;
}

/** savedForm without the common-shape shortcuts (exported for the test that compares them). */
export function parsedSavedForm(line: string, family: IPFamily): string | null {
  const words = ruleWords(line);
  if (!words || words.length < 2 || words[0] !== '-A' || !CHAIN.test(words[1]!)) return null;
  let src: string | null = null;
  let dst: string | null = null;
  let iface: string | null = null;
  let proto = '';
  const loaded: Loaded[] = [];
  let targetName = '';
  let negated = false;
  const n = words.length;
  let i = 2;
  while (i < n) {
    const word = words[i++]!;
    if (word === '!') {
      if (negated) return null;
      negated = true;
      continue;
    }
    const neg = negated;
    negated = false;
    if (word.charCodeAt(1) === 45 /* -- */) {
      const owner = OPTION_OWNERS.get(word);
      let into: Loaded | undefined;
      for (const l of loaded) if (l.module === owner?.module) into = l;
      if (!owner || !into || find(into.options, word)) return null;
      if (i + owner.values > n) return null;
      const value = owner.values > 0 ? words[i++]! : undefined;
      const second = owner.values > 1 ? words[i++]! : undefined;
      into.options.push({ name: word, value, second, negated: neg });
      continue;
    }
    if (i >= n) return null;
    const value = words[i++]!;
    switch (word) {
      case '-s':
      case '-d': {
        const saved = savedAddress(value, family);
        if (saved === null || (saved === '' && neg) || (word === '-s' ? src : dst) !== null) return null;
        const text = saved === '' ? '' : ` ${neg ? '! ' : ''}${word} ${saved}`;
        if (word === '-s') src = text;
        else dst = text;
        break;
      }
      case '-i':
        if (iface !== null || !IFACE.test(value)) return null;
        iface = ` ${neg ? '! ' : ''}-i ${value}`;
        break;
      case '-p':
        if (neg || proto !== '' || (value !== 'tcp' && value !== 'udp' && value !== 'sctp')) return null;
        proto = value;
        break;
      case '-m': {
        const module = MATCHES[value];
        if (neg || targetName !== '' || !module) return null;
        for (const l of loaded) if (l.name === value) return null;
        loaded.push({ name: value, module, options: [] });
        break;
      }
      case '-j': {
        if (neg || targetName !== '') return null;
        const module = TARGETS[value];
        if (module) loaded.push({ name: value, module, options: [] });
        else if (!VERDICTS.has(value) && !USER_CHAIN.test(value)) return null;
        targetName = value;
        break;
      }
      default:
        return null;
    }
  }
  if (negated) return null;

  let out = `-A ${words[1]}${src ?? ''}${dst ?? ''}${iface ?? ''}`;
  if (proto !== '') out += ` -p ${proto}`;
  let portMatches = 0;
  let sawTarget = false;
  for (const l of loaded) {
    const saved = l.module.save(l.options, family);
    if (saved === null) return null;
    if (l.module === portMatch) {
      // `-m tcp` needs `-p tcp`; we never write two port matches. (`-p` alone, as IPVS
      // mode's `-p tcp ... -m set` rules have it, prints as it is.)
      if (l.name !== proto || ++portMatches > 1) return null;
    }
    if (l.name === targetName) {
      out += ` -j ${targetName}${saved}`;
      sawTarget = true;
    } else {
      out += ` -m ${l.name}${saved}`;
    }
  }
  if (targetName !== '' && !sawTarget) out += ` -j ${targetName}`;
  return out;
}
