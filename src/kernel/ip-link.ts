/**
 * The dummy link IPVS mode binds service addresses to (`kube-ipvs0`), through `ip`
 * (iproute2) and a CommandRunner. Formats and failures as measured with iproute2 6.1 on
 * this project's hosts:
 * - `ip link show dev NAME` exits 1 with `Device "NAME" does not exist.`;
 * - `ip -o -4|-6 addr show dev NAME` prints one line per address:
 *   `2: kube-ipvs0    inet 10.96.0.1/32 scope global kube-ipvs0\       valid_lft ...`
 *   (IPv6 on a bridge that is down: `inet6 fd00::10/128 scope global tentative \ ...`; a dummy
 *   link is NOARP, so DAD never runs on kube-ipvs0 and its IPv6 addresses are usable at once:
 *   measured on Debian 12's kernel in the VM guest, with accept_dad=1 and the link down);
 * - `ip -batch -` stops at the first failing line (`Error: ipv4: Address already
 *   assigned.` then `Command failed -:N`, exit 1); with `-force` it goes on and reports each.
 * kube-proxy creates the link with netlink as type dummy and never sets it up.
 */
import type { IPFamily } from '../model/ip.js';
import { parseIP } from '../model/ip.js';
import { CommandError, type CommandRunner } from './exec.js';

export const KUBE_IPVS0 = 'kube-ipvs0';
const TIMEOUT_MS = 60_000;
const LINK_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

export interface LinkAddress {
  link: string;
  family: IPFamily;
  /** canonical IP */
  address: string;
  prefix: number;
}

/** Parses `ip -o addr show` output. */
export function parseIpAddrOneline(text: string): LinkAddress[] {
  const out: LinkAddress[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const m = /^\d+:\s+(\S+)\s+(inet6?)\s+([0-9a-fA-F.:]+)\/(\d+)\s/.exec(line);
    if (!m) throw new Error(`ip -o addr show, line ${i + 1}: cannot read ${JSON.stringify(raw)}`);
    const ip = parseIP(m[3]!);
    if (!ip) throw new Error(`ip -o addr show, line ${i + 1}: bad address ${m[3]}`);
    out.push({ link: m[1]!.replace(/@.*$/, ''), family: ip.family, address: ip.text, prefix: Number(m[4]) });
  });
  return out;
}

/** One failed line of an `ip -batch` run. */
export interface BatchFailure {
  lineNumber: number;
  line: string | undefined;
  message: string;
}

/** Reads `ip -batch` stderr: each `Command failed -:N` closes the message lines before it. */
export function parseIpBatchErrors(stderr: string, input: string): BatchFailure[] {
  const lines = input.split('\n');
  const failures: BatchFailure[] = [];
  let message: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const m = /^Command failed -:(\d+)$/.exec(line);
    if (m) {
      const n = Number(m[1]);
      failures.push({ lineNumber: n, line: lines[n - 1], message: message.join(' / ') || '(no message)' });
      message = [];
    } else {
      message.push(line);
    }
  }
  if (message.length > 0) failures.push({ lineNumber: 0, line: undefined, message: message.join(' / ') });
  return failures;
}

export class IpBatchError extends Error {
  override readonly name = 'IpBatchError';
  constructor(
    readonly failures: readonly BatchFailure[],
    readonly stderr: string,
    readonly exitCode: number,
  ) {
    const first = failures[0];
    const where = first?.line !== undefined ? ` at line ${first.lineNumber} (${first.line})` : '';
    super(
      `ip -batch failed (exit ${exitCode}, ${failures.length} failing line(s))${where}: ${first?.message ?? stderr.trim()}`,
    );
  }
}

/** `addr add 10.96.0.1/32 dev kube-ipvs0`: binds a single address (host prefix) to `link`. */
export function addressCommand(op: 'add' | 'del', address: string, link: string): string {
  const ip = parseIP(address);
  if (!ip || ip.text !== address)
    throw new Error(`ip addr ${op}: ${JSON.stringify(address)} is not a canonical IP`);
  if (!LINK_NAME.test(link)) throw new Error(`ip addr ${op}: ${JSON.stringify(link)} is not a link name`);
  return `addr ${op} ${address}/${ip.family === 'IPv4' ? 32 : 128} dev ${link}`;
}

export interface LinkTool {
  /** whether the link exists */
  exists(link: string): Promise<boolean>;
  /** `ip link add LINK type dummy` (left down, as kube-proxy leaves it) */
  addDummy(link: string): Promise<void>;
  /** `ip link del LINK` */
  remove(link: string): Promise<void>;
  /** the link's addresses of `family` (canonical, no prefix), or null when the link does not exist */
  addresses(link: string, family: IPFamily): Promise<string[] | null>;
  /** runs `commands` as one `ip -force -batch -`; throws IpBatchError naming every failed line */
  batch(commands: readonly string[]): Promise<void>;
}

export class IpLink implements LinkTool {
  constructor(private readonly runner: CommandRunner) {}

  private check(link: string): void {
    if (!LINK_NAME.test(link)) throw new Error(`ip: ${JSON.stringify(link)} is not a link name`);
  }

  async exists(link: string): Promise<boolean> {
    this.check(link);
    const r = await this.runner.run('ip', ['-o', 'link', 'show', 'dev', link], {
      reject: false,
      timeoutMs: TIMEOUT_MS,
    });
    if (r.exitCode === 0) return true;
    if (/does not exist|Cannot find device/.test(r.stderr)) return false;
    throw new CommandError('ip', ['-o', 'link', 'show', 'dev', link], r, 'exit', r.stderr.trim());
  }

  async addDummy(link: string): Promise<void> {
    this.check(link);
    await this.runner.run('ip', ['link', 'add', link, 'type', 'dummy'], { timeoutMs: TIMEOUT_MS });
  }

  async remove(link: string): Promise<void> {
    this.check(link);
    await this.runner.run('ip', ['link', 'del', link], { timeoutMs: TIMEOUT_MS });
  }

  async addresses(link: string, family: IPFamily): Promise<string[] | null> {
    this.check(link);
    const args = ['-o', family === 'IPv4' ? '-4' : '-6', 'addr', 'show', 'dev', link];
    const r = await this.runner.run('ip', args, { reject: false, timeoutMs: TIMEOUT_MS });
    if (r.exitCode !== 0) {
      if (/does not exist|Cannot find device/.test(r.stderr)) return null;
      throw new CommandError('ip', args, r, 'exit', r.stderr.trim());
    }
    return parseIpAddrOneline(r.stdout)
      .filter((a) => a.family === family)
      .map((a) => a.address);
  }

  async batch(commands: readonly string[]): Promise<void> {
    if (commands.length === 0) return;
    const input = `${commands.join('\n')}\n`;
    const r = await this.runner.run('ip', ['-force', '-batch', '-'], {
      input,
      reject: false,
      timeoutMs: TIMEOUT_MS,
    });
    if (r.exitCode !== 0 || r.stderr.trim() !== '') {
      throw new IpBatchError(parseIpBatchErrors(r.stderr, input), r.stderr, r.exitCode);
    }
  }
}
