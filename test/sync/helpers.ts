/**
 * Test doubles for the sync loop: a fake clock, a scriptable backend, objects, a log collector.
 */
import { pino } from 'pino';
import type { Logger } from '../../src/log.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { ObjectEvent } from '../../src/model/store.js';
import type { Snapshot } from '../../src/model/types.js';
import type { BackendSyncResult, ProxyBackend, SyncRequest } from '../../src/sync/backend.js';
import type { Clock, TimerHandle } from '../../src/sync/clock.js';

/** Lets every promise chain that can progress without real I/O run to its end. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  private current: number;
  private readonly timers = new Map<number, { dueMs: number; callback: () => void }>();
  private nextId = 1;

  constructor(startMs = 1_000_000) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { dueMs: this.current + Math.max(0, delayMs), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  /** Due times of the armed timers, earliest first. */
  pendingTimers(): number[] {
    return [...this.timers.values()].map((t) => t.dueMs).sort((a, b) => a - b);
  }

  /** Moves time forward, firing due timers in order and letting their async work finish. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      await settle();
      let next: [number, { dueMs: number; callback: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].dueMs <= target && (!next || entry[1].dueMs < next[1].dueMs)) next = entry;
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.current = next[1].dueMs;
      next[1].callback();
    }
    this.current = target;
    await settle();
  }

  /** Advances to an absolute time. */
  advanceTo(ms: number): Promise<void> {
    return this.advance(ms - this.current);
  }
}

export interface BackendCall {
  atMs: number;
  request: SyncRequest;
  snapshot: Snapshot;
}

/** A backend that records its calls; it can be told to fail, to hang, or to report lost state. */
export class ScriptedBackend implements ProxyBackend {
  readonly description: string;
  readonly calls: BackendCall[] = [];
  /** the next this-many syncs throw */
  failures = 0;
  lost = false;
  /** how often lostState() was asked */
  lostChecks = 0;
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;

  constructor(
    readonly family: IPFamily,
    private readonly clock: Clock,
  ) {
    this.description = `scripted ${family}`;
  }

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  release(): void {
    this.openGate?.();
    this.gate = null;
  }

  async sync(snapshot: Snapshot, request: SyncRequest): Promise<BackendSyncResult> {
    this.calls.push({ atMs: this.clock.now(), request, snapshot });
    if (this.gate) await this.gate;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('iptables-restore: exit status 1: line 7 failed: -A KUBE-SVC-X -j KUBE-SEP-Y');
    }
    return {
      full: request.full,
      restoreLines: 1,
      rulesPerTable: {},
      noLocalEndpoints: { internal: 0, external: 0 },
    };
  }

  async lostState(): Promise<boolean> {
    this.lostChecks++;
    const lost = this.lost;
    this.lost = false;
    return lost;
  }
}

/** A logger whose records land in an array. */
export function collectingLogger(): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => records.push(JSON.parse(line)) });
  return { log, records };
}

export function service(name: string, clusterIP: string, extra: Record<string, unknown> = {}): ObjectEvent {
  return {
    type: 'add',
    kind: 'Service',
    object: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'ns' },
      spec: {
        type: 'ClusterIP',
        clusterIP,
        clusterIPs: [clusterIP],
        ipFamilies: ['IPv4'],
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
        ...extra,
      },
    },
  };
}

export function slice(
  serviceName: string,
  ips: readonly string[],
  sliceName = `${serviceName}-abc`,
): ObjectEvent {
  return {
    type: 'add',
    kind: 'EndpointSlice',
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: sliceName, namespace: 'ns', labels: { 'kubernetes.io/service-name': serviceName } },
      addressType: 'IPv4',
      endpoints: ips.map((ip) => ({
        addresses: [ip],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: 'node-2',
      })),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  };
}

export function node(name: string, labels: Record<string, string>, internalIP = '192.168.0.2'): ObjectEvent {
  return {
    type: 'update',
    kind: 'Node',
    object: {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels },
      spec: { podCIDRs: ['10.180.0.0/24'] },
      status: { addresses: [{ type: 'InternalIP', address: internalIP }] },
    },
  };
}
