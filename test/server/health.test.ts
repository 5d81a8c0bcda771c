import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import {
  formatGoJSONTime,
  nodeIsEligible,
  ProxyHealthServer,
  ProxyHealthState,
  TO_BE_DELETED_TAINT,
} from '../../src/server/health.js';
import { parseBindAddress } from '../../src/server/http.js';
import { ProxyMetrics } from '../../src/server/metrics.js';
import { backendResult, FakeClock, httpGet, memoryLogger, openTcpHandles, syncReport } from './helpers.js';

const SYNC_PERIOD_MS = 30_000;
const HEALTH_TIMEOUT_MS = 2 * SYNC_PERIOD_MS;
const START = '2026-11-24T08:00:00.123Z';

describe('formatGoJSONTime (Go encoding/json of a time.Time)', () => {
  const savedTZ = process.env.TZ;
  afterEach(() => {
    if (savedTZ === undefined) delete process.env.TZ;
    else process.env.TZ = savedTZ;
  });

  it('prints RFC 3339 in UTC with Z and cuts trailing zeros of the fraction', () => {
    process.env.TZ = 'UTC';
    expect(formatGoJSONTime(Date.UTC(2026, 10, 24, 8, 0, 0, 123))).toBe('2026-11-24T08:00:00.123Z');
    expect(formatGoJSONTime(Date.UTC(2026, 10, 24, 8, 0, 0, 100))).toBe('2026-11-24T08:00:00.1Z');
    expect(formatGoJSONTime(Date.UTC(2026, 0, 2, 3, 4, 5, 0))).toBe('2026-01-02T03:04:05Z');
    expect(formatGoJSONTime(Date.UTC(2026, 0, 2, 3, 4, 5, 0) + 0.5)).toBe('2026-01-02T03:04:05.0005Z');
  });

  it("prints Go's zero time for never", () => {
    expect(formatGoJSONTime(null)).toBe('0001-01-01T00:00:00Z');
  });

  it('prints local time with a numeric offset outside UTC, as Go does for time.Now()', () => {
    process.env.TZ = 'Asia/Kolkata';
    expect(formatGoJSONTime(Date.UTC(2026, 10, 24, 8, 0, 0, 123))).toBe('2026-11-24T13:30:00.123+05:30');
    process.env.TZ = 'America/New_York';
    expect(formatGoJSONTime(Date.UTC(2026, 10, 24, 3, 0, 0, 0))).toBe('2026-11-23T22:00:00-05:00');
  });
});

describe('nodeIsEligible', () => {
  it('is eligible without deletion timestamp or autoscaler taint', () => {
    expect(nodeIsEligible({ metadata: { name: 'n1' } })).toBe(true);
    expect(
      nodeIsEligible({
        metadata: { name: 'n1' },
        spec: { taints: [{ key: 'other', effect: 'NoSchedule' }] },
      }),
    ).toBe(true);
  });

  it('is not eligible while being deleted (string or Date timestamp), when tainted, or when gone', () => {
    expect(nodeIsEligible({ metadata: { name: 'n1', deletionTimestamp: '2026-11-24T08:00:00Z' } })).toBe(
      false,
    );
    expect(nodeIsEligible({ metadata: { name: 'n1', deletionTimestamp: new Date() } })).toBe(false);
    expect(
      nodeIsEligible({ metadata: { name: 'n1' }, spec: { taints: [{ key: TO_BE_DELETED_TAINT }] } }),
    ).toBe(false);
    expect(nodeIsEligible(null)).toBe(false);
    expect(nodeIsEligible(undefined)).toBe(false);
  });

  it('rejects malformed input naming the node and field', () => {
    expect(() => nodeIsEligible('node')).toThrow(InputError);
    expect(() => nodeIsEligible({ metadata: { name: 'n1' }, spec: { taints: 'x' } })).toThrow(
      'Node n1: spec.taints: expected a list',
    );
  });
});

describe('parseBindAddress', () => {
  it('reads ip:port, [ipv6]:port and :port', () => {
    expect(parseBindAddress('0.0.0.0:10256', 'healthzBindAddress')).toEqual({ host: '0.0.0.0', port: 10256 });
    expect(parseBindAddress('[::1]:10249', 'metricsBindAddress')).toEqual({ host: '::1', port: 10249 });
    expect(parseBindAddress(':10256', 'healthzBindAddress')).toEqual({ host: '', port: 10256 });
  });

  it('names the setting in its errors', () => {
    expect(() => parseBindAddress('localhost:10256', 'healthzBindAddress')).toThrow(
      'healthzBindAddress: "localhost:10256": "localhost" is not an IP address',
    );
    expect(() => parseBindAddress('1.2.3.4', 'metricsBindAddress')).toThrow('expected host:port');
    expect(() => parseBindAddress('1.2.3.4:70000', 'metricsBindAddress')).toThrow('the port must be 0-65535');
    expect(() => parseBindAddress('::1:80', 'metricsBindAddress')).toThrow('in brackets');
  });
});

