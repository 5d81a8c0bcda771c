/**
 * The guest kernel and its initramfs, on the host side.
 *
 * `scripts/vm/fetch-kernel.sh` caches Debian's stock kernel under `.cache/vm/<release>/` (and
 * `.cache/vm/current`); this module finds it, works out the order in which the boot-time
 * modules must be loaded, and builds the initramfs: busybox (with its shared libraries), the
 * modules that mount the host's root and `guest-init.sh` as `/init`. The initramfs is cached next to the
 * kernel under a name that hashes everything in it, so editing the init script or the module
 * list rebuilds it and nothing else does.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPVS_SCHEDULERS } from '../../src/backends/ipvs/state.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const VM_CACHE_DIR = join(REPO_ROOT, '.cache', 'vm');
export const FETCH_KERNEL_HINT = 'fetch it with `bash scripts/vm/fetch-kernel.sh` (root, Debian apt; ~15 s)';
const INIT_SCRIPT = fileURLToPath(new URL('./guest-init.sh', import.meta.url));

type WantedModule = readonly [name: string, params?: string];

/**
 * Modules /init insmods from the initramfs, in dependency order (worked out here): what it
 * needs to mount the host's root (virtio, 9p, overlay) and to send the command's output.
 */
export const INITRAMFS_MODULES: readonly WantedModule[] = [
  ['virtio_pci'],
  ['virtio_console'],
  ['9pnet_virtio'],
  ['9p'],
  ['overlay'],
];

/**
 * Modules /init loads next, from the module tree on the host's root, with ONE busybox
 * `modprobe -a` (a process start costs ~80 ms under TCG: one insmod per module was ~6 s of
 * the boot, the single modprobe well under 1 s). Parameters go into the initramfs's
 * /etc/modprobe.d. Anything else the guest needs is loaded on demand by the kernel (through
 * busybox modprobe on the whole tree), at ~100 ms a module.
 */
export const BOOT_MODULES: readonly WantedModule[] = [
  // IPVS and every scheduler kube-proxy accepts.
  ['ip_vs'],
  ...IPVS_SCHEDULERS.map((s) => [`ip_vs_${s}`] as const),
  // Conntrack and NAT (conntrack -L/-D talks netlink).
  ['nf_conntrack'],
  ['nf_nat'],
  ['nf_conntrack_netlink'],
  // ipset and kube-proxy's set types.
  ['ip_set'],
  ['ip_set_hash_ip'],
  ['ip_set_hash_ipport'],
  ['ip_set_hash_ipportip'],
  ['ip_set_hash_ipportnet'],
  ['ip_set_hash_net'],
  ['ip_set_bitmap_port'],
  // iptables-nft and the matches/targets the iptables and IPVS rules use.
  ['nf_tables'],
  ['nft_compat'],
  ['nft_chain_nat'],
  ['nft_ct'],
  ['nft_nat'],
  ['nft_masq'],
  ['nft_reject_inet'],
  ['xt_set'],
  ['xt_ipvs'],
  ['xt_comment'],
  ['xt_mark'],
  ['xt_addrtype'],
  ['xt_conntrack'],
  ['xt_MASQUERADE'],
  ['xt_nat'],
  ['xt_statistic'],
  ['xt_recent'],
  ['xt_multiport'],
  ['xt_tcpudp'],
  ['xt_nfacct'],
  ['ipt_REJECT'],
  ['ip6t_REJECT'],
  // Links: kube-ipvs0 is a dummy; without numdummies=0 the module creates dummy0.
  ['dummy', 'numdummies=0'],
  ['veth'],
  ['sctp'],
];

export interface GuestKernel {
  /** `uname -r` of the guest, e.g. 6.1.0-57-amd64 */
  release: string;
  /** Debian package and version it came from. */
  packageName: string;
  packageVersion: string;
  dir: string;
  /** The ELF kernel, booted directly (PVH). */
  vmlinux: string;
  /** `lib/modules/<release>`: the whole module tree, stripped, with modules.dep. */
  modulesDir: string;
}

