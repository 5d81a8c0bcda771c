/**
 * HostFacts learned from the machine when no host facts file is given: interface
 * addresses (`ip -j addr show`), whether MASQUERADE takes `--random-fully` (from the
 * iptables version), which nfacct counters exist (creating kube-proxy's), and whether conntrack is liberal about
 * TCP windows. Everything runs through the CommandRunner, so a test probes its own
 * network namespace.
 */
import { HOST_FACTS_KIND, type HostFacts, KNOWN_NFACCT_COUNTERS } from '../config/host.js';
import type { Logger } from '../log.js';
import { type IptablesVersion, listNfacctCounters, supportsRandomFully } from './backend.js';
import type { CommandRunner } from './exec.js';
import { readSysctl, TCP_BE_LIBERAL } from './sysctl.js';

/** Addresses per interface, as `address/prefix`, from `ip -j addr show` output. */
export function parseIpAddrJson(stdout: string): Record<string, string[]> {
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch (e) {
    throw new Error(`ip -j addr show: output is not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(data)) throw new Error('ip -j addr show: expected a JSON array of interfaces');
  const out: Record<string, string[]> = {};
  data.forEach((link: unknown, i) => {
    if (typeof link !== 'object' || link === null)
      throw new Error(`ip -j addr show: [${i}] is not an object`);
    const { ifname, addr_info } = link as { ifname?: unknown; addr_info?: unknown };
    if (typeof ifname !== 'string' || ifname === '')
      throw new Error(`ip -j addr show: [${i}].ifname is missing`);
    const addresses: string[] = [];
    for (const [j, a] of (Array.isArray(addr_info) ? addr_info : []).entries()) {
      const { family, local, prefixlen } = (a ?? {}) as {
        family?: unknown;
        local?: unknown;
        prefixlen?: unknown;
      };
      if (family !== 'inet' && family !== 'inet6') continue;
      if (typeof local !== 'string' || typeof prefixlen !== 'number') {
        throw new Error(`ip -j addr show: ${ifname}.addr_info[${j}] has no local address and prefixlen`);
      }
      addresses.push(`${local}/${prefixlen}`);
    }
    out[ifname] = addresses;
  });
  return out;
}

/**
 * The node's addresses per interface, as HostFacts lists them: one `ip -j addr show`. The
 * start-up probe reads them, and IPVS mode again as the node's addresses change.
 */
export async function readInterfaceAddresses(runner: CommandRunner): Promise<Record<string, string[]>> {
  const { stdout } = await runner.run('ip', ['-j', 'addr', 'show'], { timeoutMs: 10_000 });
  return parseIpAddrJson(stdout);
}

/**
 * Creates kube-proxy's nfacct counters where the kernel and the `nfacct` tool allow it
 * (kube-proxy does the same through netlink), and returns the ones that exist: rules
 * count into a counter only if it exists, so without the tool they are rendered without.
 */
export async function ensureNfacctCounters(
  runner: CommandRunner,
  log: Logger,
): Promise<{ counters: string[] | undefined; nfacct: string[] }> {
  const known: readonly string[] = KNOWN_NFACCT_COUNTERS;
  let counters = await listNfacctCounters(runner);
  if (counters === undefined) return { counters, nfacct: [] };
  const missing = known.filter((c) => !counters!.includes(c));
  for (const name of missing) {
    const r = await runner.run('nfacct', ['add', name], { reject: false, timeoutMs: 10_000 });
    if (r.exitCode !== 0)
      log.info({ counter: name, stderr: r.stderr.trim() }, 'could not create nfacct counter');
  }
  if (missing.length > 0) counters = await listNfacctCounters(runner);
  return { counters, nfacct: (counters ?? []).filter((c) => known.includes(c)) };
}

export interface ProbeInput {
  runner: CommandRunner;
  /** the iptables version of the backend in use */
  version: IptablesVersion;
  log: Logger;
  /** look for (and create) kube-proxy's nfacct counters; default true (iptables mode) */
  nfacct?: boolean;
}

export async function probeHostFacts({
  runner,
  version,
  log,
  nfacct: withNfacct = true,
}: ProbeInput): Promise<HostFacts> {
  const interfaces = await readInterfaceAddresses(runner);

  const randomFully = supportsRandomFully(version);

  const { counters, nfacct } = withNfacct
    ? await ensureNfacctCounters(runner, log)
    : { counters: [] as string[], nfacct: [] as string[] };

  const liberal = await readSysctl(runner, TCP_BE_LIBERAL);
  const tcpBeLiberal = liberal !== undefined && /^[1-9]\d*$/.test(liberal);

  const facts: HostFacts = {
    kind: HOST_FACTS_KIND,
    interfaces,
    iptables: { randomFully, nfacct },
    conntrack: { tcpBeLiberal },
  };
  log.info(
    {
      interfaces: Object.keys(interfaces).length,
      randomFully,
      nfacct: counters === undefined ? 'unknown (nfacct tool missing or failing)' : nfacct,
      tcpBeLiberal: liberal === undefined ? 'unreadable (treated as 0)' : tcpBeLiberal,
    },
    'host facts probed',
  );
  return facts;
}
