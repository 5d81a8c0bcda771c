/**
 * ipvsadm's command-line grammar (ipvsadm 1.31, popt), as data: one argument vector in,
 * one command entry out. Three users share it, so the three agree on what a line means:
 * - the reader of `ipvsadm -Sn` output (each saved line is an argument vector);
 * - the in-memory double of ipvsadm (its command line and each `ipvsadm -R` line);
 * - tests that check what the applier sends.
 *
 * Modelled on ipvsadm.c, and checked against ipvsadm 1.31 on a real kernel (the VM guest's
 * test/vm/guest/checks/ipvs-doubles.ts): short options may be bundled (`-Ln`, `-Sn`), an
 * option's value may be attached or the next word, `-p`'s timeout is optional (bare `-p` =
 * 360 s), `-b` is checked against the scheduler given before it, the first option must be a
 * command, and the commands' compulsory and illegal options follow its commands_v_options
 * table for what Switchboard and kube-proxy use. A direct-routing or tunnel real server
 * takes the service's port, whatever port was given.
 *
 * A parse error is one of three kinds, as in ipvsadm, which matters inside `ipvsadm -R`:
 * - `fail`: ipvsadm's own `fail(2, ...)` ("illegal real server address[:port] specified",
 *   "unexpected argument X", ...): exit code 2, and a restore stops there;
 * - `usage`: the line starts with no command (a `#` comment, `-t ... -A`): only "Try
 *   `ipvsadm -h' ..." on stderr, exit code 255, and a restore stops there;
 * - `option`: popt refused an option after the command (`--bogus: unknown option`,
 *   `-w: missing argument`): the line fails (exit code 255 if it is the last) but a
 *   restore goes on with the next line.
 */
import { type IPFamily, parseIP } from '../model/ip.js';
import type { Protocol } from '../model/types.js';

export type IpvsadmCommandName =
  | 'add-service'
  | 'edit-service'
  | 'delete-service'
  | 'clear'
  | 'list'
  | 'zero'
  | 'add-server'
  | 'edit-server'
  | 'delete-server'
  | 'set'
  | 'restore'
  | 'save'
  | 'version'
  | 'help';

export type IpvsadmForwarding = 'masq' | 'gate' | 'ipip';

/** A virtual service as given with -t/-u/--sctp-service (address) or -f (firewall mark). */
export type ServiceSpec =
  | { kind: 'address'; protocol: Protocol; family: IPFamily; address: string; port: number }
  | { kind: 'fwmark'; fwmark: number; family: IPFamily };

export interface RealServerSpec {
  family: IPFamily;
  address: string;
  /** null: not given (the service's port is used) */
  port: number | null;
}

export interface IpvsadmEntry {
  command: IpvsadmCommandName;
  service?: ServiceSpec;
  scheduler?: string;
  /** persistence timeout in seconds (bare `-p` = 360) */
  persistent?: number;
  netmask?: string;
  persistenceEngine?: string;
  schedFlags?: string[];
  onePacket?: boolean;
  server?: RealServerSpec;
  forwarding?: IpvsadmForwarding;
  weight?: number;
  upperThreshold?: number;
  lowerThreshold?: number;
  numeric?: boolean;
  /** `-L --timeout` */
  listTimeout?: boolean;
  /** other list-format switches (--stats, --rate, --exact, ...), by name */
  listOptions?: string[];
  /** `--set tcp tcpfin udp` */
  timeouts?: [number, number, number];
  /** tunnel options of a real server (`--tun-type ...`), as given */
  tunnel?: string[];
}

export type IpvsadmParseErrorKind = 'fail' | 'usage' | 'option';

/** What ipvsadm prints for a `usage` error (argv[0] is `ipvsadm` when run through PATH). */
export const IPVSADM_TRY_HELP = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.";

export class IpvsadmParseError extends Error {
  override readonly name = 'IpvsadmParseError';
  /** the exit code ipvsadm ends with (for `option`: the line's result, -1) */
  readonly exitCode: number;
  constructor(
    message: string,
    readonly kind: IpvsadmParseErrorKind,
  ) {
    super(message);
    this.exitCode = kind === 'fail' ? 2 : 255;
  }

  /** Whether `ipvsadm -R` stops at this line (else it goes on with the next one). */
  get stopsRestore(): boolean {
    return this.kind !== 'option';
  }

