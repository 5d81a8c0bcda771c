/**
 * The change trigger times behind kubeproxy_network_programming_duration_seconds, collected
 * the way kube-proxy's EndpointsChangeTracker collects them (pkg/proxy/endpointschangetracker.go):
 *
 * - The time comes from the EndpointSlice's `endpoints.kubernetes.io/last-change-trigger-time`
 *   annotation: when the change that made the controller update the slice happened (a pod
 *   became ready, say), not when the proxy saw the slice. A slice without the annotation, or
 *   with one that is not RFC 3339, is not observed.
 * - Only a slice add or update that changes something counts (a re-delivered, identical slice
 *   does not), and only if its trigger time is after the tracker started: at start-up the
 *   initial list holds slices changed hours or days before.
 * - Every counted change is kept, per service: three updates of a service's slices before
 *   one sync are three observations, each from its own trigger time.
 * - Deleting a slice drops the service's pending trigger times: a deleted slice's annotation
 *   is from its last update, which is not what is measured (kube-proxy's own TODO notes that
 *   this also drops those of the service's other slices).
 * - Times are kept per IP family, from the slice's addressType: kube-proxy runs one tracker
 *   per family, and a family whose sync fails drops the times it checked out (observed only
 *   after a successful restore).
 */
import { SERVICE_NAME_LABEL } from '../model/endpoint-slice.js';
import type { IPFamily } from '../model/ip.js';
import { isRecord } from '../model/raw.js';
import type { ObjectEvent } from '../model/store.js';

export const LAST_CHANGE_TRIGGER_TIME_ANNOTATION = 'endpoints.kubernetes.io/last-change-trigger-time';

/** One change a sync applies: its service, the family of its slice, and when it was triggered. */
export interface TriggerTime {
  serviceKey: string;
  family: IPFamily;
  /** milliseconds since the epoch (with a fraction: the annotation has nanoseconds) */
  atMs: number;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Go's time.Parse(time.RFC3339Nano, text) in milliseconds since the epoch: `T` and `Z` in
 * capitals, an optional fraction of up to nine digits, a `Z` or ±hh:mm offset, and every
 * field in range. null when the text is not such a time.
 */
export function parseRfc3339(text: string): number | null {
  const m = RFC3339.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMinutes = 0;
  const zone = m[8]!;
  if (zone !== 'Z') {
    const zh = Number(zone.slice(1, 3));
    const zm = Number(zone.slice(4, 6));
    if (zh > 23 || zm > 59) return null;
    offsetMinutes = (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm);
  }
  const fractionMs = m[7] ? Number(`0${m[7]}`) * 1000 : 0;
  return Date.UTC(year, month - 1, day, hour, minute, second) - offsetMinutes * 60_000 + fractionMs;
}

/** The slice's trigger time, or null when it has none that parses. */
export function lastChangeTriggerTime(slice: unknown): number | null {
  if (!isRecord(slice) || !isRecord(slice.metadata) || !isRecord(slice.metadata.annotations)) return null;
  const value = slice.metadata.annotations[LAST_CHANGE_TRIGGER_TIME_ANNOTATION];
  return typeof value === 'string' ? parseRfc3339(value) : null;
}

function sliceFamily(slice: Record<string, unknown>): IPFamily | null {
  return slice.addressType === 'IPv4' || slice.addressType === 'IPv6' ? slice.addressType : null;
}

/** `namespace/service` of the slice's Service label, as kube-proxy keys the times. */
function sliceServiceKey(slice: Record<string, unknown>): string | null {
  if (!isRecord(slice.metadata)) return null;
  const { namespace, labels } = slice.metadata;
  const service = isRecord(labels) ? labels[SERVICE_NAME_LABEL] : undefined;
  if (typeof service !== 'string' || service === '') return null;
  return `${typeof namespace === 'string' ? namespace : 'default'}/${service}`;
}

/** Trigger times of the changes not yet handed to a sync. */
export class PendingTriggerTimes {
  /** family -> service key -> trigger times */
  private pending = new Map<IPFamily, Map<string, number[]>>();

  constructor(private readonly trackerStartMs: number) {}

  /** Records an EndpointSlice event that changed the store (`changed`); other events are ignored. */
  record(event: ObjectEvent, changed: boolean): void {
    if (event.kind !== 'EndpointSlice' || !changed || !isRecord(event.object)) return;
    const family = sliceFamily(event.object);
    const serviceKey = sliceServiceKey(event.object);
    if (family === null || serviceKey === null) return;
    if (event.type === 'delete') {
      this.pending.get(family)?.delete(serviceKey);
      return;
    }
    const atMs = lastChangeTriggerTime(event.object);
    if (atMs === null || atMs <= this.trackerStartMs) return;
    let byService = this.pending.get(family);
    if (!byService) {
      byService = new Map();
      this.pending.set(family, byService);
    }
    const times = byService.get(serviceKey);
    if (times) times.push(atMs);
    else byService.set(serviceKey, [atMs]);
  }

  /** Everything pending, for the sync that starts now; what follows is for the next one. */
  checkout(): TriggerTime[] {
    const out: TriggerTime[] = [];
    for (const [family, byService] of this.pending)
      for (const [serviceKey, times] of byService)
        for (const atMs of times) out.push({ serviceKey, family, atMs });
    this.pending = new Map();
    return out;
  }
}
