/**
 * `npm run bench -- --ipvs`: the IPVS rows. The hosts have no ip_vs, so this boots the VM
 * guest (test/vm/runner.ts: qemu and the cached Debian kernel, see "VM tests" in the README),
 * runs bench/ipvs-guest.ts there on each scenario, and measures the same reference workloads
 * on the host, to give the guest's slowdown factors (TCG emulation) next to the figures.
 *
 * Targets (issue 8 §5): the one-endpoint change issues at most 3 ipvsadm/ipset operations,
 * and its time at 10k services is within 2x of its time at 1k.
 */
import { execFileSync } from 'node:child_process';
import { buildGuestBundle, GUEST_BUNDLE_DIR } from '../test/vm/guest-checks.js';
import { FETCH_KERNEL_HINT, findCachedKernel } from '../test/vm/kernel.js';
import { runInGuest } from '../test/vm/runner.js';
import type { IpvsBenchResult, IpvsTool } from './ipvs-guest.js';
import { measureReference, type ReferenceFigures } from './ipvs-reference.js';
import { type TargetCheck, table } from './report.js';

export const IPVS_TARGETS = { changeOperations: 3, changeScaling: 2 };
const GUEST_ENTRY = 'bench/ipvs-guest.ts';

export interface IpvsBenchRun {
  results: IpvsBenchResult[];
  guestReference: ReferenceFigures | null;
  hostReference: ReferenceFigures;
  bootMs: number | null;
  messages: string[];
  failed: boolean;
}

/** Why the guest cannot run here, or null. */
export function ipvsUnavailableReason(): string | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') return 'not Linux on x86-64';
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['qemu-system-x86_64', 'busybox']) {
    try {
      execFileSync(tool, [tool === 'busybox' ? 'true' : '--version'], { stdio: 'ignore', timeout: 20_000 });
    } catch {
      return `${tool} is not installed`;
    }
  }
  const kernel = findCachedKernel();
  return kernel.ok ? null : `${kernel.reason}: ${FETCH_KERNEL_HINT}`;
}

export async function runIpvsBench(scenarios: readonly string[], timeBoxS: number): Promise<IpvsBenchRun> {
  const run: IpvsBenchRun = {
    results: [],
    guestReference: null,
    hostReference: await measureReference(),
    bootMs: null,
    messages: [],
    failed: false,
  };
  await buildGuestBundle([GUEST_ENTRY]);
  const byScenario = new Map<string, IpvsBenchResult>();
  let pending = '';
  const onStdout = (chunk: string) => {
    pending += chunk;
    let nl = pending.indexOf('\n');
    while (nl !== -1) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.startsWith('RESULT ')) {
        const r = JSON.parse(line.slice('RESULT '.length)) as IpvsBenchResult;
        byScenario.set(r.scenario, r);
        process.stderr.write(
          `ipvs ${r.scenario}: ${r.cold ? `cold start ${Math.round(r.cold.totalMs)} ms` : 'world built'}${r.change ? `, change ${Math.round(r.change.medianMs)} ms` : ''}\n`,
        );
      } else if (line.startsWith('REFERENCE ')) {
        run.guestReference = JSON.parse(line.slice('REFERENCE '.length)) as ReferenceFigures;
      }
      nl = pending.indexOf('\n');
    }
  };
  try {
    const guest = await runInGuest({
      command: ['node', '--enable-source-maps', `${GUEST_BUNDLE_DIR}/bench/ipvs-guest.js`, ...scenarios],
      timeoutMs: timeBoxS * 1000,
      onStdout,
      onStderr: (chunk) => process.stderr.write(chunk),
    });
    run.bootMs = guest.bootMs;
    if (guest.exitCode !== 0) {
      run.failed = true;
      run.messages.push(`FAIL ipvs: the guest exited ${guest.exitCode}`);
    }
  } catch (e) {
    run.failed = true;
    run.messages.push(`FAIL ipvs: ${(e as Error).message} (figures measured before are kept)`);
  }
  run.results = scenarios.flatMap((s) => byScenario.get(s) ?? []);
  for (const r of run.results) {
    for (const f of r.failures) run.messages.push(`FAIL ipvs ${r.scenario}: ${f}`);
    run.failed ||= r.failures.length > 0 || !r.complete;
  }
  return run;
}

const s = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(1));
const kernelOps = (o: Record<IpvsTool, number>) => o.ipvsadm + o.ipset;

