/**
 * What a sync needs besides the restore input (spec §16): the jump rules from the
 * built-in chains into ours, and the canary chains whose disappearance tells that
 * someone flushed iptables.
 *
 * The jump rules cannot be part of the restore input: declaring INPUT or PREROUTING
 * would flush every other agent's rules there. So each is checked with `-C` and
 * prepended with `-I` when missing, as kube-proxy does on every full sync.
 */
import type { CommandRunner } from '../../kernel/exec.js';
import { CommandError } from '../../kernel/exec.js';
import type { Iptables } from '../../kernel/iptables.js';
import type { IPFamily } from '../../model/ip.js';
import { isTextChain, type SavedTables, savedRuleLines } from './kernel-diff.js';
import { savedForm } from './saved-form.js';

export interface JumpRule {
  table: 'filter' | 'nat';
  /** the built-in chain the rule lives in */
  from: string;
  /** our chain it jumps to */
  to: string;
  /** the rule's arguments after `-A <from>`, as iptables takes them (no shell quoting) */
  args: readonly string[];
}

const NEW = ['-m', 'conntrack', '--ctstate', 'NEW'] as const;

/** A jump rule `-A <from> [extra] [-m comment --comment <comment>] -j <to>`. */
export function jump(
  table: JumpRule['table'],
  from: string,
  to: string,
  comment: string | null,
  extra: readonly string[] = [],
): JumpRule {
  const args = [...extra];
  if (comment !== null) args.push('-m', 'comment', '--comment', comment);
  args.push('-j', to);
  return { table, from, to, args };
}

