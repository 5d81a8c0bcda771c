/**
 * The one door through which Switchboard runs external commands (iptables-restore, ip,
 * conntrack, ...). Commands are argument vectors, never shell strings, so nothing from a
 * Service object can be interpreted by a shell.
 */
import { Readable } from 'node:stream';
import { execa } from 'execa';

export interface RunOptions {
  /**
   * Written to the command's stdin (restore input). A list is written piece after piece,
   * nothing added between them: a large input need not exist as one string (an
   * iptables-restore input of 10,000 services is tens of megabytes, and every such string
   * outlives the write in V8's large-object space until a full garbage collection).
   */
  input?: string | readonly string[];
  timeoutMs?: number;
  /**
   * `true` (the default): a non-zero exit throws a CommandError. `false`: the result is
   * returned with its exit code, for commands whose exit code is an answer (`iptables -C`).
   */
  reject?: boolean;
  /**
   * When set, the command's stdout is handed over in chunks as it arrives and not
   * collected: the result's `stdout` is ''. For output too large to hold as one string
   * (iptables-save of a large cluster is ~50 MB at 10,000 services, and past ~2^29
   * characters no V8 string can hold it). Bytes, not text: a consumer that keeps parts
   * decodes them itself, so nothing it keeps can be a slice pinning a whole chunk. Exit
   * code, stderr, timeout and `reject` behave as without it. A throw from it ends the
   * command and is what `run` throws.
   */
  onStdout?: (chunk: Uint8Array) => void;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface CommandRunner {
  run(cmd: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/** A command that could not be run, timed out, or (with reject) exited non-zero. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly result: RunResult,
    readonly reason: 'exit' | 'timeout' | 'spawn' | 'output',
    detail: string,
  ) {
    super(`${formatCommand(command, args)}: ${detail}`);
  }

  /** A command that exited non-zero: its exit code and what it said on stderr. */
  static exit(command: string, args: readonly string[], result: RunResult): CommandError {
    return new CommandError(
      command,
      args,
      result,
      'exit',
      `exit code ${result.exitCode}: ${result.stderr.trim()}`,
    );
  }
}

/**
 * What every runner does with a finished command: its stdout handed to `onStdout` when
 * that is set (runners that make up a whole result at once, fakes and recorders, hand it
 * over as one chunk), then the result, or, with `reject` (the default), a CommandError
 * when the command exited non-zero.
 */
export function honourReject(
  cmd: string,
  args: readonly string[],
  result: RunResult,
  options: RunOptions,
): RunResult {
  if (options.onStdout && result.stdout !== '') {
    options.onStdout(Buffer.from(result.stdout));
    result = { ...result, stdout: '' };
  }
  if (result.exitCode !== 0 && options.reject !== false) throw CommandError.exit(cmd, args, result);
  return result;
}

/** For messages only: the command as a human would type it. */
export function formatCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/** The input as one string (for fakes and recorders; real runs stream a list). */
export function inputText(input: string | readonly string[]): string {
  return typeof input === 'string' ? input : input.join('');
}

const CHUNK_CHARS = 64 * 1024;

/**
 * Pieces joined into chunks of about 64 KiB, in order: one write each instead of one per
 * piece (a restore input has a piece per chain), and each chunk small enough to be a young,
 * short-lived string for V8.
 */
export function* chunksOf(pieces: readonly string[], chunkChars = CHUNK_CHARS): Generator<string> {
  let batch: string[] = [];
  let size = 0;
  for (const piece of pieces) {
    if (size > 0 && size + piece.length > chunkChars) {
      yield batch.join('');
      batch = [];
      size = 0;
    }
    batch.push(piece);
    size += piece.length;
  }
  if (size > 0) yield batch.join('');
}

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * The most a command may print, in characters, when its output is collected (not with
 * onStdout: every read of all the rules, iptables-save, streams). execa's default (100
 * million) would cut a collected output that large and kill the command; this is close to
 * V8's longest string (2^29 - 24 characters on 64-bit), which caps it anyway.
 */
const MAX_OUTPUT_CHARS = 500_000_000;

/** Runs commands for real, with execa. */
export class ExecaRunner implements CommandRunner {
  constructor(private readonly maxOutputChars = MAX_OUTPUT_CHARS) {}

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const { input = '', onStdout } = options;
    const subprocess = execa(cmd, [...args], {
      input: typeof input === 'string' ? input : Readable.from(chunksOf(input), { objectMode: false }),
      timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      reject: false,
      stripFinalNewline: false,
      maxBuffer: this.maxOutputChars,
      // Streaming: with `buffer` off for stdout, execa 9 collects nothing from it (a
      // transform or `lines` would still collect the result) and leaves the subprocess's
      // stdout stream to us (it resumes it itself only if nobody listens by the next turn
      // of the event loop): its Buffers go to onStdout as they come, never one string.
      buffer: { stdout: onStdout === undefined, stderr: true },
      // The kernel tools print messages we parse; keep them in English.
      env: { LC_ALL: 'C' },
    });
    let consumerError: { error: unknown } | null = null;
    if (onStdout) {
      subprocess.stdout.on('data', (chunk: Buffer) => {
        if (consumerError) return;
        try {
          onStdout(chunk);
        } catch (error) {
          // Not thrown from the stream's event: that would crash the process.
          consumerError = { error };
          subprocess.kill();
        }
      });
    }
    const result = await subprocess;
    if (consumerError) throw (consumerError as { error: unknown }).error;
    const out: RunResult = {
      stdout: result.stdout ?? '',
      stderr: result.stderr,
      exitCode: result.exitCode ?? -1,
    };
    if (result.timedOut) {
      throw new CommandError(
        cmd,
        args,
        out,
        'timeout',
        `timed out after ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`,
      );
    }
    if (result.isMaxBuffer) {
      throw new CommandError(cmd, args, out, 'output', `printed more than ${this.maxOutputChars} characters`);
    }
    if (result.exitCode === undefined) {
      // Not started (ENOENT) or killed by a signal.
      throw new CommandError(cmd, args, out, 'spawn', result.shortMessage ?? 'could not run');
    }
    return honourReject(cmd, args, out, options);
  }
}

