/**
 * `ipvsadm` through a CommandRunner: read the IPVS table (`-Sn`), one virtual server with
 * its connection counts (`-Ln -t ADDR:PORT`), apply a batch (`-R` on stdin), and the
 * connection timeouts (`--set`, `-L --timeout`).
 *
 * `ipvsadm -R` goes on when the kernel refuses a line: it prints a message without a line
 * number, and its exit code is that of the *last* line only (0 when only an earlier line
 * failed; measured with ipvsadm 1.31). So `restore` fails on *any* stderr, and the caller
 * reads back what it changed. ipvsadm's own parse errors stop the batch (lines before it
 * stay applied) with exit 2, a line without a command with exit 255.
 * Every batch line is checked against ipvsadm's grammar before it is sent, and only
 * add/edit/delete of virtual and real servers are let through: never `-C`.
 */
import type { VirtualServer } from '../backends/ipvs/state.js';
import { CommandError, type CommandRunner } from './exec.js';
import {
  type IpvsadmCommandName,
  IpvsadmParseError,
  parseIpvsadmLine,
  SERVICE_COMMANDS,
} from './ipvsadm-args.js';
import {
  type IpvsTable,
  type KernelVirtualServer,
  parseIpvsadmList,
  parseIpvsadmSave,
  parseIpvsadmTimeouts,
} from './ipvsadm-output.js';

export const IPVSADM_BINARY = 'ipvsadm';
const READ_TIMEOUT_MS = 5 * 60_000;
const RESTORE_TIMEOUT_MS = 10 * 60_000;

/** A batch only changes single virtual servers: never `-C`, `-Z` or `--set`. */
const BATCH_COMMANDS = SERVICE_COMMANDS;

export interface IpvsTimeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

/** ipvsadm's stderr, one message per refused line, without its `Try ...--help` hint. */
function refusalMessages(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('Try `'));
}

/** ipvsadm refused a batch, or printed anything at all while applying it. */
export class IpvsadmRestoreError extends Error {
  override readonly name = 'IpvsadmRestoreError';
  constructor(
    readonly exitCode: number,
    readonly stderr: string,
    /** for a parse error that stopped the batch: that line */
    readonly stoppedAt?: { lineNumber: number; line: string },
  ) {
    const messages = refusalMessages(stderr);
    super(
      stoppedAt
        ? `ipvsadm -R stopped (exit ${exitCode}) at line ${stoppedAt.lineNumber} (${stoppedAt.line}): ${messages.join(' / ') || '(no message)'}`
        : `ipvsadm -R: ${messages.length} line(s) refused (ipvsadm names no line; exit ${exitCode}, the last line's): ${messages.join(' / ') || '(no message)'}`,
    );
  }

  /** one message per refused line, in batch order */
  get messages(): string[] {
    return refusalMessages(this.stderr);
  }
}

/** ipvsadm cannot talk to the kernel: no ip_vs (and it could not be loaded). */
export class IpvsUnavailableError extends Error {
  override readonly name = 'IpvsUnavailableError';
}

/**
 * Checks a batch before it is sent: every line must be an add/edit/delete of a virtual or
 * real server in ipvsadm's grammar. Throws naming the first offending line.
 */
export function checkBatch(text: string): void {
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let command: IpvsadmCommandName;
    try {
      command = parseIpvsadmLine(line).command;
    } catch (e) {
      if (e instanceof IpvsadmParseError) {
        throw new Error(`ipvsadm batch line ${i + 1} (${line}) would be refused: ${e.message}`);
      }
      throw e;
    }
    if (!BATCH_COMMANDS.has(command)) {
      throw new Error(`ipvsadm batch line ${i + 1} (${line}): ${command} is never sent by Switchboard`);
    }
  });
}

/** The first line of `text` at which ipvsadm stops a batch (a parse error that is not popt's). */
function stoppingLine(text: string): { lineNumber: number; line: string } | undefined {
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    try {
      parseIpvsadmLine(line);
    } catch (e) {
      if (e instanceof IpvsadmParseError && e.stopsRestore) return { lineNumber: i + 1, line };
    }
  }
  return undefined;
}

type ServiceId = Pick<VirtualServer, 'protocol' | 'address' | 'port'>;

const LIST_OPTION = { TCP: '-t', UDP: '-u', SCTP: '--sctp-service' } as const;

