#!/usr/bin/env bash
# Builds what the chart checks need besides helm (which hack/build-cluster-tools.sh builds), once:
#   kubeconform                       go install github.com/yannh/kubeconform/cmd/kubeconform
#   monitoring.coreos.com CRD files   from the prometheus-operator Go module (example/prometheus-operator-crd),
#                                     turned into JSON schemas by tests/chart (kubeconform validates the
#                                     ServiceMonitor and PrometheusRule offline against them)
# Everything lives under $TAROT_CACHE (default ~/.cache/tarot)/chart-tools, outside the repo; a stamp makes a
# second run return at once. Prints the tools directory as its last line.
set -euo pipefail

KUBECONFORM_VERSION=v0.7.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0

TAROT_CACHE="${TAROT_CACHE:-${HOME}/.cache/tarot}"
TOOLS_DIR="${TAROT_CACHE}/chart-tools"
STAMP="${TOOLS_DIR}/.versions"
WANT_STAMP="kubeconform=${KUBECONFORM_VERSION} prometheus-operator=${PROMETHEUS_OPERATOR_VERSION}"
CRDS=(servicemonitors podmonitors prometheusrules)

log() { echo "[chart-tools $(date -u +%H:%M:%S)] $*" >&2; }

if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${WANT_STAMP}" && -x "${TOOLS_DIR}/bin/kubeconform" ]]; then
  echo "${TOOLS_DIR}"
  exit 0
fi

# shellcheck source=hack/go-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"
export GOBIN="${TOOLS_DIR}/bin"
mkdir -p "${GOBIN}" "${TOOLS_DIR}/crds"

log "go install github.com/yannh/kubeconform ${KUBECONFORM_VERSION}"
go install -ldflags "-s -w -X main.version=${KUBECONFORM_VERSION}" "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}"

log "go mod download github.com/prometheus-operator/prometheus-operator ${PROMETHEUS_OPERATOR_VERSION} (its CRDs)"
MODULE_DIR="$(cd "${TOOLS_DIR}" && go mod download -json \
  "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
for crd in "${CRDS[@]}"; do
  src="${MODULE_DIR}/example/prometheus-operator-crd/monitoring.coreos.com_${crd}.yaml"
  [[ -f "${src}" ]] || { echo "error: ${src} is missing from the module" >&2; exit 1; }
  install -m 0644 "${src}" "${TOOLS_DIR}/crds/"
done

echo "${WANT_STAMP}" > "${STAMP}"
log "built: $("${GOBIN}/kubeconform" -v) and ${#CRDS[@]} monitoring.coreos.com CRDs"
echo "${TOOLS_DIR}"
