/**
 * The harness itself: the command runs with the host's real tools (busybox's applets exist
 * only in the initramfs), on the guest kernel, with the writable overlay root and the NSS
 * files copied off 9p.
 */
import assert from 'node:assert/strict';
import { readFileSync, statfsSync, writeFileSync } from 'node:fs';
import type { CheckContext } from '../check.js';

const TMPFS_MAGIC = 0x01021994;
const OVERLAYFS_MAGIC = 0x794c7630;

export default async function (t: CheckContext): Promise<void> {
  const release = (await t.sh.run('uname', ['-r'])).stdout.trim();
  assert.equal(release, process.env['SB_VM_KERNEL_RELEASE'], 'the command should run on the guest kernel');
  t.note(`guest kernel ${release}`);

  const ip = await t.sh.run('ip', ['-V']);
  assert.match(ip.stdout, /iproute2/, `\`ip\` is not iproute2's: ${ip.stdout}${ip.stderr}`);
  for (const tool of ['ipvsadm', 'ipset', 'iptables', 'conntrack', 'node']) {
    const { stdout } = await t.sh.run('sh', ['-c', `command -v ${tool}`]);
    assert.match(stdout.trim(), /^\/usr\/s?bin\//, `${tool} resolves to ${stdout.trim()}`);
  }

  // The root is the host's, read-only, under a tmpfs overlay: writable, and thrown away.
  assert.equal(statfsSync('/').type, OVERLAYFS_MAGIC, '/ should be the overlay');
  writeFileSync('/etc/sb-vm-write-test', 'ok');
  assert.equal(readFileSync('/etc/sb-vm-write-test', 'utf8'), 'ok');
  const run = statfsSync('/run').type;
  assert.equal(run, TMPFS_MAGIC, '/run should be a tmpfs (ip netns keeps its mounts there)');

  const forward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  t.note(`ip_forward in the guest's root namespace: ${forward} (tests turn it on where they need it)`);
}