export type KernelLookup = { ok: true; kernel: GuestKernel } | { ok: false; reason: string };

/** The cached kernel `.cache/vm/current` points at, or why there is none. */
export function findCachedKernel(cacheDir: string = VM_CACHE_DIR): KernelLookup {
  const current = join(cacheDir, 'current');
  let dir: string;
  try {
    dir = join(cacheDir, readlinkSync(current));
  } catch {
    return { ok: false, reason: `no guest kernel cached in ${cacheDir}` };
  }
  if (!existsSync(join(dir, 'READY')) || !existsSync(join(dir, 'vmlinux'))) {
    return { ok: false, reason: `the cached guest kernel in ${dir} is incomplete` };
  }
  const env = parseEnvFile(readFileSync(join(dir, 'kernel.env'), 'utf8'));
  const release = env['KERNEL_RELEASE'];
  if (!release) return { ok: false, reason: `${join(dir, 'kernel.env')} has no KERNEL_RELEASE` };
  return {
    ok: true,
    kernel: {
      release,
      packageName: env['PACKAGE'] ?? `linux-image-${release}`,
      packageVersion: env['PACKAGE_VERSION'] ?? 'unknown',
      dir,
      vmlinux: join(dir, 'vmlinux'),
      modulesDir: join(dir, 'lib', 'modules', release),
    },
  };
}

function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** modules.dep: module path (relative to the tree) → the paths it depends on, directly or not. */
export type ModuleDeps = Map<string, string[]>;

export function parseModulesDep(text: string): ModuleDeps {
  const deps: ModuleDeps = new Map();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const rest = line.slice(colon + 1).trim();
    deps.set(line.slice(0, colon).trim(), rest === '' ? [] : rest.split(/\s+/));
  }
  return deps;
}

/** A module's name as modprobe spells it: file name without `.ko`, `-` read as `_`. */
export function moduleName(path: string): string {
  return basename(path)
    .replace(/\.ko(\.\w+)?$/, '')
    .replace(/-/g, '_');
}

export interface OrderedModule {
  name: string;
  /** Path inside the module tree (`kernel/net/...ko`). */
  path: string;
  params: string;
  /** A soft dependency (`softdep pre:`): loaded if it can be, as modprobe does, but not required. */
  optional: boolean;
}

/** What the module tree says about a module beyond modules.dep. */
export interface ModuleInfo {
  deps: ModuleDeps;
  /** `softdep=pre:` names of a module (by path); they may be aliases. */
  softdepsOf?: (path: string) => string[];
  /** modules.alias: alias → module names. */
  aliases?: ReadonlyMap<string, readonly string[]>;
  builtin?: ReadonlySet<string>;
}

/**
 * The modules to insmod, dependencies first, each once: `wanted` in order, each preceded by
 * whatever it needs that is not loaded yet (its `softdep pre:` modules too, as optional ones).
 * Throws naming every wanted module the tree lacks (a built-in module needs no loading).
 */
export function orderModules(
  info: ModuleInfo,
  wanted: ReadonlyArray<readonly [string, string?]>,
): OrderedModule[] {
  const { deps, softdepsOf = () => [], aliases = new Map(), builtin = new Set() } = info;
  const byName = new Map<string, string>();
  for (const path of deps.keys()) byName.set(moduleName(path), path);
  const norm = (name: string) => name.replace(/-/g, '_');
  const params = new Map(wanted.map(([name, p]) => [norm(name), p ?? '']));
  const missing = wanted
    .map(([name]) => norm(name))
    .filter((name) => !byName.has(name) && !builtin.has(name));
  if (missing.length > 0) throw new Error(`the guest kernel has no module ${missing.join(', ')}`);

  const ordered = new Map<string, OrderedModule>();
  const visiting = new Set<string>();
  const place = (path: string, chain: string[], optional: boolean): void => {
    const done = ordered.get(path);
    if (done) {
      if (!optional) done.optional = false;
      return;
    }
    if (visiting.has(path)) throw new Error(`module dependency cycle: ${[...chain, path].join(' -> ')}`);
    const needs = deps.get(path);
    if (!needs) throw new Error(`modules.dep has no entry for ${path} (needed by ${chain.at(-1)})`);
    visiting.add(path);
    for (const soft of softdepsOf(path)) {
      const names = byName.has(norm(soft)) ? [norm(soft)] : (aliases.get(soft) ?? []).map(norm);
      for (const n of names) {
        const p = byName.get(n);
        if (p && !visiting.has(p)) place(p, [...chain, path], true);
      }
    }
    for (const dep of needs) place(dep, [...chain, path], optional);
    visiting.delete(path);
    const name = moduleName(path);
    ordered.set(path, { name, path, params: params.get(name) ?? '', optional });
  };
  for (const [name] of wanted) {
    const path = byName.get(norm(name));
    if (path) place(path, [], false);
  }
  return [...ordered.values()];
}

