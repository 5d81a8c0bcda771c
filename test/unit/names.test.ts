import { describe, expect, it } from 'vitest';
import {
  invalidDns1035Label,
  invalidDns1123Label,
  invalidDns1123Subdomain,
  invalidPort,
} from '../../src/model/names.js';
import { parseService } from '../../src/model/service.js';

const hostile = ['a b', 'a"b', "a'b", 'a\nb', 'a\rb', 'a\tb', '-j', 'a;b', 'a/b', 'a:b', '*filter', 'COMMIT'];

describe('DNS-1123 labels (namespaces, slice port names)', () => {
  it.each(['a', 'ns1', 'kube-system', '0', '1abc', 'a'.repeat(63)])('accepts %j', (v) => {
    expect(invalidDns1123Label(v)).toBeNull();
  });
  it.each(['', 'A', 'ns_1', '-a', 'a-', 'a.b', 'a'.repeat(64), ...hostile])('rejects %j', (v) => {
    expect(invalidDns1123Label(v)).toEqual(expect.any(String));
  });
  it('rejects non-strings', () => {
    for (const v of [undefined, null, 5, {}, ['a']])
      expect(invalidDns1123Label(v)).toEqual(expect.any(String));
  });
});

describe('DNS-1035 labels (Service names)', () => {
  it.each(['a', 'svc1', 'my-service', 'a'.repeat(63)])('accepts %j', (v) => {
    expect(invalidDns1035Label(v)).toBeNull();
  });
  it.each(['', '1svc', '0', 'Svc', 'svc-', 'svc.x', 'a'.repeat(64), ...hostile])('rejects %j', (v) => {
    expect(invalidDns1035Label(v)).toEqual(expect.any(String));
  });
});

describe('DNS-1123 subdomains (EndpointSlice and Node names)', () => {
  it.each(['a', 'svc1-abc12', 'node-1.example.com', '1.2.3', 'a'.repeat(253)])('accepts %j', (v) => {
    expect(invalidDns1123Subdomain(v)).toBeNull();
  });
  it.each(['', 'a..b', '.a', 'a.', 'A.b', 'a_b', 'a'.repeat(254), ...hostile])('rejects %j', (v) => {
    expect(invalidDns1123Subdomain(v)).toEqual(expect.any(String));
  });
});

describe('Service port names follow the API server (DNS-1123 label)', () => {
  // k8s.io/kubernetes pkg/apis/core/validation validateServicePort checks a Service port's
  // name with ValidateDNS1123Label (IANA_SVC_NAME is for container ports and targetPort).
  const svc = (portName: string) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'svc1', namespace: 'ns1' },
    spec: { clusterIP: '10.96.0.1', ports: [{ name: portName, port: 80, protocol: 'TCP' }] },
  });

  it('accepts the usual names', () => {
    expect(parseService(svc('http')).ok).toBe(true);
  });

  it.each(['HTTP', '-http', 'http-', 'a_b', 'a'.repeat(64), ...hostile])('rejects %j', (v) => {
    expect(parseService(svc(v)).ok).toBe(false);
  });

  it('accepts a valid 16+ character name', () => {
    expect(parseService(svc('metrics-collector')).ok).toBe(true);
  });

  it('accepts a digits-only name', () => {
    expect(parseService(svc('8443')).ok).toBe(true);
  });

  it('accepts consecutive hyphens', () => {
    expect(parseService(svc('grpc--web')).ok).toBe(true);
  });
});

describe('ports', () => {
  it('accepts 1-65535 by default and 0 when the minimum is 0', () => {
    expect(invalidPort(1)).toBeNull();
    expect(invalidPort(65535)).toBeNull();
    expect(invalidPort(0, 0)).toBeNull();
  });
  it.each([0, 65536, -1, 1.5, Number.NaN, '80', null, undefined])('rejects %j', (v) => {
    expect(invalidPort(v)).toEqual(expect.any(String));
  });
});
