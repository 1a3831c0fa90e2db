#!/usr/bin/env bash
# Builds tarot's container images with no Docker engine: Debian's buildah (`--isolation chroot`) on a base
# root filesystem made by mmdebstrap and imported with podman.
#
#   hack/images.sh base                 the base image only (prints its name)
#   hack/images.sh build operator|sandbox|trainer|trainer-cpu [TAG]
#                                       one image; prints its name as the last line
#   hack/images.sh all [TAG]            operator, sandbox and trainer-cpu (what `make images` builds)
#
# trainer-cpu is the trainer Containerfile with TORCH=wheels on the local base, tagged <TAG>-cpu: PyPI's torch
# for Linux (which imports only with its nvidia-* libraries present, so they come along) without triton.
#
# Offline and reproducible builds: the Python packages go into the build context as wheels prepared
# here (`pip wheel .` for tarot itself, `pip download` for its dependencies) and the Containerfiles
# install them with `pip install --no-index`, so nothing inside the image reaches a registry or needs
# this machine's certificates or proxy settings.
#
# Cached outside the repository, under $TAROT_CACHE (default ~/.cache/tarot)/images:
#   base-<suite>.tar      the mmdebstrap root filesystem (rebuilt only with --force-base)
#   wheels/<extra>/       the downloaded dependency wheels (pip skips what is already there)
# The base is imported as localhost/tarot-base:<suite> into the containers storage buildah uses.
#
# Environment: TAROT_BASE_SUITE (default bookworm: its python3 is 3.11, as pyproject requires),
# TAROT_IMAGE_REGISTRY (default localhost/tarot), IMAGE_PYTHON_VERSION (default 3.11: the wheels' target);
# trainer only: VLLM_VERSION (empty: no vLLM), TRAINER_BASE_IMAGE (default: the Containerfile's).
# trainer-cpu only: CPU_TORCH (default torch==<this machine's torch version>, what the tests ran with).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/images-env.sh"
log() { echo "[images $(date -u +%H:%M:%S)] $*" >&2; }

CACHE="${TAROT_CACHE}/images"
SUITE="${TAROT_BASE_SUITE:-bookworm}"
BASE_IMAGE="localhost/tarot-base:${SUITE}"
# The images' python3: Debian bookworm's and python:3.11-slim's; set it for a trainer base with another.
IMAGE_PYTHON_VERSION="${IMAGE_PYTHON_VERSION:-3.11}"

ensure_base() {
  need mmdebstrap; need podman
  local tarball="${CACHE}/base-${SUITE}.tar"
  mkdir -p "${CACHE}"
  if [[ ! -s "${tarball}" || "${FORCE_BASE:-0}" == 1 ]]; then
    log "mmdebstrap ${SUITE} (minbase + python3, python3-venv) -> ${tarball}"
    # python3-venv brings ensurepip, so the Containerfiles make a venv the same way on this base and on
    # the public python:3.11-slim default.
    # Documentation, manual pages and translations are left out (as in Debian's -slim images).
    mmdebstrap --quiet --format=tar --variant=minbase --include=python3,python3-venv,ca-certificates \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' \
      --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
      "${SUITE}" "${tarball}.partial"
    mv "${tarball}.partial" "${tarball}"
    podman rmi --force "${BASE_IMAGE}" >/dev/null 2>&1 || true
  fi
  if ! podman image exists "${BASE_IMAGE}"; then
    log "podman import ${tarball} ${BASE_IMAGE}"
    podman import --quiet "${tarball}" "${BASE_IMAGE}" >/dev/null
  fi
  echo "${BASE_IMAGE}"
}

