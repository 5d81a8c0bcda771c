/**
 * What the kernel already holds, read from one `iptables-save`, compared with a render
 * chain by chain (spec §17): a full sync writes only the chains whose rules differ, so a
 * restart over our own rules, or a takeover from kube-proxy's identical rules, writes
 * (almost) nothing. No I/O.
 *
 * A chain is unchanged when the kernel has it with exactly the rendered rules in the same
 * order, compared through their saved form (saved-form.ts). A rule the saved-form model
 * does not know makes its chain differ: it is rewritten, the safe default.
 */
import { hash } from 'node:crypto';
import type { IPFamily } from '../../model/ip.js';
import { isServiceChain, SERVICE_CHAIN_PREFIXES } from './chain-names.js';
import { jumpTarget } from './chunking.js';
import type { RestoreTable } from './restore-text.js';
import { savedForm } from './saved-form.js';

/** A chain whose rules are kept as text: built-in chains, the fixed chains, other agents' chains. */
export interface SavedTextChain {
  /** a built-in chain (it has a policy) */
  builtin: boolean;
  /** the chain's `-A` lines as iptables-save printed them, joined with `\n` ('' when empty) */
  rules: string;
  /** how many rules */
  count: number;
}

/**
 * A service chain (KUBE-SVC-, -SVL-, -EXT-, -FW-, -SEP-): 100,000+ of them on a large
 * cluster, most of iptables-save's output. Only what the sync needs of them is kept, so
 * reading the kernel costs memory in proportion to the number of chains, not of rules.
 */
export interface SavedDigestChain {
  builtin: false;
  /** how many rules */
  count: number;
  /**
   * rulesDigest of the `-A` lines as printed, joined with `\n`; null when the chain's rules
   * did not come in one run (iptables-save prints them so): compares different, rewritten
   */
  digest: string | null;
  /** the KUBE- chains other than service chains its rules jump to (`-j KUBE-...`) */
  jumps: readonly string[];
}

export type SavedChain = SavedTextChain | SavedDigestChain;

/** table name -> chain name -> chain, as read from iptables-save. */
export type SavedTables = Map<string, Map<string, SavedChain>>;

export function isTextChain(chain: SavedChain): chain is SavedTextChain {
  return 'rules' in chain;
}

/** The digest a SavedDigestChain keeps of its rules' text (bytes: their UTF-8). */
export function rulesDigest(text: string | Uint8Array): string {
  return hash('sha256', text, 'base64');
}

const EMPTY_DIGEST = rulesDigest('');
const NO_JUMPS: readonly string[] = Object.freeze([]);

export interface SavedTablesOptions {
  /** whether a (non-built-in) chain's rules are kept as a digest only; default: the service chains */
  digestOnly?: (chain: string) => boolean;
}

const NEWLINE = 0x0a;
const SPACE = 0x20;
const DASH = 0x2d;
const LETTER_A = 0x41;
const COLON = 0x3a;
const STAR = 0x2a;
/** what chunking.ts's jumpTarget looks for */
const JUMP = Buffer.from(' -j KUBE-', 'latin1');

interface TextBuilder {
  builtin: boolean;
  count: number;
  lines: string[];
}

/** A digest chain while it is read: already in its final shape (100,000+ of them). */
interface DigestBuilder {
  builtin: false;
  count: number;
  /** UNREAD until its run of rules is read */
  digest: string | null;
  jumps: readonly string[];
}

/** The digest of a chain whose rules have not come yet: a value no base64 digest takes. */
const UNREAD = '(unread)';

type Builder = TextBuilder | DigestBuilder;

const isDigestBuilder = (b: Builder): b is DigestBuilder => !('lines' in b);

function asBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

// Chain names are short: the loops below beat a native call per line (Buffer.indexOf,
// Buffer.compare) several times over on the 1,000,000 lines of a large save.

/** End of the word starting at `from` in the line [from, end). */
function wordEnd(buf: Buffer, from: number, end: number): number {
  let at = from;
  while (at < end && buf[at] !== SPACE) at++;
  return at;
}

/**
 * Whether bytes [start, end) of `buf` are `name`, compared as ASCII (a chain name that
 * is not ASCII never compares equal: it only costs a lookup by its decoded name).
 */
