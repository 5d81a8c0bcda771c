/**
 * Reading back what a batch changed (pure parts). ipvsadm prints no line number when the
 * kernel refuses a line, and its exit code is that of the last line only, so the applier
 * compares what it reads back with what the plan expects; a difference names the batch
 * lines of that virtual server.
 *
 * How much is read back: measured with ipvsadm 1.31 on a real kernel (the VM guest's
 * ipvs-doubles check), every line the kernel refuses prints its message on stderr, for
 * every kind of line the applier sends (add, edit and delete of virtual and real servers,
 * against existing and missing ones). So a batch with a clean stderr took effect, and it is
 * only spot-checked: one touched virtual server, whatever the batch's size (a one-endpoint
 * change of a service with NodePort and LoadBalancer virtual servers touches several, and
 * reading each back cost one more ipvsadm process each). A batch that reported anything is
 * read back whole.
 */
import type { KernelVirtualServer } from '../../kernel/ipvsadm-output.js';
import { serviceAddress } from './ipvsadm-text.js';
import { realServerKey, type VirtualServer } from './state.js';

/**
 * Touching more virtual servers than this, one `ipvsadm -Sn` of the whole table is cheaper
 * than one `ipvsadm -Ln -t` each: measured in the test VM, a single ipvsadm call costs about
 * 0.22 s and `-Sn` of 10,000 services × 10 real servers 15.6 s, so at that size the break-even
 * is around 70; 32 keeps the scoped reads well under one table read at any size worth saving.
 */
export const SCOPED_READ_LIMIT = 32;

function sortedFlags(flags: readonly string[]): string {
  return [...flags].sort().join(',');
}

/** What differs between the expected and the read virtual server (empty: they agree). */
export function virtualServerProblems(
  key: string,
  expected: KernelVirtualServer | null,
  read: KernelVirtualServer | null,
): string[] {
  if (expected === null) return read === null ? [] : [`${key} still exists`];
  if (read === null) return [`${key} is missing`];
  const problems: string[] = [];
  if (read.scheduler !== expected.scheduler)
    problems.push(`${key}: scheduler ${read.scheduler}, expected ${expected.scheduler}`);
  if (read.persistenceSeconds !== expected.persistenceSeconds) {
    problems.push(`${key}: persistence ${read.persistenceSeconds}, expected ${expected.persistenceSeconds}`);
  }
  if (sortedFlags(read.flags) !== sortedFlags(expected.flags)) {
    problems.push(
      `${key}: flags ${sortedFlags(read.flags) || 'none'}, expected ${sortedFlags(expected.flags) || 'none'}`,
    );
  }
  if (read.extras.length > 0 && expected.extras.length === 0)
    problems.push(`${key}: still has ${read.extras.join(' ')}`);
  const readServers = new Map(read.realServers.map((r) => [realServerKey(r), r]));
  for (const want of expected.realServers) {
    const got = readServers.get(realServerKey(want));
    readServers.delete(realServerKey(want));
    if (!got) problems.push(`${key}: real server ${realServerKey(want)} is missing`);
    else if (got.weight !== want.weight || got.forwarding !== want.forwarding) {
      problems.push(
        `${key}: real server ${realServerKey(want)} has weight ${got.weight} (${got.forwarding}), expected ${want.weight} (${want.forwarding})`,
      );
    }
  }
  for (const extra of readServers.keys()) problems.push(`${key}: real server ${extra} should be gone`);
  return problems;
}

/** The batch lines about one virtual server. */
export function linesAbout(
  lines: readonly string[],
  vs: Pick<VirtualServer, 'protocol' | 'address' | 'port'>,
): string[] {
  const service = serviceAddress(vs);
  return lines.filter((l) => l.includes(` ${service} `) || l.endsWith(` ${service}`));
}