describe('ProxyHealthState', () => {
  it('tracks each family: a failed IPv6 sync leaves IPv6 pending while IPv4 is updated', () => {
    const clock = new FakeClock();
    const state = new ProxyHealthState({
      families: ['IPv4', 'IPv6'],
      healthTimeoutMs: HEALTH_TIMEOUT_MS,
      clock,
    });
    state.queued(clock.now());
    clock.advance(1000);
    state.synced(syncReport({ ok: false, results: [backendResult({ family: 'IPv4' })] }));
    clock.advance(HEALTH_TIMEOUT_MS);
    const health = state.health();
    expect(health.healthy).toBe(false);
    expect(health.status.get('IPv4')).toEqual({
      lastUpdatedMs: clock.now() - HEALTH_TIMEOUT_MS,
      healthy: true,
    });
    expect(health.status.get('IPv6')).toEqual({
      lastUpdatedMs: clock.now() - HEALTH_TIMEOUT_MS - 1000,
      healthy: false,
    });
  });

  it('keeps the oldest queued time until a sync succeeds', () => {
    const clock = new FakeClock();
    const state = new ProxyHealthState({ families: ['IPv4'], healthTimeoutMs: HEALTH_TIMEOUT_MS, clock });
    state.queued(clock.now());
    clock.advance(HEALTH_TIMEOUT_MS - 1);
    state.queued(clock.now()); // a later change does not restart the timer
    expect(state.isHealthy()).toBe(true);
    clock.advance(1);
    expect(state.isHealthy()).toBe(false);
  });

  it('counts every family as failed when unstamped results cannot be matched (conservative)', () => {
    const clock = new FakeClock();
    const state = new ProxyHealthState({
      families: ['IPv4', 'IPv6'],
      healthTimeoutMs: HEALTH_TIMEOUT_MS,
      clock,
    });
    state.queued(clock.now());
    state.synced(syncReport({ ok: false, results: [backendResult()] }));
    clock.advance(HEALTH_TIMEOUT_MS);
    expect(state.isHealthy()).toBe(false);
    // all backends returned: matched by position
    state.synced(syncReport({ ok: true, results: [backendResult(), backendResult()] }));
    expect(state.isHealthy()).toBe(true);
  });
});