/** `softdep=pre: a b post: c` strings in a module's .modinfo → the `pre:` names. */
export function parseSoftdeps(modinfo: string): string[] {
  const pre: string[] = [];
  for (const m of modinfo.matchAll(/(?:^|\0)softdep=([^\0]*)/g)) {
    let inPre = false;
    for (const word of m[1]!.trim().split(/\s+/)) {
      if (word === 'pre:') inPre = true;
      else if (word === 'post:') inPre = false;
      else if (inPre && word) pre.push(word);
    }
  }
  return pre;
}

/** modules.alias (`alias crc32c crc32c_generic`) → alias → module names. Wildcard aliases are left out. */
export function parseAliases(text: string): Map<string, string[]> {
  const aliases = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const [kw, alias, module] = line.trim().split(/\s+/);
    if (kw !== 'alias' || !alias || !module || /[*?[]/.test(alias)) continue;
    aliases.set(alias, [...(aliases.get(alias) ?? []), module]);
  }
  return aliases;
}

/** Module names in `modules.builtin` (`kernel/fs/ext4/ext4.ko` → `ext4`). */
export function parseBuiltin(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(moduleName),
  );
}

export interface BootModules {
  /** insmod'ed from the initramfs, in this order. */
  initramfs: OrderedModule[];
  /** Then modprobe'd from the tree (those not loaded yet), optional ones first. */
  modprobe: OrderedModule[];
}

/** The boot-time modules of `kernel`, in load order. */
export function bootModules(kernel: GuestKernel): BootModules {
  const read = (file: string) => {
    const p = join(kernel.modulesDir, file);
    return existsSync(p) ? readFileSync(p, 'latin1') : '';
  };
  const info: ModuleInfo = {
    deps: parseModulesDep(read('modules.dep')),
    builtin: parseBuiltin(read('modules.builtin')),
    aliases: parseAliases(read('modules.alias')),
    // The .modinfo strings are plain NUL-separated text inside the ELF file.
    softdepsOf: (path) => parseSoftdeps(read(path)),
  };
  return splitBootModules(orderModules(info, INITRAMFS_MODULES), orderModules(info, BOOT_MODULES));
}

/** The modprobe list: what the initramfs did not load, soft dependencies first. */
export function splitBootModules(initramfs: OrderedModule[], all: OrderedModule[]): BootModules {
  const early = new Set(initramfs.map((m) => m.name));
  const later = all.filter((m) => !early.has(m.name));
  return { initramfs, modprobe: [...later.filter((m) => m.optional), ...later.filter((m) => !m.optional)] };
}

/** /etc/modprobe.d lines for the parameters of the modprobe'd modules. */
export function modprobeOptions(modules: readonly OrderedModule[]): string {
  return modules
    .filter((m) => m.params !== '')
    .map((m) => `options ${m.name} ${m.params}\n`)
    .join('');
}

/** Shared libraries an ELF binary loads (from `ldd`), or none for a static one. */
function sharedLibraries(binary: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return []; // "not a dynamic executable"
  }
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

function which(cmd: string): string {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':')) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  throw new Error(`${cmd} is not installed (apt-get install ${cmd})`);
}

