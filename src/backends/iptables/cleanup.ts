/**
 * `switchboard cleanup`: removes every chain and rule that Switchboard, or kube-proxy in
 * iptables mode, creates, in both families and with both iptables backends, and nothing
 * else: other agents' chains and rules stay.
 *
 * Per backend and family: read `iptables-save` (all tables; asking legacy for one table
 * would create it), plan, and apply one `iptables-restore --noflush` that flushes our
 * chains, deletes (`-D`, the exact rule as saved) the rules in built-in chains that
 * jump to them, and deletes (`-X`) the chains. One transaction per table: it all goes or
 * nothing does.
 *
 * What counts as ours follows kube-proxy's CleanupLeftovers (pkg/proxy/iptables), plus:
 * - `KUBE-FIREWALL` (filter) and its bare `-j KUBE-FIREWALL` jumps from INPUT/OUTPUT are
 *   copies of kubelet's. kube-proxy never removes them. Switchboard removes them only
 *   when kubelet is absent from that backend and family (no `KUBE-KUBELET-CANARY` chain
 *   in any table): then nobody else made them, and leaving them would leave a KUBE- chain
 *   behind. With kubelet present they are kubelet's and stay.
 * - `KUBE-XLB-*` (nat), kube-proxy's local-traffic chains before 1.24, which upgrades
 *   may have left behind.
 * Never touched: `KUBE-KUBELET-CANARY`, `KUBE-IPTABLES-HINT` (kubelet's) and
 * `KUBE-MARK-DROP` (kubelet's legacy chain; neither current kube-proxy nor Switchboard
 * creates it).
 *
 * A chain of ours that another agent's own (non-built-in) chain jumps to cannot be
 * deleted without deleting that agent's rule, so it is flushed, kept, and reported.
 *
 * IPVS mode's chains are ours too (spec kube-proxy-ipvs.md §7). The same planner, with a
 * narrower policy, removes one mode's leftovers when Switchboard starts in the other
 * (`IPTABLES_MODE_LEFTOVERS`, `IPVS_MODE_LEFTOVERS`): the chains both modes use are kept,
 * and the other mode's jumps into them (iptables mode's `--ctstate NEW` jumps to
 * KUBE-PROXY-FIREWALL, IPVS mode's without) are deleted.
 */
import { StringDecoder } from 'node:string_decoder';
import { type Backend, iptablesBinary } from '../../kernel/backend.js';
import { CommandError, type CommandRunner } from '../../kernel/exec.js';
import { Iptables } from '../../kernel/iptables.js';
import type { Logger } from '../../log.js';
import type { IPFamily } from '../../model/ip.js';
import { isIpvsOnlyChain, isSharedChain, modeOnlySharedJumps } from '../ipvs/chains.js';
import { isServiceChain } from './chain-names.js';
import { CANARY_CHAIN, type JumpRule } from './jump-rules.js';
import { FIXED_CHAINS } from './render.js';

const KUBELET_CANARY = 'KUBE-KUBELET-CANARY';
const KUBELET_FIREWALL = 'KUBE-FIREWALL';

/** The fixed chains we render (KUBE-FIREWALL aside: kubelet may own it) and the canaries. */
const OURS: Readonly<Record<string, readonly string[]>> = {
  filter: [...FIXED_CHAINS.filter.filter((c) => c !== KUBELET_FIREWALL), CANARY_CHAIN],
  nat: [...FIXED_CHAINS.nat, CANARY_CHAIN],
  mangle: [CANARY_CHAIN],
};

interface SavedRule {
  chain: string;
  /** the line as saved, `-A CHAIN ...` */
  line: string;
  target: string | undefined;
}

interface SavedTable {
  name: string;
  /** chain name -> built-in (has a policy) */
  chains: Map<string, boolean>;
  rules: SavedRule[];
}

/**
 * Splits a saved rule into words, honouring iptables-save's double quotes and backslash escapes.
 * Not saved-form.ts's ruleWords, which refuses (null) what we never write: this must read any agent's rule.
 */
