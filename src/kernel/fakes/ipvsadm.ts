/**
 * An in-memory ipvsadm (1.31) with an IPVS table behind it, for hosts without ip_vs.
 *
 * It takes the argument vectors and `-R` input the real tool takes, reads them with the
 * tool's grammar (ipvsadm-args.ts), holds the table, and prints `-Sn`, `-Ln` and
 * `-L --timeout` in ipvsadm's formats. The quirks measured on a real kernel are modelled,
 * and checked against real ipvsadm in the VM guest, script by script
 * (test/vm/guest/checks/ipvs-doubles.ts):
 * - `-R` applies line by line. A kernel error ("Service already exists", "No such
 *   destination", ...) prints one line without a line number and the batch goes on, and so
 *   does an option popt refuses (`--bogus: unknown option`). The exit code is the *last*
 *   line's: 0, or 255 when the last line failed. ipvsadm's own parse errors ("illegal ...
 *   specified", "unexpected argument", exit 2) and a line that does not start with a command
 *   (a `#` comment; only "Try `ipvsadm -h' ..." on stderr, exit 255) stop the batch, keeping
 *   the lines before it (see ipvsadm-args.ts).
 * - A single command that the kernel refuses exits 255.
 * - `-Sn` normalises: `-w` always printed, a bare `-p` as `-p 360`, scheduler flags
 *   fallback-first, `--tun-type ipip` after a tunnel real server; a direct-routing or tunnel
 *   real server has the service's port. `-Ln -t ADDR:PORT` prints no version line.
 * - Listings are sorted as ipvsadm sorts them: firewall mark, family, protocol, address,
 *   port, each compared by a subtraction in a 32-bit int. For addresses 2^31 or more apart
 *   (10.x against 192.168.x) that is no order, and ipvsadm's output then depends on the
 *   kernel's hash table, which is not modelled here: such tables list in some order, not
 *   ipvsadm's. Nothing may depend on the order (the readers sort).
 * - Without ip_vs every invocation fails like the real tool ("Can't initialize ipvs").
 * Tests can set per-real-server connection counts, remove schedulers (a missing module),
 * and interfere after a restore (another agent changing the table).
 */
import { IPVS_SCHEDULERS, virtualServerKey } from '../../backends/ipvs/state.js';
import { type IPFamily, parseIP } from '../../model/ip.js';
import type { Protocol } from '../../model/types.js';
import type { RunResult } from '../exec.js';
import {
  type IpvsadmEntry,
  type IpvsadmForwarding,
  IpvsadmParseError,
  parseIpvsadmArgs,
  parseIpvsadmLine,
  type ServiceSpec,
} from '../ipvsadm-args.js';

/**
 * The schedulers the modelled kernel knows: those KubeProxyConfiguration accepts, plus fo,
 * ovf and twos, which kube-proxy does not offer but ipvsadm takes.
 */
export const KERNEL_SCHEDULERS = [...IPVS_SCHEDULERS, 'fo', 'ovf', 'twos'] as const;

interface FakeDest {
  family: IPFamily;
  address: string;
  port: number;
  forwarding: IpvsadmForwarding;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  tunnel: string[];
  active: number;
  inactive: number;
}

interface FakeService {
  spec: ServiceSpec;
  scheduler: string;
  /** 0 = not persistent */
  persistent: number;
  netmask?: string;
  persistenceEngine?: string;
  flags: Set<string>;
  onePacket: boolean;
  dests: Map<string, FakeDest>;
}

class KernelError extends Error {}

const PROTOCOL_NUMBER: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };
const SAVE_OPTION: Readonly<Record<Protocol, string>> = { TCP: '-t', UDP: '-u', SCTP: '--sctp-service' };
const SAVE_FORWARDING: Readonly<Record<IpvsadmForwarding, string>> = { masq: '-m', gate: '-g', ipip: '-i' };
const LIST_FORWARDING: Readonly<Record<IpvsadmForwarding, string>> = {
  masq: 'Masq',
  gate: 'Route',
  ipip: 'Tunnel',
};

