/**
 * Graceful termination with a fake clock: a TCP real server that leaves drains at weight 0
 * and is deleted when its connections are gone; UDP goes at once; one that comes back gets
 * its weight back; leftovers from before a restart are picked up. Plus the stale-UDP
 * conntrack cleanup through the same wrapper as iptables mode.
 */
import { describe, expect, it } from 'vitest';
import { type DrainEntry, decideDrains } from '../../src/backends/ipvs/graceful.js';
import type { ConntrackDeleteFilter, ConntrackFlow, ConntrackTable } from '../../src/kernel/conntrack.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import type { IPFamily, Protocol } from '../../src/model/types.js';
import { ConntrackCleaner, ConntrackCleaningBackend } from '../../src/sync/conntrack-cleanup.js';
import { settle } from '../sync/helpers.js';
import { ipvsState, rs, silentLogger, vs } from './builders.js';
import { harness, request, snapshotOf } from './harness.js';

const PERIOD = 1000;
const KEY = 'TCP 10.96.0.10:80';

function web(...servers: string[]) {
  return ipvsState('IPv4', {
    virtualServers: [
      vs(
        'TCP',
        '10.96.0.10',
        80,
        servers.map((a) => rs(a)),
      ),
    ],
  });
}

function weights(node: FakeNode): string[] {
  return node.ipvsadm
    .save()
    .split('\n')
    .filter((l) => l.startsWith('-a -t 10.96.0.10:80'))
    .map((l) => l.replace('-a -t 10.96.0.10:80 -r ', '').replace(' -m', ''));
}

describe('decideDrains', () => {
  const drain = (address: string): DrainEntry => ({
    key: `${KEY}/${address}:8080`,
    vs: { protocol: 'TCP', address: '10.96.0.10', port: 80 },
    rs: { address, port: 8080 },
    sinceMs: 0,
  });
  it('removes drained ones without connections, keeps busy ones, forgets vanished or re-weighted ones', () => {
    const d = decideDrains(
      [drain('10.0.0.1'), drain('10.0.0.2'), drain('10.0.0.3'), drain('10.0.0.4')],
      [
        { address: '10.0.0.1', port: 8080, weight: 0, activeConnections: 0, inactiveConnections: 0 },
        { address: '10.0.0.2', port: 8080, weight: 0, activeConnections: 0, inactiveConnections: 3 },
        { address: '10.0.0.4', port: 8080, weight: 1, activeConnections: 0, inactiveConnections: 0 },
      ],
    );
    expect(d.remove.map((x) => x.rs.address)).toEqual(['10.0.0.1']);
    expect(d.keep.map((x) => x.rs.address)).toEqual(['10.0.0.2']);
    expect(d.forget.map((x) => x.rs.address)).toEqual(['10.0.0.3', '10.0.0.4']);
    expect(decideDrains([drain('10.0.0.1')], null).forget).toHaveLength(1);
  });
});

