/**
 * Runs ONE command in a qemu guest booted from Debian's stock kernel (which has ip_vs; the
 * hosts here do not), and returns its exit code and output.
 *
 * The guest sees the host's whole filesystem read-only (9p) under a tmpfs overlay: the same
 * paths, the same node, ipvsadm, ipset, iptables and the same checkout, and it may write
 * anywhere (the writes vanish with the guest). Directories in `shares` are mounted
 * read-write at their host paths, for results the host reads afterwards. The guest has no
 * network card (`-nic none`): its traffic stays inside it, and the host's namespaces are
 * never touched.
 *
 * stdout and stderr come back over two virtio serial ports, each written by qemu into a FIFO
 * that a `cat` on the host reads (a tty would turn \n into \r\n); the exit code is written
 * to the run's control share; the guest's console (kernel messages and the "sb-vm:" markers
 * that time the boot and the command) is qemu's stdout. Emulation is TCG: KVM does not work
 * on these machines (SB_VM_ACCEL=kvm uses it where it does).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureInitramfs, findCachedKernel, type GuestKernel, REPO_ROOT } from './kernel.js';

export interface GuestRunOptions {
  /** The command and its arguments; the command is looked up in the guest's PATH. */
  command: readonly string[];
  /**
   * Added to the guest's environment, which is otherwise only PATH (the real tools first), HOME,
   * LANG, TERM, SB_VM_GUEST=1 and SB_VM_KERNEL_RELEASE.
   */
  env?: Readonly<Record<string, string>>;
  /** Working directory in the guest (a host path); default: the repository root. */
  cwd?: string;
  /** Hard limit for boot + command; qemu is killed after it. Default 10 minutes. */
  timeoutMs?: number;
  /** Limit for the boot alone (until the command starts). Default 3 minutes (~8 s on an idle machine). */
  bootTimeoutMs?: number;
  /** Host directories mounted read-write at the same path in the guest. */
  shares?: readonly string[];
  memoryMiB?: number;
  cpus?: number;
  /** Live output, as it arrives (the result has all of it too). */
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
  onConsole?: (chunk: string) => void;
  /** Default: the cached kernel (`.cache/vm/current`). */
  kernel?: GuestKernel;
}

export interface GuestRunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** qemu start → command start (kernel, modules, mounts). */
  bootMs: number;
  /** Command start → command end, as the host saw it. */
  runMs: number;
  /** The guest's console: kernel warnings and the harness's markers. */
  console: string;
}

/** The guest never ran the command to its end: timeout, failed boot or qemu error. */
export class GuestRunError extends Error {
  override readonly name = 'GuestRunError';
  constructor(
    message: string,
    readonly reason: 'timeout' | 'boot' | 'qemu',
    readonly partial: Omit<GuestRunResult, 'exitCode'> & { qemuStderr: string },
  ) {
    super(message);
  }
}

/** PATH in the guest: the host's real tools; busybox's applets exist only in the initramfs. */
export const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_BOOT_TIMEOUT_MS = 3 * 60_000;
const QEMU = 'qemu-system-x86_64';

/** Quotes a word for sh (dash in the guest). */
export function shQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * A path that goes into qemu's -virtfs option, the spec the guest's /init sources and its
 * mount commands: absolute, and none of the characters those would split on.
 */
