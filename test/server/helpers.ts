/**
 * Test helpers for the servers: a one-shot HTTP client that leaves no socket open, a settable
 * clock, a log collector, free ports, sync reports, snapshots, and a count of open TCP handles.
 */
import { type IncomingHttpHeaders, request } from 'node:http';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/log.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { Endpoint, ServicePort, ServicePortState, Snapshot } from '../../src/model/types.js';
import type { BackendSyncResult, SyncReport } from '../../src/sync/backend.js';
import { node } from '../unit/builders.js';

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** GET over a fresh connection that is closed after the answer (no keep-alive pool). */
export function httpGet(port: number, path: string, host = '127.0.0.1'): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A clock that moves only when told to. Starts at 2026-11-24T08:00:00.123Z. */
export class FakeClock {
  constructor(public nowMs = Date.UTC(2026, 10, 24, 8, 0, 0, 123)) {}

  now(): number {
    return this.nowMs;
  }

  advance(ms: number): void {
    this.nowMs += ms;
  }
}

/** A pino logger that keeps its records in memory. */
export function memoryLogger(): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim() !== '') records.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), records };
}

/** A TCP port that was free a moment ago (the kernel's pick from the high ephemeral range). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** Listening TCP servers and open TCP sockets of this process. */
export function openTcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap' || r === 'TCPSocketWrap')
    .length;
}

export function backendResult(overrides: Partial<BackendSyncResult> = {}): BackendSyncResult {
  return {
    full: true,
    restoreLines: 10,
    rulesPerTable: { filter: 4, nat: 12 },
    noLocalEndpoints: { internal: 0, external: 0 },
    ...overrides,
  };
}

export function syncReport(overrides: Partial<SyncReport> = {}): SyncReport {
  return {
    seq: 1,
    full: true,
    ok: true,
    startedAtMs: 0,
    durationMs: 5,
    results: [backendResult({ family: 'IPv4' })],
    snapshots: [],
    appliedChanges: [],
    ...overrides,
  };
}

/** A service port's state with `endpoints`; the selection lists the local ones. */
export function portState(port: ServicePort, endpoints: Endpoint[]): ServicePortState {
  const local = endpoints.filter((e) => e.isLocal && (e.ready || e.serving));
  return {
    port,
    endpoints,
    selection: {
      cluster: endpoints.filter((e) => e.ready),
      local,
      allReachable: endpoints,
      hasEndpoints: endpoints.length > 0,
      usesClusterEndpoints: true,
      usesLocalEndpoints: port.externalPolicyLocal,
      topologyFiltered: false,
    },
    externallyAccessible: true,
  };
}

export function snapshot(family: IPFamily, servicePorts: ServicePortState[]): Snapshot {
  return {
    family,
    node: node(),
    servicePorts,
    totalEndpoints: servicePorts.reduce((n, s) => n + s.endpoints.length, 0),
  };
}
