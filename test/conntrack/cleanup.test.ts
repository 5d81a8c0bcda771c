/**
 * Which UDP conntrack entries are stale after a sync (kube-proxy's CleanStaleEntries), when
 * the table needs a look at all, and the cleaner that runs it after each successful sync.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type {
  ConntrackDeleteFilter,
  ConntrackFlow,
  ConntrackTable,
  FlowTuple,
} from '../../src/kernel/conntrack.js';
import { CommandError } from '../../src/kernel/exec.js';
import { categorizeEndpoints } from '../../src/model/categorize.js';
import type { Endpoint, IPFamily, ServicePort, ServicePortState, Snapshot } from '../../src/model/types.js';
import type { BackendSyncResult, ProxyBackend, SyncRequest } from '../../src/sync/backend.js';
import {
  ConntrackCleaner,
  ConntrackCleaningBackend,
  conntrackCleanupRequired,
  staleConntrackEntries,
} from '../../src/sync/conntrack-cleanup.js';
import { endpoint, node, SERVING_TERMINATING, servicePort } from '../unit/builders.js';

const CLUSTER_IP = '172.30.0.10';
const EXTERNAL_IP = '203.0.113.7';
const LB_IP = '198.51.100.9';
const NODE_IP = '192.168.0.2';
const CLIENT = '10.180.1.9';
const EP_A = '10.180.0.2';
const EP_B = '10.180.0.3';

function state(port: ServicePort, endpoints: Endpoint[]): ServicePortState {
  const sorted = [...endpoints].sort((a, b) => (a.endpoint < b.endpoint ? -1 : 1));
  return {
    port,
    endpoints: sorted,
    selection: categorizeEndpoints(port, sorted, node(), { preferSameNode: false }),
    externallyAccessible:
      port.nodePort !== 0 || port.externalIPs.length > 0 || port.loadBalancerVIPs.length > 0,
  };
}

function snapshot(servicePorts: ServicePortState[], family: IPFamily = 'IPv4'): Snapshot {
  return {
    family,
    node: node(),
    servicePorts,
    totalEndpoints: servicePorts.reduce((n, sp) => n + sp.endpoints.length, 0),
  };
}

/** A UDP DNS-like service port: ClusterIP, externalIP, LB VIP and NodePort, port 53 -> 5353. */
function dns(overrides: Partial<ServicePort> = {}): ServicePort {
  return servicePort({
    namespace: 'kube-system',
    name: 'dns',
    portName: 'dns',
    protocol: 'UDP',
    clusterIP: CLUSTER_IP,
    port: 53,
    nodePort: 30053,
    externalIPs: [EXTERNAL_IP],
    loadBalancerVIPs: [LB_IP],
    ...overrides,
  });
}

const ep = (ip: string, spec: Parameters<typeof endpoint>[1] = {}) => endpoint(ip, { port: 5353, ...spec });

/** A UDP flow from CLIENT:sport to dst:dport whose replies come from replySrc:replyPort. */
function flow(dst: string, dport: number, replySrc: string, replyPort: number, sport = 40000): ConntrackFlow {
  const original: FlowTuple = { src: CLIENT, dst, sport, dport };
  const reply: FlowTuple = { src: replySrc, dst: CLIENT, sport: replyPort, dport: sport };
  return { family: replySrc.includes(':') ? 'IPv6' : 'IPv4', protocol: 17, original, reply };
}

const filterOf = (a: { filter: ConntrackDeleteFilter }) => a.filter;