describe('ProxyHealthServer over HTTP', () => {
  let clock: FakeClock;
  let state: ProxyHealthState;
  let server: ProxyHealthServer;
  let metrics: ProxyMetrics;
  let port: number;
  const savedTZ = process.env.TZ;

  beforeEach(async () => {
    process.env.TZ = 'UTC';
    clock = new FakeClock();
    state = new ProxyHealthState({ families: ['IPv4'], healthTimeoutMs: HEALTH_TIMEOUT_MS, clock });
    metrics = new ProxyMetrics({ processMetrics: false });
    server = new ProxyHealthServer(state, {
      address: '127.0.0.1:0',
      counters: metrics.probeCounters,
      log: memoryLogger().log,
    });
    port = (await server.start()).port;
  });

  afterEach(async () => {
    await server.close();
    if (savedTZ === undefined) delete process.env.TZ;
    else process.env.TZ = savedTZ;
  });

  async function probeCount(name: string, code: string): Promise<number> {
    const values = (await metrics.registry.getSingleMetric(name)!.get()).values;
    return values.find((v) => v.labels.code === code)?.value ?? 0;
  }

  it("answers 200 at start with kube-proxy's headers and body", async () => {
    const healthz = await httpGet(port, '/healthz');
    expect(healthz.status).toBe(200);
    expect(healthz.headers['content-type']).toBe('application/json');
    expect(healthz.headers['x-content-type-options']).toBe('nosniff');
    expect(healthz.body).toBe(
      `{"lastUpdated":"${START}","currentTime":"${START}","nodeEligible":true,"healthy":true,` +
        `"status":{"IPv4":{"lastUpdated":"${START}","healthy":true}}}`,
    );
    const livez = await httpGet(port, '/livez?verbose');
    expect(livez.status).toBe(200);
    expect(livez.body).toBe(
      `{"lastUpdated":"${START}","currentTime":"${START}","healthy":true,` +
        `"status":{"IPv4":{"lastUpdated":"${START}","healthy":true}}}`,
    );
  });

  it('turns 503 once a queued update is 2 x syncPeriod old, and 200 again after a sync', async () => {
    clock.advance(10_000);
    state.queued(clock.now());
    clock.advance(HEALTH_TIMEOUT_MS - 1);
    const stillOk = await httpGet(port, '/healthz');
    expect(stillOk.status).toBe(200);
    // healthy: lastUpdated is reported as now
    expect(JSON.parse(stillOk.body).lastUpdated).toBe(JSON.parse(stillOk.body).currentTime);

    clock.advance(1);
    const late = await httpGet(port, '/healthz');
    expect(late.status).toBe(503);
    expect(late.body).toBe(
      `{"lastUpdated":"${START}","currentTime":"2026-11-24T08:01:10.123Z","nodeEligible":true,"healthy":false,` +
        `"status":{"IPv4":{"lastUpdated":"${START}","healthy":false}}}`,
    );
    expect((await httpGet(port, '/livez')).status).toBe(503);

    // a failed sync changes nothing
    state.synced(syncReport({ ok: false, results: [] }));
    expect((await httpGet(port, '/healthz')).status).toBe(503);

    clock.advance(500);
    state.synced(syncReport({ ok: true }));
    const recovered = await httpGet(port, '/healthz');
    expect(recovered.status).toBe(200);
    expect(JSON.parse(recovered.body).status.IPv4).toEqual({
      lastUpdated: '2026-11-24T08:01:10.623Z',
      healthy: true,
    });
    expect((await httpGet(port, '/livez')).status).toBe(200);
  });

  it('fails /healthz but not /livez while the Node is being deleted or tainted', async () => {
    state.setNode({ metadata: { name: 'node-1', deletionTimestamp: '2026-11-24T07:59:00Z' } });
    const healthz = await httpGet(port, '/healthz');
    expect(healthz.status).toBe(503);
    expect(JSON.parse(healthz.body)).toMatchObject({ nodeEligible: false, healthy: true });
    const livez = await httpGet(port, '/livez');
    expect(livez.status).toBe(200);
    expect(JSON.parse(livez.body)).not.toHaveProperty('nodeEligible');

    state.setNode({ metadata: { name: 'node-1' } });
    expect((await httpGet(port, '/healthz')).status).toBe(200);

    state.setNode({
      metadata: { name: 'node-1' },
      spec: { taints: [{ key: TO_BE_DELETED_TAINT, effect: 'NoSchedule' }] },
    });
    expect((await httpGet(port, '/healthz')).status).toBe(503);
    expect((await httpGet(port, '/livez')).status).toBe(200);

    state.setNode(null);
    expect((await httpGet(port, '/healthz')).status).toBe(503);
  });

  it('counts answers in kubeproxy_proxy_healthz_total and kubeproxy_proxy_livez_total by code', async () => {
    await httpGet(port, '/healthz');
    await httpGet(port, '/healthz');
    await httpGet(port, '/livez');
    state.setNode(null);
    await httpGet(port, '/healthz');
    expect(await probeCount('kubeproxy_proxy_healthz_total', '200')).toBe(2);
    expect(await probeCount('kubeproxy_proxy_healthz_total', '503')).toBe(1);
    expect(await probeCount('kubeproxy_proxy_livez_total', '200')).toBe(1);
    expect(await probeCount('kubeproxy_proxy_livez_total', '503')).toBe(0);
  });

  it("answers other paths with Go's 404", async () => {
    const other = await httpGet(port, '/healthz/extra');
    expect(other.status).toBe(404);
    expect(other.body).toBe('404 page not found\n');
    expect(other.headers['content-type']).toBe('text/plain; charset=utf-8');
  });
});

describe('ProxyHealthServer lifecycle', () => {
  it('leaves no open handles after close(), even with a connection kept alive', async () => {
    const before = openTcpHandles();
    const state = new ProxyHealthState({ families: ['IPv4'], healthTimeoutMs: HEALTH_TIMEOUT_MS });
    const server = new ProxyHealthServer(state, { address: '127.0.0.1:0', log: memoryLogger().log });
    const { port } = await server.start();
    const keptAlive = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(keptAlive.status).toBe(200);
    await keptAlive.text();
    await server.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openTcpHandles()).toBeLessThanOrEqual(before);
  });

  it('rejects start() naming the address when it is taken', async () => {
    const state = new ProxyHealthState({ families: ['IPv4'], healthTimeoutMs: HEALTH_TIMEOUT_MS });
    const first = new ProxyHealthServer(state, { address: '127.0.0.1:0', log: memoryLogger().log });
    const { port } = await first.start();
    const second = new ProxyHealthServer(state, { address: `127.0.0.1:${port}`, log: memoryLogger().log });
    await expect(second.start()).rejects.toThrow(`failed to start the healthz server on 127.0.0.1:${port}: `);
    await second.close();
    await first.close();
  });
});
