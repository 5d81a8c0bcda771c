/**
 * Which iptables the node uses, and what it supports.
 *
 * iptables 1.8 has two backends that write to different kernel subsystems; rules written
 * with the wrong one run in the wrong order relative to the node's other rules (kubelet's,
 * the CNI's). The node's choice is detected the way kubernetes-sigs/iptables-wrappers does
 * it: look for the chains kubelet creates, else count rules. The decisions are pure
 * functions over command outputs; `detectBackend` and the probes only run the commands.
 */
import type { Logger } from '../log.js';
import type { IPFamily } from '../model/ip.js';
import { type CommandRunner, inNetns } from './exec.js';

export type Backend = 'nft' | 'legacy';
export type IptablesTool = 'iptables' | 'restore' | 'save';

/** e.g. (`nft`, `IPv6`, `restore`) → `ip6tables-nft-restore`. */
export function iptablesBinary(backend: Backend, family: IPFamily, tool: IptablesTool): string {
  const base = `${family === 'IPv6' ? 'ip6tables' : 'iptables'}-${backend}`;
  return tool === 'iptables' ? base : `${base}-${tool}`;
}

// kubelet (1.17+) creates one of these in the mangle table of the backend it uses.
const KUBELET_CHAIN = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)\s/gm;

export function countKubeletChains(saveOutput: string): number {
  return saveOutput.match(KUBELET_CHAIN)?.length ?? 0;
}

/** Rule lines (`-A ...`) in iptables-save output. */
export function countRules(saveOutput: string): number {
  return saveOutput.match(/^-/gm)?.length ?? 0;
}

/**
 * The outputs detection looks at; each is the concatenated IPv4 + IPv6 output, empty when
 * the command failed (as the wrapper script does with `|| true`).
 */
export interface BackendEvidence {
  /** `iptables-nft-save -t mangle` + `ip6tables-nft-save -t mangle` */
  nftMangle: string;
  /**
   * `iptables-legacy-save` + `ip6tables-legacy-save`, all tables: asking legacy for
   * `-t mangle` would make the kernel create that table.
   */
  legacyAll: string;
  /** `iptables-nft-save` + `ip6tables-nft-save`, all tables (only needed for the count). */
  nftAll: string;
}

export interface BackendDecision {
  backend: Backend;
  reason: string;
}

/**
 * iptables-wrappers' rule: kubelet's chains in nft → nft; else kubelet's chains in
 * legacy → legacy; else whichever backend holds more rules, a tie going to nft.
 */
export function decideBackend(e: BackendEvidence): BackendDecision {
  const nftKubelet = countKubeletChains(e.nftMangle);
  if (nftKubelet > 0) {
    return { backend: 'nft', reason: `kubelet's chains found in iptables-nft mangle table (${nftKubelet})` };
  }
  const legacyKubelet = countKubeletChains(e.legacyAll);
  if (legacyKubelet > 0) {
    return { backend: 'legacy', reason: `kubelet's chains found in iptables-legacy (${legacyKubelet})` };
  }
  const legacyRules = countRules(e.legacyAll);
  const nftRules = countRules(e.nftAll);
  if (legacyRules > nftRules) {
    return {
      backend: 'legacy',
      reason: `no kubelet chains; iptables-legacy has more rules (${legacyRules}) than iptables-nft (${nftRules})`,
    };
  }
  return {
    backend: 'nft',
    reason: `no kubelet chains; iptables-nft has ${nftRules} rules, iptables-legacy ${legacyRules} (a tie goes to nft)`,
  };
}

async function outputOrEmpty(runner: CommandRunner, cmd: string, args: string[]): Promise<string> {
  try {
    const r = await runner.run(cmd, args, { reject: false, timeoutMs: 10_000 });
    return r.exitCode === 0 ? r.stdout : '';
  } catch {
    // Missing binary or a hang: count as no evidence, like the wrapper's `|| true`.
    return '';
  }
}

/** Runs the save commands (read-only) and decides. */
export async function detectBackend(runner: CommandRunner): Promise<BackendDecision> {
  const both = async (backend: Backend, args: string[]) =>
    (await outputOrEmpty(runner, iptablesBinary(backend, 'IPv4', 'save'), args)) +
    (await outputOrEmpty(runner, iptablesBinary(backend, 'IPv6', 'save'), args));
  const nftMangle = await both('nft', ['-t', 'mangle']);
  if (countKubeletChains(nftMangle) > 0) return decideBackend({ nftMangle, legacyAll: '', nftAll: '' });
  const legacyAll = await both('legacy', []);
  const nftAll = countKubeletChains(legacyAll) > 0 ? '' : await both('nft', []);
  return decideBackend({ nftMangle, legacyAll, nftAll });
}

export interface IptablesVersion {
  major: number;
  minor: number;
  patch: number;
  /** `nf_tables` or `legacy` as printed in parentheses; absent before 1.8. */
  mode?: 'nf_tables' | 'legacy';
}

/** Parses `iptables v1.8.9 (nf_tables)` (any of the iptables binaries' `--version`). */
export function parseIptablesVersion(output: string): IptablesVersion {
  const m = /v(\d+)\.(\d+)\.(\d+)(?:\s+\((nf_tables|legacy)\))?/.exec(output);
  if (!m) throw new Error(`cannot read an iptables version from ${JSON.stringify(output.trim())}`);
  const v: IptablesVersion = { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
  if (m[4]) v.mode = m[4] as 'nf_tables' | 'legacy';
  return v;
}

export function versionAtLeast(v: IptablesVersion, major: number, minor: number, patch: number): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.patch >= patch;
}