describe('staleConntrackEntries', () => {
  const afterRemoval = snapshot([state(dns(), [ep(EP_B)])]);

  it('ClusterIP: deletes flows DNATed to a removed endpoint, keeps those to a serving one', () => {
    const actions = staleConntrackEntries(afterRemoval, [
      flow(CLUSTER_IP, 53, EP_A, 5353),
      flow(CLUSTER_IP, 53, EP_B, 5353, 40001),
    ]);
    expect(actions).toEqual([
      {
        match: 'service-ip',
        servicePorts: ['kube-system/dns:dns'],
        flows: 1,
        filter: {
          family: 'IPv4',
          protocol: 'UDP',
          origDst: CLUSTER_IP,
          origDstPort: 53,
          replySrc: EP_A,
          replySrcPort: 5353,
        },
      },
    ]);
  });

  it('ClusterIP: a flow never DNATed (sent while there were no rules) is stale once endpoints exist', () => {
    const actions = staleConntrackEntries(afterRemoval, [flow(CLUSTER_IP, 53, CLUSTER_IP, 53)]);
    expect(actions.map(filterOf)).toEqual([
      {
        family: 'IPv4',
        protocol: 'UDP',
        origDst: CLUSTER_IP,
        origDstPort: 53,
        replySrc: CLUSTER_IP,
        replySrcPort: 53,
      },
    ]);
  });

  it('compares the endpoint port too', () => {
    const actions = staleConntrackEntries(afterRemoval, [flow(CLUSTER_IP, 53, EP_B, 9999)]);
    expect(actions.map((a) => a.filter.replySrcPort)).toEqual([9999]);
  });

  it('externalIP and LoadBalancer VIP: same rule, on their IP and the service port', () => {
    const actions = staleConntrackEntries(afterRemoval, [
      flow(EXTERNAL_IP, 53, EP_A, 5353),
      flow(LB_IP, 53, EP_A, 5353),
      flow(LB_IP, 53, EP_B, 5353, 40001),
      // another port on the external IP is not this service's
      flow(EXTERNAL_IP, 54, EP_A, 5353),
    ]);
    expect(actions.map((a) => [a.match, a.filter.origDst, a.filter.origDstPort, a.filter.replySrc])).toEqual([
      ['service-ip', EXTERNAL_IP, 53, EP_A],
      ['service-ip', LB_IP, 53, EP_A],
    ]);
  });

  it('NodePort: matched on the port alone, whatever the destination address', () => {
    const actions = staleConntrackEntries(afterRemoval, [
      flow(NODE_IP, 30053, EP_A, 5353),
      flow(NODE_IP, 30053, EP_B, 5353, 40001),
      // kube-proxy's filter has no address: an un-NATed flow to any host's port 30053 goes too
      flow('10.1.2.3', 30053, '10.1.2.3', 30053),
    ]);
    expect(actions.map(filterOf)).toEqual([
      { family: 'IPv4', protocol: 'UDP', origDstPort: 30053, replySrc: EP_A, replySrcPort: 5353 },
      { family: 'IPv4', protocol: 'UDP', origDstPort: 30053, replySrc: '10.1.2.3', replySrcPort: 30053 },
    ]);
    expect(actions.every((a) => a.match === 'node-port')).toBe(true);
  });

  it('one action per (frontend, old target), however many clients', () => {
    const actions = staleConntrackEntries(afterRemoval, [
      flow(CLUSTER_IP, 53, EP_A, 5353, 40000),
      flow(CLUSTER_IP, 53, EP_A, 5353, 40001),
      flow(CLUSTER_IP, 53, EP_A, 5353, 40002),
    ]);
    expect(actions).toHaveLength(1);
    expect(actions[0]!.flows).toBe(3);
  });

  it('serving-terminating endpoints are kept, not-serving ones are not', () => {
    const current = snapshot([
      state(dns(), [ep(EP_A, SERVING_TERMINATING), ep(EP_B, { ready: false, serving: false })]),
    ]);
    const actions = staleConntrackEntries(current, [
      flow(CLUSTER_IP, 53, EP_A, 5353),
      flow(CLUSTER_IP, 53, EP_B, 5353),
    ]);
    expect(actions.map((a) => a.filter.replySrc)).toEqual([EP_B]);
  });

  it('a service port without serving endpoints is left alone', () => {
    const current = snapshot([state(dns(), [])]);
    expect(
      staleConntrackEntries(current, [
        flow(CLUSTER_IP, 53, EP_A, 5353),
        flow(CLUSTER_IP, 53, CLUSTER_IP, 53),
      ]),
    ).toEqual([]);
  });

  it('a TCP service: nothing to do, and TCP flows are never touched', () => {
    const tcp = snapshot([state(dns({ protocol: 'TCP' }), [ep(EP_B)])]);
    expect(staleConntrackEntries(tcp, [flow(CLUSTER_IP, 53, EP_A, 5353)])).toEqual([]);
    const tcpFlow = { ...flow(CLUSTER_IP, 53, EP_A, 5353), protocol: 6 };
    expect(staleConntrackEntries(afterRemoval, [tcpFlow])).toEqual([]);
  });

  it('flows to other addresses are not touched', () => {
    expect(staleConntrackEntries(afterRemoval, [flow('8.8.8.8', 53, '8.8.8.8', 53)])).toEqual([]);
  });

  it('IPv6: the same, and flows of the other family are ignored', () => {
    const v6 = snapshot(
      [
        state(
          dns({
            family: 'IPv6',
            clusterIP: 'fd00:30::10',
            externalIPs: [],
            loadBalancerVIPs: [],
            nodePort: 0,
          }),
          [ep('fd00:180::3')],
        ),
      ],
      'IPv6',
    );
    const actions = staleConntrackEntries(v6, [
      {
        ...flow('fd00:30::10', 53, 'fd00:180::2', 5353),
        original: { src: 'fd00:1::9', dst: 'fd00:30::10', sport: 1, dport: 53 },
      },
      flow(CLUSTER_IP, 53, EP_A, 5353),
    ]);
    expect(actions.map(filterOf)).toEqual([
      {
        family: 'IPv6',
        protocol: 'UDP',
        origDst: 'fd00:30::10',
        origDstPort: 53,
        replySrc: 'fd00:180::2',
        replySrcPort: 5353,
      },
    ]);
  });
});

