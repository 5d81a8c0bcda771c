/**
 * The conntrack tuning kube-proxy applies at start (pkg/proxy/conntrack/sysctls.go, 1.34), from
 * the configuration's `conntrack` section:
 *
 * - table size: nf_conntrack_max := max(maxPerCore × online CPUs, min), only when that is more
 *   than the current value (never lowered); maxPerCore 0 leaves it and min alone;
 * - hash size: /sys/module/nf_conntrack/parameters/hashsize := nf_conntrack_max / 4 (the wanted
 *   maximum, not the current one), only when the current hash size is smaller;
 * - timeouts: tcpEstablishedTimeout, tcpCloseWaitTimeout, udpTimeout, udpStreamTimeout, in whole
 *   seconds, when greater than 0 (0 leaves the kernel's value), written when different;
 * - tcpBeLiberal: nf_conntrack_tcp_be_liberal := 1 when true.
 *
 * Global vs per network namespace (what a test may touch):
 * - GLOBAL, one value for the whole host: nf_conntrack_max and the hash size. The kernel makes
 *   nf_conntrack_max read-only (0444) in every network namespace but the initial one, and refuses
 *   hash size writes from them (EOPNOTSUPP). Tests never write these: their decisions are
 *   unit-tested through the ProcFiles interface with a fake.
 * - PER NETWORK NAMESPACE: nf_conntrack_tcp_timeout_established, _close_wait, nf_conntrack_udp_timeout,
 *   _stream and nf_conntrack_tcp_be_liberal; a new namespace starts with the kernel's defaults, so
 *   these are tested for real in a scratch namespace.
 *
 * Where a setting may not be written from here (a global one outside the initial namespace, a
 * read-only /proc/sys or /sys), it is logged and skipped, not fatal: the proxy's rules matter
 * more than a table size someone else owns. kube-proxy 1.34 fails on that instead (older
 * kube-proxy only recorded an event for a read-only /sys); any other failure is fatal, as in
 * kube-proxy, with an error naming the setting and the field that turns it off.
 */
import type { KubeProxyConfiguration } from '../config/kubeproxy.js';
import { InputError } from '../errors.js';
import type { Logger } from '../log.js';
import { NotWritableError, type ProcFiles, sysctlPath } from './proc-files.js';

export type ConntrackConfig = KubeProxyConfiguration['conntrack'];

const CONNTRACK_MAX = 'net.netfilter.nf_conntrack_max';
const CONNTRACK_HASHSIZE_PATH = '/sys/module/nf_conntrack/parameters/hashsize';

interface NamespaceSetting {
  sysctl: string;
  /** the configuration field, for messages */
  field: string;
  /** the value to write, or undefined to leave the kernel's */
  value: (ct: ConntrackConfig) => number | undefined;
}

/** A duration in whole seconds (truncated, as kube-proxy's int(d / time.Second)); 0 = leave alone. */
const seconds = (ms: number): number | undefined => (ms > 0 ? Math.trunc(ms / 1000) : undefined);

/** The per-namespace settings, in kube-proxy's order. */
const PER_NAMESPACE: readonly NamespaceSetting[] = [
  {
    sysctl: 'net.netfilter.nf_conntrack_tcp_timeout_established',
    field: 'conntrack.tcpEstablishedTimeout',
    value: (ct) => seconds(ct.tcpEstablishedTimeoutMs),
  },
  {
    sysctl: 'net.netfilter.nf_conntrack_tcp_timeout_close_wait',
    field: 'conntrack.tcpCloseWaitTimeout',
    value: (ct) => seconds(ct.tcpCloseWaitTimeoutMs),
  },
  {
    sysctl: 'net.netfilter.nf_conntrack_tcp_be_liberal',
    field: 'conntrack.tcpBeLiberal',
    value: (ct) => (ct.tcpBeLiberal ? 1 : undefined),
  },
  {
    sysctl: 'net.netfilter.nf_conntrack_udp_timeout',
    field: 'conntrack.udpTimeout',
    value: (ct) => seconds(ct.udpTimeoutMs),
  },
  {
    sysctl: 'net.netfilter.nf_conntrack_udp_timeout_stream',
    field: 'conntrack.udpStreamTimeout',
    value: (ct) => seconds(ct.udpStreamTimeoutMs),
  },
];

