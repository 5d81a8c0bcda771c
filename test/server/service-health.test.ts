import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  formatServiceHealthBody,
  healthCheckServices,
  ServiceHealthServers,
} from '../../src/server/service-health.js';
import { endpoint, NOT_READY, READY, SERVING_TERMINATING, servicePort } from '../unit/builders.js';
import { freePort, httpGet, memoryLogger, openTcpHandles, portState, snapshot } from './helpers.js';

const local = (spec = READY) => ({ ...spec, local: true });

/** A LoadBalancer service with externalTrafficPolicy Local, its ports 80 and 443. */
function lbService(name: string, healthCheckNodePort: number, endpoints80: ReturnType<typeof endpoint>[]) {
  const base = { name, externalPolicyLocal: true, healthCheckNodePort, loadBalancerVIPs: ['203.0.113.9'] };
  return [
    portState(servicePort({ ...base, portName: 'http', port: 80 }), endpoints80),
    portState(
      servicePort({ ...base, portName: 'https', port: 443 }),
      endpoints80.map((e) => ({ ...e, port: 443, endpoint: `${e.ip}:443` })),
    ),
  ];
}

describe('healthCheckServices', () => {
  it("counts a service's distinct local ready endpoint IPs over all its ports", () => {
    const services = healthCheckServices([
      snapshot('IPv4', [
        ...lbService('web', 30100, [
          endpoint('10.0.1.1', local()),
          endpoint('10.0.1.2', local()),
          endpoint('10.0.1.3', local(SERVING_TERMINATING)), // draining: not counted
          endpoint('10.0.1.4', local(NOT_READY)),
          endpoint('10.0.2.1', READY), // on another node
        ]),
        portState(servicePort({ name: 'plain' }), [endpoint('10.0.1.9', local())]),
      ]),
    ]);
    expect([...services.values()]).toEqual([
      { serviceKey: 'ns1/web', namespace: 'ns1', name: 'web', port: 30100, localEndpoints: 2 },
    ]);
  });

  it('reports the larger family count for a dual-stack service, so a dual-stack pod counts once', () => {
    const v4 = snapshot(
      'IPv4',
      lbService('web', 30100, [endpoint('10.0.1.1', local()), endpoint('10.0.1.2', local())]),
    );
    const v6 = snapshot(
      'IPv6',
      lbService('web', 30100, [
        endpoint('fd00::1', local()),
        endpoint('fd00::2', local()),
        endpoint('fd00::3', local()),
      ]),
    );
    expect(healthCheckServices([v4, v6]).get('ns1/web')?.localEndpoints).toBe(3);
    const only6 = snapshot('IPv6', lbService('v6only', 30101, []));
    expect(healthCheckServices([v4, only6]).get('ns1/v6only')?.localEndpoints).toBe(0);
  });
});

describe('formatServiceHealthBody', () => {
  it("is kube-proxy's dedented, tab-indented document", () => {
    expect(formatServiceHealthBody('ns1', 'web', 2, true)).toBe(
      '{\n\t"service": {\n\t\t"namespace": "ns1",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}',
    );
  });
});