# Wheels for one extra into the build context: tarot's own wheel, and its dependencies from the cache.
prepare_wheels() {
  local extra="$1" context="$2"
  local cache="${CACHE}/wheels/${4:-${extra}}"
  mkdir -p "${cache}" "${context}/wheels"
  rm -f "${context}"/wheels/*.whl
  # tarot's wheel from a copy of the source files git knows (tracked, or new and not ignored): an in-tree
  # build would reuse a stale build/ folder and could pack files that are not part of the source.
  local source; source="$(mktemp -d)"
  git -C "${REPO}" ls-files -z --cached --others --exclude-standard |
    tar -C "${REPO}" --ignore-failed-read --null --files-from=- -cf - | tar -xf - -C "${source}"
  log "pip wheel tarot (no deps) -> ${context}/wheels"
  "${PYTHON}" -m pip wheel --quiet --no-deps --wheel-dir "${context}/wheels" "${source}"
  rm -rf "${source}"
  # Dependencies for the image's interpreter (CPython ${IMAGE_PYTHON_VERSION}, manylinux x86_64), not this
  # machine's:
  # resolved from tarot's own wheel with the extra, binary wheels only (no build inside the image).
  local own; own="$(ls "${context}"/wheels/tarot-*.whl)"
  log "pip download tarot[${extra}]'s dependencies -> ${cache}"
  "${PYTHON}" -m pip download --quiet --dest "${cache}" --only-binary=:all: \
    --python-version "${IMAGE_PYTHON_VERSION}" --implementation cp --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any ${5:-} \
    "${own}[${extra}]" ${3:+"$3"}
  rm -f "${cache}"/tarot-*.whl
  cp "${cache}"/*.whl "${context}/wheels/"
}

# The wheels of trainer-cpu: tarot[train] with CPU_TORCH, whose nvidia-* wheels are tagged up to manylinux_2_27
# (any glibc of the Debian base, 2.36, runs them); triton is dropped (GPU kernels only).
prepare_cpu_trainer_wheels() {
  local context="$1" torch="${CPU_TORCH:-}"
  if [[ -z "${torch}" ]]; then
    torch="torch==$("${PYTHON}" -c 'from importlib.metadata import version; print(version("torch"))')"
  fi
  local platforms="" minor
  for minor in $(seq 18 36); do platforms+=" --platform manylinux_2_${minor}_x86_64"; done
  prepare_wheels train "${context}" "${torch}" train-cpu "${platforms}"
  # The Containerfile installs every wheel with --no-deps: keep only the resolved set (the cache may hold
  # older versions), found by resolving again offline from the context.
  local own; own="$(ls "${context}"/wheels/tarot-*.whl)"
  local report="${context}/resolved.json"
  # shellcheck disable=SC2086  # ${platforms}: one --platform option per word
  "${PYTHON}" -m pip install --quiet --dry-run --ignore-installed --no-index --find-links "${context}/wheels" \
    --only-binary=:all: --python-version "${IMAGE_PYTHON_VERSION}" --implementation cp \
    --platform manylinux2014_x86_64 ${platforms} --platform any --target "${context}/unused" \
    --report "${report}" "${own}[train]" "${torch}"
  "${PYTHON}" - "${report}" "${context}/wheels" <<'PY'
import json, pathlib, sys
report, wheels = json.load(open(sys.argv[1])), pathlib.Path(sys.argv[2])
keep = {item["download_info"]["url"].rsplit("/", 1)[-1] for item in report["install"]}
for wheel in wheels.glob("*.whl"):
    if wheel.name not in keep or wheel.name.startswith("triton-"):
        wheel.unlink()
PY
  rm -f "${report}"
}

build() {
  local name="$1" tag="${2:-${VERSION}}"
  need buildah
  local dir="${REPO}/images/${name%-cpu}"
  [[ -f "${dir}/Containerfile" ]] || { echo "error: no images/${name%-cpu}/Containerfile" >&2; exit 2; }
  local extra
  case "${name}" in
    operator) extra=operator ;;
    sandbox) extra=sandbox ;;
    trainer) extra=train ;;
    trainer-cpu) extra=train ;;
    *) echo "error: unknown image '${name}' (operator, sandbox, trainer, trainer-cpu)" >&2; exit 2 ;;
  esac
  local base=""; [[ "${name}" == trainer ]] || base="$(ensure_base)"
  local context="${CACHE}/context/${name}"
  rm -rf "${context}"; mkdir -p "${context}"
  cp "${dir}/Containerfile" "${context}/"
  local image="${REGISTRY}/tarot-${name}:${tag}"
  if [[ "${name}" == trainer-cpu ]]; then
    prepare_cpu_trainer_wheels "${context}"
    image="${REGISTRY}/tarot-trainer:${tag}-cpu"
  else
    local also=""
    [[ "${name}" == trainer && -n "${VLLM_VERSION:-}" ]] && also="vllm==${VLLM_VERSION}"
    prepare_wheels "${extra}" "${context}" "${also}"
  fi
  # Operator, sandbox and trainer-cpu build on the local base (nothing pulled); the trainer on its
  # Containerfile's default (CUDA) base, pulled from its registry, unless TRAINER_BASE_IMAGE names another.
  local base_arg=(--pull=never --build-arg "BASE_IMAGE=${base}")
  if [[ "${name}" == trainer ]]; then
    base_arg=(--pull=missing --build-arg "VLLM_VERSION=${VLLM_VERSION:-}"
      ${TRAINER_BASE_IMAGE:+--build-arg "BASE_IMAGE=${TRAINER_BASE_IMAGE}"})
  elif [[ "${name}" == trainer-cpu ]]; then
    base_arg+=(--build-arg TORCH=wheels)
  fi
  local replaced; replaced="$(buildah inspect --type image --format '{{.FromImageID}}' "${image}" 2>/dev/null || true)"
  log "buildah bud --isolation chroot ${image}"
  buildah bud --quiet --isolation chroot --layers=false "${base_arg[@]}" \
    --build-arg "TAROT_VERSION=${VERSION}" --tag "${image}" --file "${context}/Containerfile" "${context}" >&2
  # The image the tag named before is untagged now: remove it, or every rebuild keeps its GBs (the trainer's
  # 5). It stays when a container or another tag still uses it.
  if [[ -n "${replaced}" && "${replaced}" != "$(buildah inspect --type image --format '{{.FromImageID}}' "${image}")" ]]; then
    buildah rmi "${replaced}" >/dev/null 2>&1 || true
  fi
  echo "${image}"
}

case "${1:-}" in
  base) ensure_base ;;
  build)
    [[ $# -ge 2 ]] || { echo "usage: $0 build operator|sandbox|trainer|trainer-cpu [TAG]" >&2; exit 2; }
    build "$2" "${3:-}" ;;
  all) build operator "${2:-}"; build sandbox "${2:-}"; build trainer-cpu "${2:-}" ;;
  *) echo "usage: $0 base | build operator|sandbox|trainer|trainer-cpu [TAG] | all [TAG]" >&2; exit 2 ;;
esac