  /** ipvsadm's stderr for it. */
  get stderr(): string {
    return this.kind === 'usage' ? `${IPVSADM_TRY_HELP}\n` : `${this.message}\n`;
  }
}

/** ipvsadm's default persistence timeout (IPVS_SVC_PERSISTENT_TIMEOUT). */
export const DEFAULT_PERSISTENCE_SECONDS = 360;
/** ipvsadm's MAX_TIMEOUT: 31 days. */
const MAX_TIMEOUT = 86400 * 31;
const INT_MAX = 2147483647;
/** ipvsadm's default scheduler, used to check `-b` when no `-s` came first. */
const DEFAULT_SCHEDULER = 'wlc';

const COMMAND_SHORT: Readonly<Record<string, IpvsadmCommandName>> = {
  A: 'add-service',
  E: 'edit-service',
  D: 'delete-service',
  C: 'clear',
  L: 'list',
  l: 'list',
  Z: 'zero',
  a: 'add-server',
  e: 'edit-server',
  d: 'delete-server',
  R: 'restore',
  S: 'save',
  h: 'help',
  v: 'version',
};

const COMMAND_LONG: Readonly<Record<string, IpvsadmCommandName>> = {
  'add-service': 'add-service',
  'edit-service': 'edit-service',
  'delete-service': 'delete-service',
  clear: 'clear',
  list: 'list',
  zero: 'zero',
  'add-server': 'add-server',
  'edit-server': 'edit-server',
  'delete-server': 'delete-server',
  set: 'set',
  restore: 'restore',
  save: 'save',
  help: 'help',
  version: 'version',
};

type ValueOption =
  | 'tcp-service'
  | 'udp-service'
  | 'sctp-service'
  | 'fwmark-service'
  | 'scheduler'
  | 'persistent'
  | 'netmask'
  | 'real-server'
  | 'weight'
  | 'u-threshold'
  | 'l-threshold'
  | 'pe'
  | 'sched-flags'
  | 'tun-type'
  | 'tun-port';

type FlagOption =
  | 'masquerading'
  | 'ipip'
  | 'gatewaying'
  | 'numeric'
  | 'connection'
  | 'ipv6'
  | 'ops'
  | 'timeout'
  | 'stats'
  | 'rate'
  | 'thresholds'
  | 'persistent-conn'
  | 'nosort'
  | 'sort'
  | 'exact'
  | 'tun-nocsum'
  | 'tun-csum'
  | 'tun-remcsum';

const VALUE_SHORT: Readonly<Record<string, ValueOption>> = {
  t: 'tcp-service',
  u: 'udp-service',
  f: 'fwmark-service',
  s: 'scheduler',
  p: 'persistent',
  M: 'netmask',
  r: 'real-server',
  w: 'weight',
  x: 'u-threshold',
  y: 'l-threshold',
  b: 'sched-flags',
};

const FLAG_SHORT: Readonly<Record<string, FlagOption>> = {
  m: 'masquerading',
  i: 'ipip',
  g: 'gatewaying',
  n: 'numeric',
  c: 'connection',
  '6': 'ipv6',
  o: 'ops',
  X: 'exact',
};

const VALUE_LONG = new Set<string>([
  'tcp-service',
  'udp-service',
  'sctp-service',
  'fwmark-service',
  'scheduler',
  'persistent',
  'netmask',
  'real-server',
  'weight',
  'u-threshold',
  'l-threshold',
  'pe',
  'sched-flags',
  'tun-type',
  'tun-port',
]);
const FLAG_LONG = new Set<string>([
  'masquerading',
  'ipip',
  'gatewaying',
  'numeric',
  'connection',
  'ipv6',
  'ops',
  'timeout',
  'stats',
  'rate',
  'thresholds',
  'persistent-conn',
  'nosort',
  'sort',
  'exact',
  'tun-nocsum',
  'tun-csum',
  'tun-remcsum',
]);

const SCHED_FLAGS_ANY = new Set(['flag-1', 'flag-2', 'flag-3']);

function fail(message: string): never {
  throw new IpvsadmParseError(message, 'fail');
}

/** popt refused an option (`WORD: unknown option`, `WORD: missing argument`). */
function poptFail(message: string): never {
  throw new IpvsadmParseError(message, 'option');
}

function usage(why: string): never {
  throw new IpvsadmParseError(why, 'usage');
}

