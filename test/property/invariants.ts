/**
 * Invariants every iptables render must satisfy, checked on the restore text with a
 * parser written here (independent of restore-text.ts). Each check throws with the
 * offending line, so a fast-check counterexample says what broke.
 */
import type { IptablesRender } from '../../src/backends/iptables/render.js';
import { normalizeRestore, parseRestore } from '../../src/backends/iptables/restore-text.js';

const BUILT_IN_TARGETS = new Set(['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'MARK', 'MASQUERADE', 'DNAT']);
const FIXED_CHAINS: Record<string, readonly string[]> = {
  filter: [
    'KUBE-SERVICES',
    'KUBE-EXTERNAL-SERVICES',
    'KUBE-FORWARD',
    'KUBE-NODEPORTS',
    'KUBE-PROXY-FIREWALL',
    'KUBE-FIREWALL',
  ],
  nat: ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'],
};
const SERVICE_CHAIN = /^KUBE-(SVC|SVL|SEP|FW|EXT)-[A-Z2-7]{16}$/;

/** A plain assertion: vitest's expect is too slow for every line of a 5,000-line render. */
function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function hasControlCharacter(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

export interface Rule {
  table: string;
  chain: string;
  line: string;
}

export interface ParsedText {
  tables: string[];
  /** declared chains per table, in text order */
  declared: Record<string, string[]>;
  rules: Rule[];
  deleted: Record<string, string[]>;
}

/** Reads restore text strictly: every line must be one of the five forms (invariant e). */
export function readText(text: string): ParsedText {
  check(text.endsWith('\n'), 'the text must end with a newline');
  const out: ParsedText = { tables: [], declared: {}, rules: [], deleted: {} };
  let table: string | null = null;
  for (const line of text.slice(0, -1).split('\n')) {
    check(!hasControlCharacter(line), `control character in ${JSON.stringify(line)}`);
    if (line.startsWith('*')) {
      check(table === null, `table opened inside a table: ${line}`);
      table = line.slice(1);
      check(table === 'filter' || table === 'nat', `unexpected table: ${line}`);
      out.tables.push(table);
      out.declared[table] = [];
      out.deleted[table] = [];
      continue;
    }
    check(table !== null, `line outside a table: ${line}`);
    if (line === 'COMMIT') {
      table = null;
    } else if (line.startsWith(':')) {
      check(/^:[A-Z0-9-]+ - \[0:0\]$/.test(line), `malformed declaration: ${line}`);
      out.declared[table]!.push(line.slice(1, line.indexOf(' ')));
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      check(/^[A-Z0-9-]+$/.test(chain), `malformed chain name: ${line}`);
      checkQuoting(line);
      out.rules.push({ table, chain, line });
    } else if (line.startsWith('-X ')) {
      check(/^-X KUBE-[A-Z0-9-]+$/.test(line), `malformed deletion: ${line}`);
      out.deleted[table]!.push(line.slice(3));
    } else {
      throw new Error(`unexpected line: ${JSON.stringify(line)}`);
    }
  }
  check(table === null, 'the last table is not committed');
  return out;
}

/** Invariant (e): a comment argument is one quoted string without inner quotes, or one bare token. */
function checkQuoting(line: string): void {
  const commentArg = /--comment ("[^"]*"|[^\s"]+)(?= |$)/g;
  const comments = line.match(/--comment /g)?.length ?? 0;
  const matched = [...line.matchAll(commentArg)];
  check(matched.length === comments, `malformed comment in ${line}`);
  check(!line.replace(commentArg, '').includes('"'), `stray quote outside a comment in ${line}`);
}

function targetsOf(line: string): string[] {
  const out: string[] = [];
  const jump = / -j (\S+)/.exec(line);
  if (jump) out.push(jump[1]!);
  const recent = / --name (\S+)/.exec(line);
  if (recent) out.push(recent[1]!);
  return out;
}

/** Invariant (a); in a partial render a jump may also go to a kept (active, undeclared) chain. */
export function checkTargetsDeclared(p: ParsedText, kept: ReadonlySet<string> = new Set()): void {
  const declared = new Map(Object.entries(p.declared).map(([t, list]) => [t, new Set(list)]));
  for (const r of p.rules) {
    const here = declared.get(r.table)!;
    check(here.has(r.chain), `rule appended to an undeclared chain: ${r.line}`);
    for (const target of targetsOf(r.line)) {
      if (BUILT_IN_TARGETS.has(target)) continue;
      const ok = here.has(target) || (r.table === 'nat' && kept.has(target));
      check(ok, `${r.table}: ${r.line} targets undeclared ${target}`);
    }
  }
}

/** Invariant (b), widened: in a full render every declared per-service chain is jumped to. */
export function checkServiceChainsReferenced(p: ParsedText): void {
  const targets = new Set(p.rules.filter((r) => r.table === 'nat').flatMap((r) => targetsOf(r.line)));
  const deleted = new Set(p.deleted.nat);
  for (const chain of p.declared.nat ?? []) {
    if (!SERVICE_CHAIN.test(chain) || deleted.has(chain)) continue;
    check(targets.has(chain), `${chain} is declared but nothing jumps to it`);
  }
}

/** Invariant (c): the probability rules of each SVC/SVL chain give every endpoint 1/n. */
export function checkEqualShares(p: ParsedText): void {
  const byChain = new Map<string, string[]>();
  for (const r of p.rules) {
    if (r.table !== 'nat' || !/^KUBE-SV[CL]-/.test(r.chain)) continue;
    const list = byChain.get(r.chain) ?? [];
    list.push(r.line);
    byChain.set(r.chain, list);
  }
  for (const [chain, rules] of byChain) {
    const dispatch = rules.filter((l) => / -j KUBE-SEP-/.test(l) && !l.includes('--rcheck'));
    const sticky = rules.filter((l) => l.includes('--rcheck'));
    const n = dispatch.length;
    check(n > 0, `${chain} has no dispatch rules`);
    const seps = dispatch.map((l) => / -j (KUBE-SEP-\S+)$/.exec(l)![1]!);
    check(new Set(seps).size === n, `${chain} dispatches to a SEP twice`);
    let remaining = 1;
    dispatch.forEach((line, i) => {
      const m = / -m statistic --mode random --probability (\d\.\d{10}) /.exec(line);
      let share: number;
      if (i < n - 1) {
        check(m, `${chain} rule ${i} lacks a probability: ${line}`);
        const prob = Number(m[1]);
        share = remaining * prob;
        remaining *= 1 - prob;
      } else {
        check(m === null, `${chain}: the last rule must be unconditional: ${line}`);
        share = remaining;
      }
      check(Math.abs(share - 1 / n) < 1e-9, `${chain} rule ${i}: share ${share} instead of 1/${n}`);
    });
    if (sticky.length > 0) {
      for (const line of sticky) {
        const m = / --name (KUBE-SEP-\S+) --rcheck --seconds \d+ --reap -j (KUBE-SEP-\S+)$/.exec(line);
        check(m && m[1] === m[2], `malformed affinity rule: ${line}`);
      }
      const stickySeps = sticky.map((l) => / -j (\S+)$/.exec(l)![1]).sort();
      check(
        stickySeps.join() === [...seps].sort().join(),
        `${chain}: the affinity pass must cover each endpoint once`,
      );
    }
  }
}

/** Invariant (d): parseable, and already in normal form. */
export function checkNormalForm(text: string): void {
  parseRestore(text);
  check(normalizeRestore(text) === text, 'the text is not in normal form (normalizeRestore changes it)');
}

/**
 * Large-cluster mode (spec §17) drops the comments of SEP rules and SVC/SVL -> SEP jumps only;
 * otherwise they carry `<N>`. The KUBE-NODEPORTS jump stays last in nat KUBE-SERVICES (§13).
 */
export function checkCommentsAndOrder(p: ParsedText, largeCluster: boolean): void {
  for (const r of p.rules) {
    if (r.table !== 'nat') continue;
    const endpointRule =
      r.chain.startsWith('KUBE-SEP-') || (/^KUBE-SV[CL]-/.test(r.chain) && / -j KUBE-SEP-/.test(r.line));
    if (endpointRule)
      check(r.line.includes('--comment') !== largeCluster, `comment (large=${largeCluster}): ${r.line}`);
    else if (!r.chain.startsWith('KUBE-POSTROUTING') && !r.chain.startsWith('KUBE-MARK-MASQ')) {
      // every other service rule keeps its comment, except EXT's plain jump to its policy chain
      const plainJump = /^-A KUBE-EXT-\S+ -j KUBE-SV[CL]-\S+$/.test(r.line);
      check(plainJump || r.line.includes('--comment'), `missing comment: ${r.line}`);
    }
  }
  const services = rulesOf(p, 'nat', 'KUBE-SERVICES');
  const firstLast = services.findIndex((l) => l.includes('must be the last rule'));
  if (firstLast !== -1) {
    check(
      services.slice(firstLast).every((l) => l.includes('must be the last rule')),
      'the KUBE-NODEPORTS jump is not last in nat KUBE-SERVICES',
    );
  }
}

/** The checks every full render must pass. */
export function checkFullRender(render: IptablesRender): ParsedText {
  const p = readText(render.text);
  check(p.tables.join() === 'filter,nat', `tables: ${p.tables.join()}`);
  checkTargetsDeclared(p);
  checkServiceChainsReferenced(p);
  checkEqualShares(p);
  checkCommentsAndOrder(p, render.largeCluster);
  checkNormalForm(render.text);
  for (const table of ['filter', 'nat']) {
    for (const fixed of FIXED_CHAINS[table]!) {
      if (fixed === 'KUBE-FIREWALL') continue; // only with localhostNodePorts (spec §4)
      check(p.declared[table]!.includes(fixed), `${table} does not declare ${fixed}`);
    }
  }
  return p;
}

export function isFixedChain(table: string, chain: string): boolean {
  return FIXED_CHAINS[table]!.includes(chain);
}

export function rulesOf(p: ParsedText, table: string, chain: string): string[] {
  return p.rules.filter((r) => r.table === table && r.chain === chain).map((r) => r.line);
}