describe('ServiceHealthServers over HTTP', () => {
  const { log, records } = memoryLogger();
  let healthy = true;
  let servers: ServiceHealthServers | undefined;
  const make = () => {
    servers = new ServiceHealthServers({
      addresses: ['127.0.0.1'],
      proxyHealth: { isHealthy: () => healthy },
      log,
    });
    return servers;
  };

  afterEach(async () => {
    await servers?.close();
    healthy = true;
  });

  it('opens a port per service and answers any path with the local endpoint count', async () => {
    const [webPort, apiPort] = [await freePort(), await freePort()];
    const hc = make();
    await hc.update([
      snapshot('IPv4', [
        ...lbService('web', webPort, [endpoint('10.0.1.1', local()), endpoint('10.0.1.2', local())]),
        ...lbService('api', apiPort, [endpoint('10.0.2.1', READY)]),
      ]),
    ]);
    expect(hc.ports()).toEqual(
      new Map([
        ['ns1/web', webPort],
        ['ns1/api', apiPort],
      ]),
    );

    const web = await httpGet(webPort, '/any/path?x=1');
    expect(web.status).toBe(200);
    expect(web.headers['content-type']).toBe('application/json');
    expect(web.headers['x-content-type-options']).toBe('nosniff');
    expect(web.headers['x-load-balancing-endpoint-weight']).toBe('2');
    expect(web.body).toBe(formatServiceHealthBody('ns1', 'web', 2, true));

    const api = await httpGet(apiPort, '/');
    expect(api.status).toBe(503);
    expect(api.headers['x-load-balancing-endpoint-weight']).toBe('0');
    expect(JSON.parse(api.body)).toEqual({
      service: { namespace: 'ns1', name: 'api' },
      localEndpoints: 0,
      serviceProxyHealthy: true,
    });

    healthy = false;
    const sick = await httpGet(webPort, '/');
    expect(sick.status).toBe(503);
    expect(JSON.parse(sick.body)).toMatchObject({ localEndpoints: 2, serviceProxyHealthy: false });
  });

  it('updates counts, closes removed services and follows a moved port', async () => {
    const [webPort, apiPort, movedPort] = [await freePort(), await freePort(), await freePort()];
    const hc = make();
    await hc.update([
      snapshot('IPv4', [
        ...lbService('web', webPort, [endpoint('10.0.1.1', local())]),
        ...lbService('api', apiPort, []),
      ]),
    ]);
    expect((await httpGet(apiPort, '/')).status).toBe(503);

    await hc.update([
      snapshot('IPv4', [
        ...lbService('web', movedPort, [endpoint('10.0.1.1', local())]),
        ...lbService('api', apiPort, [endpoint('10.0.2.1', local()), endpoint('10.0.2.2', local())]),
      ]),
    ]);
    const api = await httpGet(apiPort, '/');
    expect(api.status).toBe(200);
    expect(api.headers['x-load-balancing-endpoint-weight']).toBe('2');
    await expect(httpGet(webPort, '/')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect((await httpGet(movedPort, '/')).status).toBe(200);

    await hc.update([snapshot('IPv4', lbService('web', movedPort, []))]);
    await expect(httpGet(apiPort, '/')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect((await httpGet(movedPort, '/')).status).toBe(503);
    expect(hc.ports()).toEqual(new Map([['ns1/web', movedPort]]));
  });

  it('logs a port it cannot bind, keeps the others, and binds it on a later update', async () => {
    const [takenPort, freeOne] = [await freePort(), await freePort()];
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen({ host: '127.0.0.1', port: takenPort }, resolve));
    const hc = make();
    const snapshots = [
      snapshot('IPv4', [
        ...lbService('blocked', takenPort, [endpoint('10.0.1.1', local())]),
        ...lbService('fine', freeOne, [endpoint('10.0.1.2', local())]),
      ]),
    ];
    records.length = 0;
    await hc.update(snapshots);
    expect(hc.ports()).toEqual(new Map([['ns1/fine', freeOne]]));
    expect((await httpGet(freeOne, '/')).status).toBe(200);
    const failure = records.find((r) => r.service === 'ns1/blocked');
    expect(failure).toMatchObject({ level: 50, port: takenPort });
    expect(String(failure?.msg)).toContain(`failed to start healthcheck "ns1/blocked" on port ${takenPort}`);

    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await hc.update(snapshots);
    expect(hc.ports().get('ns1/blocked')).toBe(takenPort);
    const now = await httpGet(takenPort, '/');
    expect(now.status).toBe(200);
    expect(JSON.parse(now.body).service).toEqual({ namespace: 'ns1', name: 'blocked' });
  });

  it('leaves no open handles after close(), and ignores updates afterwards', async () => {
    const before = openTcpHandles();
    const port = await freePort();
    const hc = make();
    await hc.update([snapshot('IPv4', lbService('web', port, [endpoint('10.0.1.1', local())]))]);
    const keptAlive = await fetch(`http://127.0.0.1:${port}/`);
    await keptAlive.text();
    await hc.close();
    await hc.update([snapshot('IPv4', lbService('web', port, [endpoint('10.0.1.1', local())]))]);
    expect(hc.ports().size).toBe(0);
    await expect(httpGet(port, '/')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openTcpHandles()).toBeLessThanOrEqual(before);
  });
});
