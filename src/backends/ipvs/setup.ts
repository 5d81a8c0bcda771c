/**
 * Starting IPVS mode on a node: the kernel check, the sysctls and IPVS timeouts kube-proxy
 * sets (spec kube-proxy-ipvs.md §10), and the factory of one IpvsBackend per family.
 *
 * Without IPVS, `run` in IPVS mode stops with an error naming what is missing. kube-proxy
 * once fell back to iptables mode; current kube-proxy fails the same way ("can't use the
 * IPVS proxier"), and so does Switchboard: a silent fallback would put the node in a mode
 * its operator did not choose (no excludeCIDRs protection, other firewall chains, ARP
 * behaviour unlike strictARP), and the DaemonSet would look healthy while doing so. A
 * crash loop with a clear message is the visible, fixable outcome.
 */
import type { HostFacts } from '../../config/host.js';
import type { KubeProxyConfiguration } from '../../config/kubeproxy.js';
import { InputError } from '../../errors.js';
import { type Backend, resolveIptables } from '../../kernel/backend.js';
import { CommandError, type CommandRunner } from '../../kernel/exec.js';
import { probeHostFacts } from '../../kernel/host-probe.js';
import { Ipset } from '../../kernel/ipset.js';
import { Ipvsadm, IpvsUnavailableError } from '../../kernel/ipvsadm.js';
import { ensureSysctl, readSysctl } from '../../kernel/sysctl.js';
import type { Logger } from '../../log.js';
import type { IPFamily } from '../../model/ip.js';
import type { Clock } from '../../sync/clock.js';
import { IpvsBackend } from './backend.js';
import type { DesiredIpvsState } from './desired.js';

export class IpvsUnsupportedError extends Error {
  override readonly name = 'IpvsUnsupportedError';
}

/**
 * The environment variable that shortens graceful termination's check period (kube-proxy's
 * one minute), in milliseconds: for tests that watch a drained real server go, and for
 * operators who want drained real servers gone sooner. Not a KubeProxyConfiguration field:
 * kube-proxy has none.
 */
export const GRACEFUL_CHECK_PERIOD_ENV = 'SWITCHBOARD_IPVS_GRACEFUL_CHECK_PERIOD_MS';

/** The check period from the environment, or undefined (the default); throws InputError on a bad value. */
export function gracefulCheckPeriodFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): number | undefined {
  const text = env[GRACEFUL_CHECK_PERIOD_ENV];
  if (text === undefined || text === '') return undefined;
  const ms = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= 100 && ms <= 3_600_000)) {
    throw new InputError(
      `${GRACEFUL_CHECK_PERIOD_ENV}=${JSON.stringify(text)}: expected milliseconds from 100 to 3600000`,
    );
  }
  return ms;
}

/** kube-proxy's probe address: TEST-NET-2, never a real service. */
const PROBE_SERVICE = ['-t', '198.51.100.0:20000'] as const;
/** kube-proxy's MinIPSetCheckVersion. */
const MIN_IPSET_VERSION = [6, 0] as const;

function spawnFailed(e: unknown): boolean {
  return e instanceof CommandError && e.reason === 'spawn';
}

/**
 * kube-proxy's CanUseIPVSProxier: the kernel answers ipvsadm (ipvsadm loads ip_vs on
 * demand), the scheduler exists (a probe virtual server is added and deleted, which loads
 * its module), and ipset is at least 6.0. Throws IpvsUnsupportedError saying what is missing.
 */
