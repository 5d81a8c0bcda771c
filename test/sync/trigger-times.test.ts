/**
 * kube-proxy's rules for which EndpointSlice change trigger times count toward
 * kubeproxy_network_programming_duration_seconds (pkg/proxy/endpointschangetracker.go), and
 * how the sync loop hands them to its reports.
 */
import { describe, expect, it } from 'vitest';
import type { ObjectEvent } from '../../src/model/store.js';
import { ObjectStore } from '../../src/model/store.js';
import type { SyncReport } from '../../src/sync/backend.js';
import { SyncLoop } from '../../src/sync/loop.js';
import {
  LAST_CHANGE_TRIGGER_TIME_ANNOTATION,
  lastChangeTriggerTime,
  PendingTriggerTimes,
  parseRfc3339,
} from '../../src/sync/trigger-times.js';
import { collectingLogger, FakeClock, ScriptedBackend, service, slice } from './helpers.js';

/** A slice event whose annotation says its change was triggered at `trigger` (text), or none. */
function annotated(
  serviceName: string,
  ips: string[],
  trigger: string | null,
  options: { sliceName?: string; type?: ObjectEvent['type']; addressType?: string } = {},
): ObjectEvent {
  const event = slice(serviceName, ips, options.sliceName);
  const object = event.object as { metadata: Record<string, unknown>; addressType: string };
  if (trigger !== null) object.metadata.annotations = { [LAST_CHANGE_TRIGGER_TIME_ANNOTATION]: trigger };
  if (options.addressType) object.addressType = options.addressType;
  return { ...event, type: options.type ?? 'add' };
}

const iso = (ms: number) => new Date(ms).toISOString();

describe('parseRfc3339', () => {
  it("reads what Go's time.Parse(RFC3339Nano) reads", () => {
    expect(parseRfc3339('2026-11-24T08:00:00Z')).toBe(Date.UTC(2026, 10, 24, 8));
    expect(parseRfc3339('2026-11-24T08:00:00.5Z')).toBe(Date.UTC(2026, 10, 24, 8) + 500);
    expect(parseRfc3339('2026-11-24T08:00:00.123456789Z')).toBeCloseTo(
      Date.UTC(2026, 10, 24, 8) + 123.456789,
      6,
    );
    expect(parseRfc3339('2026-11-24T10:30:00+02:30')).toBe(Date.UTC(2026, 10, 24, 8));
    expect(parseRfc3339('2026-11-24T05:00:00-03:00')).toBe(Date.UTC(2026, 10, 24, 8));
  });

  it.each([
    '',
    'yesterday',
    '2026-11-24 08:00:00Z',
    '2026-11-24t08:00:00z',
    '2026-11-24T08:00:00',
    '2026-11-24T08:00Z',
    '2026-11-24T08:00:00.Z',
    '2026-11-24T08:00:00.1234567890Z',
    '2026-02-30T08:00:00Z',
    '2026-13-01T08:00:00Z',
    '2026-11-24T24:00:00Z',
    '2026-11-24T08:60:00Z',
    '2026-11-24T08:00:60Z',
    '2026-11-24T08:00:00+24:00',
  ])('refuses %j', (text) => {
    expect(parseRfc3339(text)).toBeNull();
  });

  it('reads the annotation of a slice; none, or a bad one, is null', () => {
    expect(lastChangeTriggerTime(annotated('a', [], '2026-11-24T08:00:00Z').object)).toBe(
      Date.UTC(2026, 10, 24, 8),
    );
    expect(lastChangeTriggerTime(annotated('a', [], null).object)).toBeNull();
    expect(lastChangeTriggerTime(annotated('a', [], 'soon').object)).toBeNull();
    expect(
      lastChangeTriggerTime({ metadata: { annotations: { [LAST_CHANGE_TRIGGER_TIME_ANNOTATION]: 7 } } }),
    ).toBeNull();
  });
});

