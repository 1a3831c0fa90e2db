# Sourced by hack/build-cluster-tools.sh, build-kueue.sh and build-prometheus.sh: the "build once" rule
# they share. `build_once BUILT OUT [--force]`: when the function BUILT succeeds (and no --force), print
# OUT and end the script; otherwise take ${TOOLS_DIR}'s build lock (one build at a time: a `hack/cluster
# up` of another shell may build meanwhile), wait, check again, and enter the Go workspace (hack/go-env.sh,
# so `go` is needed only when something is built) with GOBIN=${BIN_DIR}. Needs HACK_DIR; sets the pinned
# versions (hack/versions.env), TAROT_CACHE (default ~/.cache/tarot), build_dirs and log.

# shellcheck source=hack/versions.env
source "${HACK_DIR}/versions.env"
TAROT_CACHE="${TAROT_CACHE:-${HOME}/.cache/tarot}"

# `build_dirs NAME DIR`: the build's home under the cache, TOOLS_DIR=${TAROT_CACHE}/DIR (DIR is
# <tool>/<version>) with BIN_DIR=${TOOLS_DIR}/bin, and NAME as the prefix of its `log` lines (on stderr).
build_dirs() {
  BUILD_NAME="$1"
  TOOLS_DIR="${TAROT_CACHE}/$2"
  BIN_DIR="${TOOLS_DIR}/bin"
}
log() { echo "[${BUILD_NAME} $(date -u +%H:%M:%S)] $*" >&2; }

build_once() {
  local built="$1" out="$2" force="${3:-}"
  if "${built}" && [[ "${force}" != "--force" ]]; then
    echo "${out}"
    exit 0
  fi
  mkdir -p "${BIN_DIR}"
  exec 9>"${TOOLS_DIR}/.build.lock"
  flock 9
  if "${built}" && [[ "${force}" != "--force" ]]; then
    echo "${out}"
    exit 0
  fi
  # shellcheck source=hack/go-env.sh
  source "${HACK_DIR}/go-env.sh"
  export GOBIN="${BIN_DIR}"
}