function number(text: string, min: number, max: number): number | null {
  if (!/^\d+$/.test(text)) return null;
  const n = Number(text);
  return n >= min && n <= max ? n : null;
}

/** `ADDR:PORT`, `[ADDR6]:PORT`, or a bare address (port null). Numeric only: no DNS. */
export function parseHostPort(
  text: string,
): { family: IPFamily; address: string; port: number | null } | null {
  let host = text;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return null;
    host = text.slice(1, close);
    // ipvsadm's parse_service: a bracketed address must be followed by `:PORT`
    const rest = text.slice(close + 1);
    if (!rest.startsWith(':')) return null;
    portText = rest.slice(1);
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 1) {
      host = text.slice(0, text.indexOf(':'));
      portText = text.slice(text.indexOf(':') + 1);
    } else if (colons > 1) {
      // A bare IPv6 address: ipvsadm needs brackets to give a port.
      host = text;
    }
  }
  const ip = parseIP(host);
  // ipvsadm reads addresses with inet_pton: no sloppy forms (leading zeros) are accepted.
  if (!ip || (ip.family === 'IPv4' && ip.text !== host)) return null;
  let port: number | null = null;
  if (portText !== undefined) {
    port = number(portText, 0, 65535);
    if (port === null) return null;
  }
  return { family: ip.family, address: ip.text, port };
}

function commandOf(entry: Partial<IpvsadmEntry>, name: IpvsadmCommandName): void {
  if (entry.command !== undefined && entry.command !== name) {
    fail('multiple commands specified');
  }
  entry.command = name;
}

/** The commands that change one virtual server or its real servers: all need a service address. */
export const SERVICE_COMMANDS: ReadonlySet<IpvsadmCommandName> = new Set<IpvsadmCommandName>([
  'add-service',
  'edit-service',
  'delete-service',
  'add-server',
  'edit-server',
  'delete-server',
]);
const NEEDS_SERVER = new Set<IpvsadmCommandName>(['add-server', 'edit-server', 'delete-server']);
const SERVICE_OPTIONS = new Set<IpvsadmCommandName>(['add-service', 'edit-service']);
const SERVER_OPTIONS = new Set<IpvsadmCommandName>(['add-server', 'edit-server']);

/** Whether option `given` may go with `command` (the part of commands_v_options this models). */
function checkLegal(entry: IpvsadmEntry, seen: Set<string>): void {
  const cmd = entry.command;
  const illegal = (option: string) => fail(`Illegal '${option}' option with the '${cmd}' command`);
  if (SERVICE_COMMANDS.has(cmd) && !entry.service) {
    fail(`You need to supply the 'service-address' option for the '${cmd}' command`);
  }
  if (NEEDS_SERVER.has(cmd) && !entry.server) {
    fail(`You need to supply the 'real-server' option for the '${cmd}' command`);
  }
  if (!NEEDS_SERVER.has(cmd) && entry.server) illegal('real-server');
  for (const option of ['scheduler', 'persistent', 'netmask', 'pe', 'sched-flags', 'ops']) {
    if (seen.has(option) && !SERVICE_OPTIONS.has(cmd)) illegal(option);
  }
  for (const option of ['weight', 'forwarding-method', 'u-threshold', 'l-threshold']) {
    if (seen.has(option) && !SERVER_OPTIONS.has(cmd)) illegal(option);
  }
  if (cmd === 'save' || cmd === 'restore' || cmd === 'clear' || cmd === 'set') {
    if (entry.service) illegal('service-address');
  }
  if (SERVICE_OPTIONS.has(cmd) && entry.service?.kind === 'address') {
    if (entry.service.port === 0 && !entry.persistent) fail('Zero port specified for non-persistent service');
    if (entry.onePacket && entry.service.protocol !== 'UDP')
      fail('One-Packet Scheduling is only for UDP virtual services');
  }
  if (SERVER_OPTIONS.has(cmd) && entry.service && entry.server) {
    if (entry.server.family !== entry.service.family && entry.forwarding !== 'ipip')
      fail('Different address family is allowed only for tunneling servers');
  }
}

/**
 * Parses one ipvsadm argument vector (without the program name). Throws IpvsadmParseError
 * with ipvsadm's message and exit code.
 */