function specKey(spec: ServiceSpec): string {
  return spec.kind === 'address'
    ? `${spec.protocol} ${spec.address} ${spec.port}`
    : `FWM ${spec.fwmark} ${spec.family}`;
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** An address as the kernel's union nf_inet_addr: four 32-bit words (IPv4: the first, then zeros). */
function addressWords(address: string): number[] {
  const bytes = parseIP(address)?.bytes ?? new Uint8Array(4);
  const words = [0, 0, 0, 0];
  for (let i = 0; i < bytes.length; i++) words[i >> 2] = (words[i >> 2]! * 256 + bytes[i]!) >>> 0;
  return words;
}

/** C's `int r = (u32)a - (u32)b`: wraps, so it is no order for values 2^31 or more apart. */
const intDiff = (a: number, b: number) => (a - b) | 0;

const AF = { IPv4: 2, IPv6: 10 } as const;

/** The address part of ipvs_cmp_services and ipvs_cmp_dests: `family` (a's) says how many words count. */
function compareAddresses(family: IPFamily, a: string, b: string): number {
  const wa = addressWords(a);
  const wb = addressWords(b);
  let r = 0;
  for (let i = 0; r === 0 && i < (family === 'IPv6' ? 4 : 1); i++) r = intDiff(wa[i]!, wb[i]!);
  return r;
}

/** libipvs's ipvs_cmp_services: firewall mark, family, protocol number, address, port. */
function compareServices(a: FakeService, b: FakeService): number {
  const mark = (s: FakeService) => (s.spec.kind === 'fwmark' ? s.spec.fwmark : 0);
  const r = intDiff(mark(a), mark(b)) || AF[a.spec.family] - AF[b.spec.family];
  if (r !== 0 || a.spec.kind === 'fwmark' || b.spec.kind === 'fwmark') return r;
  const proto = PROTOCOL_NUMBER[a.spec.protocol] - PROTOCOL_NUMBER[b.spec.protocol];
  if (proto !== 0) return proto;
  return compareAddresses(a.spec.family, a.spec.address, b.spec.address) || a.spec.port - b.spec.port;
}

/** libipvs's ipvs_cmp_dests: address (families are not compared: v4 and v6 tunnel servers mix), port. */
function compareDests(a: FakeDest, b: FakeDest): number {
  return compareAddresses(a.family, a.address, b.address) || a.port - b.port;
}

/** glibc's qsort, a top-down merge sort: with a comparator that is no order, the algorithm decides. */
function mergeSort<T>(items: T[], compare: (a: T, b: T) => number): T[] {
  if (items.length <= 1) return items;
  const half = items.length >> 1;
  const left = mergeSort(items.slice(0, half), compare);
  const right = mergeSort(items.slice(half), compare);
  const out: T[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length && j < right.length) {
    out.push(compare(left[i]!, right[j]!) <= 0 ? left[i++]! : right[j++]!);
  }
  return out.concat(left.slice(i), right.slice(j));
}

/** ipvsadm's print_sched_flags: fallback first, then port; flag-N for other schedulers. */
function schedFlagsText(svc: FakeService): string {
  const order = ['sh-fallback', 'sh-port', 'mh-fallback', 'mh-port', 'flag-1', 'flag-2', 'flag-3'];
  return order.filter((f) => svc.flags.has(f)).join(',');
}

export interface FakeIpvsadmOptions {
  /** false: the kernel has no ip_vs (every invocation fails as on this project's hosts) */
  loaded?: boolean;
}

export class FakeIpvsadm {
  loaded: boolean;
  readonly schedulers = new Set<string>(KERNEL_SCHEDULERS);
  timeouts = { tcp: 900, tcpFin: 120, udp: 300 };
  /** called after each `-R` batch: lets a test play another agent changing the table */
  afterRestore: ((fake: FakeIpvsadm) => void) | null = null;
  private readonly services = new Map<string, FakeService>();

  constructor(options: FakeIpvsadmOptions = {}) {
    this.loaded = options.loaded ?? true;
  }

  /** Runs `ipvsadm ARGS` (stdin for `-R`). */
  run(args: readonly string[], input = ''): RunResult {
    if (!this.loaded) {
      return {
        stdout: '',
        stderr:
          "Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n",
        exitCode: 2,
      };
    }
    let entry: IpvsadmEntry;
    try {
      entry = parseIpvsadmArgs(args);
    } catch (e) {
      return { stdout: '', ...this.parseFailure(e) };
    }
    switch (entry.command) {
      case 'restore':
        return this.restore(input);
      case 'save':
        return { stdout: this.save(), stderr: '', exitCode: 0 };
      case 'list':
        return this.list(entry);
      case 'version':
        return {
          stdout: 'ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n',
          stderr: '',
          exitCode: 0,
        };
      case 'help':
        return { stdout: 'ipvsadm v1.31 2019/12/24\n', stderr: '', exitCode: 0 };
      default:
        try {
          this.execute(entry);
          return { stdout: '', stderr: '', exitCode: 0 };
        } catch (e) {
          if (e instanceof KernelError) return { stdout: '', stderr: `${e.message}\n`, exitCode: 255 };
          throw e;
        }
    }
  }

  private parseFailure(e: unknown): { stderr: string; exitCode: number } {
    if (!(e instanceof IpvsadmParseError)) throw e;
    return { stderr: e.stderr, exitCode: e.exitCode };
  }

  /** ipvsadm's restore_table: each line run as a command; the exit code is the last line's. */
  private restore(input: string): RunResult {
    let stderr = '';
    let result = 0;
    for (const line of input.split('\n')) {
      if (line.trim() === '') continue;
      let entry: IpvsadmEntry;
      try {
        entry = parseIpvsadmLine(line);
        // `-R` inside `-R`: ipvsadm will not read stdin twice
        if (entry.command === 'restore') throw new IpvsadmParseError('-R in -R', 'usage');
      } catch (e) {
        const failure = this.parseFailure(e);
        stderr += failure.stderr;
        if ((e as IpvsadmParseError).stopsRestore) {
          this.afterRestore?.(this);
          return { stdout: '', stderr, exitCode: failure.exitCode };
        }
        result = failure.exitCode;
        continue;
      }
      result = 0;
      try {
        this.execute(entry);
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        stderr += `${e.message}\n`;
        result = 255;
      }
    }
    this.afterRestore?.(this);
    return { stdout: '', stderr, exitCode: result };
  }

  private service(spec: ServiceSpec | undefined, missing: string): FakeService {
    const svc = spec ? this.services.get(specKey(spec)) : undefined;
    if (!svc) throw new KernelError(missing);
    return svc;
  }

  private execute(entry: IpvsadmEntry): void {
    switch (entry.command) {
      case 'add-service': {
        const key = specKey(entry.service!);
        if (this.services.has(key)) throw new KernelError('Service already exists');
        const svc: FakeService = {
          spec: entry.service!,
          scheduler: 'wlc',
          persistent: 0,
          flags: new Set(),
          onePacket: false,
          dests: new Map(),
        };
        this.configure(svc, entry);
        this.services.set(key, svc);
        return;
      }
      case 'edit-service':
        this.configure(this.service(entry.service, 'No such service'), entry);
        return;
      case 'delete-service':
        this.service(entry.service, 'No such service');
        this.services.delete(specKey(entry.service!));
        return;
      case 'clear':
        this.services.clear();
        return;
      case 'zero':
        return;
      case 'set': {
        const [tcp, tcpFin, udp] = entry.timeouts!;
        if (tcp > 0) this.timeouts.tcp = tcp;
        if (tcpFin > 0) this.timeouts.tcpFin = tcpFin;
        if (udp > 0) this.timeouts.udp = udp;
        return;
      }
      case 'add-server': {
        const svc = this.service(entry.service, 'Service not defined');
        const dest = this.destFor(svc, entry);
        if (svc.dests.has(hostPort(dest.address, dest.port)))
          throw new KernelError('Destination already exists');
        svc.dests.set(hostPort(dest.address, dest.port), dest);
        return;
      }
      case 'edit-server': {
        const svc = this.service(entry.service, 'Service not defined');
        const update = this.destFor(svc, entry);
        const dest = svc.dests.get(hostPort(update.address, update.port));
        if (!dest) throw new KernelError('No such destination');
        Object.assign(dest, {
          forwarding: update.forwarding,
          weight: update.weight,
          upperThreshold: update.upperThreshold,
          lowerThreshold: update.lowerThreshold,
          tunnel: update.tunnel,
        });
        return;
      }
      case 'delete-server': {
        const svc = this.service(entry.service, 'Service not defined');
        const server = entry.server!;
        const key = hostPort(server.address, server.port ?? this.servicePort(svc));
        if (!svc.dests.delete(key)) throw new KernelError('No such destination');
        return;
      }
      default:
        throw new KernelError(`${entry.command} cannot be run here`);
    }
  }

  private servicePort(svc: FakeService): number {
    return svc.spec.kind === 'address' ? svc.spec.port : 0;
  }

  /** -A/-E: every setting comes from the line; what is not given is reset to ipvsadm's default. */
  private configure(svc: FakeService, entry: IpvsadmEntry): void {
    const scheduler = entry.scheduler ?? 'wlc';
    if (!this.schedulers.has(scheduler)) throw new KernelError('Scheduler or persistence engine not found');
    svc.scheduler = scheduler;
    svc.persistent = entry.persistent ?? 0;
    svc.netmask = entry.netmask;
    svc.persistenceEngine = entry.persistenceEngine;
    svc.flags = new Set(entry.schedFlags ?? []);
    svc.onePacket = entry.onePacket ?? false;
  }

  private destFor(svc: FakeService, entry: IpvsadmEntry): FakeDest {
    const server = entry.server!;
    const forwarding = entry.forwarding ?? 'gate';
    return {
      family: server.family,
      address: server.address,
      port: server.port ?? this.servicePort(svc),
      forwarding,
      weight: entry.weight ?? 1,
      upperThreshold: entry.upperThreshold ?? 0,
      lowerThreshold: entry.lowerThreshold ?? 0,
      tunnel: entry.tunnel ?? [],
      active: 0,
      inactive: 0,
    };
  }

  private sorted(): FakeService[] {
    return mergeSort([...this.services.values()], compareServices);
  }

  private sortedDests(svc: FakeService): FakeDest[] {
    return mergeSort([...svc.dests.values()], compareDests);
  }

  private saveName(svc: FakeService): string {
    const spec = svc.spec;
    if (spec.kind === 'fwmark') return spec.family === 'IPv6' ? `-f ${spec.fwmark} -6` : `-f ${spec.fwmark}`;
    return `${SAVE_OPTION[spec.protocol]} ${hostPort(spec.address, spec.port)}`;
  }

  /** `ipvsadm -Sn` */
  save(): string {
    const out: string[] = [];
    for (const svc of this.sorted()) {
      const name = this.saveName(svc);
      let line = `-A ${name} -s ${svc.scheduler}`;
      if (svc.persistent > 0) {
        line += ` -p ${svc.persistent}`;
        if (svc.netmask !== undefined) line += ` -M ${svc.netmask}`;
      }
      if (svc.persistenceEngine !== undefined) line += ` --pe ${svc.persistenceEngine}`;
      if (svc.onePacket) line += ' -o';
      const flags = schedFlagsText(svc);
      if (flags !== '') line += ` -b ${flags}`;
      out.push(line);
      for (const d of this.sortedDests(svc)) {
        let dl = `-a ${name} -r ${hostPort(d.address, d.port)} ${SAVE_FORWARDING[d.forwarding]} -w ${d.weight}`;
        if (d.forwarding === 'ipip' && !d.tunnel.includes('--tun-type')) dl += ' --tun-type ipip';
        if (d.tunnel.length > 0) dl += ` ${d.tunnel.join(' ')}`;
        out.push(dl);
      }
    }
    return out.map((l) => `${l}\n`).join('');
  }

  private list(entry: IpvsadmEntry): RunResult {
    if (entry.listTimeout) {
      const t = this.timeouts;
      return { stdout: `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpFin} ${t.udp}\n`, stderr: '', exitCode: 0 };
    }
    let services: FakeService[];
    const out: string[] = [];
    if (entry.service) {
      const one = this.services.get(specKey(entry.service));
      if (!one) return { stdout: '', stderr: 'No such service\n', exitCode: 1 };
      services = [one];
    } else {
      services = this.sorted();
      out.push('IP Virtual Server version 1.2.1 (size=4096)');
    }
    out.push(
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    );
    for (const svc of services) {
      const spec = svc.spec;
      const name =
        spec.kind === 'fwmark'
          ? `FWM  ${spec.fwmark}${spec.family === 'IPv6' ? ' IPv6' : ''}`
          : `${spec.protocol.padEnd(4)} ${hostPort(spec.address, spec.port)}`;
      let line = `${name} ${svc.scheduler}`;
      const flags = schedFlagsText(svc);
      if (flags !== '') line += ` (${flags})`;
      if (svc.persistent > 0) {
        line += ` persistent ${svc.persistent}`;
        if (svc.netmask !== undefined) line += ` mask ${svc.netmask}`;
      }
      if (svc.persistenceEngine !== undefined) line += ` pe ${svc.persistenceEngine}`;
      if (svc.onePacket) line += ' ops';
      out.push(line);
      for (const d of this.sortedDests(svc)) {
        const target = hostPort(d.address, d.port).padEnd(28);
        out.push(
          `  -> ${target} ${LIST_FORWARDING[d.forwarding].padEnd(7)} ${String(d.weight).padEnd(6)} ${String(d.active).padEnd(10)} ${String(d.inactive).padEnd(10)}`,
        );
      }
    }
    return { stdout: `${out.join('\n')}\n`, stderr: '', exitCode: 0 };
  }

  // ------------------------------------------------------------------------------------------
  // For tests

  /** Sets a real server's connection counts (as traffic would). */
  setConnections(service: string, server: string, active: number, inactive: number): void {
    const dest = this.findDest(service, server);
    dest.active = active;
    dest.inactive = inactive;
  }

  /** Deletes a real server behind the applier's back (another agent). */
  deleteRealServer(service: string, server: string): void {
    const svc = this.findService(service);
    const dest = this.findDest(service, server);
    svc.dests.delete(hostPort(dest.address, dest.port));
  }

  /** Number of virtual services (any kind). */
  get size(): number {
    return this.services.size;
  }

  /** `TCP 10.96.0.10:80` (virtualServerKey's form) → its service. */
  private findService(key: string): FakeService {
    for (const svc of this.services.values()) {
      if (svc.spec.kind === 'address' && virtualServerKey(svc.spec) === key) return svc;
    }
    throw new Error(`fake ipvsadm: no service ${key}`);
  }

  private findDest(service: string, server: string): FakeDest {
    const dest = this.findService(service).dests.get(server);
    if (!dest) throw new Error(`fake ipvsadm: no real server ${server} in ${service}`);
    return dest;
  }
}