export function serviceArgs(vs: ServiceId): string[] {
  const address = vs.address.includes(':') ? `[${vs.address}]:${vs.port}` : `${vs.address}:${vs.port}`;
  return [LIST_OPTION[vs.protocol], address];
}

export interface IpvsadmTool {
  /** `ipvsadm -Sn`: the whole table, every family */
  readTable(): Promise<IpvsTable>;
  /** `ipvsadm -Ln`: the whole table with each real server's connection counts */
  readTableWithCounts(): Promise<IpvsTable>;
  /** `ipvsadm -Ln -t|-u|--sctp-service ADDR:PORT`: one virtual server with connection counts; null if missing */
  readService(vs: ServiceId): Promise<KernelVirtualServer | null>;
  /** `ipvsadm -R`; throws IpvsadmRestoreError on a non-zero exit or any stderr */
  restore(text: string): Promise<void>;
  /** `ipvsadm -L --timeout`; throws IpvsUnavailableError without ip_vs */
  timeouts(): Promise<IpvsTimeouts>;
  /** `ipvsadm --set TCP TCPFIN UDP` (seconds; 0 keeps the kernel's value) */
  setTimeouts(t: IpvsTimeouts): Promise<void>;
  /** one command, e.g. `['-A', '-t', '198.51.100.0:20000', '-s', 'rr']`; returns the result, never throws on exit */
  command(args: readonly string[]): Promise<{ exitCode: number; stderr: string }>;
}

export class Ipvsadm implements IpvsadmTool {
  constructor(private readonly runner: CommandRunner) {}

  private async read(args: string[]): Promise<string> {
    const r = await this.runner.run(IPVSADM_BINARY, args, { reject: false, timeoutMs: READ_TIMEOUT_MS });
    if (r.exitCode !== 0) {
      if (/Can't initialize ipvs/.test(r.stderr)) throw new IpvsUnavailableError(r.stderr.trim());
      throw CommandError.exit(IPVSADM_BINARY, args, r);
    }
    return r.stdout;
  }

  async readTable(): Promise<IpvsTable> {
    return parseIpvsadmSave(await this.read(['-S', '-n']));
  }

  async readTableWithCounts(): Promise<IpvsTable> {
    return parseIpvsadmList(await this.read(['-L', '-n']));
  }

  async readService(vs: ServiceId): Promise<KernelVirtualServer | null> {
    const args = ['-L', '-n', ...serviceArgs(vs)];
    const r = await this.runner.run(IPVSADM_BINARY, args, { reject: false, timeoutMs: READ_TIMEOUT_MS });
    if (r.exitCode !== 0) {
      if (/No such service/.test(r.stderr)) return null;
      if (/Can't initialize ipvs/.test(r.stderr)) throw new IpvsUnavailableError(r.stderr.trim());
      throw CommandError.exit(IPVSADM_BINARY, args, r);
    }
    const table = parseIpvsadmList(r.stdout);
    return (
      table.virtualServers.find(
        (s) => s.protocol === vs.protocol && s.address === vs.address && s.port === vs.port,
      ) ?? null
    );
  }

  async restore(text: string): Promise<void> {
    checkBatch(text);
    const r = await this.runner.run(IPVSADM_BINARY, ['-R'], {
      input: text,
      reject: false,
      timeoutMs: RESTORE_TIMEOUT_MS,
    });
    if (r.exitCode !== 0 || r.stderr.trim() !== '') {
      if (/Can't initialize ipvs/.test(r.stderr)) throw new IpvsUnavailableError(r.stderr.trim());
      throw new IpvsadmRestoreError(r.exitCode, r.stderr, r.exitCode === 0 ? undefined : stoppingLine(text));
    }
  }

  async timeouts(): Promise<IpvsTimeouts> {
    return parseIpvsadmTimeouts(await this.read(['-L', '--timeout']));
  }

  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    for (const v of [t.tcp, t.tcpFin, t.udp]) {
      if (!Number.isInteger(v) || v < 0) throw new Error(`ipvsadm --set: ${v} is not a number of seconds`);
    }
    await this.read(['--set', String(t.tcp), String(t.tcpFin), String(t.udp)]);
  }

  async command(args: readonly string[]): Promise<{ exitCode: number; stderr: string }> {
    const r = await this.runner.run(IPVSADM_BINARY, args, { reject: false, timeoutMs: READ_TIMEOUT_MS });
    return { exitCode: r.exitCode, stderr: r.stderr };
  }
}
