/**
 * The switchboard CLI as a long-running process inside a namespace, for the guest's
 * end-to-end checks: started with `ip netns exec NS node CLI ...`, its JSON log lines
 * (stderr) parsed as they come, so a check can wait for "the next sync is done" instead
 * of sleeping. Stopped with SIGTERM (as the kubelet stops a pod), killed if it hangs.
 */
import { spawn } from 'node:child_process';

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface CliProcessOptions {
  ns: string;
  cli: string;
  args: readonly string[];
  env?: Readonly<Record<string, string>>;
  /** a name for messages */
  label: string;
}

const ERROR_LEVEL = 50;

export class CliProcess {
  readonly logs: LogRecord[] = [];
  /** stderr lines that are not JSON (a crash's stack) */
  readonly otherOutput: string[] = [];
  private exitCode: number | null = null;
  private readonly exited: Promise<number>;
  private readonly waiters = new Set<() => void>();
  private readonly child;

  constructor(readonly options: CliProcessOptions) {
    this.child = spawn('ip', ['netns', 'exec', options.ns, process.execPath, options.cli, ...options.args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', ...options.env },
    });
    let pending = '';
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => {
      pending += chunk;
      let nl = pending.indexOf('\n');
      while (nl !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogRecord);
        } catch {
          if (line.trim() !== '') this.otherOutput.push(line);
        }
        nl = pending.indexOf('\n');
      }
      for (const w of this.waiters) w();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal === 'SIGKILL' ? 137 : signal === 'SIGTERM' ? 143 : 128);
        for (const w of this.waiters) w();
        resolve(this.exitCode);
      });
    });
  }

  /** the CLI's own pid (`ip netns exec` execs it in place) */
  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === null;
  }

  /**
   * The first log record from index `from` on that `match` accepts. Throws when the process
   * exits first, logs an error first (`failOnError`), or `timeoutMs` passes.
   */
  async waitFor(
    what: string,
    match: (r: LogRecord) => boolean,
    options: { from?: number; timeoutMs?: number; failOnError?: boolean } = {},
  ): Promise<LogRecord> {
    const from = options.from ?? 0;
    const timeoutMs = options.timeoutMs ?? 90_000;
    const failOnError = options.failOnError ?? true;
    const started = Date.now();
    for (;;) {
      const i = this.logs.findIndex(
        (r, k) => k >= from && (match(r) || (failOnError && r.level >= ERROR_LEVEL)),
      );
      if (i !== -1) {
        const r = this.logs[i]!;
        if (match(r)) return r;
        throw new Error(
          `${this.options.label}: logged an error while waiting for ${what}: ${JSON.stringify(r)}`,
        );
      }
      if (!this.running) {
        throw new Error(
          `${this.options.label}: exited (${this.exitCode}) while waiting for ${what}\n${this.tail()}`,
        );
      }
      const left = timeoutMs - (Date.now() - started);
      if (left <= 0)
        throw new Error(`${this.options.label}: no ${what} within ${timeoutMs} ms\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 1000));
        this.waiters.add(done);
      });
    }
  }

  /** The next successful sync ("synced") logged from index `from` on. */
  synced(from: number, timeoutMs?: number): Promise<LogRecord> {
    return this.waitFor('a successful sync', (r) => r.msg === 'synced', {
      from,
      ...(timeoutMs ? { timeoutMs } : {}),
    });
  }

  /** Records with this message, from index `from` on. */
  records(msg: string, from = 0): LogRecord[] {
    return this.logs.slice(from).filter((r) => r.msg === msg);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  async stop(graceMs = 20_000): Promise<number> {
    if (this.running) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last log lines, for failure messages. */
  tail(lines = 30): string {
    const text = this.logs.slice(-lines).map((r) => JSON.stringify(r));
    return [...text, ...this.otherOutput.slice(-lines)].join('\n');
  }
}