/**
 * The initramfs for `kernel`, built if missing: `/init` (guest-init.sh), busybox and its
 * libraries, `/sbin/modprobe` (the kernel's autoloader runs it in the initramfs root), the
 * initramfs modules under `/boot-modules/` with their insmod order in `/boot-modules/insmod`,
 * the modules to modprobe next in `/boot-modules/modprobe` (`required|optional NAME` lines)
 * with their parameters in `/etc/modprobe.d/sb-vm.conf`, and `/dev/console`. Returns its path.
 */
export function ensureInitramfs(kernel: GuestKernel): string {
  const modules = bootModules(kernel);
  const busybox = which('busybox');
  const libs = sharedLibraries(busybox);
  const init = readFileSync(INIT_SCRIPT);
  const need = (m: OrderedModule) => (m.optional ? 'optional' : 'required');
  const insmod = modules.initramfs
    .map((m) => `${need(m)} ${basename(m.path)}${m.params ? ` ${m.params}` : ''}\n`)
    .join('');
  const modprobe = modules.modprobe.map((m) => `${need(m)} ${m.name}\n`).join('');
  const options = modprobeOptions(modules.modprobe);

  const hash = createHash('sha256');
  hash.update(init).update(insmod).update(modprobe).update(options).update(kernel.release);
  for (const file of [busybox, ...libs]) {
    const st = statSync(file);
    hash.update(`${file} ${st.size} ${st.mtimeMs}\n`);
  }
  const target = join(kernel.dir, `initramfs-${hash.digest('hex').slice(0, 16)}.cpio`);
  if (existsSync(target)) return target;

  const stage = mkdtempSync(join(kernel.dir, '.initramfs-'));
  try {
    const root = join(stage, 'root');
    for (const d of [
      'bin',
      'sbin',
      'dev',
      'proc',
      'sys',
      'lower',
      'upper',
      'newroot',
      'ctl',
      'boot-modules',
      'etc/modprobe.d',
    ]) {
      mkdirSync(join(root, d), { recursive: true });
    }
    mkdirSync(join(root, 'lib', 'modules', kernel.release), { recursive: true });
    copyFileSync(busybox, join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    for (const lib of libs) {
      mkdirSync(join(root, dirname(lib)), { recursive: true });
      copyFileSync(lib, join(root, lib)); // copyFileSync follows the symlink: the real library
    }
    writeFileSync(join(root, 'init'), init, { mode: 0o755 });
    for (const m of modules.initramfs) {
      copyFileSync(join(kernel.modulesDir, m.path), join(root, 'boot-modules', basename(m.path)));
    }
    writeFileSync(join(root, 'boot-modules', 'insmod'), insmod);
    writeFileSync(join(root, 'boot-modules', 'modprobe'), modprobe);
    writeFileSync(join(root, 'etc', 'modprobe.d', 'sb-vm.conf'), options);
    execFileSync('ln', ['-s', '/bin/busybox', join(root, 'sbin', 'modprobe')]);
    execFileSync('ln', ['-s', 'busybox', join(root, 'bin', 'sh')]);
    // The kernel opens /dev/console for /init's stdio before anything is mounted.
    execFileSync('mknod', ['-m', '600', join(root, 'dev', 'console'), 'c', '5', '1']);
    const list = execFileSync('find', ['.', '-mindepth', '1'], { cwd: root, encoding: 'utf8' });
    execFileSync('busybox', ['cpio', '-o', '-H', 'newc', '-F', join(stage, 'initramfs.cpio')], {
      cwd: root,
      input: list,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    renameSync(join(stage, 'initramfs.cpio'), target);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  removeOldInitramfs(kernel.dir, target);
  return target;
}

/** Initramfs files of earlier init scripts or module lists, unused for an hour (qemu reads its copy at start). */
function removeOldInitramfs(dir: string, keep: string): void {
  const hourAgo = Date.now() - 3600_000;
  for (const f of readdirSync(dir)) {
    const path = join(dir, f);
    if (/^initramfs-[0-9a-f]{16}\.cpio$/.test(f) && path !== keep && statSync(path).mtimeMs < hourAgo) {
      rmSync(path, { force: true });
    }
  }
}