describe('conntrackCleanupRequired', () => {
  const before = snapshot([state(dns(), [ep(EP_A), ep(EP_B)])]);

  it('an unchanged snapshot: nothing to do', () => {
    expect(conntrackCleanupRequired(before, before)).toBe(false);
    // rebuilt objects with the same content
    expect(conntrackCleanupRequired(before, snapshot([state(dns(), [ep(EP_B), ep(EP_A)])]))).toBe(false);
  });

  it('the first sync looks when there is a UDP service port', () => {
    expect(conntrackCleanupRequired(null, before)).toBe(true);
    expect(conntrackCleanupRequired(null, snapshot([state(dns({ protocol: 'TCP' }), [ep(EP_A)])]))).toBe(
      false,
    );
  });

  it('an endpoint removed, endpoints gained, a frontend added, a service port gone: look', () => {
    expect(conntrackCleanupRequired(before, snapshot([state(dns(), [ep(EP_B)])]))).toBe(true);
    expect(conntrackCleanupRequired(snapshot([state(dns(), [])]), before)).toBe(true);
    expect(
      conntrackCleanupRequired(
        before,
        snapshot([state(dns({ externalIPs: [EXTERNAL_IP, '203.0.113.8'] }), [ep(EP_A), ep(EP_B)])]),
      ),
    ).toBe(true);
    expect(conntrackCleanupRequired(before, snapshot([]))).toBe(true);
  });

  it('changes that leave frontends and serving endpoints alone, or only touch TCP: no look', () => {
    const terminating = snapshot([state(dns(), [ep(EP_A, SERVING_TERMINATING), ep(EP_B)])]);
    expect(conntrackCleanupRequired(before, terminating)).toBe(false);
    const tcpBefore = snapshot([
      ...before.servicePorts,
      state(dns({ name: 'web', protocol: 'TCP' }), [ep(EP_A)]),
    ]);
    const tcpAfter = snapshot([...before.servicePorts, state(dns({ name: 'web', protocol: 'TCP' }), [])]);
    expect(conntrackCleanupRequired(tcpBefore, tcpAfter)).toBe(false);
  });

  it('refuses snapshots of different families', () => {
    expect(() => conntrackCleanupRequired(before, snapshot([], 'IPv6'))).toThrow(/different families/);
  });
});

