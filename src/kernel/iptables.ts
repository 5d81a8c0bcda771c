/**
 * iptables-restore / iptables-save / iptables for one backend, through a CommandRunner.
 */
import type { IPFamily } from '../model/ip.js';
import { type Backend, iptablesBinary } from './backend.js';
import { CommandError, type CommandRunner, inputText, type RunResult } from './exec.js';

/** kube-proxy's default lock-wait flags for iptables 1.8.8+ (see `waitFlags`). */
const DEFAULT_WAIT_FLAGS = ['-w', '5'];
const RESTORE_TIMEOUT_MS = 5 * 60_000;

/** iptables-restore refused its input. */
export class RestoreError extends Error {
  override readonly name = 'RestoreError';
  constructor(
    readonly family: IPFamily,
    readonly exitCode: number,
    readonly stderr: string,
    /** 1-based line of the input the tool complained about, when it said. */
    readonly lineNumber: number | undefined,
    /** That line of the input. Note: both backends sometimes blame the `COMMIT` line. */
    readonly line: string | undefined,
  ) {
    const where =
      lineNumber === undefined ? '' : ` at line ${lineNumber}${line === undefined ? '' : `: ${line}`}`;
    super(`${family} iptables-restore failed (exit ${exitCode})${where}: ${firstMessage(stderr)}`);
  }
}

function firstMessage(stderr: string): string {
  return (
    stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('Try `') && !l.startsWith('Ignoring deprecated'))
      .join(' / ') || '(no message)'
  );
}

/**
 * The input line iptables-restore blamed. Forms seen from iptables 1.8.9:
 * `Error occurred at line: N` (parse errors, both backends), `line N failed` (legacy commit),
 * `COMMIT expected at line N`, `line N: RULE_APPEND failed (...)` (nft commit).
 */
export function parseFailedLine(stderr: string): number | undefined {
  const patterns = [
    /Error occurred at line: (\d+)/,
    /\bline (\d+) failed/,
    /^line (\d+):/m,
    /\bat line:? (\d+)/,
  ];
  for (const p of patterns) {
    const m = p.exec(stderr);
    if (m) return Number(m[1]);
  }
  return undefined;
}

export function lineOf(text: string, lineNumber: number): string | undefined {
  return text.split('\n')[lineNumber - 1];
}

/** Chain names declared (`:NAME POLICY [p:b]`) in one table of iptables-save output. */
export function listChains(saveText: string, table: string): string[] {
  const chains: string[] = [];
  let current: string | undefined;
  for (const raw of saveText.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) current = line.slice(1);
    else if (line === 'COMMIT') current = undefined;
    else if (current === table && line.startsWith(':')) {
      const name = line.slice(1).split(/\s/, 1)[0];
      if (name) chains.push(name);
    }
  }
  return chains;
}

export interface RestoreOptions {
  /** Keep chains not declared in the input (kube-proxy always does). Default true. */
  noflush?: boolean;
  /** Take `[p:b]` counters from the input. Default true. */
  counters?: boolean;
  /** Only parse, do not commit. */
  test?: boolean;
}

export interface IptablesOptions {
  /** Lock-wait flags, from `waitFlags(version)`; default `-w 5`. */
  waitFlags?: string[];
}

export type RulePosition = 'prepend' | 'append';

export class Iptables {
  private readonly wait: string[];

  constructor(
    private readonly runner: CommandRunner,
    readonly backend: Backend,
    options: IptablesOptions = {},
  ) {
    this.wait = options.waitFlags ?? DEFAULT_WAIT_FLAGS;
  }

  binary(family: IPFamily, tool: 'iptables' | 'restore' | 'save'): string {
    return iptablesBinary(this.backend, family, tool);
  }

