/**
 * The VM harness's host-side logic, without booting anything: module load order, the run
 * script the guest executes (run here with the host's sh), the spec /init sources, qemu's
 * arguments and the guest-result parsing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isCheckResult } from './guest/check.js';
import { CHECKS_DIR, listGuestChecks, parseGuestStdout } from './guest-checks.js';
import {
  BOOT_MODULES,
  type GuestKernel,
  INITRAMFS_MODULES,
  modprobeOptions,
  moduleName,
  orderModules,
  parseAliases,
  parseBuiltin,
  parseModulesDep,
  parseSoftdeps,
  splitBootModules,
} from './kernel.js';
import { qemuArgs, renderRunScript, renderSpec, shQuote } from './runner.js';

const MODULES_DEP = `kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:
kernel/lib/libcrc32c.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/net/dummy.ko:
`;

describe('module order', () => {
  const deps = parseModulesDep(MODULES_DEP);

  it('names modules as modprobe does', () => {
    expect(moduleName('kernel/arch/x86/crypto/crc32c-intel.ko')).toBe('crc32c_intel');
    expect(moduleName('kernel/net/ipv4/udp_tunnel.ko.xz')).toBe('udp_tunnel');
  });

  it('puts every dependency before its user, once, with the wanted parameters', () => {
    const order = orderModules({ deps }, [['dummy', 'numdummies=0'], ['ip_vs_rr'], ['ip_vs']]);
    expect(order.map((m) => m.name)).toEqual([
      'dummy',
      'nf_defrag_ipv4',
      'libcrc32c',
      'nf_conntrack',
      'ip_vs',
      'ip_vs_rr',
    ]);
    expect(order[0]).toEqual({
      name: 'dummy',
      path: 'kernel/drivers/net/dummy.ko',
      params: 'numdummies=0',
      optional: false,
    });
    expect(order.every((m) => m.name === 'dummy' || m.params === '')).toBe(true);
  });

  it('loads soft dependencies (by name or alias) first, as optional modules', () => {
    const softdepsOf = (path: string) => (path.endsWith('libcrc32c.ko') ? ['crc32c'] : []);
    const aliases = parseAliases(
      'alias crc32c crc32c_intel\nalias crc32c crc32c_generic\nalias pci:v*d* dummy\n',
    );
    expect(aliases.get('crc32c')).toEqual(['crc32c_intel', 'crc32c_generic']);
    expect(aliases.has('pci:v*d*')).toBe(false);
    const order = orderModules({ deps, softdepsOf, aliases }, [['nf_conntrack'], ['crc32c_generic']]);
    expect(order.map((m) => `${m.optional ? '?' : ''}${m.name}`)).toEqual([
      'nf_defrag_ipv4',
      '?crc32c_intel',
      'crc32c_generic', // wanted on its own account as well: required
      'libcrc32c',
      'nf_conntrack',
    ]);
  });

  it('skips built-in modules and names the missing ones', () => {
    const builtin = parseBuiltin('kernel/net/netfilter/nft_counter.ko\n');
    expect(orderModules({ deps, builtin }, [['nft_counter'], ['dummy']]).map((m) => m.name)).toEqual([
      'dummy',
    ]);
    expect(() => orderModules({ deps }, [['ip_vs'], ['veth'], ['no_such']])).toThrow(
      'the guest kernel has no module veth, no_such',
    );
  });

  it('reports a dependency cycle instead of looping', () => {
    const cyclic = parseModulesDep('a.ko: b.ko\nb.ko: a.ko\n');
    expect(() => orderModules({ deps: cyclic }, [['a']])).toThrow(/cycle: a\.ko -> b\.ko -> a\.ko/);
  });

  it('reads softdep pre: names out of .modinfo strings', () => {
    const modinfo = 'license=GPL\0softdep=pre: crc32c foo post: bar\0depends=\0softdep=pre: baz\0';
    expect(parseSoftdeps(modinfo)).toEqual(['crc32c', 'foo', 'baz']);
    expect(parseSoftdeps('license=GPL\0depends=x\0')).toEqual([]);
  });

  it('modprobes what the initramfs did not load, soft dependencies first, with options for modprobe.d', () => {
    const softdepsOf = (path: string) => (path.endsWith('libcrc32c.ko') ? ['crc32c_generic'] : []);
    const initramfs = orderModules({ deps }, [['libcrc32c']]);
    const all = orderModules({ deps, softdepsOf }, [['ip_vs'], ['dummy', 'numdummies=0']]);
    const { modprobe } = splitBootModules(initramfs, all);
    expect(modprobe.map((m) => `${m.optional ? '?' : ''}${m.name}`)).toEqual([
      '?crc32c_generic',
      'nf_defrag_ipv4',
      'nf_conntrack',
      'ip_vs',
      'dummy',
    ]);
    expect(modprobeOptions(modprobe)).toBe('options dummy numdummies=0\n');
  });

  it('wants every IPVS scheduler and dummy without dummy0', () => {
    const names = BOOT_MODULES.map(([n]) => n);
    for (const s of ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh']) {
      expect(names).toContain(`ip_vs_${s}`);
    }
    expect(BOOT_MODULES).toContainEqual(['dummy', 'numdummies=0']);
    expect(INITRAMFS_MODULES.map(([n]) => n)).toEqual([
      'virtio_pci',
      'virtio_console',
      '9pnet_virtio',
      '9p',
      'overlay',
    ]);
  });
});

describe('run script', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-vm-harness-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs exactly the argv, in cwd, with only the given environment', () => {
    const script = renderRunScript(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, run by sh
      ['sh', '-c', 'printf "%s|" "$0" "$@" "$PWD" "$A" "${HOME-unset}"', "it's", 'two words', '$HOME', '`x`'],
      { PATH: process.env['PATH'] ?? '/usr/bin:/bin', A: 'x\ny "z"' },
      dir,
    );
    writeFileSync(join(dir, 'run.sh'), script);
    const out = execFileSync('sh', [join(dir, 'run.sh')], { encoding: 'utf8', env: { HOME: '/root' } });
    expect(out).toBe(`it's|two words|$HOME|\`x\`|${dir}|x\ny "z"|unset|`);
  });

  it('rejects what it cannot pass safely', () => {
    expect(() => renderRunScript([], {}, '/')).toThrow('command is empty');
    expect(() => renderRunScript(['true'], { 'A-B': '1' }, '/')).toThrow('bad environment variable name');
    expect(() => renderRunScript(['true', 'a\0b'], {}, '/')).toThrow('NUL');
  });

  it('quotes for sh', () => {
    expect(shQuote("a'b")).toBe(`'a'\\''b'`);
  });
});

describe('qemu and the guest spec', () => {
  const kernel: GuestKernel = {
    release: '6.1.0-57-amd64',
    packageName: 'linux-image-6.1.0-57-amd64',
    packageVersion: '6.1.192-3',
    dir: '/c/6.1.0-57-amd64',
    vmlinux: '/c/6.1.0-57-amd64/vmlinux',
    modulesDir: '/c/6.1.0-57-amd64/lib/modules/6.1.0-57-amd64',
  };

  it('writes the spec /init sources', () => {
    const spec = renderSpec(kernel.modulesDir, '/tmp/sb-vm-1/ctl', ['/tmp/a', '/tmp/b']);
    const out = execFileSync(
      'sh',
      ['-c', `${spec}\nprintf '%s\\n' "$SB_MODULES_DIR" "$SB_CTL_DIR" "$SB_SHARES"`],
      {
        encoding: 'utf8',
      },
    );
    expect(out).toBe(`${kernel.modulesDir}\n/tmp/sb-vm-1/ctl\nshare0=/tmp/a share1=/tmp/b\n`);
  });

  it('boots the ELF kernel under TCG with no network card, the host root read-only and two output ports', () => {
    const args = qemuArgs({
      kernel,
      initramfs: '/c/initramfs.cpio',
      ctlDir: '/tmp/sb-vm-1/ctl',
      shares: ['/tmp/results'],
      stdoutFifo: '/tmp/sb-vm-1/stdout.fifo',
      stderrFifo: '/tmp/sb-vm-1/stderr.fifo',
      memoryMiB: 2048,
      cpus: 2,
      accel: 'tcg',
    });
    const line = args.join(' ');
    expect(line).toContain('-accel tcg,thread=multi');
    expect(line).toContain('-nic none');
    expect(line).toContain('-no-reboot');
    expect(line).toContain(`-kernel ${kernel.vmlinux} -initrd /c/initramfs.cpio`);
    expect(line).toContain(
      '-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    );
    expect(line).toContain('-virtfs local,path=/tmp/results,mount_tag=share0,security_model=none ');
    expect(line).toContain('chardev=sbout,name=sb.stdout');
    expect(line).toContain('chardev=sberr,name=sb.stderr');
  });
});

describe('guest checks', () => {
  it('lists every check file by name, in order', () => {
    const names = listGuestChecks();
    expect(names).toEqual([...names].sort());
    expect(names).toContain('ipvs-traffic');
    expect(names.every((n) => /^[\w.-]+$/.test(n))).toBe(true);
    expect(CHECKS_DIR).toMatch(/test\/vm\/guest\/checks$/);
  });

  it('splits the guest stdout into results and other lines', () => {
    const a = { name: 'a', ok: true, detail: 'fine', ms: 12 };
    const b = { name: 'b', ok: false, detail: 'AssertionError: ...', ms: 3 };
    const { results, otherStdout } = parseGuestStdout(
      `${JSON.stringify(a)}\nstray output\n\n{"name":"c"}\n${JSON.stringify(b)}\n`,
    );
    expect([...results.values()]).toEqual([a, b]);
    expect(otherStdout).toEqual(['stray output', '{"name":"c"}']);
  });

  it('recognises result lines', () => {
    expect(isCheckResult({ name: 'a', ok: true, detail: '', ms: 1 })).toBe(true);
    expect(isCheckResult({ name: 'a', ok: 'yes', detail: '', ms: 1 })).toBe(false);
    expect(isCheckResult(null)).toBe(false);
  });
});
