#!/usr/bin/env bash
# Fetches Debian's current stock kernel (which has ip_vs, dummy, ... as modules) for the VM tests,
# WITHOUT installing it: the package is downloaded with `apt-get download` and unpacked with
# `dpkg-deb -x`, so no maintainer script runs and /boot is untouched. The result is cached under
# .cache/vm/<kernel release>/ and .cache/vm/current points at it:
#
#   vmlinux              the ELF kernel taken out of vmlinuz (qemu boots it directly, PVH: ~3 s faster)
#   lib/modules/<rel>/   every module, signatures stripped (checking them costs ~50 ms each under TCG),
#                        with a modules.dep made by `busybox depmod` (Debian ships none)
#   kernel.env           KERNEL_RELEASE, PACKAGE, PACKAGE_VERSION
#   READY                written last: a directory without it is incomplete and is rebuilt
#
# Debian's mirror keeps only the current kernel, so a cached kernel is used as it is (no network)
# unless --update is given; with --update, a failed fetch keeps the cached kernel.
#
# Usage: scripts/vm/fetch-kernel.sh [--update]      (needs root, apt, dpkg-deb, xz, binutils, busybox)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache_dir="${repo_root}/.cache/vm"
update=false
case "${1:-}" in
  '') ;;
  --update) update=true ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

log() { echo "fetch-kernel: $*" >&2; }
die() { log "$*"; exit 1; }

ready_release() {
  # The cached release `current` points at, if complete.
  local link="${cache_dir}/current"
  [[ -L "${link}" && -f "${link}/READY" && -f "${link}/vmlinux" ]] || return 1
  basename "$(readlink "${link}")"
}

mkdir -p "${cache_dir}"
exec 9>"${cache_dir}/.lock"
flock 9 # one fetch at a time (two test runs may start together)

if cached="$(ready_release)" && [[ "${update}" == false ]]; then
  log "using cached kernel ${cached} (${cache_dir}/${cached}); --update fetches the newest"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb xz readelf strip busybox; do
  command -v "${tool}" >/dev/null || die "${tool} is missing (apt-get install apt dpkg xz-utils binutils busybox)"
done

fetch() {
  apt-get update -qq || return 1
  # `apt-cache depends linux-image-amd64` names the versioned package (linux-image-6.1.0-NN-amd64).
  local package
  package="$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')"
  [[ -n "${package}" ]] || { log "apt-cache depends linux-image-amd64 names no versioned kernel package"; return 1; }
  local release="${package#linux-image-}"
  if [[ -f "${cache_dir}/${release}/READY" ]]; then
    log "kernel ${release} is already cached"
    ln -sfn "${release}" "${cache_dir}/current"
    return 0
  fi

  local work
  work="$(mktemp -d "${cache_dir}/.build-${release}-XXXXXX")"
  # shellcheck disable=SC2064 # expand now: the trap must remove this directory
  trap "rm -rf '${work}'" RETURN
  log "downloading ${package}"
  # APT's sandbox user (_apt) may not be able to write here; download as root instead.
  (cd "${work}" && apt-get download -qq -o APT::Sandbox::User=root "${package}") || return 1
  local deb
  deb="$(find "${work}" -maxdepth 1 -name '*.deb' -print -quit)"
  [[ -n "${deb}" ]] || { log "apt-get download left no .deb"; return 1; }
  local package_version
  package_version="$(dpkg-deb -f "${deb}" Version)"
  dpkg-deb -x "${deb}" "${work}/root"
  rm -f "${deb}"

  local out="${work}/out"
  mkdir -p "${out}/lib/modules"
  mv "${work}/root/lib/modules/${release}" "${out}/lib/modules/${release}"
  extract_vmlinux "${work}/root/boot/vmlinuz-${release}" "${out}/vmlinux"
  rm -rf "${work}/root"

  log "stripping module signatures"
  strip_modules "${out}/lib/modules/${release}"
  log "busybox depmod"
  busybox depmod -b "${out}" "${release}"
  [[ -s "${out}/lib/modules/${release}/modules.dep" ]] || { log "depmod wrote no modules.dep"; return 1; }

  printf 'KERNEL_RELEASE=%s\nPACKAGE=%s\nPACKAGE_VERSION=%s\n' "${release}" "${package}" "${package_version}" \
    >"${out}/kernel.env"
  date -u +%FT%TZ >"${out}/READY"
  rm -rf "${cache_dir:?}/${release}"
  mv "${out}" "${cache_dir}/${release}"
  ln -sfn "${release}" "${cache_dir}/current"
  log "cached ${package} ${package_version} in ${cache_dir}/${release}"
}

# vmlinuz is a boot stub followed by the compressed ELF kernel. Find the stream's magic and
# decompress from there; the decompressor complains about the bytes after the stream (ignored).
extract_vmlinux() {
  local vmlinuz="$1" dest="$2" offset
  for format in xz zstd gzip; do
    local magic decompress
    case "${format}" in
      xz) magic='\xfd7zXZ\x00'; decompress='xz -dc' ;;
      zstd) magic='\x28\xb5\x2f\xfd'; decompress='zstd -dcq' ;;
      gzip) magic='\x1f\x8b\x08\x00'; decompress='gzip -dc' ;;
    esac
    command -v "${decompress%% *}" >/dev/null || continue
    offset="$(LC_ALL=C grep -m1 -obUaP "${magic}" "${vmlinuz}" | awk -F: 'NR == 1 { print $1 }')" || true
    [[ -n "${offset}" ]] || continue
    tail -c "+$((offset + 1))" "${vmlinuz}" | ${decompress} >"${dest}" 2>/dev/null || true
    if [[ "$(head -c 4 "${dest}" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
      # qemu boots an ELF kernel directly only through its PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY).
      readelf -n "${dest}" | grep -q 'Xen' || die "${vmlinuz}: the kernel has no PVH entry note; cannot boot it directly"
      log "extracted vmlinux (${format}) from ${vmlinuz##*/}"
      return 0
    fi
  done
  die "${vmlinuz}: found no xz, zstd or gzip compressed ELF kernel inside"
}

# strip --strip-debug rewrites each module without the signature appended after its ELF image.
# Compressed modules (.ko.xz/.ko.zst, as newer Debian kernels ship) are decompressed first.
strip_modules() {
  local dir="$1"
  find "${dir}" -name '*.ko.xz' -exec xz -d {} +
  if find "${dir}" -name '*.ko.zst' -print -quit | grep -q .; then
    find "${dir}" -name '*.ko.zst' -exec zstd -dq --rm {} +
  fi
  find "${dir}" -name '*.ko' -print0 | xargs -0 -n 200 -P "$(nproc)" strip --strip-debug
}

if ! fetch; then
  if cached="$(ready_release)"; then
    log "could not fetch the current kernel; keeping the cached ${cached}"
    exit 0
  fi
  die "could not fetch the kernel, and none is cached in ${cache_dir}"
fi
