/**
 * Whether the VM tests can run here: Linux on x86-64, root (the guest reads the host's whole
 * root), qemu, busybox and the cached guest kernel. CI requires them (a missing prerequisite
 * fails the run); elsewhere the tests are skipped with a loud warning saying why and how to
 * get what is missing. SB_VM_TESTS=0 skips them on purpose (not in CI).
 */
import { execFileSync } from 'node:child_process';
import { describe, it } from 'vitest';
import { FETCH_KERNEL_HINT, findCachedKernel } from './kernel.js';

export interface VmCheck {
  available: boolean;
  reason: string;
}

const ciRequired = !['', '0', 'false'].includes(process.env['CI'] ?? '');

function runs(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

function checkVm(): VmCheck {
  if (!ciRequired && process.env['SB_VM_TESTS'] === '0') return { available: false, reason: 'SB_VM_TESTS=0' };
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return { available: false, reason: `not Linux on x86-64 (${process.platform}/${process.arch})` };
  }
  if (process.getuid?.() !== 0) return { available: false, reason: 'not running as root' };
  if (!runs('qemu-system-x86_64', ['--version'])) {
    return {
      available: false,
      reason: 'qemu-system-x86_64 is not installed (apt-get install --no-install-recommends qemu-system-x86)',
    };
  }
  if (!runs('busybox', ['true']))
    return { available: false, reason: 'busybox is not installed (apt-get install busybox)' };
  const kernel = findCachedKernel();
  if (!kernel.ok) return { available: false, reason: `${kernel.reason}: ${FETCH_KERNEL_HINT}` };
  return {
    available: true,
    reason: `qemu and kernel ${kernel.kernel.release} (${kernel.kernel.packageVersion}) are available`,
  };
}

export const vmCheck: VmCheck = checkVm();

/**
 * `describe` for VM tests. Without the prerequisites: under CI a failing test naming the
 * reason; elsewhere a skipped block and a warning.
 */
export function describeVm(name: string, body: () => void): void {
  if (vmCheck.available) {
    describe(name, body);
  } else if (ciRequired) {
    describe(name, () => {
      it('has the VM-test prerequisites (required in CI)', () => {
        throw new Error(`VM tests cannot run: ${vmCheck.reason}`);
      });
    });
  } else {
    console.warn(
      `\n*** SKIPPING VM tests "${name}": ${vmCheck.reason}. They boot Debian's kernel (ip_vs) ` +
        'in qemu; see "VM tests" in the README. CI runs them. ***\n',
    );
    describe.skip(name, body);
  }
}