describe('graceful termination (fake clock)', () => {
  it('drains a TCP real server at weight 0 until ActiveConn + InActConn reach 0, then deletes it', async () => {
    const h = harness(web('10.244.1.5', '10.244.1.6'));
    await h.sync();
    h.desired = web('10.244.1.5');
    await h.sync();
    expect(weights(h.node)).toEqual(['10.244.1.5:8080 -w 1', '10.244.1.6:8080 -w 0']);
    h.node.ipvsadm.setConnections(KEY, '10.244.1.6:8080', 1, 4);
    await h.clock.advance(PERIOD);
    await settle();
    expect(weights(h.node)).toEqual(['10.244.1.5:8080 -w 1', '10.244.1.6:8080 -w 0']);
    expect(h.backend.graceful.size).toBe(1);
    h.node.ipvsadm.setConnections(KEY, '10.244.1.6:8080', 0, 1);
    await h.clock.advance(PERIOD);
    expect(weights(h.node)).toEqual(['10.244.1.5:8080 -w 1', '10.244.1.6:8080 -w 0']);
    h.node.ipvsadm.setConnections(KEY, '10.244.1.6:8080', 0, 0);
    await h.clock.advance(PERIOD);
    await settle();
    expect(weights(h.node)).toEqual(['10.244.1.5:8080 -w 1']);
    expect(h.backend.graceful.size).toBe(0);
    expect(h.clock.pendingTimers()).toEqual([]);
    // the next sync does not fight it: nothing to write
    const from = h.node.calls.length;
    await h.sync();
    expect(h.node.callsTo('ipvsadm', from)).toEqual([]);
  });

  it('deletes several drained real servers of one virtual server in one check, reading it back once', async () => {
    const h = harness(web('10.244.1.5', '10.244.1.6', '10.244.1.7'));
    await h.sync();
    h.desired = web('10.244.1.5');
    await h.sync();
    expect(h.backend.graceful.size).toBe(2);
    const from = h.node.calls.length;
    await h.clock.advance(PERIOD);
    await settle();
    expect(weights(h.node)).toEqual(['10.244.1.5:8080 -w 1']);
    expect(h.backend.graceful.size).toBe(0);
    const calls = h.node.callsTo('ipvsadm', from);
    // the check's read, one batch of two deletes, one read back
    expect(calls.map((c) => c.args[0])).toEqual(['-L', '-R', '-L']);
    expect(calls[1]?.input?.trim().split('\n')).toHaveLength(2);
  });

  it('the diff leaves a draining real server alone across syncs', async () => {
    const h = harness(web('10.244.1.5', '10.244.1.6'));
    await h.sync();
    h.desired = web('10.244.1.5');
    await h.sync();
    h.node.ipvsadm.setConnections(KEY, '10.244.1.6:8080', 2, 0);
    const from = h.node.calls.length;
    await h.sync();
    await h.sync(true);
    expect(h.node.callsTo('ipvsadm', from).filter((c) => c.args[0] === '-R')).toEqual([]);
    expect(weights(h.node)).toContain('10.244.1.6:8080 -w 0');
  });

  it('deletes UDP and SCTP real servers at once', async () => {
    const both = (...servers: string[]) =>
      ipvsState('IPv4', {
        virtualServers: (['UDP', 'SCTP'] as const).map((p) =>
          vs(
            p,
            '10.96.0.53',
            53,
            servers.map((a) => rs(a, 53)),
          ),
        ),
      });
    const h = harness(both('10.244.1.5', '10.244.1.6'));
    await h.sync();
    h.desired = both('10.244.1.5');
    await h.sync();
    expect(h.node.ipvsadm.save()).not.toContain('10.244.1.6');
    expect(h.backend.graceful.size).toBe(0);
  });

  it('an endpoint that comes back before deletion gets weight 1 back, with its connections', async () => {
    const h = harness(web('10.244.1.5', '10.244.1.6'));
    await h.sync();
    h.desired = web('10.244.1.5');
    await h.sync();
    h.node.ipvsadm.setConnections(KEY, '10.244.1.6:8080', 3, 0);
    h.desired = web('10.244.1.5', '10.244.1.6');
    const from = h.node.calls.length;
    await h.sync();
    expect(h.node.callsTo('ipvsadm', from)[0]?.input).toBe(
      '-e -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 1\n',
    );
    expect(weights(h.node)).toEqual(['10.244.1.5:8080 -w 1', '10.244.1.6:8080 -w 1']);
    expect(h.backend.graceful.size).toBe(0);
    await h.clock.advance(PERIOD * 3);
    expect(weights(h.node)).toHaveLength(2);
  });

  it('deleting the whole virtual server ends its drains (no grace, as kube-proxy)', async () => {
    const h = harness(web('10.244.1.5', '10.244.1.6'));
    await h.sync();
    h.desired = web('10.244.1.5');
    await h.sync();
    h.node.ipvsadm.setConnections(KEY, '10.244.1.6:8080', 3, 0);
    h.desired = ipvsState('IPv4');
    await h.sync();
    expect(h.node.ipvsadm.size).toBe(0);
    expect(h.backend.graceful.size).toBe(0);
  });

  it('after a restart: a weight-0 leftover still wanted gets weight 1, one not wanted drains and goes', async () => {
    const node = new FakeNode();
    await node.run('ipvsadm', ['-R'], {
      input: [
        '-A -t 10.96.0.10:80 -s rr',
        '-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 0',
        '-a -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 0',
        '',
      ].join('\n'),
    });
    node.ipvsadm.setConnections(KEY, '10.244.1.6:8080', 1, 0);
    const h = harness(web('10.244.1.5'), { node });
    await h.sync();
    expect(weights(node)).toEqual(['10.244.1.5:8080 -w 1', '10.244.1.6:8080 -w 0']);
    expect(h.backend.graceful.keys()).toEqual(new Set([`${KEY}/10.244.1.6:8080`]));
    node.ipvsadm.setConnections(KEY, '10.244.1.6:8080', 0, 0);
    await h.clock.advance(PERIOD);
    await settle();
    expect(weights(node)).toEqual(['10.244.1.5:8080 -w 1']);
  });

  it('a check that finds the kernel changed behind its back, or fails, makes the next sync full', async () => {
    const h = harness(web('10.244.1.5', '10.244.1.6'));
    await h.sync();
    h.desired = web('10.244.1.5');
    await h.sync();
    // another agent removes the whole service; the check then finds the drain gone
    await h.node.run('ipvsadm', ['-D', '-t', '10.96.0.10:80']);
    await h.clock.advance(PERIOD);
    await settle();
    expect(h.backend.graceful.size).toBe(0);
    expect((await h.sync()).full).toBe(true);
    expect(h.node.ipvsadm.size).toBe(1);
    // a refused delete, though, makes the next sync full
    h.desired = web('10.244.1.5', '10.244.1.7');
    await h.sync(true);
    h.desired = web('10.244.1.5');
    await h.sync();
    h.node.ipvsadm.afterRestore = (fake) => {
      fake.afterRestore = null;
      // the delete "took no effect": put it back as it was
      void fake.run(['-a', '-t', '10.96.0.10:80', '-r', '10.244.1.7:8080', '-m', '-w', '0']);
    };
    await h.clock.advance(PERIOD);
    await settle();
    expect((await h.sync()).full).toBe(true);
  });
});

describe('stale UDP conntrack cleanup in IPVS mode', () => {
  it('wraps IpvsBackend like any backend: runs after each successful sync', async () => {
    const calls: string[] = [];
    const table: ConntrackTable = {
      list: async (family: IPFamily, protocol: Protocol): Promise<ConntrackFlow[]> => {
        calls.push(`list ${family} ${protocol}`);
        return [];
      },
      delete: async (_f: ConntrackDeleteFilter) => 0,
    };
    const h = harness(web('10.244.1.5'));
    const wrapped = new ConntrackCleaningBackend(
      h.backend,
      new ConntrackCleaner({ family: 'IPv4', conntrack: table, log: silentLogger() }),
    );
    const result = await wrapped.sync(snapshotOf(), request(true));
    expect(result.full).toBe(true);
    expect(wrapped.description).toBe('ipvs (nft) IPv4');
    expect(await wrapped.lostState()).toBe(false);
  });
});