export function parseIpvsadmArgs(argv: readonly string[]): IpvsadmEntry {
  const entry: Partial<IpvsadmEntry> = {};
  const seen = new Set<string>();
  const positional: string[] = [];
  let i = 0;
  /** popt names a refused option as it was written (`-w`, `--weight`). */
  let written = '';
  const takeValue = (attached: string | undefined): string => {
    if (attached !== undefined && attached !== '') return attached;
    const next = argv[i + 1];
    if (next === undefined) poptFail(`${written}: missing argument`);
    i++;
    return next;
  };
  // ipvsadm reads the first option alone: anything but a command there is a usage error.
  const firstIsCommand = (isCommand: boolean): void => {
    if (entry.command === undefined && !isCommand) usage('the first option is not a command');
  };
  // popt's optional argument (`-p [timeout]`): attached, or the next word unless it is an option.
  const takeOptional = (attached: string | undefined): string | undefined => {
    if (attached !== undefined && attached !== '') return attached;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('-')) return undefined;
    i++;
    return next;
  };
  const onValue = (option: ValueOption, value: string): void => {
    applyValue(entry, option, value, seen);
  };
  for (; i < argv.length; i++) {
    const word = argv[i]!;
    if (word.startsWith('--') && word.length > 2) {
      const eq = word.indexOf('=');
      const name = eq === -1 ? word.slice(2) : word.slice(2, eq);
      const attached = eq === -1 ? undefined : word.slice(eq + 1);
      written = `--${name}`;
      const command = COMMAND_LONG[name];
      firstIsCommand(command !== undefined);
      if (command !== undefined) {
        commandOf(entry, command);
      } else if (name === 'persistent') {
        applyPersistent(entry, takeOptional(attached), seen);
      } else if (VALUE_LONG.has(name)) {
        onValue(name as ValueOption, takeValue(attached));
      } else if (FLAG_LONG.has(name)) {
        applyFlag(entry, name as FlagOption, seen);
      } else {
        poptFail(`${word}: unknown option`);
      }
      continue;
    }
    if (word.startsWith('-') && word.length > 1) {
      for (let c = 1; c < word.length; c++) {
        const ch = word[c]!;
        const rest = word.slice(c + 1);
        written = `-${ch}`;
        firstIsCommand(COMMAND_SHORT[ch] !== undefined);
        if (COMMAND_SHORT[ch] !== undefined) {
          commandOf(entry, COMMAND_SHORT[ch]);
        } else if (ch === 'p') {
          applyPersistent(entry, takeOptional(rest), seen);
          break;
        } else if (VALUE_SHORT[ch] !== undefined) {
          onValue(VALUE_SHORT[ch], takeValue(rest));
          break;
        } else if (FLAG_SHORT[ch] !== undefined) {
          applyFlag(entry, FLAG_SHORT[ch], seen);
        } else {
          poptFail(`-${ch}: unknown option`);
        }
      }
      continue;
    }
    positional.push(word);
  }
  if (entry.command === undefined) usage('no command given');
  if (entry.command === 'set') {
    if (positional.length < 3) fail('--set option requires 3 timeout values');
    const values = positional.slice(0, 3).map((p) => {
      const n = number(p, 0, MAX_TIMEOUT);
      if (n === null) fail(`invalid timeout value \`${p}' specified`);
      return n;
    });
    entry.timeouts = values as [number, number, number];
    positional.splice(0, 3);
  }
  if (positional.length > 0) fail(`unexpected argument ${positional[0]}`);
  const done = entry as IpvsadmEntry;
  checkLegal(done, seen);
  if (SERVER_OPTIONS.has(done.command)) {
    done.forwarding ??= 'gate';
    done.weight ??= 1;
    // ipvsadm: a direct-routing or tunnel real server takes the service's port
    if (done.forwarding !== 'masq' && done.service?.kind === 'address' && done.server) {
      done.server = { ...done.server, port: done.service.port };
    }
  }
  return done;
}

function applyPersistent(entry: Partial<IpvsadmEntry>, value: string | undefined, seen: Set<string>): void {
  seen.add('persistent');
  if (value === undefined) {
    entry.persistent = DEFAULT_PERSISTENCE_SECONDS;
    return;
  }
  const n = number(value, 1, MAX_TIMEOUT);
  if (n === null) fail(`invalid timeout value \`${value}' specified`);
  entry.persistent = n;
}