function checkSharePath(path: string, what: string): void {
  if (!path.startsWith('/') || /[\s,'"=\\$`]/.test(path)) {
    throw new Error(
      `${what} ${JSON.stringify(path)}: must be an absolute path without spaces, quotes, , = $ \\`,
    );
  }
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new Error(`${what} ${path}: not a directory`);
}

/** The script the guest's /init runs in the chroot: cd, then exec the command in a clean environment. */
export function renderRunScript(
  command: readonly string[],
  env: Readonly<Record<string, string>>,
  cwd: string,
): string {
  if (command.length === 0 || command[0] === '') throw new Error('runInGuest: command is empty');
  const assignments = Object.entries(env).map(([name, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      throw new Error(`runInGuest: bad environment variable name ${JSON.stringify(name)}`);
    if (value.includes('\0')) throw new Error(`runInGuest: environment variable ${name} contains NUL`);
    return shQuote(`${name}=${value}`);
  });
  for (const word of command) {
    if (word.includes('\0')) throw new Error(`runInGuest: argument ${JSON.stringify(word)} contains NUL`);
  }
  return [
    `cd ${shQuote(cwd)} || exit 125`,
    `exec env -i ${[...assignments, ...command.map(shQuote)].join(' ')}`,
    '',
  ].join('\n');
}

/**
 * The spec the guest's /init sources (see guest-init.sh). Paths must be real paths (no
 * symlinks): /init sees the host root under /lower, where an absolute symlink points astray.
 */
export function renderSpec(modulesDir: string, ctlDir: string, shares: readonly string[]): string {
  return [
    `SB_MODULES_DIR=${shQuote(modulesDir)}`,
    `SB_CTL_DIR=${shQuote(ctlDir)}`,
    `SB_SHARES=${shQuote(shares.map((path, i) => `share${i}=${path}`).join(' '))}`,
    '',
  ].join('\n');
}

export function qemuArgs(o: {
  kernel: GuestKernel;
  initramfs: string;
  ctlDir: string;
  shares: readonly string[];
  stdoutFifo: string;
  stderrFifo: string;
  memoryMiB: number;
  cpus: number;
  accel: string;
}): string[] {
  const virtfs = (path: string, tag: string, extra = '') =>
    ['-virtfs', `local,path=${path},mount_tag=${tag},security_model=none${extra}`] as const;
  const accel =
    o.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max'];
  return [
    ...accel,
    ...['-M', 'pc', '-nodefaults', '-display', 'none', '-no-reboot', '-nic', 'none'],
    ...['-m', String(o.memoryMiB), '-smp', String(o.cpus)],
    ...['-kernel', o.kernel.vmlinux, '-initrd', o.initramfs],
    '-append',
    'console=ttyS0 panic=-1 quiet mitigations=off tsc=reliable no_timer_check random.trust_cpu=on',
    ...['-serial', 'stdio'],
    ...virtfs('/', 'hostroot', ',readonly=on,multidevs=remap'),
    ...virtfs(o.ctlDir, 'sbctl'),
    ...o.shares.flatMap((path, i) => virtfs(path, `share${i}`)),
    ...['-device', 'virtio-serial-pci,id=sbser'],
    ...['-chardev', `file,id=sbout,path=${o.stdoutFifo}`],
    ...['-device', 'virtserialport,bus=sbser.0,chardev=sbout,name=sb.stdout'],
    ...['-chardev', `file,id=sberr,path=${o.stderrFifo}`],
    ...['-device', 'virtserialport,bus=sbser.0,chardev=sberr,name=sb.stderr'],
  ];
}

/*
 * What each run in flight must undo (kill its qemu and FIFO readers by PID, remove its temp
 * directory), done synchronously if this process exits first (a killed test run).
 */
const inFlight = new Set<() => void>();
let exitHookInstalled = false;

/** Stops every guest this process started and removes their temp directories (sync). */
export function stopAllGuests(): void {
  for (const cleanup of inFlight) cleanup();
}

function registerCleanup(cleanup: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', stopAllGuests);
  }
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    inFlight.delete(once);
    cleanup();
  };
  inFlight.add(once);
  return once;
}

/** Reads a FIFO to its end with `cat` (opening it blocks until qemu opens the other end). */
function readFifo(
  path: string,
  onChunk: (s: string) => void,
): { child: ChildProcess; done: Promise<string> } {
  const child = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    text += chunk;
    onChunk(chunk);
  });
  const done = new Promise<string>((resolve) => child.once('close', () => resolve(text)));
  return { child, done };
}

