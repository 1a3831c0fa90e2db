#!/usr/bin/env bash
# Makes tarot's images (operator, sandbox, trainer-cpu, as `make images` builds them with buildah) available to
# the local cluster's containerd, in the namespace the kubelet uses (k8s.io), under the names
# hack/cluster-values.yaml gives the chart:
#
#   hack/load-images.sh [TAG]      TAG defaults to the project's version (pyproject.toml)
#
# Each image goes through an OCI archive that buildah writes (`buildah push IMAGE oci-archive:...`, layers
# left uncompressed: compressing the trainer's 5 GB only to unpack it at once took minutes) and
# `ctr -n k8s.io images import`. Idempotent and quick when
# nothing changed: an image whose config digest (buildah's image ID) containerd already holds under the same
# name is skipped without writing an archive. Prints one line per image: its name, whether it was imported or
# already there, and its size (the image's layers, unpacked, in buildah's storage).
#
# Environment: CONTAINERD_ADDRESS (default /run/containerd/containerd.sock: the real node's containerd),
# TAROT_IMAGE_REGISTRY (default localhost/tarot, as hack/images.sh), TAROT_CACHE (default ~/.cache/tarot:
# the archives are written under images/archives/ and removed once imported).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/images-env.sh"
ARCHIVES="${TAROT_CACHE}/images/archives"
ADDRESS="${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}"
TAG="${1:-${VERSION}}"

log() { echo "[load-images $(date -u +%H:%M:%S)] $*" >&2; }
ctr_() { ctr --address "${ADDRESS}" --namespace k8s.io "$@"; }

need buildah; need podman; need ctr
[[ -S "${ADDRESS}" ]] || { echo "error: no containerd socket at ${ADDRESS} (hack/cluster up starts the real node's)" >&2; exit 1; }

# The config digest of the image containerd holds under NAME ("" when none): its manifest's .config.digest.
loaded_config() {
  local manifest
  manifest="$(ctr_ images ls "name==$1" 2>/dev/null | awk 'NR > 1 {print $3}')"
  [[ -n "${manifest}" ]] || return 0
  ctr_ content get "${manifest}" 2>/dev/null |
    "${PYTHON}" -c 'import json, sys; print(json.load(sys.stdin)["config"]["digest"])' 2>/dev/null || true
}

unpacked_mb() { echo $(($(podman image inspect --format '{{.Size}}' "$1") / 1000000)); }

load() {
  local image="$1"
  local id
  id="sha256:$(buildah inspect --type image --format '{{.FromImageID}}' "${image}" 2>/dev/null)" || {
    echo "error: ${image} is not built (make images)" >&2
    exit 1
  }
  local old; old="$(loaded_config "${image}")"
  if [[ "${old}" == "${id}" ]]; then
    echo "${image} already loaded (unpacked $(unpacked_mb "${image}") MB)"
    return
  fi
  if [[ -n "${old}" ]]; then
    # A rebuilt image replaces it: drop the old one's records (its name and the kubelet's by-ID record) and,
    # with --sync, its content and snapshots now, or every trainer rebuild keeps 5 GB more.
    ctr_ images rm --sync "${image}" "${old}" >/dev/null 2>&1 || true
  fi
  mkdir -p "${ARCHIVES}"
  local archive="${ARCHIVES}/$(basename "${image%%:*}").tar"
  rm -f "${archive}"
  log "buildah push ${image} -> ${archive}"
  # The archive's index names the image (org.opencontainers.image.ref.name), which ctr takes as its name.
  buildah push --quiet --disable-compression "${image}" "oci-archive:${archive}:${image}" >/dev/null
  log "ctr import ${archive}"
  ctr_ images import "${archive}" >/dev/null
  rm -f "${archive}"
  [[ "$(loaded_config "${image}")" == "${id}" ]] || {
    echo "error: containerd does not list ${image} after the import" >&2
    exit 1
  }
  echo "${image} imported (unpacked $(unpacked_mb "${image}") MB)"
}

for image in "${REGISTRY}/tarot-operator:${TAG}" "${REGISTRY}/tarot-sandbox:${TAG}" "${REGISTRY}/tarot-trainer:${TAG}-cpu"; do
  load "${image}"
done