function bytesAre(buf: Buffer, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (buf[start + i] !== name.charCodeAt(i)) return false;
  return true;
}

/** Whether the bytes at `start` begin with `prefix` (ASCII). */
function bytesStartWith(buf: Buffer, start: number, end: number, prefix: string): boolean {
  return end - start >= prefix.length && bytesAre(buf, start, start + prefix.length, prefix);
}

/**
 * Reads iptables-save output (any number of tables) fed in chunks as the command prints
 * it, so the output never exists whole: push(chunk)... then end(). Works on bytes, and
 * every string it keeps is decoded afresh from them: a slice of a chunk would keep the
 * whole chunk alive (V8's sliced strings), and 100,000 chain names would keep all of them.
 *
 * Service chains (see `digestOnly`) keep only their rule count, a digest of their rules'
 * text and the non-service chains they jump to; the other chains keep their rules' text.
 */
export class SavedTablesParser {
  private readonly tables: SavedTables = new Map();
  private readonly digestOnly: (chain: string) => boolean;
  /** the table being read, null outside one; text chains become SavedTextChains at its end */
  private chains: Map<string, Builder | SavedChain> | null = null;
  private tableName = '';
  /** the chain of the previous rule line, to find the next line's chain without a lookup */
  private lastName = '';
  private last: Builder | null = null;
  /**
   * The run of rules of the digest chain being read (`last`, when it is one): its bytes as
   * finished segments (whole lines, without the last newline) and the one still growing.
   */
  private runPieces: Uint8Array[] | null = null;
  private runBuf: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  /** the start of a line split across chunks */
  private carry: Buffer[] = [];
  /** jump lists by content, shared by the chains that have the same */
  private readonly jumpLists = new Map<string, readonly string[]>();
  private ended = false;

  constructor(options: SavedTablesOptions = {}) {
    this.digestOnly = options.digestOnly ?? isServiceChain;
  }

  push(chunk: Uint8Array | string): void {
    if (this.ended) throw new Error('SavedTablesParser: push after end');
    const buf = asBuffer(chunk);
    let pos = 0;
    if (this.carry.length > 0) {
      const eol = buf.indexOf(NEWLINE);
      if (eol === -1) {
        this.carry.push(Buffer.from(buf));
        return;
      }
      const line = Buffer.concat([...this.carry, buf.subarray(0, eol)]);
      this.carry = [];
      this.line(line, 0, line.length);
      pos = eol + 1;
    }
    while (pos < buf.length) {
      const eol = buf.indexOf(NEWLINE, pos);
      if (eol === -1) {
        // A copy: a view would keep the whole chunk.
        this.carry.push(Buffer.from(buf.subarray(pos)));
        break;
      }
      this.line(buf, pos, eol);
      pos = eol + 1;
    }
  }

  /** The tables read. */
  end(): SavedTables {
    if (this.ended) throw new Error('SavedTablesParser: end called twice');
    if (this.carry.length > 0) {
      const line = Buffer.concat(this.carry);
      this.carry = [];
      this.line(line, 0, line.length);
    }
    this.finishTable();
    this.ended = true;
    return this.tables;
  }

  private line(buf: Buffer, start: number, end: number): void {
    const c0 = start < end ? buf[start] : -1;
    if (this.chains === null) {
      if (c0 === STAR) this.startTable(buf, start, end);
      return;
    }
    if (c0 === DASH && buf[start + 1] === LETTER_A && buf[start + 2] === SPACE) {
      this.rule(buf, start, end);
    } else if (c0 === COLON) {
      this.closeRun();
      this.declare(buf, start, end);
    } else if (c0 === STAR) {
      this.finishTable();
      this.startTable(buf, start, end);
    } else if (bytesStartWith(buf, start, end, 'COMMIT')) {
      this.finishTable();
    }
    // Anything else (comments) is skipped; a run of rules continues across it.
  }

  private startTable(buf: Buffer, start: number, end: number): void {
    this.tableName = buf.toString('utf8', start + 1, end).trim();
    this.chains = new Map();
  }

  private newBuilder(name: string, builtin: boolean): Builder {
    return !builtin && this.digestOnly(name)
      ? { builtin: false, count: 0, digest: UNREAD, jumps: NO_JUMPS }
      : { builtin, count: 0, lines: [] };
  }