/* ------------------------------------------------------------------------------------ */

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function capturingLogger() {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return {
    log,
    lines,
    messages: (minLevel = 0) => lines.filter((l) => l.level >= minLevel).map((l) => l.msg),
  };
}

class FakeTable implements ConntrackTable {
  lists = 0;
  deletes: ConntrackDeleteFilter[] = [];
  listError: Error | null = null;
  failDeleteOf: string | null = null;
  constructor(public flows: ConntrackFlow[]) {}
  async list(): Promise<ConntrackFlow[]> {
    this.lists++;
    if (this.listError) throw this.listError;
    return this.flows;
  }
  async delete(filter: ConntrackDeleteFilter): Promise<number> {
    this.deletes.push(filter);
    if (filter.replySrc === this.failDeleteOf) throw new Error('conntrack -D: Operation not permitted');
    return 1;
  }
}

const WARN = 40;
const ERROR = 50;

describe('ConntrackCleaner', () => {
  const before = snapshot([state(dns(), [ep(EP_A), ep(EP_B)])]);
  const after = snapshot([state(dns(), [ep(EP_B)])]);
  const staleFlows = [flow(CLUSTER_IP, 53, EP_A, 5353), flow(NODE_IP, 30053, EP_A, 5353, 40001)];

  it('does not list the table when nothing relevant changed', async () => {
    const table = new FakeTable(staleFlows);
    const reports: unknown[] = [];
    const cleaner = new ConntrackCleaner({
      family: 'IPv4',
      conntrack: table,
      log: capturingLogger().log,
      onReport: (family, report) => reports.push([family, report.deleted]),
    });
    const report = await cleaner.afterSync(before, before);
    expect(report.ran).toBe(false);
    expect(table.lists).toBe(0);
    expect(reports).toEqual([]);
    await cleaner.afterSync(before, after);
    expect(reports).toEqual([['IPv4', 2]]);
  });

  it('a throwing report callback is logged, not thrown', async () => {
    const { log, messages } = capturingLogger();
    const cleaner = new ConntrackCleaner({
      family: 'IPv4',
      conntrack: new FakeTable([]),
      log,
      onReport: () => {
        throw new Error('metrics broke');
      },
    });
    await expect(cleaner.afterSync(null, before)).resolves.toMatchObject({ ran: true });
    expect(messages(WARN)).toEqual(['conntrack cleanup report callback failed']);
  });

  it('lists and deletes after an endpoint was removed', async () => {
    const table = new FakeTable(staleFlows);
    const { log, messages } = capturingLogger();
    const cleaner = new ConntrackCleaner({ family: 'IPv4', conntrack: table, log });
    const report = await cleaner.afterSync(before, after);
    expect(report).toMatchObject({ ran: true, flowsListed: 2, actions: 2, deleted: 2, failures: 0 });
    expect(table.deletes.map((f) => [f.origDst, f.origDstPort, f.replySrc])).toEqual([
      [CLUSTER_IP, 53, EP_A],
      [undefined, 30053, EP_A],
    ]);
    expect(messages()).toContain('conntrack cleanup done');
  });

  it('never throws: a failed listing is logged and retried after the next sync', async () => {
    const table = new FakeTable(staleFlows);
    table.listError = new CommandError(
      'conntrack',
      ['-L'],
      { stdout: '', stderr: 'boom', exitCode: 1 },
      'exit',
      'boom',
    );
    const { log, messages } = capturingLogger();
    const cleaner = new ConntrackCleaner({ family: 'IPv4', conntrack: table, log });
    await expect(cleaner.afterSync(before, after)).resolves.toMatchObject({ ran: true, failures: 1 });
    expect(messages(ERROR)).toEqual([
      'conntrack cleanup failed: stale UDP flows may persist; retrying after the next sync',
    ]);
    table.listError = null;
    // No change between these two, but the failed run is owed.
    await expect(cleaner.afterSync(after, after)).resolves.toMatchObject({
      ran: true,
      deleted: 2,
      failures: 0,
    });
    await expect(cleaner.afterSync(after, after)).resolves.toMatchObject({ ran: false });
  });

  it('one failed delete does not stop the others', async () => {
    const table = new FakeTable([flow(CLUSTER_IP, 53, EP_A, 5353), flow(CLUSTER_IP, 53, '10.180.0.4', 5353)]);
    table.failDeleteOf = EP_A;
    const { log, messages } = capturingLogger();
    const cleaner = new ConntrackCleaner({ family: 'IPv4', conntrack: table, log });
    const report = await cleaner.afterSync(before, after);
    expect(report).toMatchObject({ actions: 2, deleted: 1, failures: 1 });
    expect(messages(WARN)).toContain('could not delete stale conntrack entries');
  });

  it('a missing conntrack binary is reported once at error level', async () => {
    const table = new FakeTable([]);
    table.listError = new CommandError(
      'conntrack',
      ['-L'],
      { stdout: '', stderr: '', exitCode: -1 },
      'spawn',
      'ENOENT',
    );
    const { log, messages } = capturingLogger();
    const cleaner = new ConntrackCleaner({ family: 'IPv4', conntrack: table, log });
    await cleaner.afterSync(before, after);
    await cleaner.afterSync(after, after);
    expect(table.lists).toBe(2);
    expect(messages(ERROR)).toEqual([
      'conntrack cannot be run (is conntrack-tools installed?): stale UDP flows are not cleared',
    ]);
  });

  it('a snapshot of the wrong family is a logged failure, not a throw', async () => {
    const { log, messages } = capturingLogger();
    const cleaner = new ConntrackCleaner({ family: 'IPv6', conntrack: new FakeTable([]), log });
    await expect(cleaner.afterSync(null, before)).resolves.toMatchObject({ failures: 1 });
    expect(messages(ERROR)).toHaveLength(1);
  });
});