function applyFlag(entry: Partial<IpvsadmEntry>, flag: FlagOption, seen: Set<string>): void {
  seen.add(flag);
  switch (flag) {
    case 'masquerading':
    case 'ipip':
    case 'gatewaying': {
      const fwd = flag === 'masquerading' ? 'masq' : flag === 'ipip' ? 'ipip' : 'gate';
      if (entry.forwarding !== undefined && entry.forwarding !== fwd) {
        fail("The option 'forwarding-method' is given more than once");
      }
      seen.add('forwarding-method');
      entry.forwarding = fwd;
      return;
    }
    case 'numeric':
      entry.numeric = true;
      return;
    case 'ops':
      entry.onePacket = true;
      return;
    case 'timeout':
      entry.listTimeout = true;
      return;
    case 'tun-nocsum':
    case 'tun-csum':
    case 'tun-remcsum':
      entry.tunnel = [...(entry.tunnel ?? []), `--${flag}`];
      return;
    case 'ipv6':
      if (entry.service?.kind !== 'fwmark') fail('-6 used before -f\n');
      entry.service.family = 'IPv6';
      return;
    default:
      entry.listOptions = [...(entry.listOptions ?? []), flag];
  }
}

const SERVICE_PROTOCOL: Readonly<Record<string, Protocol>> = {
  'tcp-service': 'TCP',
  'udp-service': 'UDP',
  'sctp-service': 'SCTP',
};

function applyValue(
  entry: Partial<IpvsadmEntry>,
  option: ValueOption,
  value: string,
  seen: Set<string>,
): void {
  if (seen.has(option)) fail(`multiple '${option}' options specified`);
  seen.add(option);
  switch (option) {
    case 'tcp-service':
    case 'udp-service':
    case 'sctp-service': {
      if (entry.service) fail("multiple 'service-address' options specified");
      const hp = parseHostPort(value);
      if (!hp) fail('illegal virtual server address[:port] specified');
      entry.service = {
        kind: 'address',
        protocol: SERVICE_PROTOCOL[option]!,
        family: hp.family,
        address: hp.address,
        port: hp.port ?? 0,
      };
      return;
    }
    case 'fwmark-service': {
      if (entry.service) fail("multiple 'service-address' options specified");
      const mark = number(value, 1, 0xffffffff);
      if (mark === null) fail(`invalid fwmark value \`${value}' specified`);
      entry.service = { kind: 'fwmark', fwmark: mark, family: 'IPv4' };
      return;
    }
    case 'scheduler':
      entry.scheduler = value;
      return;
    case 'persistent':
      applyPersistent(entry, value, seen);
      return;
    case 'netmask':
      entry.netmask = value;
      return;
    case 'pe':
      entry.persistenceEngine = value;
      return;
    case 'sched-flags': {
      const scheduler = entry.scheduler ?? DEFAULT_SCHEDULER;
      const flags = value.split(',');
      for (const flag of flags) {
        if (SCHED_FLAGS_ANY.has(flag)) continue;
        const m = /^(sh|mh)-(fallback|port)$/.exec(flag);
        if (!m) fail(`invalid scheduler flag \`${flag}'`);
        if (m[1] !== scheduler) fail(`incompatible scheduler flag \`${flag}'`);
      }
      entry.schedFlags = flags;
      return;
    }
    case 'real-server': {
      const hp = parseHostPort(value);
      if (!hp) fail('illegal real server address[:port] specified');
      entry.server = hp;
      return;
    }
    case 'weight': {
      // ipvsadm 1.31 takes any int (the kernel's weight is an int); 65535 was older ipvsadm's limit
      const w = number(value, 0, INT_MAX);
      if (w === null) fail('illegal weight specified');
      entry.weight = w;
      return;
    }
    case 'u-threshold':
    case 'l-threshold': {
      const n = number(value, 0, INT_MAX);
      if (n === null) fail(`illegal ${option === 'u-threshold' ? 'u_threshold' : 'l_threshold'} specified`);
      if (option === 'u-threshold') entry.upperThreshold = n;
      else entry.lowerThreshold = n;
      return;
    }
    case 'tun-type':
    case 'tun-port':
      entry.tunnel = [...(entry.tunnel ?? []), `--${option}`, value];
      return;
  }
}

