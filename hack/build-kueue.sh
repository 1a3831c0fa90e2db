#!/usr/bin/env bash
# Builds Kueue's controller manager (sigs.k8s.io/kueue/cmd/kueue) from its Go module (through the Go module
# proxy), once, and copies the CRDs of the same module version next to it. hack/pytest_kueue.py runs it as
# a host process against the local cluster, so that in tests/integration/test_kueue_admission.py Kueue,
# not the test, admits the operator's Jobs. Kueue's go.mod has no replace directives: plain `go install`.
# Everything lives under $TAROT_CACHE (default ~/.cache/tarot); a second run finds the stamp and returns at
# once. Prints the version's directory (bin/kueue, crd/*.yaml, certs/tls.{crt,key}) as its last line.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/build-once.sh
source "${HACK_DIR}/build-once.sh"   # versions.env, TAROT_CACHE, build_dirs, log, build_once

build_dirs kueue "kueue/${KUEUE_VERSION}"
CRD_DIR="${TOOLS_DIR}/crd"
CERT_DIR="${TOOLS_DIR}/certs"
STAMP="${TOOLS_DIR}/.version"
WANT_STAMP="kueue=${KUEUE_VERSION}"

built() {
  [[ -x "${BIN_DIR}/kueue" && -f "${CRD_DIR}/kueue.x-k8s.io_workloads.yaml" && -f "${CERT_DIR}/tls.key" \
    && -f "${STAMP}" && "$(cat "${STAMP}")" == "${WANT_STAMP}" ]]
}

build_once built "${TOOLS_DIR}" "${1:-}"

# The version ldflags of Kueue's Makefile; the build date is the tag's date (identical flags: link cached).
INFO="$(cd "${TOOLS_DIR}" && go mod download -json "sigs.k8s.io/kueue@${KUEUE_VERSION}")"
MOD_DIR="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"${INFO}")"
INFO_FILE="$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' <<<"${INFO}")"
[[ -d "${MOD_DIR}/config/components/crd/bases" ]] || { echo "error: no CRDs in sigs.k8s.io/kueue@${KUEUE_VERSION} (${MOD_DIR})" >&2; exit 1; }
BUILD_DATE="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${INFO_FILE}")"
LDFLAGS="-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=${KUEUE_VERSION}"
LDFLAGS+=" -X sigs.k8s.io/kueue/pkg/version.BuildDate=${BUILD_DATE:-1970-01-01T00:00:00Z}"

log "go install sigs.k8s.io/kueue/cmd/kueue@${KUEUE_VERSION} (cold: several minutes on 2 cores)"
go install -ldflags "${LDFLAGS}" "sigs.k8s.io/kueue/cmd/kueue@${KUEUE_VERSION}"

rm -rf "${CRD_DIR}"
mkdir -p "${CRD_DIR}"
cp "${MOD_DIR}"/config/components/crd/bases/*.yaml "${CRD_DIR}/"
chmod -R u+w "${CRD_DIR}"   # the module cache is read-only

# A throwaway self-signed pair for the servers the manager cannot start without (its webhook server, and
# the metrics certificate it reads from /etc/kueue/metrics/certs when internal cert management is off).
# No client ever verifies it: no webhook is registered and metrics serving is off (hack/pytest_kueue.py).
# Go's own generator, so no openssl is needed.
rm -rf "${CERT_DIR}"
mkdir -p "${CERT_DIR}"
(
  cd "${CERT_DIR}"
  go run "$(go env GOROOT)/src/crypto/tls/generate_cert.go" --host 127.0.0.1,localhost --ecdsa-curve P256 \
    --duration 87600h 2>/dev/null
  mv cert.pem tls.crt
  mv key.pem tls.key
)

echo "${WANT_STAMP}" > "${STAMP}"
log "built ${BIN_DIR}/kueue and $(find "${CRD_DIR}" -name '*.yaml' | wc -l) CRDs"
echo "${TOOLS_DIR}"