/** MASQUERADE --random-fully exists since iptables 1.6.2 (kube-proxy's own check). */
export function supportsRandomFully(v: IptablesVersion): boolean {
  return versionAtLeast(v, 1, 6, 2);
}

/**
 * Lock-wait flags for iptables and iptables-restore, as kube-proxy passes them: `-w 5`
 * (restore accepts it since 1.6.2) and `-W 100000`. iptables 1.8.8 made `-W` a no-op that
 * prints "Ignoring deprecated --wait-interval option." on every call, so it is left out there.
 */
export function waitFlags(v: IptablesVersion): string[] {
  if (!versionAtLeast(v, 1, 6, 2)) return [];
  if (versionAtLeast(v, 1, 8, 8)) return ['-w', '5'];
  return ['-w', '5', '-W', '100000'];
}

export async function readIptablesVersion(
  runner: CommandRunner,
  backend: Backend,
  family: IPFamily = 'IPv4',
): Promise<IptablesVersion> {
  const r = await runner.run(iptablesBinary(backend, family, 'iptables'), ['--version'], {
    timeoutMs: 10_000,
  });
  return parseIptablesVersion(r.stdout + r.stderr);
}

/** The iptables a proxy writes with: its backend, version and lock-wait flags. */
export interface IptablesInUse {
  backend: Backend;
  version: IptablesVersion;
  waitFlags: string[];
}

/**
 * The node's iptables as both modes start on it: `given` (an operator's or a test's choice)
 * or detected, logged either way, then its version and the lock-wait flags it takes.
 */
export async function resolveIptables(
  runner: CommandRunner,
  given: Backend | undefined,
  log: Logger,
): Promise<IptablesInUse> {
  let backend = given;
  if (backend) {
    log.info({ iptablesBackend: backend }, 'iptables backend given');
  } else {
    const decision = await detectBackend(runner);
    backend = decision.backend;
    log.info({ iptablesBackend: backend, reason: decision.reason }, 'iptables backend detected');
  }
  const version = await readIptablesVersion(runner, backend);
  return { backend, version, waitFlags: waitFlags(version) };
}

export type Tristate = 'yes' | 'no' | 'unknown';

export interface NfacctSupport {
  /** Whether the kernel has the `nfacct` match (xt_nfacct). */
  kernel: Tristate;
  reason: string;
}

/**
 * Reads the result of applying (not `--test`: that only parses in user space) a rule
 * `-m nfacct --nfacct-name <a name that does not exist>` in a scratch namespace with the
 * nft backend. With xt_nfacct present the kernel looks the counter up and answers ENOENT;
 * without it the match itself is refused.
 */
export function classifyNfacctProbe(r: { exitCode: number; stderr: string }): NfacctSupport {
  const err = r.stderr.trim();
  if (r.exitCode === 0) return { kernel: 'yes', reason: 'a rule using -m nfacct was accepted' };
  if (/No such file or directory/.test(err) && /RULE_(APPEND|INSERT|REPLACE)/.test(err)) {
    return {
      kernel: 'yes',
      reason: 'the kernel has the nfacct match; it refused the rule only because the counter does not exist',
    };
  }
  if (
    /nfacct/i.test(err) &&
    /(not supported|No chain\/target\/match|Couldn't load match|Protocol not supported)/i.test(err)
  ) {
    return { kernel: 'no', reason: `the nfacct match was refused: ${err}` };
  }
  return { kernel: 'unknown', reason: `unexpected answer to the nfacct probe (exit ${r.exitCode}): ${err}` };
}

/**
 * Probes nfacct support inside a namespace the caller created for the purpose (nfacct
 * counters and rules are per network namespace, so nothing of the node is touched).
 */
export async function probeNfacct(runner: CommandRunner, scratchNetns: string): Promise<NfacctSupport> {
  const probeCounter = 'switchboard_probe_missing_counter';
  const input = `*filter\n:SWITCHBOARD-PROBE - [0:0]\n-A SWITCHBOARD-PROBE -m nfacct --nfacct-name ${probeCounter} -j RETURN\nCOMMIT\n`;
  try {
    const r = await inNetns(runner, scratchNetns).run(
      iptablesBinary('nft', 'IPv4', 'restore'),
      ['--noflush'],
      {
        input,
        reject: false,
        timeoutMs: 10_000,
      },
    );
    return classifyNfacctProbe(r);
  } catch (e) {
    return { kernel: 'unknown', reason: `nfacct probe could not run: ${(e as Error).message}` };
  }
}

/** Counter names from `nfacct list` (`{ pkts = ..., bytes = ... } = NAME;`). */
export function parseNfacctList(output: string): string[] {
  const names: string[] = [];
  for (const m of output.matchAll(/^\s*\{[^}]*\}\s*=\s*([^;\s]+);/gm)) names.push(m[1]!);
  return names;
}

/**
 * The nfacct counters that exist (in the runner's namespace), or undefined when the
 * `nfacct` tool is missing or cannot talk to the kernel.
 */
export async function listNfacctCounters(runner: CommandRunner): Promise<string[] | undefined> {
  try {
    const r = await runner.run('nfacct', ['list'], { reject: false, timeoutMs: 10_000 });
    return r.exitCode === 0 ? parseNfacctList(r.stdout) : undefined;
  } catch {
    return undefined;
  }
}