export async function checkIpvsSupport(runner: CommandRunner, scheduler: string, log: Logger): Promise<void> {
  const ipvsadm = new Ipvsadm(runner);
  try {
    await ipvsadm.timeouts();
  } catch (e) {
    if (spawnFailed(e)) throw new IpvsUnsupportedError('IPVS mode needs ipvsadm, which is not installed');
    if (e instanceof IpvsUnavailableError) {
      throw new IpvsUnsupportedError(
        `the kernel has no IPVS (ip_vs could not be loaded: ${e.message.replace(/\s+/g, ' ')}); load the ip_vs modules on the node (modprobe ip_vs ip_vs_rr) or run in iptables mode`,
      );
    }
    throw e;
  }
  const added = await ipvsadm.command(['-A', ...PROBE_SERVICE, '-s', scheduler]);
  if (added.exitCode === 0) {
    await ipvsadm.command(['-D', ...PROBE_SERVICE]);
  } else if (/Scheduler or persistence engine not found/.test(added.stderr)) {
    throw new IpvsUnsupportedError(
      `the IPVS scheduler ${JSON.stringify(scheduler)} is not available in this kernel (module ip_vs_${scheduler}); choose another ipvs.scheduler`,
    );
  } else if (/Service already exists/.test(added.stderr)) {
    log.debug({ scheduler }, 'the scheduler probe service exists already; scheduler not probed');
  } else {
    throw new IpvsUnsupportedError(`ipvsadm could not add a probe virtual server: ${added.stderr.trim()}`);
  }
  let version: string;
  try {
    version = await new Ipset(runner).version();
  } catch (e) {
    if (spawnFailed(e)) throw new IpvsUnsupportedError('IPVS mode needs ipset, which is not installed');
    throw new IpvsUnsupportedError(`ipset does not work: ${(e as Error).message}`);
  }
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < MIN_IPSET_VERSION[0] || (major === MIN_IPSET_VERSION[0] && minor < MIN_IPSET_VERSION[1])) {
    throw new IpvsUnsupportedError(`ipset ${version} is too old: IPVS mode needs 6.0 or later`);
  }
  log.info({ scheduler, ipset: version }, 'IPVS is available');
}