  /**
   * Applies restore input given on stdin, in one transaction; throws RestoreError. The input
   * may be given as pieces (see RunOptions.input).
   */
  async restore(
    family: IPFamily,
    text: string | readonly string[],
    options: RestoreOptions = {},
  ): Promise<void> {
    const args: string[] = [];
    if (options.noflush ?? true) args.push('--noflush');
    if (options.counters ?? true) args.push('--counters');
    if (options.test) args.push('--test');
    args.push(...this.wait);
    const r = await this.runner.run(this.binary(family, 'restore'), args, {
      input: text,
      reject: false,
      timeoutMs: RESTORE_TIMEOUT_MS,
    });
    if (r.exitCode !== 0) {
      const lineNumber = parseFailedLine(r.stderr);
      throw new RestoreError(
        family,
        r.exitCode,
        r.stderr,
        lineNumber,
        lineNumber === undefined ? undefined : lineOf(inputText(text), lineNumber),
      );
    }
  }

  /** `iptables-save [-t table]` output. */
  async save(family: IPFamily, table?: string): Promise<string> {
    const args = table ? ['-t', table] : [];
    const r = await this.runner.run(this.binary(family, 'save'), args, { timeoutMs: 60_000 });
    return r.stdout;
  }

  /**
   * `iptables-save [-t table]` output handed to `onChunk` as it is printed, never held
   * whole (see RunOptions.onStdout): a large cluster's is tens of megabytes.
   */
  async saveTo(family: IPFamily, onChunk: (chunk: Uint8Array) => void, table?: string): Promise<void> {
    const args = table ? ['-t', table] : [];
    await this.runner.run(this.binary(family, 'save'), args, { timeoutMs: 60_000, onStdout: onChunk });
  }

  /**
   * One chain's rules as `iptables -S` prints them (iptables-save's form, after a `-N` or
   * `-P` line), or null when the chain does not exist (exit 1: legacy says "No chain...",
   * iptables-nft 1.8.9 misleadingly "...is incompatible"). Any other failure throws.
   */
  async listChain(family: IPFamily, table: string, chain: string): Promise<string | null> {
    const args = [...this.wait, '-t', table, '-S', chain];
    const r = await this.runner.run(this.binary(family, 'iptables'), args, { reject: false });
    if (r.exitCode === 0) return r.stdout;
    if (r.exitCode === 1) return null;
    throw this.failure(family, args, r);
  }

  /** Creates a chain if missing; returns whether it existed. */
  async ensureChain(family: IPFamily, table: string, chain: string): Promise<boolean> {
    const args = [...this.wait, '-t', table, '-N', chain];
    const r = await this.runner.run(this.binary(family, 'iptables'), args, { reject: false });
    if (r.exitCode === 0) return false;
    if (/already exists/i.test(r.stderr)) return true;
    throw this.failure(family, args, r);
  }

  /** `-C`: exit 0 = present, 1 = absent (or chain missing); anything else is an error. */
  async hasRule(
    family: IPFamily,
    table: string,
    chain: string,
    ruleArgs: readonly string[],
  ): Promise<boolean> {
    const args = [...this.wait, '-t', table, '-C', chain, ...ruleArgs];
    const r = await this.runner.run(this.binary(family, 'iptables'), args, { reject: false });
    if (r.exitCode === 0) return true;
    if (r.exitCode === 1) return false;
    throw this.failure(family, args, r);
  }

  /** Adds the rule unless it is there (spec §16 jump rules are prepended); returns whether it existed. */
  async ensureRule(
    family: IPFamily,
    position: RulePosition,
    table: string,
    chain: string,
    ruleArgs: readonly string[],
  ): Promise<boolean> {
    if (await this.hasRule(family, table, chain, ruleArgs)) return true;
    const args = [...this.wait, '-t', table, position === 'prepend' ? '-I' : '-A', chain, ...ruleArgs];
    const r = await this.runner.run(this.binary(family, 'iptables'), args, { reject: false });
    if (r.exitCode !== 0) throw this.failure(family, args, r);
    return false;
  }

  private failure(family: IPFamily, args: string[], r: RunResult) {
    return CommandError.exit(this.binary(family, 'iptables'), args, r);
  }
}