/**
 * Splits an `ipvsadm -R` input line into words as ipvsadm's config_stream does
 * (whitespace-separated; double quotes group). Blank lines give no words.
 * Not cleanup.ts's splitRuleWords: `\` means nothing to config_stream, and escapes for iptables.
 */
export function splitIpvsadmLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quoted = false;
  for (const c of line) {
    if (c === '"') {
      quoted = !quoted;
      inWord = true;
    } else if (!quoted && /\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

// ---------------------------------------------------------------------------------------------
// A fast path for the lines Switchboard writes and `ipvsadm -Sn` prints: 110,000 lines at
// 10,000 services × 10 real servers go through here on a cold start, where the general
// grammar costs about 1 s of CPU (about 24 s in the test VM's emulation). It answers exactly
// what parseIpvsadmArgs answers, or null to leave the line to it (test/ipvs-apply/ipvsadm.test.ts).

const FAST_COMMANDS: Readonly<Record<string, IpvsadmCommandName>> = {
  '-A': 'add-service',
  '-E': 'edit-service',
  '-D': 'delete-service',
  '-a': 'add-server',
  '-e': 'edit-server',
  '-d': 'delete-server',
};
const FAST_PROTOCOLS: Readonly<Record<string, Protocol>> = {
  '-t': 'TCP',
  '-u': 'UDP',
  '--sctp-service': 'SCTP',
};
const FAST_FORWARDING: Readonly<Record<string, IpvsadmForwarding>> = {
  '-m': 'masq',
  '-g': 'gate',
  '-i': 'ipip',
};
const CANONICAL_IPV4_PORT =
  /^((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}):(\d{1,5})$/;

function fastHostPort(text: string): { family: IPFamily; address: string; port: number } | null {
  const m = CANONICAL_IPV4_PORT.exec(text);
  if (m) {
    const port = Number(m[2]);
    return port <= 65535 ? { family: 'IPv4', address: m[1]!, port } : null;
  }
  if (!text.startsWith('[')) return null;
  const hp = parseHostPort(text);
  return hp && hp.port !== null ? { family: hp.family, address: hp.address, port: hp.port } : null;
}

function fastNumber(text: string | undefined, min: number, max: number): number | null {
  return text === undefined ? null : number(text, min, max);
}

/** The common line shapes, parsed directly; null for anything else. */
function parseCommonLine(line: string): IpvsadmEntry | null {
  const w = line.split(' ');
  const command = FAST_COMMANDS[w[0] ?? ''];
  const protocol = FAST_PROTOCOLS[w[1] ?? ''];
  const svc = w[2] === undefined ? null : fastHostPort(w[2]);
  if (!command || !protocol || !svc || svc.port === 0) return null;
  const entry: IpvsadmEntry = { command, service: { kind: 'address', protocol, ...svc } };
  let i = 3;
  if (command === 'add-service' || command === 'edit-service') {
    if (w[i] === '-s') {
      if (w[i + 1] === undefined || w[i + 1]!.startsWith('-')) return null;
      entry.scheduler = w[i + 1]!;
      i += 2;
    }
    if (w[i] === '-p') {
      const p = fastNumber(w[i + 1], 1, MAX_TIMEOUT);
      if (p === null) return null;
      entry.persistent = p;
      i += 2;
    }
  } else if (command !== 'delete-service') {
    if (w[i] !== '-r') return null;
    const server = w[i + 1] === undefined ? null : fastHostPort(w[i + 1]!);
    // another family (only tunnels may) is left to the general grammar
    if (!server || server.family !== svc.family) return null;
    entry.server = server;
    i += 2;
    if (command !== 'delete-server') {
      const forwarding = FAST_FORWARDING[w[i] ?? ''];
      const weight = w[i + 1] === '-w' ? fastNumber(w[i + 2], 0, INT_MAX) : null;
      if (!forwarding || weight === null) return null;
      // direct routing and tunnels take the service's port
      if (forwarding !== 'masq') entry.server = { ...server, port: svc.port };
      entry.forwarding = forwarding;
      entry.weight = weight;
      i += 3;
    }
  }
  return i === w.length ? entry : null;
}

/** One `ipvsadm -R` or `ipvsadm -Sn` line, read as ipvsadm reads it (throws IpvsadmParseError). */
export function parseIpvsadmLine(line: string): IpvsadmEntry {
  return parseCommonLine(line.trim()) ?? parseIpvsadmArgs(splitIpvsadmLine(line));
}
