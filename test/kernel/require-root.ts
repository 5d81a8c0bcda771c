/**
 * Whether the kernel tests can run here: root, working `ip netns`, and both iptables
 * backends. CI requires them (a missing prerequisite fails the run); elsewhere they are
 * skipped with a loud warning saying why.
 */
import { execFileSync } from 'node:child_process';
import { describe, it } from 'vitest';

export interface KernelCheck {
  available: boolean;
  reason: string;
}

function tryRun(cmd: string, args: string[]): string | undefined {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    return undefined;
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer; message: string };
    if (err.code === 'ENOENT') return `${cmd} is not installed`;
    return `\`${[cmd, ...args].join(' ')}\` failed: ${err.stderr?.toString().trim() || err.message}`;
  }
}

function checkKernel(): KernelCheck {
  if (process.platform !== 'linux') return { available: false, reason: `not Linux (${process.platform})` };
  if (process.getuid?.() !== 0) return { available: false, reason: 'not running as root' };
  for (const bin of [
    'iptables-nft-restore',
    'iptables-legacy-restore',
    'ip6tables-nft-restore',
    'ip6tables-legacy-restore',
  ]) {
    const problem = tryRun(bin, ['--version']);
    if (problem) return { available: false, reason: problem };
  }
  const probe = `sb-${process.pid}-probe`;
  const added = tryRun('ip', ['netns', 'add', probe]);
  if (added) return { available: false, reason: added };
  try {
    const entered = tryRun('ip', ['netns', 'exec', probe, 'true']);
    if (entered) return { available: false, reason: entered };
  } finally {
    tryRun('ip', ['netns', 'del', probe]);
  }
  return { available: true, reason: 'root, ip netns and both iptables backends are available' };
}

export const kernelCheck: KernelCheck = checkKernel();
export const kernelAvailable = kernelCheck.available;

/**
 * `describe` for kernel tests. Without the prerequisites: under CI a failing test naming
 * the reason; elsewhere a skipped block and a warning.
 */
export function describeKernel(name: string, body: () => void): void {
  if (kernelCheck.available) {
    describe(name, body);
  } else if (!['', '0', 'false'].includes(process.env['CI'] ?? '')) {
    describe(name, () => {
      it('has the kernel-test prerequisites (required in CI)', () => {
        throw new Error(`kernel tests cannot run: ${kernelCheck.reason}`);
      });
    });
  } else {
    console.warn(
      `\n*** SKIPPING kernel tests "${name}": ${kernelCheck.reason}. ` +
        'They need root, iproute2 (ip netns) and iptables (nft and legacy). CI runs them. ***\n',
    );
    describe.skip(name, body);
  }
}