/** kube-proxy's jump rules, in the order it makes sure of them (each is prepended). */
export const JUMP_RULES: readonly JumpRule[] = [
  jump('filter', 'INPUT', 'KUBE-EXTERNAL-SERVICES', 'kubernetes externally-visible service portals', NEW),
  jump('filter', 'FORWARD', 'KUBE-EXTERNAL-SERVICES', 'kubernetes externally-visible service portals', NEW),
  jump('filter', 'INPUT', 'KUBE-NODEPORTS', 'kubernetes health check service ports'),
  jump('filter', 'FORWARD', 'KUBE-SERVICES', 'kubernetes service portals', NEW),
  jump('filter', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals', NEW),
  jump('filter', 'FORWARD', 'KUBE-FORWARD', 'kubernetes forwarding rules'),
  jump('filter', 'INPUT', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', NEW),
  jump('filter', 'OUTPUT', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', NEW),
  jump('filter', 'FORWARD', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', NEW),
  jump('nat', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals'),
  jump('nat', 'PREROUTING', 'KUBE-SERVICES', 'kubernetes service portals'),
  jump('nat', 'POSTROUTING', 'KUBE-POSTROUTING', 'kubernetes postrouting rules'),
  // kubelet's own copies (kubelet creates the same chain and rules; kube-proxy makes sure
  // of them too, so a node without kubelet's still gets the localnet protection).
  jump('filter', 'INPUT', 'KUBE-FIREWALL', null),
  jump('filter', 'OUTPUT', 'KUBE-FIREWALL', null),
];

export const CANARY_CHAIN = 'KUBE-PROXY-CANARY';
export const CANARY_TABLES = ['mangle', 'nat', 'filter'] as const;

/** The rule as an `-A` line of restore input (arguments with spaces quoted). */
export function jumpRuleLine(rule: JumpRule): string {
  const args = rule.args.map((a) => (/^[^\s"\\']+$/.test(a) ? a : `"${a}"`));
  return `-A ${rule.from} ${args.join(' ')}`;
}

/**
 * The rule as a restore-input command that prepends it (`-I FROM 1 ...`): inserting the
 * missing ones in JUMP_RULES order, each at the top, gives what ensureJumpRules gives.
 */
export function jumpRuleInsert(rule: JumpRule): string {
  return `-I ${rule.from} 1${jumpRuleLine(rule).slice(`-A ${rule.from}`.length)}`;
}

/**
 * The jump rules missing from the kernel's state as read (parsed iptables-save output), in
 * JUMP_RULES order. Exact: every rule here is in the saved-form vocabulary (checked against
 * the real tools by test/kernel/jump-rules-saved.test.ts), so a rule that is there is
 * never reported missing.
 */
export function missingJumpRules(saved: SavedTables, family: IPFamily): JumpRule[] {
  return JUMP_RULES.filter((rule) => !savedHasRule(saved, rule, family));
}

/**
 * Creates, where the kernel's state (as read) lacks them, the chains the jump rules target;
 * not those `written` says the restore input declares (it creates them before the jump
 * rules it inserts).
 */
export async function ensureJumpTargets(
  iptables: Iptables,
  family: IPFamily,
  saved: SavedTables,
  written: (table: string, chain: string) => boolean = () => false,
): Promise<void> {
  for (const rule of JUMP_RULES) {
    if (saved.get(rule.table)?.has(rule.to) || written(rule.table, rule.to)) continue;
    await iptables.ensureChain(family, rule.table, rule.to);
    noteCreated(saved, rule.table, rule.to);
  }
}

/** Whether iptables-save output (parsed) shows the rule in its chain; false when unsure. */
export function savedHasRule(saved: SavedTables, rule: JumpRule, family: IPFamily): boolean {
  const chain = saved.get(rule.table)?.get(rule.from);
  const form = savedForm(jumpRuleLine(rule), family);
  return chain !== undefined && isTextChain(chain) && form !== null && savedRuleLines(chain).includes(form);
}

/** Records a chain just created (empty) in what was read, so later comparisons see it. */
function noteCreated(saved: SavedTables | undefined, table: string, chain: string): void {
  if (!saved) return;
  let chains = saved.get(table);
  if (!chains) {
    chains = new Map();
    saved.set(table, chains);
  }
  if (!chains.has(chain)) chains.set(chain, { builtin: false, rules: '', count: 0 });
}

/**
 * Creates each target chain if missing (a jump to a missing chain is refused), then
 * prepends each jump rule that is not there (iptables mode's by default). Returns how many
 * rules it added.
 */
export async function ensureJumpRules(
  iptables: Iptables,
  family: IPFamily,
  rules: readonly JumpRule[] = JUMP_RULES,
): Promise<number> {
  let added = 0;
  for (const rule of rules) {
    await iptables.ensureChain(family, rule.table, rule.to);
    const existed = await iptables.ensureRule(family, 'prepend', rule.table, rule.from, rule.args);
    if (!existed) added++;
  }
  return added;
}

/** Creates KUBE-PROXY-CANARY in mangle, nat and filter where missing (per `saved`, when given). */
export async function ensureCanaries(
  iptables: Iptables,
  family: IPFamily,
  saved?: SavedTables,
): Promise<void> {
  for (const table of CANARY_TABLES) {
    if (saved?.get(table)?.has(CANARY_CHAIN)) continue;
    await iptables.ensureChain(family, table, CANARY_CHAIN);
    noteCreated(saved, table, CANARY_CHAIN);
  }
}

/**
 * Whether the canary chain exists in `table`. `-n -L` exits 1 for a missing chain (with
 * "No chain/target/match by that name" from legacy, and, misleadingly, "chain ... is
 * incompatible, use 'nft' tool" from iptables-nft 1.8.9); any other exit (4: lock
 * timeout, 2: bad arguments) is thrown, since it tells nothing about the chain.
 */
export async function canaryExists(
  runner: CommandRunner,
  iptables: Iptables,
  family: IPFamily,
  waitFlags: readonly string[],
  table: (typeof CANARY_TABLES)[number] = 'mangle',
): Promise<boolean> {
  return chainExists(runner, iptables, family, waitFlags, table, CANARY_CHAIN);
}

/** Whether `chain` exists in `table` (see canaryExists for the exit codes). */
export async function chainExists(
  runner: CommandRunner,
  iptables: Iptables,
  family: IPFamily,
  waitFlags: readonly string[],
  table: string,
  chain: string,
): Promise<boolean> {
  const cmd = iptables.binary(family, 'iptables');
  const args = [...waitFlags, '-t', table, '-n', '-L', chain];
  const r = await runner.run(cmd, args, { reject: false, timeoutMs: 30_000 });
  if (r.exitCode === 0) return true;
  if (r.exitCode === 1) return false;
  throw CommandError.exit(cmd, args, r);
}