describe('ConntrackCleaningBackend', () => {
  class FakeBackend implements ProxyBackend {
    readonly family = 'IPv4' as const;
    readonly description = 'fake IPv4';
    fail = false;
    async sync(_s: Snapshot, request: SyncRequest): Promise<BackendSyncResult> {
      if (this.fail) throw new Error(`sync #${request.seq} failed`);
      return {
        full: request.full,
        restoreLines: 1,
        rulesPerTable: {},
        noLocalEndpoints: { internal: 0, external: 0 },
      };
    }
    async lostState(): Promise<boolean> {
      return false;
    }
  }

  it('cleans after each successful sync against the previous successful one', async () => {
    const calls: [Snapshot | null, Snapshot][] = [];
    const cleaner = new ConntrackCleaner({
      family: 'IPv4',
      conntrack: new FakeTable([]),
      log: capturingLogger().log,
    });
    const original = cleaner.afterSync.bind(cleaner);
    cleaner.afterSync = (previous, current) => {
      calls.push([previous, current]);
      return original(previous, current);
    };
    const inner = new FakeBackend();
    const backend = new ConntrackCleaningBackend(inner, cleaner);
    const s1 = snapshot([state(dns(), [ep(EP_A)])]);
    const s2 = snapshot([state(dns(), [ep(EP_B)])]);
    const s3 = snapshot([state(dns(), [])]);
    const request = (seq: number) => ({ seq, full: true, changedServices: new Set<string>() });

    await backend.sync(s1, request(1));
    inner.fail = true;
    await expect(backend.sync(s2, request(2))).rejects.toThrow('sync #2 failed');
    inner.fail = false;
    await backend.sync(s3, request(3));
    expect(calls).toEqual([
      [null, s1],
      [s1, s3],
    ]);
    expect(backend.description).toBe('fake IPv4');
    await expect(backend.lostState()).resolves.toBe(false);
  });

  it('refuses a cleaner of another family', () => {
    const cleaner = new ConntrackCleaner({
      family: 'IPv6',
      conntrack: new FakeTable([]),
      log: capturingLogger().log,
    });
    expect(() => new ConntrackCleaningBackend(new FakeBackend(), cleaner)).toThrow(/cleaner is for IPv6/);
  });
});