export function splitRuleWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (c === '"') {
      quoted = !quoted;
      inWord = true;
    } else if (!quoted && /\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function ruleTarget(line: string): string | undefined {
  const words = splitRuleWords(line);
  for (let i = 2; i < words.length - 1; i++) {
    if (words[i] === '-j' || words[i] === '-g') return words[i + 1];
  }
  return undefined;
}

/**
 * iptables-save output read line by line as it is printed (push, then end), so that a large
 * save never exists whole. Chains `skipRules` names (declared, not built-in) keep no rules:
 * a cleanup flushes the chains it removes without reading their rules, and at 10,000
 * services the service chains are nearly every line (held whole with their words, ~1 GiB
 * at 20,000 services).
 */
export class SaveReader {
  private readonly tables: SavedTable[] = [];
  private current: SavedTable | undefined;
  private carry = '';
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly skipRules: (table: string, chain: string) => boolean = () => false) {}

  push(chunk: Uint8Array | string): void {
    const lines = (this.carry + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk))).split('\n');
    this.carry = lines.pop()!;
    for (const line of lines) this.line(line);
  }

  end(): SavedTable[] {
    const rest = this.carry + this.decoder.end();
    this.carry = '';
    if (rest !== '') this.line(rest);
    return this.tables;
  }

  private line(raw: string): void {
    const line = raw.trim();
    const current = this.current;
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      this.current = { name: line.slice(1), chains: new Map(), rules: [] };
      this.tables.push(this.current);
    } else if (line === 'COMMIT') {
      this.current = undefined;
    } else if (current && line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      if (name) current.chains.set(name, policy !== undefined && policy !== '-');
    } else if (current && line.startsWith('-A ')) {
      const chain = line.split(/\s+/, 2)[1]!;
      if (current.chains.get(chain) === false && this.skipRules(current.name, chain)) return;
      current.rules.push({ chain, line, target: ruleTarget(line) });
    }
  }
}

/** All tables of `iptables-save` output. */
export function parseSave(text: string): SavedTable[] {
  const reader = new SaveReader();
  reader.push(text);
  return reader.end();
}

/**
 * A family's iptables-save, read as it is printed and kept as far as `policy`'s plan needs:
 * not the rules of the chains it removes whether or not kubelet is there (planCleanupOf
 * skips those anyway).
 */
export async function readForCleanup(
  iptables: Iptables,
  family: IPFamily,
  policy: CleanupPolicy,
): Promise<SavedTable[]> {
  const reader = cleanupReader(policy);
  await iptables.saveTo(family, (chunk) => reader.push(chunk));
  return reader.end();
}

/** A SaveReader that keeps what `policy`'s plan reads (see readForCleanup). */
export function cleanupReader(policy: CleanupPolicy = ALL_MODES): SaveReader {
  return new SaveReader(
    (table, chain) => policy.removes(table, chain, true) && policy.removes(table, chain, false),
  );
}

export interface CleanupPlan {
  /** restore input; '' when there is nothing to remove */
  input: string;
  removedRules: number;
  removedChains: number;
  /** our chains flushed but kept because another agent's chain jumps to them */
  kept: { table: string; chain: string; referencedFrom: string }[];
}

/** Iptables mode's chains (KUBE-FIREWALL aside: kubelet may own it). */
function isIptablesModeChain(table: string, chain: string, kubeletPresent: boolean): boolean {
  if (OURS[table]?.includes(chain)) return true;
  if (table === 'nat' && (isServiceChain(chain) || chain.startsWith('KUBE-XLB-'))) return true;
  return table === 'filter' && chain === KUBELET_FIREWALL && !kubeletPresent;
}

/** Which chains and rules a cleanup removes. */
export interface CleanupPolicy {
  /** whether the user-defined chain `chain` of `table` is removed (flushed and deleted) */
  removes(table: string, chain: string, kubeletPresent: boolean): boolean;
  /** non-built-in chains whose rules into removed chains may be deleted (built-in ones always may) */
  edits?(table: string, chain: string): boolean;
  /** rules of built-in chains to delete besides the jumps into removed chains */
  alsoDeletes?: readonly JumpRule[];
}

/** `switchboard cleanup`: everything either mode (and kube-proxy's) creates. */
const ALL_MODES: CleanupPolicy = {
  removes: (table, chain, kubeletPresent) =>
    isIptablesModeChain(table, chain, kubeletPresent) || isIpvsOnlyChain(table, chain),
};

/** Starting in IPVS mode: iptables mode's chains and jumps, keeping the chains IPVS mode uses. */
export const IPTABLES_MODE_LEFTOVERS: CleanupPolicy = {
  // The canaries (in every CANARY_TABLES table) are among iptables mode's chains (OURS).
  removes: (table, chain) => isIptablesModeChain(table, chain, true) && !isSharedChain(table, chain),
  edits: isSharedChain,
  alsoDeletes: modeOnlySharedJumps('iptables'),
};

/** Starting in iptables mode: IPVS mode's chains and jumps, keeping the chains iptables mode uses. */
export const IPVS_MODE_LEFTOVERS: CleanupPolicy = {
  removes: (table, chain) => isIpvsOnlyChain(table, chain),
  edits: isSharedChain,
  alsoDeletes: modeOnlySharedJumps('ipvs'),
};

function isListedJump(table: string, rule: SavedRule, jumps: readonly JumpRule[]): boolean {
  const words = splitRuleWords(rule.line).slice(2);
  return jumps.some(
    (j) =>
      j.table === table &&
      j.from === rule.chain &&
      j.args.length === words.length &&
      j.args.every((w, i) => w === words[i]),
  );
}

