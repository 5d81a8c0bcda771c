/**
 * The smallest realistic change for a partial sync: one pod of a service is replaced, so
 * one endpoint of its EndpointSlice gets a new IP (and the slice a new resourceVersion).
 */
import type { V1EndpointSlice } from '@kubernetes/client-node';

export interface EndpointChange {
  /** the updated slice, a new object; the original is left as it was */
  slice: V1EndpointSlice;
  removedIP: string;
  addedIP: string;
}

/** Index of the first ready endpoint: the one whose replacement must show in the rules. */
export function firstReadyEndpoint(slice: V1EndpointSlice): number {
  const index = slice.endpoints.findIndex((ep) => ep.conditions?.ready === true);
  if (index < 0) throw new Error(`EndpointSlice ${slice.metadata?.name}: no ready endpoint to replace`);
  return index;
}

export function replaceEndpointIP(
  slice: V1EndpointSlice,
  index: number,
  addedIP: string,
  resourceVersion: number,
): EndpointChange {
  const old = slice.endpoints[index];
  const removedIP = old?.addresses[0];
  if (!old || removedIP === undefined) {
    throw new Error(`EndpointSlice ${slice.metadata?.name}: endpoints[${index}] has no address`);
  }
  const endpoints = slice.endpoints.map((ep, i) =>
    i === index
      ? { ...ep, addresses: [addedIP], targetRef: { ...ep.targetRef, name: `${ep.targetRef?.name}-new` } }
      : ep,
  );
  return {
    slice: { ...slice, metadata: { ...slice.metadata, resourceVersion: String(resourceVersion) }, endpoints },
    removedIP,
    addedIP,
  };
}
