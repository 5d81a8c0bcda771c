/**
 * The kernel's tables as a full sync needs them: one iptables-save of every table of the
 * family, parsed as it is printed (kernel-diff.ts SavedTablesParser), never held whole.
 */
import type { Iptables } from '../../kernel/iptables.js';
import type { IPFamily } from '../../model/ip.js';
import { type SavedTables, SavedTablesParser } from './kernel-diff.js';

export async function readSavedTables(iptables: Iptables, family: IPFamily): Promise<SavedTables> {
  const parser = new SavedTablesParser();
  await iptables.saveTo(family, (chunk) => parser.push(chunk));
  return parser.end();
}
