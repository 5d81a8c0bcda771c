/**
 * Health-check node ports (kube-proxy's pkg/proxy/healthcheck/service_health.go): a LoadBalancer
 * Service with externalTrafficPolicy Local gets spec.healthCheckNodePort, and the proxy answers HTTP
 * on that port on every node. The cloud load balancer probes it and sends traffic only to nodes that
 * answer 200, i.e. nodes with a ready local endpoint while the proxy itself is healthy.
 *
 * `update(snapshots)` reconciles the servers with the snapshots of a successful sync: it opens ports
 * for new services, closes ports of removed services (or moved ports) and refreshes the endpoint
 * counts. A port that cannot be bound is logged and tried again on the next update; it never stops
 * the proxy.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { Snapshot } from '../model/types.js';
import { closeServer, formatAddress, listen, respond } from './http.js';

/** One Service that needs a health-check node port. */
export interface HealthCheckService {
  /** `namespace/name` */
  serviceKey: string;
  namespace: string;
  name: string;
  port: number;
  /** kube-proxy's LocalReadyEndpoints: distinct IPs of the ready endpoints on this node */
  localEndpoints: number;
}

/**
 * The services with a health-check node port, with their local endpoint counts. kube-proxy counts, per
 * family, the distinct IPs of endpoints that are on this node and ready (serving-but-terminating ones
 * do not count, so the node fails its check while its pods drain), over all the service's ports.
 * With several families the largest count is reported, so a dual-stack pod counts once.
 */
export function healthCheckServices(snapshots: readonly Snapshot[]): Map<string, HealthCheckService> {
  const services = new Map<string, HealthCheckService>();
  for (const snapshot of snapshots) {
    const localIPs = new Map<string, Set<string>>();
    for (const state of snapshot.servicePorts) {
      const { port } = state;
      if (port.healthCheckNodePort === 0) continue;
      let ips = localIPs.get(port.serviceKey);
      if (!ips) {
        ips = new Set();
        localIPs.set(port.serviceKey, ips);
      }
      for (const ep of state.endpoints) if (ep.isLocal && ep.ready) ips.add(ep.ip);
      if (!services.has(port.serviceKey)) {
        services.set(port.serviceKey, {
          serviceKey: port.serviceKey,
          namespace: port.namespace,
          name: port.name,
          port: port.healthCheckNodePort,
          localEndpoints: 0,
        });
      }
    }
    for (const [key, ips] of localIPs) {
      const service = services.get(key)!;
      service.localEndpoints = Math.max(service.localEndpoints, ips.size);
    }
  }
  return services;
}

/** kube-proxy's body, a dedented tab-indented JSON document without a trailing newline. */
export function formatServiceHealthBody(
  namespace: string,
  name: string,
  localEndpoints: number,
  serviceProxyHealthy: boolean,
): string {
  return [
    '{',
    '\t"service": {',
    `\t\t"namespace": ${JSON.stringify(namespace)},`,
    `\t\t"name": ${JSON.stringify(name)}`,
    '\t},',
    `\t"localEndpoints": ${localEndpoints},`,
    `\t"serviceProxyHealthy": ${serviceProxyHealthy}`,
    '}',
  ].join('\n');
}

export interface ServiceHealthServersOptions {
  /**
   * IPs to listen on (kube-proxy uses the node IPs matching nodePortAddresses); empty or absent =
   * every address, dual-stack where the host has IPv6.
   */
  addresses?: readonly string[];
  /** the proxy's own health, as /livez sees it */
  proxyHealth: { isHealthy(): boolean };
  log: Logger;
}

interface Instance {
  service: HealthCheckService;
  servers: Server[];
}

/** The set of health-check node port servers. */
export class ServiceHealthServers {
  private readonly instances = new Map<string, Instance>();
  private readonly hosts: readonly string[];
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: ServiceHealthServersOptions) {
    this.hosts = opts.addresses && opts.addresses.length > 0 ? opts.addresses : [''];
  }

  /** Reconciles the servers with the services of these snapshots (one per family). Never rejects. */
  update(snapshots: readonly Snapshot[]): Promise<void> {
    const wanted = healthCheckServices(snapshots);
    this.queue = this.queue.then(() =>
      this.reconcile(wanted).catch((err: unknown) =>
        this.opts.log.error({ err }, 'reconciling health-check node ports failed'),
      ),
    );
    return this.queue;
  }

  /** The open ports by service key. */
  ports(): Map<string, number> {
    return new Map([...this.instances].map(([key, instance]) => [key, instance.service.port]));
  }

  /** Closes every server; later updates do nothing. */
  close(): Promise<void> {
    this.queue = this.queue.then(async () => {
      this.closed = true;
      const all = [...this.instances.values()];
      this.instances.clear();
      await Promise.all(all.map((instance) => this.closeInstance(instance)));
    });
    return this.queue;
  }

  private async reconcile(wanted: ReadonlyMap<string, HealthCheckService>): Promise<void> {
    if (this.closed) return;
    for (const [key, instance] of this.instances) {
      const next = wanted.get(key);
      if (next && next.port === instance.service.port) {
        instance.service = next;
        continue;
      }
      this.opts.log.info({ service: key, port: instance.service.port }, 'Closing healthcheck');
      this.instances.delete(key);
      await this.closeInstance(instance);
    }
    for (const [key, service] of wanted) {
      if (this.instances.has(key)) continue;
      const instance: Instance = { service, servers: [] };
      try {
        for (const host of this.hosts) {
          const server = createServer((_req, res) => this.answer(instance, res));
          await listen(server, { host, port: service.port });
          server.on('error', (err) => this.opts.log.error({ err, service: key }, 'healthcheck server error'));
          instance.servers.push(server);
        }
      } catch (err) {
        // Close what did open, so that the next update starts clean (the port may have moved).
        await this.closeInstance(instance);
        this.opts.log.error(
          { err, service: key, port: service.port },
          `failed to start healthcheck "${key}" on port ${service.port}: ${(err as Error).message}; will retry on the next sync`,
        );
        continue;
      }
      this.opts.log.info(
        { service: key, addresses: instance.servers.map((s) => formatAddress(s.address() as AddressInfo)) },
        'Opening healthcheck',
      );
      this.instances.set(key, instance);
    }
  }

  private async closeInstance(instance: Instance): Promise<void> {
    await Promise.all(instance.servers.map((server) => closeServer(server)));
  }

  private answer(instance: Instance, res: ServerResponse): void {
    const { namespace, name, localEndpoints } = instance.service;
    const healthy = this.opts.proxyHealth.isHealthy();
    const body = formatServiceHealthBody(namespace, name, localEndpoints, healthy);
    respond(
      res,
      localEndpoints !== 0 && healthy ? 200 : 503,
      {
        'Content-Type': 'application/json',
        'X-Content-Type-Options': 'nosniff',
        'X-Load-Balancing-Endpoint-Weight': String(localEndpoints),
      },
      body,
    );
  }
}
