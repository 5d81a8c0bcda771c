/**
 * Reading back what a batch changed (pure parts). ipvsadm prints no line number when the
 * kernel refuses a line, and can report success for a batch some of whose lines had no
 * effect, so the applier reads back every virtual server it touched and compares it with
 * what the plan expects; a difference names the batch lines of that virtual server.
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
