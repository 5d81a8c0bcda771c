/**
 * Drives the real ClusterSource (and through it @kubernetes/client-node) against the API
 * double, collecting its events into a real ObjectStore. Timings are milliseconds so each
 * test is fast.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach } from 'vitest';
import type { Logger } from '../../src/log.js';
import { type ObjectEvent, ObjectStore } from '../../src/model/store.js';
import { ClusterSource } from '../../src/sources/cluster.js';
import type { ListWatchTiming } from '../../src/sources/list-watch.js';
import { FakeApiServer, type FakeApiServerOptions, type KubeObject } from './fake-apiserver.js';

export const NODE_NAME = 'node-1';

export const FAST_TIMING: Partial<ListWatchTiming> = {
  inactivityTimeoutMs: 600,
  shortWatchMs: 20,
  requestTimeoutMs: 3000,
  backoff: { initialMs: 20, maxMs: 100, resetAfterMs: 2000 },
};

/** A logger whose lines are kept for assertions (and printed with DEBUG_API_TESTS=1). */
export function captureLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      if (process.env.DEBUG_API_TESTS) process.stderr.write(chunk);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

export function service(name: string, clusterIP: string, extra: Partial<KubeObject> = {}): KubeObject {
  const { metadata, ...rest } = extra;
  return {
    metadata: { name, namespace: 'default', ...metadata },
    spec: {
      type: 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ipFamilies: ['IPv4'],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    },
    ...rest,
  };
}

export function slice(
  name: string,
  serviceName: string,
  addresses: string[],
  labels: Record<string, string> = {},
) {
  return {
    metadata: {
      name,
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': serviceName, ...labels },
    },
    addressType: 'IPv4',
    endpoints: addresses.map((a) => ({
      addresses: [a],
      conditions: { ready: true, serving: true, terminating: false },
    })),
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  } satisfies KubeObject;
}

export function node(name: string, labels: Record<string, string> = {}): KubeObject {
  return {
    metadata: { name, labels },
    spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.1.10' }] },
  };
}

/** A short, readable form of an event: `add Service default/web`. */
export function describeEvent(e: ObjectEvent): string {
  const meta = (e.object as { metadata?: { name?: string; namespace?: string } }).metadata ?? {};
  const ns = meta.namespace ? `${meta.namespace}/` : '';
  return `${e.type} ${e.kind} ${ns}${meta.name ?? '?'}`;
}

export interface Harness {
  fake: FakeApiServer;
  source: ClusterSource;
  store: ObjectStore;
  events: ObjectEvent[];
  logLines: Record<string, unknown>[];
  syncedCount(): number;
  /** events received from index `from` on, described */
  described(from?: number): string[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  fake?: FakeApiServerOptions;
  timing?: Partial<ListWatchTiming>;
  /** objects to create before the source starts */
  seed?: (fake: FakeApiServer) => void;
}

export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const fake = await FakeApiServer.start({ bookmarkIntervalMs: 50, ...options.fake });
  options.seed?.(fake);
  const { log, lines } = captureLogger();
  const store = new ObjectStore(NODE_NAME);
  const events: ObjectEvent[] = [];
  let synced = 0;
  const source = new ClusterSource({
    nodeName: NODE_NAME,
    log,
    kubeConfig: fake.kubeConfig(),
    timing: { ...FAST_TIMING, ...options.timing },
  });
  let started = false;
  return {
    fake,
    source,
    store,
    events,
    logLines: lines,
    syncedCount: () => synced,
    described: (from = 0) => events.slice(from).map(describeEvent),
    start: async () => {
      started = true;
      await source.start(
        (e) => {
          events.push(e);
          store.apply(e);
        },
        () => synced++,
      );
    },
    stop: async () => {
      if (started) await source.stop();
      await fake.close();
    },
  };
}

/** Polls until `condition` holds; fails with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One harness per test, stopped after it: call at the top of a test file. `create` makes
 * it (not started, for tests that start it their own way), `start` makes and starts it.
 */
export function harnessPerTest(): {
  create(options?: HarnessOptions): Promise<Harness>;
  start(options?: HarnessOptions): Promise<Harness>;
} {
  let current: Harness | null = null;
  afterEach(async () => {
    await current?.stop();
    current = null;
  });
  const create = async (options: HarnessOptions = {}) => {
    current = await createHarness(options);
    return current;
  };
  return {
    create,
    start: async (options: HarnessOptions = {}) => {
      const harness = await create(options);
      await harness.start();
      return harness;
    },
  };
}