  /** `:NAME POLICY [p:b]`. A chain declared again starts empty, as in restore input. */
  private declare(buf: Buffer, start: number, end: number): void {
    const nameEnd = wordEnd(buf, start + 1, end);
    const name = buf.toString('utf8', start + 1, nameEnd);
    // The policy word: `-` for a user chain (also when missing), ACCEPT/DROP for a built-in.
    const policy = nameEnd + 1;
    const userChain =
      nameEnd >= end || (buf[policy] === DASH && (policy + 1 === end || buf[policy + 1] === SPACE));
    this.chains!.set(name, this.newBuilder(name, !userChain));
  }

  private rule(buf: Buffer, start: number, end: number): void {
    const nameStart = start + 3;
    let chain = this.last;
    // Most lines continue the previous line's chain: check for its name first.
    const lastEnd = nameStart + this.lastName.length;
    if (
      chain === null ||
      lastEnd > end ||
      (lastEnd < end && buf[lastEnd] !== SPACE) ||
      !bytesAre(buf, nameStart, lastEnd, this.lastName)
    ) {
      this.closeRun();
      const name = buf.toString('utf8', nameStart, wordEnd(buf, nameStart, end));
      let found = this.chains!.get(name) as Builder | undefined;
      if (!found) {
        // A rule for a chain without a declaration: keep it, as a user chain.
        found = this.newBuilder(name, false);
        this.chains!.set(name, found);
      }
      chain = found;
      this.last = chain;
      this.lastName = name;
      if (isDigestBuilder(chain)) {
        // iptables-save prints a chain's rules in one run; a second run cannot be digested
        // as one text with the first: be safe, the chain is to be rewritten.
        if (chain.digest !== UNREAD) chain.digest = null;
        this.runPieces = null;
        this.runBuf = buf;
        this.runStart = start;
        this.runEnd = start - 1;
      }
    }
    chain.count++;
    if (!isDigestBuilder(chain)) {
      chain.lines.push(buf.toString('utf8', start, end));
    } else if (this.runBuf === buf && this.runEnd + 1 === start) {
      this.runEnd = end;
    } else {
      // The run goes on in another chunk (or after a skipped line).
      this.runPieces ??= [];
      this.runPieces.push(this.runBuf!.subarray(this.runStart, this.runEnd));
      this.runBuf = buf;
      this.runStart = start;
      this.runEnd = end;
    }
  }

  /** Digests the run of rules being read, if any. */
  private closeRun(): void {
    const chain = this.last;
    const buf = this.runBuf;
    this.last = null;
    this.lastName = '';
    this.runBuf = null;
    if (chain === null || buf === null || !isDigestBuilder(chain)) return;
    let text = buf.subarray(this.runStart, this.runEnd);
    if (this.runPieces !== null) {
      const parts: Uint8Array[] = [];
      for (const piece of this.runPieces) parts.push(piece, NEWLINE_BYTE);
      parts.push(text);
      text = Buffer.concat(parts);
      this.runPieces = null;
    }
    if (chain.digest === null) {
      // A later run of a chain to be rewritten: its jumps still count.
      chain.jumps = this.sharedJumps([...new Set([...chain.jumps, ...this.jumpsIn(text)])]);
      return;
    }
    chain.digest = rulesDigest(text);
    chain.jumps = this.jumpsIn(text);
  }

  /** The non-service KUBE- chains the rules in `text` jump to (every ` -j KUBE-` in it). */
  private jumpsIn(text: Buffer): readonly string[] {
    let names: string[] | null = null;
    for (let at = text.indexOf(JUMP); at !== -1; at = text.indexOf(JUMP, at + JUMP.length)) {
      const start = at + 4;
      let end = start;
      while (end < text.length && text[end] !== SPACE && text[end] !== NEWLINE) end++;
      if (SERVICE_CHAIN_PREFIXES.some((p) => bytesStartWith(text, start, end, p))) continue;
      const name = text.toString('utf8', start, end);
      names ??= [];
      if (!names.includes(name)) names.push(name);
    }
    return names === null ? NO_JUMPS : this.sharedJumps(names);
  }