export function ipvsTable(run: IpvsBenchRun): string {
  const rows = run.results.map((r) => {
    const cold = r.cold;
    const tools = cold?.tools;
    const other =
      cold && tools ? cold.totalMs - Object.values(tools.ms).reduce((a, b) => a + b, 0) : undefined;
    const worst = r.change ? Math.max(...r.change.operations.map(kernelOps)) : undefined;
    return [
      r.scenario,
      `${r.virtualServers}/${r.realServers}`,
      s(cold?.totalMs),
      s(tools?.ms.ipvsadm),
      s(tools?.ms.ipset),
      s(tools?.ms.ip),
      s(tools?.ms.iptables),
      s(other),
      tools
        ? `${tools.operations.ipvsadm}/${tools.operations.ipset}/${tools.operations.ip}/${tools.operations.iptables}`
        : '-',
      r.change ? Math.round(r.change.medianMs).toString() : '-',
      r.change ? `${Math.round(r.change.minMs)}-${Math.round(r.change.maxMs)}` : '-',
      worst === undefined ? '-' : String(worst),
    ];
  });
  const ref = run.guestReference;
  const host = run.hostReference;
  const slowdown = ref
    ? `guest slowdown against this host: process start (\`ip -V\` through execa) ${ref.spawnMs.toFixed(0)} ms vs ${host.spawnMs.toFixed(1)} ms = ${(ref.spawnMs / host.spawnMs).toFixed(0)}x; ` +
      `JS (200x10 world + IPVS render) ${ref.jsMs.toFixed(0)} ms vs ${host.jsMs.toFixed(0)} ms = ${(ref.jsMs / host.jsMs).toFixed(0)}x`
    : 'guest slowdown: not measured (the guest did not start)';
  return [
    'IPVS kernel apply: IpvsBackend (IPv4) in the VM guest (TCG emulation, 2 vCPU), into a fresh namespace; seconds unless marked.',
    'cold start = the first full sync; ipvsadm/ipset/ip/iptables = the wall time of those processes; node = the rest (reads, render, plan);',
    'ops = processes run (ipvsadm/ipset/ip/iptables); change = one-endpoint change (partial sync, snapshot build not included),',
    `median of the timed changes, ms; change ops = the most ipvsadm + ipset operations one change issued.`,
    slowdown,
    run.bootMs === null ? '' : `guest boot ${s(run.bootMs)} s`,
    table(
      [
        'scenario',
        'VS/RS',
        'cold start',
        'ipvsadm',
        'ipset',
        'ip',
        'iptables',
        'node',
        'ops',
        'change ms',
        'min-max',
        'change ops',
      ],
      rows,
    ),
  ]
    .filter((l) => l !== '')
    .join('\n');
}

export function checkIpvsTargets(results: readonly IpvsBenchResult[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const r of results) {
    if (!r.change) continue;
    const worst = Math.max(...r.change.operations.map(kernelOps));
    checks.push({
      scenario: `${r.scenario} ipvs`,
      what: `one-endpoint change: <= ${IPVS_TARGETS.changeOperations} ipvsadm/ipset operations`,
      figure: `${worst}`,
      met: worst <= IPVS_TARGETS.changeOperations,
    });
  }
  const small = results.find((r) => r.scenario === '1000x10')?.change;
  const large = results.find((r) => r.scenario === '10000x10')?.change;
  if (small && large) {
    const ratio = large.medianMs / small.medianMs;
    checks.push({
      scenario: '10000x10 ipvs',
      what: `one-endpoint change within ${IPVS_TARGETS.changeScaling}x of 1000x10's`,
      figure: `${Math.round(large.medianMs)} ms / ${Math.round(small.medianMs)} ms = ${ratio.toFixed(2)}x`,
      met: ratio <= IPVS_TARGETS.changeScaling,
    });
  }
  return checks;
}

/** One JSON line per scenario, for machines. */
export function ipvsJsonLines(run: IpvsBenchRun): string[] {
  return run.results.map((r) =>
    JSON.stringify({
      bench: 'ipvs',
      scenario: r.scenario,
      virtualServers: r.virtualServers,
      realServers: r.realServers,
      coldStartMs: r.cold ? Math.round(r.cold.totalMs) : null,
      coldStartToolMs: r.cold
        ? Object.fromEntries(Object.entries(r.cold.tools.ms).map(([k, v]) => [k, Math.round(v)]))
        : null,
      coldStartOperations: r.cold?.tools.operations ?? null,
      changeMedianMs: r.change ? Math.round(r.change.medianMs) : null,
      changeOperations: r.change?.operations ?? null,
      guestSpawnSlowdown: run.guestReference
        ? Math.round(run.guestReference.spawnMs / run.hostReference.spawnMs)
        : null,
      guestJsSlowdown: run.guestReference
        ? Math.round(run.guestReference.jsMs / run.hostReference.jsMs)
        : null,
    }),
  );
}
