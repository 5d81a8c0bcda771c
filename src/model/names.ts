/**
 * Kubernetes name rules (k8s.io/apimachinery/pkg/util/validation), as far as the proxy
 * depends on them. Names and port names end up in iptables comments and chain-name
 * hashes, so anything the API server would have refused is refused here too: that alone
 * keeps quotes, spaces and newlines out of the restore text.
 */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Returns why `value` is not a DNS-1123 label (namespaces, Service and EndpointSlice port names), or null. */
export function invalidDns1123Label(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return 'must be a non-empty string';
  if (value.length > 63) return 'must be no more than 63 characters';
  if (!DNS1123_LABEL.test(value)) return `${JSON.stringify(value)} is not a valid DNS-1123 label`;
  return null;
}

/** Service names are DNS-1035 labels: they must start with a letter. */
export function invalidDns1035Label(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return 'must be a non-empty string';
  if (value.length > 63) return 'must be no more than 63 characters';
  if (!DNS1035_LABEL.test(value)) return `${JSON.stringify(value)} is not a valid DNS-1035 label`;
  return null;
}

/** EndpointSlice and Node names are DNS-1123 subdomains. */
export function invalidDns1123Subdomain(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return 'must be a non-empty string';
  if (value.length > 253) return 'must be no more than 253 characters';
  if (!DNS1123_SUBDOMAIN.test(value)) return `${JSON.stringify(value)} is not a valid DNS-1123 subdomain`;
  return null;
}

/** An integer port in [min, 65535]. */
export function invalidPort(value: unknown, min = 1): string | null {
  if (typeof value !== 'number' || !Number.isInteger(value))
    return `${JSON.stringify(value)} is not an integer`;
  if (value < min || value > 65535) return `${value} is out of range ${min}-65535`;
  return null;
}