/** The kernel release's major.minor, from `kernel.osrelease` (`6.1.0-57-amd64` → [6, 1]). */
export function parseKernelVersion(release: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(release.trim());
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function atLeast(v: [number, number], major: number, minor: number): boolean {
  return v[0] !== major ? v[0] > major : v[1] >= minor;
}

/**
 * The sysctls kube-proxy's IPVS proxier sets at start-up, each only if it differs (each
 * write is logged). Failing to set one is fatal, as in kube-proxy. `route_localnet` is not
 * among them: kube-proxy's IPVS mode set it in its first releases, when it served NodePorts
 * on localhost; current kube-proxy sets it only in iptables mode, and IPVS mode has no
 * localhost NodePorts (§12).
 */
export async function configureIpvsSysctls(
  runner: CommandRunner,
  strictARP: boolean,
  log: Logger,
): Promise<void> {
  const ensure = async (name: string, value: string) => {
    try {
      await ensureSysctl(runner, name, value, log);
    } catch (e) {
      throw new Error(`IPVS mode: cannot set sysctl ${name}=${value}: ${(e as Error).message}`, { cause: e });
    }
  };
  // Without it, IPVS-forwarded traffic gets no conntrack entry, so KUBE-POSTROUTING's
  // masquerade silently does not happen (measured in the test VM).
  await ensure('net.ipv4.vs.conntrack', '1');
  const release = await readSysctl(runner, 'kernel.osrelease');
  const version = release === undefined ? null : parseKernelVersion(release);
  if (version === null) {
    log.warn(
      { release: release ?? null },
      'cannot read the kernel version: net.ipv4.vs.conn_reuse_mode left as it is',
    );
  } else if (!atLeast(version, 4, 1)) {
    log.error({ release }, 'kernel older than 4.1 has no net.ipv4.vs.conn_reuse_mode: left alone');
  } else if (atLeast(version, 5, 9)) {
    // Fixed in 5.9 (kubernetes#93297): setting 0 there only breaks connection reuse.
    log.debug({ release }, 'net.ipv4.vs.conn_reuse_mode left as it is (kernel 5.9 or later)');
  } else {
    await ensure('net.ipv4.vs.conn_reuse_mode', '0');
  }
  await ensure('net.ipv4.vs.expire_nodest_conn', '1');
  await ensure('net.ipv4.vs.expire_quiescent_template', '1');
  await ensure('net.ipv4.ip_forward', '1');
  if (strictARP) {
    await ensure('net.ipv4.conf.all.arp_ignore', '1');
    await ensure('net.ipv4.conf.all.arp_announce', '2');
  }
}

/**
 * ipvs.tcpTimeout / tcpFinTimeout / udpTimeout as `ipvsadm --set`, once, only if one is
 * > 0 (0 keeps the kernel's value). As in kube-proxy a failure is only logged.
 */
export async function configureIpvsTimeouts(
  runner: CommandRunner,
  ipvs: Pick<KubeProxyConfiguration['ipvs'], 'tcpTimeoutMs' | 'tcpFinTimeoutMs' | 'udpTimeoutMs'>,
  log: Logger,
): Promise<void> {
  const seconds = (ms: number) => Math.max(0, Math.trunc(ms / 1000));
  const want = {
    tcp: seconds(ipvs.tcpTimeoutMs),
    tcpFin: seconds(ipvs.tcpFinTimeoutMs),
    udp: seconds(ipvs.udpTimeoutMs),
  };
  if (want.tcp === 0 && want.tcpFin === 0 && want.udp === 0) return;
  const ipvsadm = new Ipvsadm(runner);
  try {
    const before = await ipvsadm.timeouts();
    await ipvsadm.setTimeouts(want);
    const after = await ipvsadm.timeouts();
    log.info({ from: before, to: after }, 'set IPVS timeouts (ipvsadm --set)');
  } catch (e) {
    log.error({ err: e, want }, 'could not set IPVS timeouts');
  }
}

export interface CreateIpvsBackendsInput {
  /** production: ExecaRunner */
  runner: CommandRunner;
  families: readonly IPFamily[];
  /** its `ipvs` section is used: scheduler (for the probe), excludeCIDRs, strictARP, timeouts */
  config: KubeProxyConfiguration;
  /**
   * the renderer for each family, given the host facts in use: snapshot (and the interfaces'
   * addresses, when probed) → desired IpvsState
   */
  desired: (family: IPFamily, hostFacts: HostFacts) => DesiredIpvsState;
  /**
   * facts from a file, kept as they are; absent = probed from the machine through `runner`
   * (interfaces above all), and the interfaces' addresses read again as the node runs
   */
  hostFacts?: HostFacts;
  log: Logger;
  /** graceful termination's clock (default: the system clock) */
  clock?: Clock;
  /** skip detection and use this iptables backend */
  iptablesBackend?: Backend;
  /** graceful termination's check period (default 1 minute) */
  gracefulCheckPeriodMs?: number;
}

/**
 * Checks the kernel (throws IpvsUnsupportedError), sets the sysctls and timeouts, and makes
 * one IpvsBackend per family on the node's iptables backend. Wrap each in a
 * ConntrackCleaningBackend for the stale-UDP cleanup, as for iptables mode.
 */
export async function createIpvsBackends(input: CreateIpvsBackendsInput): Promise<IpvsBackend[]> {
  const { runner, log, config } = input;
  const scheduler = config.ipvs.scheduler || 'rr';
  await checkIpvsSupport(runner, scheduler, log);
  const { backend, version, waitFlags: wait } = await resolveIptables(runner, input.iptablesBackend, log);
  // IPVS mode makes no nfacct counters: kube-proxy's IPVS rules count nothing.
  const facts = input.hostFacts ?? (await probeHostFacts({ runner, version, log, nfacct: false }));
  await configureIpvsSysctls(runner, config.ipvs.strictARP, log);
  await configureIpvsTimeouts(runner, config.ipvs, log);
  return input.families.map(
    (family) =>
      new IpvsBackend({
        runner,
        iptablesBackend: backend,
        family,
        desired: input.desired(family, facts),
        // kube-proxy reads them on every sync; a --host file fixes them (tests, dry runs).
        ...(input.hostFacts ? {} : { followInterfaces: { maxAgeMs: config.syncPeriodMs } }),
        excludeCIDRs: config.ipvs.excludeCIDRs,
        log,
        waitFlags: wait,
        ...(input.clock ? { clock: input.clock } : {}),
        ...(input.gracefulCheckPeriodMs !== undefined
          ? { gracefulCheckPeriodMs: input.gracefulCheckPeriodMs }
          : {}),
      }),
  );
}
