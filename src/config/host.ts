/**
 * HostFacts: what Switchboard would otherwise learn from the machine it runs on (interface addresses,
 * iptables capabilities, conntrack settings), given as a file so that rendering is reproducible
 * (golden scenarios' `host.yaml`, `render --host`). Switchboard's own format, so it is strict: an
 * unknown key is an error, not a warning.
 */
import { z } from 'zod';
import { InputError } from '../errors.js';
import { parseCIDR, parseIP } from '../model/ip.js';
import { formatLocation, formatPath, parseSingleYamlDocument, type YamlPath } from './yaml.js';

export const HOST_FACTS_KIND = 'HostFacts';

/** The nfacct counters kube-proxy's iptables rules can count into (when the kernel has them). */
export const KNOWN_NFACCT_COUNTERS = [
  'ct_state_invalid_dropped_pkts',
  'localhost_nps_accepted_pkts',
] as const;

export interface HostFacts {
  kind: typeof HOST_FACTS_KIND;
  /** The node's name; absent = from hostnameOverride or the Node object. */
  nodeName?: string;
  /** The node's IPs; absent = the Node's InternalIP addresses. The first of a family is its primary IP. */
  nodeIPs?: string[];
  /** Interface name → its addresses as `address/prefix` (host bits kept; parse with `parseCIDR` from model/ip.ts). */
  interfaces: Record<string, string[]>;
  iptables: {
    /** Whether iptables supports `--random-fully` (MASQUERADE gets it when true). */
    randomFully: boolean;
    /** The nfacct counters that exist, so rules may count into them. */
    nfacct: string[];
  };
  conntrack: {
    /** net.netfilter.nf_conntrack_tcp_be_liberal is 1 (kube-proxy then skips its INVALID drop rule). */
    tcpBeLiberal: boolean;
  };
}

/** The facts assumed when no host file is given. */
export function neutralHostFacts(): HostFacts {
  return {
    kind: HOST_FACTS_KIND,
    interfaces: {},
    iptables: { randomFully: false, nfacct: [] },
    conntrack: { tcpBeLiberal: false },
  };
}

const ipAddress = z.string().refine((s) => parseIP(s) !== null, {
  error: (issue) => `must be an IPv4 or IPv6 address (got ${JSON.stringify(issue.input)})`,
});

const interfaceAddress = z.string().refine((s) => parseCIDR(s) !== null, {
  error: (issue) =>
    `must be an IPv4 or IPv6 address with a prefix length, like 192.168.0.2/24 (got ${JSON.stringify(issue.input)})`,
});

const nfacctCounter = z.string().refine((s) => (KNOWN_NFACCT_COUNTERS as readonly string[]).includes(s), {
  error: (issue) =>
    `unknown nfacct counter ${JSON.stringify(issue.input)} (known: ${KNOWN_NFACCT_COUNTERS.join(', ')})`,
});

const hostFactsSchema = z.strictObject({
  kind: z.literal(HOST_FACTS_KIND, { error: `must be ${HOST_FACTS_KIND}` }),
  nodeName: z.string().min(1, { error: 'must not be empty' }).nullish(),
  nodeIPs: z.array(ipAddress).nullish(),
  interfaces: z
    .record(z.string().min(1, { error: 'interface names must not be empty' }), z.array(interfaceAddress))
    .nullish(),
  iptables: z
    .strictObject({ randomFully: z.boolean().nullish(), nfacct: z.array(nfacctCounter).nullish() })
    .nullish(),
  conntrack: z.strictObject({ tcpBeLiberal: z.boolean().nullish() }).nullish(),
});

function unknownFieldMessage(parent: YamlPath): string {
  const known =
    parent.length === 0 ? ' (known: kind, nodeName, nodeIPs, interfaces, iptables, conntrack)' : '';
  return `unknown field${known}`;
}

/**
 * Loads a HostFacts file. Problems throw an InputError with one line per problem,
 * `<source>:<line>: <field.path>: <reason>`.
 */
export function loadHostFacts(text: string, source: string): HostFacts {
  const document = parseSingleYamlDocument(text, source);
  const raw = document.value;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InputError(
      `${formatLocation(source, document.lineOf([]))}: expected a ${HOST_FACTS_KIND} mapping, got ${Array.isArray(raw) ? 'a list' : typeof raw}`,
    );
  }
  const parsed = hostFactsSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.flatMap((issue) => {
      const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
      // Name each unknown key itself, so its line is found and the message says which one.
      const problems: { path: YamlPath; message: string }[] =
        issue.code === 'unrecognized_keys'
          ? issue.keys.map((key) => ({ path: [...path, key], message: unknownFieldMessage(path) }))
          : [{ path, message: issue.message }];
      return problems.map(
        (p) => `${formatLocation(source, document.lineOf(p.path))}: ${formatPath(p.path)}: ${p.message}`,
      );
    });
    throw new InputError(lines.join('\n'));
  }

  const facts = parsed.data;
  const neutral = neutralHostFacts();
  const result: HostFacts = {
    kind: HOST_FACTS_KIND,
    interfaces: facts.interfaces ?? neutral.interfaces,
    iptables: {
      randomFully: facts.iptables?.randomFully ?? neutral.iptables.randomFully,
      nfacct: facts.iptables?.nfacct ?? neutral.iptables.nfacct,
    },
    conntrack: { tcpBeLiberal: facts.conntrack?.tcpBeLiberal ?? neutral.conntrack.tcpBeLiberal },
  };
  if (facts.nodeName) result.nodeName = facts.nodeName;
  if (facts.nodeIPs) result.nodeIPs = facts.nodeIPs;
  return result;
}