/**
 * Runs every command inside a network namespace (`ip netns exec <ns> cmd ...`), so the
 * code that applies rules in production runs unchanged against a test namespace.
 */
export function inNetns(runner: CommandRunner, nsName: string): CommandRunner {
  return {
    run: (cmd, args, options) => runner.run('ip', ['netns', 'exec', nsName, cmd, ...args], options),
  };
}

export interface RecordedCall {
  cmd: string;
  args: string[];
  input?: string;
}

type Responder = (call: RecordedCall) => Partial<RunResult> | undefined;

/**
 * A fake for unit tests: records every call and answers from responders (first match
 * wins); an unanswered call succeeds with empty output. Honours `reject` like the real one.
 */
export class RecordingRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];
  private readonly responders: Responder[] = [];

  /**
   * Answer calls whose `cmd args...` line starts with `prefix` (or that `match` accepts), with
   * `result` or what it makes of the call.
   */
  on(
    match: string | ((call: RecordedCall) => boolean),
    result: Partial<RunResult> | ((call: RecordedCall) => Partial<RunResult>),
  ): this {
    const test =
      typeof match === 'string' ? (c: RecordedCall) => [c.cmd, ...c.args].join(' ').startsWith(match) : match;
    const answer = typeof result === 'function' ? result : () => result;
    this.responders.push((c) => (test(c) ? answer(c) : undefined));
    return this;
  }

  /**
   * Models sysctl as procps runs it: `sysctl -n NAME` answers the value (`fallback` for a
   * key never set), `sysctl -q -w NAME=VALUE` sets it and exits 0, also for a `readOnly`
   * key it does not change (as the real tool does when the kernel refuses).
   */
  modelSysctls(
    values: Map<string, string> = new Map(),
    options: { fallback?: string; readOnly?: ReadonlySet<string> } = {},
  ): this {
    this.responders.push((c) => {
      if (c.cmd !== 'sysctl') return undefined;
      if (c.args[0] === '-n') return { stdout: `${values.get(c.args[1]!) ?? options.fallback ?? ''}\n` };
      const assignment = c.args.find((a) => a.includes('='));
      if (assignment) {
        const [name, value] = assignment.split('=') as [string, string];
        if (!options.readOnly?.has(name)) values.set(name, value);
      }
      return {};
    });
    return this;
  }

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const call: RecordedCall = { cmd, args: [...args] };
    if (options.input !== undefined) call.input = inputText(options.input);
    this.calls.push(call);
    let answer: Partial<RunResult> | undefined;
    for (const responder of this.responders) {
      answer = responder(call);
      if (answer) break;
    }
    return honourReject(cmd, args, { stdout: '', stderr: '', exitCode: 0, ...answer }, options);
  }

  /** The calls as command lines, for compact assertions. */
  commandLines(): string[] {
    return this.calls.map((c) => formatCommand(c.cmd, c.args));
  }
}