function killByPid(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Boots the guest, runs `options.command` in it, powers it off. One boot per call. */
export async function runInGuest(options: GuestRunOptions): Promise<GuestRunResult> {
  let kernel = options.kernel;
  if (!kernel) {
    const found = findCachedKernel();
    if (!found.ok)
      throw new Error(`runInGuest: ${found.reason}; fetch it with \`bash scripts/vm/fetch-kernel.sh\``);
    kernel = found.kernel;
  }
  const shares = (options.shares ?? []).map((s) => {
    checkSharePath(s, 'runInGuest: share');
    return realpathSync(s);
  });
  const cwd = options.cwd ?? REPO_ROOT;
  const initramfs = ensureInitramfs(kernel);

  const tmp = mkdtempSync(join(realpathSync(tmpdir()), 'sb-vm-'));
  const children: ChildProcess[] = [];
  const cleanup = registerCleanup(() => {
    for (const c of children) killByPid(c);
    rmSync(tmp, { recursive: true, force: true });
  });
  try {
    const ctlDir = join(tmp, 'ctl');
    mkdirSync(ctlDir);
    checkSharePath(ctlDir, 'runInGuest: temporary directory');
    const env = {
      PATH: GUEST_PATH,
      HOME: '/root',
      LANG: 'C.UTF-8',
      TERM: 'dumb',
      SB_VM_GUEST: '1',
      SB_VM_KERNEL_RELEASE: kernel.release,
      ...options.env,
    };
    writeFileSync(join(ctlDir, 'run.sh'), renderRunScript(options.command, env, cwd));
    writeFileSync(join(ctlDir, 'spec'), renderSpec(realpathSync(kernel.modulesDir), ctlDir, shares));
    const stdoutFifo = join(tmp, 'stdout.fifo');
    const stderrFifo = join(tmp, 'stderr.fifo');
    execFileSync('mkfifo', [stdoutFifo, stderrFifo]);

    const out = readFifo(stdoutFifo, (c) => options.onStdout?.(c));
    const err = readFifo(stderrFifo, (c) => options.onStderr?.(c));
    children.push(out.child, err.child);

    const args = qemuArgs({
      kernel,
      initramfs,
      ctlDir,
      shares,
      stdoutFifo,
      stderrFifo,
      memoryMiB: options.memoryMiB ?? 2048,
      cpus: options.cpus ?? 2,
      accel: process.env['SB_VM_ACCEL'] ?? 'tcg',
    });
    const started = performance.now();
    let runStart: number | undefined;
    let runEnd: number | undefined;
    let consoleText = '';
    let qemuStderr = '';
    const vm = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(vm);
    vm.stdout!.setEncoding('utf8');
    vm.stdout!.on('data', (chunk: string) => {
      consoleText += chunk;
      options.onConsole?.(chunk);
      if (runStart === undefined && consoleText.includes('sb-vm: run start')) runStart = performance.now();
      if (runEnd === undefined && /sb-vm: run end -?\d+/.test(consoleText)) runEnd = performance.now();
    });
    vm.stderr!.setEncoding('utf8');
    vm.stderr!.on('data', (chunk: string) => {
      qemuStderr += chunk;
    });

    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const bootTimeoutMs = Math.min(options.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS, timeoutMs);
    let timedOut: 'boot' | 'run' | undefined;
    const timer = setTimeout(() => {
      timedOut = 'run';
      killByPid(vm);
    }, timeoutMs);
    // A guest that hangs while booting (a kernel or /init problem) is stopped early.
    const bootTimer = setTimeout(() => {
      if (runStart !== undefined) return;
      timedOut = 'boot';
      killByPid(vm);
    }, bootTimeoutMs);
    const exit = await new Promise<{ code: number | null; signal: string | null; error?: Error }>(
      (resolve) => {
        vm.once('error', (error) => resolve({ code: null, signal: null, error }));
        vm.once('close', (code, signal) => resolve({ code, signal }));
      },
    );
    clearTimeout(timer);
    clearTimeout(bootTimer);
    const ended = performance.now();
    // qemu has closed its ends of the FIFOs; a cat still blocked in open() never saw it start.
    const fifoGrace = new Promise<void>((r) => setTimeout(r, 2000));
    await Promise.race([Promise.all([out.done, err.done]), fifoGrace]);
    killByPid(out.child);
    killByPid(err.child);
    const [stdout, stderr] = await Promise.all([out.done, err.done]);

    const bootMs = Math.round((runStart ?? ended) - started);
    const runMs = runStart === undefined ? 0 : Math.round((runEnd ?? ended) - runStart);
    const partial = { stdout, stderr, bootMs, runMs, console: consoleText, qemuStderr };
    const exitFile = join(ctlDir, 'exit-code');
    if (timedOut) {
      const what =
        timedOut === 'boot'
          ? `the guest did not start the command within ${bootTimeoutMs} ms`
          : `timed out after ${timeoutMs} ms (${runStart === undefined ? 'still booting' : 'command still running'})`;
      throw new GuestRunError(`runInGuest: ${what}; qemu killed${describeTail(partial)}`, 'timeout', partial);
    }
    if (exit.error)
      throw new GuestRunError(`runInGuest: could not start ${QEMU}: ${exit.error.message}`, 'qemu', partial);
    if (!existsSync(exitFile)) {
      const reason = exit.code === 0 ? 'boot' : 'qemu';
      throw new GuestRunError(
        `runInGuest: the guest stopped without running the command to its end (qemu exit ${exit.code ?? exit.signal})${describeTail(partial)}`,
        reason,
        partial,
      );
    }
    const exitCode = Number(readFileSync(exitFile, 'utf8').trim());
    return { exitCode, stdout, stderr, bootMs, runMs, console: consoleText };
  } finally {
    cleanup();
  }
}

function describeTail(p: { console: string; qemuStderr: string; stderr: string }): string {
  const tail = (s: string, n: number) => s.trimEnd().split('\n').slice(-n).join('\n');
  let text = '';
  if (p.qemuStderr.trim()) text += `\n--- qemu stderr ---\n${tail(p.qemuStderr, 20)}`;
  if (p.console.trim()) text += `\n--- guest console (last lines) ---\n${tail(p.console, 30)}`;
  if (p.stderr.trim()) text += `\n--- command stderr (last lines) ---\n${tail(p.stderr, 30)}`;
  return text;
}
