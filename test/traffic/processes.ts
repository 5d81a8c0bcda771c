/**
 * Long-running helper processes of the traffic tests (echo servers, held connections),
 * each started inside a namespace with `ip netns exec` and tracked until stopped. A
 * process keeps its namespace alive after `ip netns del`, so every one must be stopped
 * before its topology is torn down; a process exit hook kills any that a crashed test
 * left behind.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';

/**
 * test/traffic/servers/, found from this module's location upwards: this file is also
 * bundled into dist/vm/ for the VM guest (test/vm/), where import.meta.url is a chunk's.
 */
function serversDir(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    for (const candidate of [join(dir, 'servers'), join(dir, 'test', 'traffic', 'servers')]) {
      if (existsSync(join(candidate, 'hold-client.mjs'))) return candidate;
    }
  }
  throw new Error(`processes.ts: test/traffic/servers/ not found above ${fileURLToPath(import.meta.url)}`);
}
const ECHO_SERVER = join(serversDir(), 'echo-server.mjs');
const HOLD_CLIENT = join(serversDir(), 'hold-client.mjs');

const live = new Map<number, ResultPromise>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of live.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** Starts `node <script> ...args` in namespace `ns`, piping stdin/stdout. */
function spawnIn(ns: string, script: string, args: readonly string[]): { child: ResultPromise; pid: number } {
  installExitHook();
  // `ip netns exec` execs the command, so this pid is the script's own.
  const child = execa('ip', ['netns', 'exec', ns, process.execPath, script, ...args], {
    stdin: 'pipe',
    reject: false,
    buffer: { stdout: false, stderr: true },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${script} in ${ns}`);
  live.set(pid, child);
  return { child, pid };
}

async function stopChild(pid: number): Promise<void> {
  const child = live.get(pid);
  if (!child) return;
  child.kill('SIGTERM');
  const exited = await Promise.race([
    child.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), 2000)),
  ]);
  if (!exited) {
    child.kill('SIGKILL');
    await child.catch(() => undefined);
  }
  live.delete(pid);
}

/** Splits a child's stdout into lines and hands them out one at a time, in order. */
class LineReader {
  private readonly lines: string[] = [];
  private readonly waiters: ((line: string | null) => void)[] = [];
  private buffer = '';
  private ended = false;

  constructor(child: ResultPromise) {
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl = this.buffer.indexOf('\n');
      while (nl !== -1) {
        this.push(this.buffer.slice(0, nl));
        this.buffer = this.buffer.slice(nl + 1);
        nl = this.buffer.indexOf('\n');
      }
    });
    const end = () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(null);
    };
    child.stdout?.on('end', end);
    void child.then(end, end);
  }

  private push(line: string): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(line);
    else this.lines.push(line);
  }

  /** The next line; null once the output ended, or after `waitMs` without one. */
  next(waitMs: number): Promise<string | null> {
    const ready = this.lines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(deliver);
        if (i !== -1) this.waiters.splice(i, 1);
        resolve(null);
      }, waitMs);
      const deliver = (line: string | null) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiters.push(deliver);
    });
  }
}

export interface Stoppable {
  stop(): Promise<void>;
}

export interface EchoServer extends Stoppable {
  ns: string;
  name: string;
}

/** Starts the traffic echo server (test/traffic/servers/echo-server.mjs) in `ns`. */
export async function startEchoServer(
  ns: string,
  name: string,
  ports: { tcp?: readonly number[]; udp?: readonly number[] },
): Promise<EchoServer> {
  const args = ['--name', name];
  for (const p of ports.tcp ?? []) args.push('--tcp', String(p));
  for (const p of ports.udp ?? []) args.push('--udp', String(p));
  const { child, pid } = spawnIn(ns, ECHO_SERVER, args);
  const stop = () => stopChild(pid);
  const first = await new LineReader(child).next(10_000);
  if (first !== 'READY') {
    await stop();
    const r = await child;
    throw new Error(`echo server ${name} in ${ns} did not start: ${String(r.stderr).trim() || 'no READY'}`);
  }
  return { ns, name, stop };
}

/** What the server said on a held connection, or why nothing came. */
export type HeldReply =
  | { ok: true; name: string; peer: string; peerPort: number; seq: number }
  | { ok: false; error: string };

/** One TCP connection kept open from a client namespace (test/traffic/servers/hold-client.mjs). */
export class HeldConnection implements Stoppable {
  private constructor(
    private readonly pid: number,
    private readonly child: ResultPromise,
    private readonly reader: LineReader,
    private readonly waitMs: number,
    /** the server's greeting when the connection was made */
    readonly greeting: HeldReply,
  ) {}

  static async open(
    ns: string,
    target: { host: string; port: number; source?: string },
    waitMs = 3000,
  ): Promise<HeldConnection> {
    const args = ['--host', target.host, '--port', String(target.port), '--timeout-ms', String(waitMs)];
    if (target.source) args.push('--source', target.source);
    const { child, pid } = spawnIn(ns, HOLD_CLIENT, args);
    const reader = new LineReader(child);
    // Node's start-up inside a busy machine comes on top of the connect itself.
    const line = await reader.next(waitMs + 10_000);
    return new HeldConnection(pid, child, reader, waitMs, parseReply(line));
  }

  /** Sends one probe over the held connection and returns the answer. */
  async probe(): Promise<HeldReply> {
    this.child.stdin?.write('probe\n');
    return parseReply(await this.reader.next(this.waitMs));
  }

  /** Aborts the connection with a TCP RST (no FIN handshake, no TIME_WAIT), then the client exits. */
  async reset(): Promise<void> {
    this.child.stdin?.write('reset\n');
    await Promise.race([this.child.then(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
    await this.stop();
  }

  stop(): Promise<void> {
    return stopChild(this.pid);
  }
}

function parseReply(line: string | null): HeldReply {
  if (line === null) return { ok: false, error: 'NO_ANSWER' };
  try {
    return JSON.parse(line) as HeldReply;
  } catch {
    return { ok: false, error: `BAD_LINE ${line}` };
  }
}
