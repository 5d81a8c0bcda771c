/**
 * Recognising the `kubernetes` Service's ClusterIP as the configured API server address, from
 * the variables kubelet injects, and the one error logged when it cannot be reached.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkServiceAddress,
  findServiceAddress,
  kubernetesServiceAddresses,
  serverEndpoint,
  type TcpProbe,
  tcpProbe,
} from '../../src/sources/service-address.js';
import { captureLogger } from './harness.js';

/** What kubelet gives every container for the kubernetes Service 10.96.0.1:443 (port name https). */
const KUBELET_ENV = {
  KUBERNETES_SERVICE_HOST: '10.96.0.1',
  KUBERNETES_SERVICE_PORT: '443',
  KUBERNETES_SERVICE_PORT_HTTPS: '443',
  KUBERNETES_PORT: 'tcp://10.96.0.1:443',
  KUBERNETES_PORT_443_TCP: 'tcp://10.96.0.1:443',
  KUBERNETES_PORT_443_TCP_PROTO: 'tcp',
  KUBERNETES_PORT_443_TCP_PORT: '443',
  KUBERNETES_PORT_443_TCP_ADDR: '10.96.0.1',
};

/** The chart with apiServer.host set: only KUBERNETES_SERVICE_HOST/PORT are overridden. */
const CHART_ENV = {
  ...KUBELET_ENV,
  KUBERNETES_SERVICE_HOST: '192.168.0.10',
  KUBERNETES_SERVICE_PORT: '6443',
};

describe('kubernetesServiceAddresses', () => {
  it("reads the ClusterIP from kubelet's KUBERNETES_PORT and KUBERNETES_PORT_<port>_TCP_ADDR", () => {
    expect(kubernetesServiceAddresses(KUBELET_ENV)).toEqual([
      { address: '10.96.0.1', variable: 'KUBERNETES_PORT' },
    ]);
    expect(kubernetesServiceAddresses({ KUBERNETES_PORT_6443_TCP_ADDR: '10.0.0.1' })).toEqual([
      { address: '10.0.0.1', variable: 'KUBERNETES_PORT_6443_TCP_ADDR' },
    ]);
  });

  it('handles IPv6 and normalises the text', () => {
    expect(
      kubernetesServiceAddresses({
        KUBERNETES_PORT: 'tcp://[fd00:10:96:0:0::1]:443',
        KUBERNETES_PORT_443_TCP_ADDR: 'fd00:10:96::1',
      }),
    ).toEqual([{ address: 'fd00:10:96::1', variable: 'KUBERNETES_PORT' }]);
  });

  it('finds nothing outside a pod or in garbage', () => {
    expect(kubernetesServiceAddresses({})).toEqual([]);
    expect(
      kubernetesServiceAddresses({
        KUBERNETES_PORT: 'tcp://not-an-ip:443',
        KUBERNETES_PORT_443_TCP_ADDR: 'x',
      }),
    ).toEqual([]);
  });
});

describe('findServiceAddress', () => {
  it('recognises the in-cluster default, which is the ClusterIP', () => {
    expect(findServiceAddress('https://10.96.0.1:443', KUBELET_ENV)).toEqual({
      host: '10.96.0.1',
      port: 443,
      variable: 'KUBERNETES_PORT',
    });
  });

  it("does not flag the chart's apiServer.host, though the other kubelet variables still name the ClusterIP", () => {
    expect(
      findServiceAddress(`https://${CHART_ENV.KUBERNETES_SERVICE_HOST}:6443`, CHART_ENV),
    ).toBeUndefined();
  });

  it('recognises a kubeconfig whose server is the ClusterIP, IPv6 included', () => {
    expect(findServiceAddress('https://10.96.0.1', KUBELET_ENV)).toMatchObject({
      host: '10.96.0.1',
      port: 443,
    });
    expect(
      findServiceAddress('https://[fd00:10:96::1]:443', { KUBERNETES_PORT: 'tcp://[fd00:10:96::1]:443' }),
    ).toMatchObject({ host: 'fd00:10:96::1' });
  });

  it('ignores DNS names and unparsable URLs', () => {
    expect(findServiceAddress('https://kubernetes.default.svc', KUBELET_ENV)).toBeUndefined();
    expect(findServiceAddress('not a url', KUBELET_ENV)).toBeUndefined();
    expect(serverEndpoint('http://10.0.0.1')).toEqual({ host: '10.0.0.1', port: 80 });
  });
});

describe('checkServiceAddress', () => {
  const probeAnswering = (result: Awaited<ReturnType<TcpProbe>>) => {
    const calls: string[] = [];
    const probe: TcpProbe = async (host, port) => {
      calls.push(`${host}:${port}`);
      return result;
    };
    return { probe, calls };
  };

  it('logs one error naming the address and the chart value when the ClusterIP cannot be reached', async () => {
    const { log, lines } = captureLogger();
    const { probe, calls } = probeAnswering({ ok: false, reason: 'no answer within 5000 ms' });
    expect(await checkServiceAddress({ server: 'https://10.96.0.1:443', env: KUBELET_ENV, log, probe })).toBe(
      'unreachable',
    );
    expect(calls).toEqual(['10.96.0.1:443']);
    const errors = lines.filter((l) => l['level'] === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ address: '10.96.0.1', chartValue: 'apiServer.host' });
    expect(String(errors[0]?.['msg'])).toBe(
      'cannot reach the API server at https://10.96.0.1:443 (no answer within 5000 ms): 10.96.0.1 is the ' +
        'ClusterIP of the "kubernetes" Service (KUBERNETES_PORT), which leads to the API server only once a ' +
        "service proxy has programmed this node's rules, and Switchboard is that proxy. Give it the API " +
        "server's own address: set the chart value apiServer.host (and apiServer.port) to the control " +
        "plane's IP or DNS name, or kubeconfig.fromConfigMap to a kubeconfig that names it; still retrying",
    );
  });

  it('stays quiet (info) when the ClusterIP works because rules are already on the node', async () => {
    const { log, lines } = captureLogger();
    const { probe } = probeAnswering({ ok: true });
    expect(await checkServiceAddress({ server: 'https://10.96.0.1:443', env: KUBELET_ENV, log, probe })).toBe(
      'reachable',
    );
    expect(lines.filter((l) => Number(l['level']) >= 40)).toEqual([]);
  });

  it("does not even probe the chart's address", async () => {
    const { log } = captureLogger();
    const { probe, calls } = probeAnswering({ ok: false, reason: 'x' });
    expect(
      await checkServiceAddress({ server: 'https://192.168.0.10:6443', env: CHART_ENV, log, probe }),
    ).toBe('not-a-service-address');
    expect(calls).toEqual([]);
  });
});

describe('tcpProbe', () => {
  let server: Server | null = null;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = null;
  });

  it('connects to a listening port, and names the error of a closed one', async () => {
    const listening = createServer((socket) => socket.destroy());
    server = listening;
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    const { port } = listening.address() as { port: number };
    expect(await tcpProbe('127.0.0.1', port, 5000)).toEqual({ ok: true });
    await new Promise<void>((resolve) => listening.close(() => resolve()));
    server = null;
    expect(await tcpProbe('127.0.0.1', port, 5000)).toEqual({ ok: false, reason: 'ECONNREFUSED' });
  });
});