/** kube-proxy's getConntrackMax: 0 (leave alone) unless maxPerCore > 0; then max(scaled, min). */
export function conntrackMax(ct: Pick<ConntrackConfig, 'maxPerCore' | 'min'>, cpus: number): number {
  if (ct.maxPerCore <= 0) return 0;
  const scaled = ct.maxPerCore * cpus;
  return scaled > ct.min ? scaled : ct.min;
}

function parseIntValue(text: string | undefined): number | undefined {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** What happened to one setting, for logs and tests. */
export interface SettingOutcome {
  setting: string;
  action: 'set' | 'unchanged' | 'not-writable';
  from?: number;
  to: number;
}

class Tuner {
  readonly outcomes: SettingOutcome[] = [];

  constructor(
    private readonly files: ProcFiles,
    private readonly log: Logger,
  ) {}

  async readInt(path: string): Promise<number | undefined> {
    return parseIntValue(await this.files.read(path));
  }

  /** Writes `value`; a setting that may not be written here is logged and skipped. */
  async write(setting: string, path: string, from: number | undefined, value: number, field: string) {
    try {
      await this.files.write(path, String(value));
    } catch (e) {
      if (e instanceof NotWritableError) {
        this.log.warn(
          { setting, current: from ?? null, wanted: value, errno: e.code },
          `cannot set ${setting} to ${value} from here (${e.code}: read-only in this network namespace or mount); skipped`,
        );
        this.outcomes.push({
          setting,
          action: 'not-writable',
          ...(from === undefined ? {} : { from }),
          to: value,
        });
        return;
      }
      throw new InputError(
        `could not set ${setting} to ${value} (from ${field}): ${(e as Error).message}; ` +
          `set ${field} to 0 to leave it alone`,
      );
    }
    this.log.info({ setting, from: from ?? null, to: value }, `set ${setting}`);
    this.outcomes.push({ setting, action: 'set', ...(from === undefined ? {} : { from }), to: value });
  }

  unchanged(setting: string, value: number): void {
    this.outcomes.push({ setting, action: 'unchanged', from: value, to: value });
  }

  /** kube-proxy's setIntSysCtl: writes when the current value differs (or cannot be read). */
  async ensureSysctl(name: string, value: number, field: string): Promise<void> {
    const current = await this.readInt(sysctlPath(name));
    if (current === value) this.unchanged(name, value);
    else await this.write(name, sysctlPath(name), current, value, field);
  }
}

/** Applies the `conntrack` section as kube-proxy does at start; returns what it did per setting. */
export async function applyConntrackSettings(
  ct: ConntrackConfig,
  files: ProcFiles,
  log: Logger,
): Promise<SettingOutcome[]> {
  const tuner = new Tuner(files, log);
  const cpus = await files.onlineCpus();
  const max = conntrackMax(ct, cpus);
  if (max > 0) {
    // Only raised: a bigger table someone configured on purpose stays.
    const currentMax = await tuner.readInt(sysctlPath(CONNTRACK_MAX));
    if (currentMax !== undefined && currentMax >= max) tuner.unchanged(CONNTRACK_MAX, currentMax);
    else await tuner.write(CONNTRACK_MAX, sysctlPath(CONNTRACK_MAX), currentMax, max, 'conntrack.maxPerCore');

    const hashsize = await tuner.readInt(CONNTRACK_HASHSIZE_PATH);
    const wantedHashsize = Math.floor(max / 4);
    if (hashsize === undefined) {
      log.warn({ path: CONNTRACK_HASHSIZE_PATH }, 'cannot read the conntrack hash size; left alone');
    } else if (hashsize >= wantedHashsize) {
      tuner.unchanged('nf_conntrack hashsize', hashsize);
    } else {
      await tuner.write(
        'nf_conntrack hashsize',
        CONNTRACK_HASHSIZE_PATH,
        hashsize,
        wantedHashsize,
        'conntrack.maxPerCore',
      );
    }
    log.debug({ cpus, maxPerCore: ct.maxPerCore, min: ct.min, max }, 'conntrack table size');
  }
  for (const setting of PER_NAMESPACE) {
    const value = setting.value(ct);
    if (value !== undefined) await tuner.ensureSysctl(setting.sysctl, value, setting.field);
  }
  return tuner.outcomes;
}