  /** The one list with these names, shared by the chains that jump to the same. */
  private sharedJumps(names: string[]): readonly string[] {
    if (names.length === 0) return NO_JUMPS;
    const key = names.length === 1 ? names[0]! : names.join(' ');
    let shared = this.jumpLists.get(key);
    if (!shared) {
      shared = Object.freeze(names);
      this.jumpLists.set(key, shared);
    }
    return shared;
  }

  private finishTable(): void {
    this.closeRun();
    const chains = this.chains;
    if (chains === null) return;
    this.chains = null;
    for (const [name, entry] of chains) {
      const c = entry as Builder; // all builders until now
      if (!isDigestBuilder(c))
        chains.set(name, { builtin: c.builtin, rules: c.lines.join('\n'), count: c.count });
      else if (c.digest === UNREAD) c.digest = EMPTY_DIGEST;
    }
    this.tables.set(this.tableName, chains as Map<string, SavedChain>);
  }
}

const NEWLINE_BYTE = Buffer.from('\n', 'latin1');

/** iptables-save output held whole (small reads, tests): the same parser, fed at once. */
export function parseSavedTables(text: string, options: SavedTablesOptions = {}): SavedTables {
  const parser = new SavedTablesParser(options);
  parser.push(text);
  return parser.end();
}

/** A user chain as `iptables -S CHAIN` lists it: a `-N` line, then its rules as iptables-save prints them. */
export function savedChainFromListing(listing: string): SavedTextChain {
  const rules = listing.split('\n').filter((line) => line.startsWith('-A '));
  return { builtin: false, rules: rules.join('\n'), count: rules.length };
}

/** A saved chain's rules as lines. */
export function savedRuleLines(chain: SavedTextChain): string[] {
  return chain.count === 0 ? [] : chain.rules.split('\n');
}

/** The KUBE- chains other than service chains that the chain's rules jump to. */
export function savedJumps(chain: SavedChain): readonly string[] {
  if (!isTextChain(chain)) return chain.jumps;
  const out: string[] = [];
  for (const rule of savedRuleLines(chain)) {
    const target = jumpTarget(rule);
    if (target !== undefined && !isServiceChain(target)) out.push(target);
  }
  return out;
}

/**
 * Whether the kernel's chain holds exactly these rendered rules. The saved text is first
 * compared whole with the saved form of the render (one string comparison when equal, the
 * common case); on a mismatch each saved line is normalised too, in case iptables printed
 * an equal rule differently from our derivation. A service chain was kept only as a
 * digest of its text: the render's saved form, joined as that text would be, is digested
 * and compared; a mismatch cannot be normalised line by line, so the chain is rewritten
 * (the safe default).
 */
export function chainMatches(rendered: readonly string[], saved: SavedChain, family: IPFamily): boolean {
  if (rendered.length !== saved.count) return false;
  if (rendered.length === 0) return true;
  const forms: string[] = [];
  for (const rule of rendered) {
    const form = savedForm(rule, family);
    if (form === null) return false;
    forms.push(form);
  }
  const text = forms.join('\n');
  if (!isTextChain(saved)) return saved.digest !== null && rulesDigest(text) === saved.digest;
  if (text === saved.rules) return true;
  const lines = savedRuleLines(saved);
  return forms.every((form, i) => savedForm(lines[i]!, family) === form);
}

/**
 * Removes from `table` every declared chain the kernel already holds with exactly the
 * rendered rules, so the restore input leaves it alone. Chains being deleted (`-X`) stay.
 * Returns how many chains were removed.
 */
export function dropChainsTheKernelHolds(table: RestoreTable, saved: SavedTables, family: IPFamily): number {
  const kernel = saved.get(table.name);
  if (!kernel) return 0;
  const deleted = new Set(table.deleted);
  // A new map of what stays: usually few chains, where deleting 100,000 entries is slow.
  const kept = new Map<string, readonly string[]>();
  for (const [chain, rules] of table.chains) {
    const held = deleted.has(chain) ? undefined : kernel.get(chain);
    if (!held || held.builtin || !chainMatches(rules, held, family)) kept.set(chain, rules);
  }
  const dropped = table.chains.size - kept.size;
  table.chains = kept;
  return dropped;
}
