/**
 * The conntrack tuning and OOM score decisions, through an in-memory /proc and /sys: the
 * table size and hash size are global to the host, so they are only ever exercised here.
 * The cases follow kube-proxy's own (pkg/proxy/conntrack/sysctls_test.go, 1.34).
 */
import { describe, expect, it } from 'vitest';
import { defaultKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { InputError } from '../../src/errors.js';
import {
  applyConntrackSettings,
  type ConntrackConfig,
  conntrackMax,
} from '../../src/kernel/conntrack-settings.js';
import { applyOomScoreAdj, OWN_OOM_SCORE_ADJ } from '../../src/kernel/oom-score.js';
import { countCpuList, sysctlPath } from '../../src/kernel/proc-files.js';
import { memoryLogger } from '../server/helpers.js';
import { FakeProcFiles, type FakeProcFilesOptions } from '../support/fake-proc-files.js';

const MAX = '/proc/sys/net/netfilter/nf_conntrack_max';
const BUCKETS = '/proc/sys/net/netfilter/nf_conntrack_buckets';
const HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize';
const ESTABLISHED = '/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established';
const CLOSE_WAIT = '/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait';
const LIBERAL = '/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal';
const UDP = '/proc/sys/net/netfilter/nf_conntrack_udp_timeout';
const UDP_STREAM = '/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream';

/** A fresh kernel: the values a 6.x kernel starts with. */
function kernel(overrides: Record<string, string> = {}, options: FakeProcFilesOptions = {}): FakeProcFiles {
  return new FakeProcFiles({
    cpus: 8,
    ...options,
    files: {
      [MAX]: '65536',
      [BUCKETS]: '16384',
      [HASHSIZE]: '16384',
      [ESTABLISHED]: '432000',
      [CLOSE_WAIT]: '60',
      [LIBERAL]: '0',
      [UDP]: '30',
      [UDP_STREAM]: '120',
      ...overrides,
    },
  });
}

/** Everything off: the empty KubeProxyConntrackConfiguration of kube-proxy's tests. */
const OFF: ConntrackConfig = {
  maxPerCore: 0,
  min: 0,
  tcpEstablishedTimeoutMs: 0,
  tcpCloseWaitTimeoutMs: 0,
  tcpBeLiberal: false,
  udpTimeoutMs: 0,
  udpStreamTimeoutMs: 0,
};

async function apply(files: FakeProcFiles, ct: Partial<ConntrackConfig>) {
  const { log, records } = memoryLogger();
  const outcomes = await applyConntrackSettings({ ...OFF, ...ct }, files, log);
  return { outcomes, records, writes: files.writes.map((w) => `${w.path}=${w.value}`) };
}

describe('conntrackMax (getConntrackMax)', () => {
  it.each([
    { maxPerCore: 0, min: 0, cpus: 8, max: 0 },
    { maxPerCore: 67890, min: 1, cpus: 8, max: 67890 * 8 },
    { maxPerCore: 1, min: 123456, cpus: 8, max: 123456 },
    { maxPerCore: 0, min: 123456, cpus: 8, max: 0 }, // 0 leaves the limit as-is and ignores min
    { maxPerCore: 32768, min: 131072, cpus: 2, max: 131072 }, // the defaults on a 2-core node
    { maxPerCore: 32768, min: 131072, cpus: 8, max: 262144 },
    { maxPerCore: 32768, min: 131072, cpus: 512, max: 16_777_216 }, // no cap in 1.34/1.35
  ])('maxPerCore $maxPerCore, min $min, $cpus CPUs → $max', ({ maxPerCore, min, cpus, max }) => {
    expect(conntrackMax({ maxPerCore, min }, cpus)).toBe(max);
  });
});

describe('applyConntrackSettings', () => {
  it('does nothing when every setting is off', async () => {
    const { writes, outcomes } = await apply(kernel(), {});
    expect(writes).toEqual([]);
    expect(outcomes).toEqual([]);
  });

  it('raises nf_conntrack_max and the hash size (max / 4) when both are lower', async () => {
    const { writes, records } = await apply(kernel({ [MAX]: '48', [HASHSIZE]: '12' }), { maxPerCore: 12 });
    expect(writes).toEqual([`${MAX}=96`, `${HASHSIZE}=24`]);
    expect(records).toContainEqual(
      expect.objectContaining({ setting: 'net.netfilter.nf_conntrack_max', from: 48, to: 96 }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({ setting: 'nf_conntrack hashsize', from: 12, to: 24 }),
    );
  });

  it('writes nf_conntrack_max when it cannot be read', async () => {
    const files = kernel({ [MAX]: 'garbage' });
    const { writes } = await apply(files, { maxPerCore: 12 });
    expect(writes).toEqual([`${MAX}=96`]);
  });

  it('leaves both alone when they already have the wanted values', async () => {
    const { writes } = await apply(kernel({ [MAX]: '96', [HASHSIZE]: '24' }), { maxPerCore: 12 });
    expect(writes).toEqual([]);
  });

  it('never lowers them', async () => {
    const { writes, outcomes } = await apply(kernel({ [MAX]: '192', [HASHSIZE]: '48' }), { maxPerCore: 12 });
    expect(writes).toEqual([]);
    expect(outcomes).toEqual([
      { setting: 'net.netfilter.nf_conntrack_max', action: 'unchanged', from: 192, to: 192 },
      { setting: 'nf_conntrack hashsize', action: 'unchanged', from: 48, to: 48 },
    ]);
  });

  it('raises only the hash size when the table size is right but the hash size is not', async () => {
    const { writes } = await apply(kernel({ [MAX]: '96', [HASHSIZE]: '0' }), { maxPerCore: 12 });
    expect(writes).toEqual([`${HASHSIZE}=24`]);
  });

  it('sizes the hash from the wanted maximum even when the current one is bigger', async () => {
    // max stays at 192 (never lowered); the hash size is compared with 96 / 4, as kube-proxy does.
    const { writes } = await apply(kernel({ [MAX]: '192', [HASHSIZE]: '20' }), { maxPerCore: 12 });
    expect(writes).toEqual([`${HASHSIZE}=24`]);
  });

  it('raises only the table size when the hash size is already big enough', async () => {
    const { writes } = await apply(kernel({ [MAX]: '48', [HASHSIZE]: '24' }), { maxPerCore: 12 });
    expect(writes).toEqual([`${MAX}=96`]);
  });

  it('uses min when maxPerCore × CPUs is smaller, and the node CPU count', async () => {
    const files = kernel({}, { cpus: 2 });
    const { writes } = await apply(files, { maxPerCore: 32768, min: 131072 });
    expect(writes).toEqual([`${MAX}=131072`, `${HASHSIZE}=32768`]);
    // The kernel resized the table: nf_conntrack_buckets follows the hash size.
    expect(await files.read(BUCKETS)).toBe('32768');
  });

  it('ignores min when maxPerCore is 0', async () => {
    const { writes } = await apply(kernel(), { maxPerCore: 0, min: 1_000_000 });
    expect(writes).toEqual([]);
  });

  it('sets each timeout that is greater than 0, in whole seconds, when it differs', async () => {
    const { writes, records } = await apply(kernel(), {
      tcpEstablishedTimeoutMs: 5_000,
      tcpCloseWaitTimeoutMs: 3_600_000,
      udpTimeoutMs: 15_900, // truncated, as int(d / time.Second)
      udpStreamTimeoutMs: 120_000, // already the kernel's value
    });
    expect(writes).toEqual([`${ESTABLISHED}=5`, `${CLOSE_WAIT}=3600`, `${UDP}=15`]);
    expect(records).toContainEqual(
      expect.objectContaining({
        msg: 'set net.netfilter.nf_conntrack_tcp_timeout_established',
        from: 432000,
        to: 5,
      }),
    );
  });

  it('lowers a timeout too: only the table size is "raise only"', async () => {
    const { writes } = await apply(kernel({ [ESTABLISHED]: '86400' }), {
      tcpEstablishedTimeoutMs: 3_600_000,
    });
    expect(writes).toEqual([`${ESTABLISHED}=3600`]);
  });

  it('sets nf_conntrack_tcp_be_liberal to 1 when tcpBeLiberal is true', async () => {
    expect((await apply(kernel(), { tcpBeLiberal: true })).writes).toEqual([`${LIBERAL}=1`]);
  });

  it("applies kube-proxy's defaults on a fresh 2-core node in kube-proxy's order", async () => {
    const files = kernel({}, { cpus: 2 });
    const { writes } = await apply(files, defaultKubeProxyConfiguration().conntrack);
    expect(writes).toEqual([
      `${MAX}=131072`,
      `${HASHSIZE}=32768`,
      `${ESTABLISHED}=86400`,
      `${CLOSE_WAIT}=3600`,
    ]);
  });

  it('outside the initial network namespace: logs and skips the global settings, applies the rest', async () => {
    const files = kernel({}, { cpus: 2, namespace: 'other' });
    const { writes, outcomes, records } = await apply(files, defaultKubeProxyConfiguration().conntrack);
    expect(writes).toEqual([`${ESTABLISHED}=86400`, `${CLOSE_WAIT}=3600`]);
    expect(outcomes.filter((o) => o.action === 'not-writable')).toEqual([
      { setting: 'net.netfilter.nf_conntrack_max', action: 'not-writable', from: 65536, to: 131072 },
      { setting: 'nf_conntrack hashsize', action: 'not-writable', from: 16384, to: 32768 },
    ]);
    const warnings = records.filter((r) => r['level'] === 40).map((r) => r['msg']);
    expect(warnings).toEqual([
      expect.stringMatching(/^cannot set net\.netfilter\.nf_conntrack_max to 131072 from here \(EACCES/),
      expect.stringMatching(/^cannot set nf_conntrack hashsize to 32768 from here \(EOPNOTSUPP/),
    ]);
    expect(await files.read(MAX)).toBe('65536');
  });

  it('outside the initial namespace with a big enough table: tries nothing global', async () => {
    const files = kernel({ [MAX]: '262144', [HASHSIZE]: '65536' }, { cpus: 2, namespace: 'other' });
    const { outcomes } = await apply(files, { maxPerCore: 32768, min: 131072 });
    expect(outcomes.map((o) => o.action)).toEqual(['unchanged', 'unchanged']);
  });

  it('with /proc/sys and /sys mounted read-only: logs and skips everything, and does not fail', async () => {
    const files = kernel({}, { cpus: 2, readOnlyMount: true });
    const { writes, outcomes } = await apply(files, defaultKubeProxyConfiguration().conntrack);
    expect(writes).toEqual([]);
    expect(outcomes.map((o) => `${o.setting} ${o.action}`)).toEqual([
      'net.netfilter.nf_conntrack_max not-writable',
      'nf_conntrack hashsize not-writable',
      'net.netfilter.nf_conntrack_tcp_timeout_established not-writable',
      'net.netfilter.nf_conntrack_tcp_timeout_close_wait not-writable',
    ]);
  });

  it('fails on any other error, naming the setting and the field that turns it off', async () => {
    const files = kernel();
    files.files.delete(UDP_STREAM); // no such sysctl (conntrack not loaded)
    await expect(apply(files, { udpStreamTimeoutMs: 60_000 })).rejects.toThrow(InputError);
    await expect(apply(files, { udpStreamTimeoutMs: 60_000 })).rejects.toThrow(
      /could not set net\.netfilter\.nf_conntrack_udp_timeout_stream to 60 \(from conntrack\.udpStreamTimeout\): ENOENT.*set conntrack\.udpStreamTimeout to 0 to leave it alone/,
    );
  });

  it('leaves the hash size alone, with a warning, when it cannot be read', async () => {
    const files = kernel({ [MAX]: '48' });
    files.files.delete(HASHSIZE);
    const { writes, records } = await apply(files, { maxPerCore: 12 });
    expect(writes).toEqual([`${MAX}=96`]);
    expect(records).toContainEqual(
      expect.objectContaining({ msg: 'cannot read the conntrack hash size; left alone' }),
    );
  });
});

describe('applyOomScoreAdj', () => {
  it("writes the process's own oom_score_adj and logs it", async () => {
    const files = new FakeProcFiles({ files: { [OWN_OOM_SCORE_ADJ]: '0' } });
    const { log, records } = memoryLogger();
    expect(await applyOomScoreAdj(-999, files, log)).toBe(true);
    expect(files.writes).toEqual([{ path: OWN_OOM_SCORE_ADJ, value: '-999' }]);
    expect(records).toContainEqual(expect.objectContaining({ msg: 'set oom_score_adj', from: 0, to: -999 }));
  });

  it('does not write an unchanged value', async () => {
    const files = new FakeProcFiles({ files: { [OWN_OOM_SCORE_ADJ]: '-999' } });
    expect(await applyOomScoreAdj(-999, files, memoryLogger().log)).toBe(true);
    expect(files.writes).toEqual([]);
  });

  it('logs a refused write and carries on', async () => {
    const files = new FakeProcFiles({ files: { [OWN_OOM_SCORE_ADJ]: '0' }, readOnlyMount: true });
    const { log, records } = memoryLogger();
    expect(await applyOomScoreAdj(-999, files, log)).toBe(false);
    expect(records).toContainEqual(
      expect.objectContaining({ msg: "could not set this process's oom_score_adj to -999; left at 0" }),
    );
  });

  it('refuses a value outside [-1000, 1000]', async () => {
    await expect(applyOomScoreAdj(-1001, new FakeProcFiles(), memoryLogger().log)).rejects.toThrow(
      /not an integer in \[-1000, 1000\]/,
    );
  });
});

describe('proc file helpers', () => {
  it('maps sysctl names to /proc/sys paths and refuses anything else', () => {
    expect(sysctlPath('net.netfilter.nf_conntrack_max')).toBe(MAX);
    expect(() => sysctlPath('../../etc/passwd')).toThrow(/is not a sysctl name/);
    expect(() => sysctlPath('net')).toThrow(/is not a sysctl name/);
  });

  it.each([
    ['0', 1],
    ['0-1', 2],
    ['0-3,8,10-11\n', 7],
    ['', undefined],
    ['3-1', undefined],
    ['a-b', undefined],
  ])('counts the CPU list %j as %s', (text, count) => {
    expect(countCpuList(text)).toBe(count);
  });
});
