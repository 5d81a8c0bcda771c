/**
 * kube-proxy's metrics in IPVS mode: the shared sync metrics, no iptables rule counts, and
 * failed syncs counted as restore failures (see src/server/metrics.ts).
 */
import { describe, expect, it } from 'vitest';
import { MetricsObserver, ProxyMetrics } from '../../src/server/metrics.js';
import { syncReport } from '../server/helpers.js';
import { ipvsState, rs, vs } from './builders.js';
import { harness } from './harness.js';

describe('metrics in IPVS mode', () => {
  it('records sync durations, exports no iptables rule counts, and counts a failed sync', async () => {
    const metrics = new ProxyMetrics({ processMetrics: false });
    const observer = new MetricsObserver(metrics, { families: ['IPv4'], clock: { now: () => 1_000_000 } });
    const h = harness(
      ipvsState('IPv4', { virtualServers: [vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5')])] }),
    );
    const result = await h.sync();
    observer.synced(syncReport({ results: [{ ...result, family: 'IPv4' }], durationMs: 40 }));
    observer.synced(
      syncReport({
        seq: 2,
        ok: false,
        full: false,
        results: [],
        error: new Error('ipvsadm -R did not apply'),
      }),
    );
    const text = await metrics.exposition();
    expect(text).toContain('kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 2');
    expect(text).toContain('kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"} 1');
    expect(text).toContain('kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"} 1');
    expect(text).toContain(
      'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family="IPv4"} 1',
    );
    expect(text).not.toMatch(/^kubeproxy_sync_proxy_rules_iptables_total\{/m);
    expect(text).toContain(
      'kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external",ip_family="IPv4"} 0',
    );
  });
});
