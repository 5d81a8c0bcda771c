/**
 * Recognising the service proxy's bootstrap deadlock: the API server configured as the
 * ClusterIP of the `kubernetes` Service. A ClusterIP leads to the API server only through the
 * rules a service proxy writes, and Switchboard is that proxy, so on a node whose tables are
 * empty the connection can never succeed. Retrying quietly would hide that forever; instead,
 * when the configured address is that ClusterIP and a TCP connection to it fails, one error
 * names the address and the chart value to set. Retries go on regardless (the rules may yet
 * come from elsewhere).
 *
 * How the address is recognised: kubelet gives every container the `kubernetes` Service's
 * environment variables (KUBERNETES_SERVICE_HOST/PORT, KUBERNETES_PORT=tcp://<ClusterIP>:<port>,
 * KUBERNETES_PORT_<port>_TCP_ADDR=<ClusterIP>, ...), even with enableServiceLinks off. A value
 * the pod spec sets wins over kubelet's for that variable only, which is how the chart's
 * apiServer.host replaces KUBERNETES_SERVICE_HOST; KUBERNETES_PORT and the _TCP_ADDR variables
 * keep naming the ClusterIP. So the configured host (in-cluster, or a kubeconfig's server) equal
 * to the address in those variables is the `kubernetes` Service's ClusterIP.
 *
 * What is not used, and why: the service CIDR is not known on a node (KubeProxyConfiguration has
 * no field for it; it is a kube-apiserver flag, or ServiceCIDR objects behind the very API
 * server that cannot be reached), and a guessed default (10.96.0.0/12) would misfire elsewhere;
 * the node's routes do not tell a ClusterIP from an API server on another subnet (both go via
 * the default route); and the node's own rules cannot help, since with a rule for the address
 * the connection works. Outside a pod (no kubelet variables) nothing is recognised.
 */
import { connect } from 'node:net';
import type { Logger } from '../log.js';
import { parseIP } from '../model/ip.js';

/** The ClusterIP as kubelet gave it, and the variable it came from. */
export interface KubernetesServiceAddress {
  address: string;
  variable: string;
}

/** `tcp://10.96.0.1:443` or `tcp://[fd00::1]:443` → the address, normalised; undefined otherwise. */
function addressOfServiceUrl(value: string): string | undefined {
  const m = /^[a-z]+:\/\/(?:\[([^\]]+)\]|([^:/]+)):\d+$/.exec(value);
  const ip = m ? parseIP(m[1] ?? m[2] ?? '') : null;
  return ip?.text;
}

/** The `kubernetes` Service's ClusterIP(s) from kubelet's variables, in a stable order. */
export function kubernetesServiceAddresses(env: NodeJS.ProcessEnv): KubernetesServiceAddress[] {
  const found: KubernetesServiceAddress[] = [];
  const add = (address: string | undefined, variable: string) => {
    if (address !== undefined && !found.some((f) => f.address === address)) found.push({ address, variable });
  };
  const port = env.KUBERNETES_PORT;
  if (port) add(addressOfServiceUrl(port), 'KUBERNETES_PORT');
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (value && /^KUBERNETES_PORT_\d+_(TCP|UDP|SCTP)_ADDR$/.test(name)) add(parseIP(value)?.text, name);
  }
  return found;
}

/** Host and port of a kubeconfig server URL (`https://10.96.0.1:443`, `https://[fd00::1]`). */
export function serverEndpoint(server: string): { host: string; port: number } | undefined {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return undefined;
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : url.protocol === 'http:' ? 80 : 443;
  return { host, port };
}

/** Set when `server` is the `kubernetes` Service's ClusterIP as kubelet gave it. */
export interface ServiceAddressFinding {
  host: string;
  port: number;
  variable: string;
}

export function findServiceAddress(
  server: string,
  env: NodeJS.ProcessEnv,
): ServiceAddressFinding | undefined {
  const endpoint = serverEndpoint(server);
  const ip = endpoint ? parseIP(endpoint.host) : null;
  if (!endpoint || !ip) return undefined;
  const match = kubernetesServiceAddresses(env).find((a) => a.address === ip.text);
  return match ? { host: ip.text, port: endpoint.port, variable: match.variable } : undefined;
}

/** The error an operator gets: the address, why it cannot work, and the chart value to set. */
function serviceAddressMessage(server: string, finding: ServiceAddressFinding, reason: string): string {
  return (
    `cannot reach the API server at ${server} (${reason}): ${finding.host} is the ClusterIP of the ` +
    `"kubernetes" Service (${finding.variable}), which leads to the API server only once a service proxy ` +
    `has programmed this node's rules, and Switchboard is that proxy. Give it the API server's own ` +
    `address: set the chart value apiServer.host (and apiServer.port) to the control plane's IP or DNS ` +
    `name, or kubeconfig.fromConfigMap to a kubeconfig that names it; still retrying`
  );
}

export type TcpProbeResult = { ok: true } | { ok: false; reason: string };
export type TcpProbe = (host: string, port: number, timeoutMs: number) => Promise<TcpProbeResult>;

/** Opens a TCP connection and closes it at once; never keeps the process alive. */
export const tcpProbe: TcpProbe = (host, port, timeoutMs) =>
  new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.unref();
    const done = (result: TcpProbeResult) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ ok: false, reason: `no answer within ${timeoutMs} ms` }));
    socket.once('connect', () => done({ ok: true }));
    socket.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, reason: e.code ?? e.message }));
  });

export interface ServiceAddressCheckOptions {
  /** the API server URL in use (kubeconfig's current cluster) */
  server: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
  probe?: TcpProbe;
  timeoutMs?: number;
}

export type ServiceAddressCheck = 'not-a-service-address' | 'reachable' | 'unreachable';

/**
 * When `server` is the `kubernetes` Service's ClusterIP, tries to connect once and logs one
 * error if that fails. Never throws.
 */
export async function checkServiceAddress(options: ServiceAddressCheckOptions): Promise<ServiceAddressCheck> {
  const finding = findServiceAddress(options.server, options.env);
  if (!finding) return 'not-a-service-address';
  const probe = options.probe ?? tcpProbe;
  const result = await probe(finding.host, finding.port, options.timeoutMs ?? 5000).catch(
    (e: unknown): TcpProbeResult => ({ ok: false, reason: String(e) }),
  );
  if (result.ok) {
    options.log.info(
      { server: options.server, variable: finding.variable },
      `the API server is configured as the "kubernetes" Service's ClusterIP; reachable now, through rules already on this node`,
    );
    return 'reachable';
  }
  options.log.error(
    { server: options.server, address: finding.host, reason: result.reason, chartValue: 'apiServer.host' },
    serviceAddressMessage(options.server, finding, result.reason),
  );
  return 'unreachable';
}