describe('PendingTriggerTimes', () => {
  const start = Date.UTC(2026, 10, 24, 8);

  it('keeps every counted change per service and family, and hands them out once', () => {
    const pending = new PendingTriggerTimes(start);
    pending.record(annotated('a', ['10.0.0.1'], iso(start + 100)), true);
    pending.record(annotated('a', ['10.0.0.2'], iso(start + 200)), true);
    pending.record(annotated('b', ['fd00::1'], iso(start + 300), { addressType: 'IPv6' }), true);
    expect(pending.checkout()).toEqual([
      { serviceKey: 'ns/a', family: 'IPv4', atMs: start + 100 },
      { serviceKey: 'ns/a', family: 'IPv4', atMs: start + 200 },
      { serviceKey: 'ns/b', family: 'IPv6', atMs: start + 300 },
    ]);
    expect(pending.checkout()).toEqual([]);
  });

  it('ignores slices that changed nothing, have no usable annotation, or changed before the tracker started', () => {
    const pending = new PendingTriggerTimes(start);
    pending.record(annotated('a', ['10.0.0.1'], iso(start + 100)), false);
    pending.record(annotated('a', ['10.0.0.1'], null), true);
    pending.record(annotated('a', ['10.0.0.1'], 'not a time'), true);
    pending.record(annotated('a', ['10.0.0.1'], iso(start)), true);
    pending.record(annotated('a', ['10.0.0.1'], iso(start - 86_400_000)), true);
    pending.record(annotated('a', ['a.example'], iso(start + 100), { addressType: 'FQDN' }), true);
    pending.record(service('a', '10.96.0.1'), true);
    expect(pending.checkout()).toEqual([]);
  });

  it("a deleted slice drops its service's pending times in its family only", () => {
    const pending = new PendingTriggerTimes(start);
    pending.record(annotated('a', ['10.0.0.1'], iso(start + 100), { sliceName: 'a-1' }), true);
    pending.record(
      annotated('a', ['fd00::1'], iso(start + 150), { sliceName: 'a-6', addressType: 'IPv6' }),
      true,
    );
    pending.record(annotated('b', ['10.0.0.9'], iso(start + 200)), true);
    pending.record(
      annotated('a', ['10.0.0.2'], iso(start + 300), { sliceName: 'a-2', type: 'delete' }),
      true,
    );
    pending.record(annotated('a', ['10.0.0.3'], iso(start + 400), { sliceName: 'a-3' }), true);
    expect(pending.checkout()).toEqual([
      { serviceKey: 'ns/b', family: 'IPv4', atMs: start + 200 },
      { serviceKey: 'ns/a', family: 'IPv4', atMs: start + 400 },
      { serviceKey: 'ns/a', family: 'IPv6', atMs: start + 150 },
    ]);
  });
});

describe('SyncLoop and trigger times', () => {
  it('reports the trigger times a sync took, drops them when it fails, and counts only real changes', async () => {
    const clock = new FakeClock();
    const backend = new ScriptedBackend('IPv4', clock);
    const reports: SyncReport[] = [];
    const loop = new SyncLoop({
      store: new ObjectStore('node-1'),
      backends: [backend],
      syncPeriodMs: 30_000,
      minSyncPeriodMs: 1_000,
      topology: { preferSameNode: false },
      log: collectingLogger().log,
      clock,
      random: () => 0,
      observers: [{ synced: (r) => reports.push(r) }],
    });
    const t0 = clock.now();
    // The initial list: slices changed long before this proxy started do not count.
    loop.handleEvent(service('a', '10.96.0.1'));
    loop.handleEvent(annotated('a', ['10.0.0.1'], iso(t0 - 3_600_000)));
    loop.sourceSynced();
    loop.start();
    await clock.advance(0);
    expect(reports[0]!.triggerTimes).toEqual([]);

    await clock.advance(5_000);
    const update = annotated('a', ['10.0.0.2'], iso(t0 + 4_900));
    loop.handleEvent(update);
    loop.handleEvent(update); // delivered again: no change, no second observation
    await clock.advance(0);
    expect(reports[1]).toMatchObject({ ok: true });
    expect(reports[1]!.triggerTimes).toEqual([{ serviceKey: 'ns/a', family: 'IPv4', atMs: t0 + 4_900 }]);

    await clock.advance(5_000);
    backend.failures = 1;
    loop.handleEvent(annotated('a', ['10.0.0.3'], iso(t0 + 9_950)));
    await clock.advance(0);
    expect(reports[2]).toMatchObject({ ok: false });
    expect(reports[2]!.triggerTimes).toEqual([{ serviceKey: 'ns/a', family: 'IPv4', atMs: t0 + 9_950 }]);
    // The retry applies the change (it stays pending) but does not observe its trigger time again.
    await clock.advance(10_000);
    expect(reports[3]).toMatchObject({ ok: true });
    expect(reports[3]!.appliedChanges.map((c) => c.serviceKey)).toEqual(['ns/a']);
    expect(reports[3]!.triggerTimes).toEqual([]);
  });
});