/** What to remove from one backend and family, given its `iptables-save` output. Pure. */
export function planCleanup(saveText: string, policy: CleanupPolicy = ALL_MODES): CleanupPlan {
  return planCleanupOf(parseSave(saveText), policy);
}

/** What to remove, given the tables as read (readForCleanup, parseSave). Pure. */
export function planCleanupOf(tables: readonly SavedTable[], policy: CleanupPolicy = ALL_MODES): CleanupPlan {
  const kubeletPresent = tables.some((t) => t.chains.has(KUBELET_CANARY));
  const plan: CleanupPlan = { input: '', removedRules: 0, removedChains: 0, kept: [] };
  const out: string[] = [];
  for (const table of tables) {
    const ours = [...table.chains.keys()].filter(
      (c) => !table.chains.get(c) && policy.removes(table.name, c, kubeletPresent),
    );
    const oursSet = new Set(ours);
    const unlink: string[] = [];
    const referenced = new Set<string>();
    for (const rule of table.rules) {
      if (oursSet.has(rule.chain)) continue;
      const builtin = table.chains.get(rule.chain) === true;
      if (builtin && policy.alsoDeletes && isListedJump(table.name, rule, policy.alsoDeletes)) {
        unlink.push(`-D${rule.line.slice(2)}`);
        continue;
      }
      if (rule.target === undefined || !oursSet.has(rule.target)) continue;
      if (builtin || policy.edits?.(table.name, rule.chain)) {
        unlink.push(`-D${rule.line.slice(2)}`);
      } else {
        referenced.add(rule.target);
        plan.kept.push({ table: table.name, chain: rule.target, referencedFrom: rule.chain });
      }
    }
    if (ours.length === 0 && unlink.length === 0) continue;
    const deleted = ours.filter((c) => !referenced.has(c));
    out.push(`*${table.name}`);
    for (const c of ours) out.push(`:${c} - [0:0]`);
    out.push(...unlink);
    for (const c of deleted) out.push(`-X ${c}`);
    out.push('COMMIT');
    plan.removedRules += unlink.length;
    plan.removedChains += deleted.length;
  }
  if (out.length > 0) plan.input = `${out.join('\n')}\n`;
  return plan;
}

export interface CleanupOptions {
  backends?: readonly Backend[];
  families?: readonly IPFamily[];
  /** what to remove (default: everything of both modes) */
  policy?: CleanupPolicy;
}

/**
 * Removes our chains and rules everywhere (see the file comment). Returns how many chains
 * and rules were removed; 0 when there was nothing. Keeps going after a failure in one
 * backend/family and throws at the end, naming every failure.
 */
export async function cleanupIptables(
  runner: CommandRunner,
  log: Logger,
  options: CleanupOptions = {},
): Promise<{ removed: number }> {
  let removed = 0;
  const failures: string[] = [];
  for (const backend of options.backends ?? (['nft', 'legacy'] as const)) {
    for (const family of options.families ?? (['IPv4', 'IPv6'] as const)) {
      const save = iptablesBinary(backend, family, 'save');
      const policy = options.policy ?? ALL_MODES;
      const reader = cleanupReader(policy);
      let saved: SavedTable[];
      try {
        const onStdout = (chunk: Uint8Array) => reader.push(chunk);
        const r = await runner.run(save, [], { reject: false, timeoutMs: 60_000, onStdout });
        if (r.exitCode !== 0) {
          failures.push(`${save}: exit ${r.exitCode}: ${r.stderr.trim()}`);
          continue;
        }
        saved = reader.end();
      } catch (e) {
        if (e instanceof CommandError && e.reason === 'spawn') {
          log.debug({ command: save }, 'not installed; nothing to clean up with it');
          continue;
        }
        failures.push(`${save}: ${(e as Error).message}`);
        continue;
      }
      const plan = planCleanupOf(saved, policy);
      for (const k of plan.kept) {
        log.warn(
          { backend, family, table: k.table, chain: k.chain, referencedFrom: k.referencedFrom },
          'flushed but kept a chain that another chain still jumps to',
        );
      }
      if (plan.input === '') continue;
      try {
        await new Iptables(runner, backend).restore(family, plan.input);
      } catch (e) {
        failures.push(`${backend} ${family}: ${(e as Error).message}`);
        continue;
      }
      const n = plan.removedRules + plan.removedChains;
      log.info(
        { backend, family, rules: plan.removedRules, chains: plan.removedChains },
        'removed iptables state',
      );
      removed += n;
    }
  }
  if (failures.length > 0) {
    throw new Error(`iptables cleanup incomplete (removed ${removed}):\n${failures.join('\n')}`);
  }
  return { removed };
}
