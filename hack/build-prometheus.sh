#!/usr/bin/env bash
# Builds Prometheus from its Go module (through the Go module proxy), once, with Kubernetes service
# discovery: Debian's prometheus package is built without it (kubernetes_sd_configs is an unknown field
# there), and tests/monitoring/cluster_prometheus.py discovers the cluster's pods as a real
# kube-prometheus-stack Prometheus does. Build tags keep only the file, http and kubernetes discoveries
# (Prometheus' own `remove_all_sd` / `enable_kubernetes_sd`), so the other clouds' SDKs are not compiled.
# Everything lives under $TAROT_CACHE (default ~/.cache/tarot); a second run finds the stamp and returns at
# once. Prints the bin directory as its last line.
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/build-once.sh
source "${HACK_DIR}/build-once.sh"   # versions.env, TAROT_CACHE, build_dirs, log, build_once

build_dirs prometheus "prometheus/${PROMETHEUS_VERSION}"
STAMP="${BIN_DIR}/.version"
TAGS="remove_all_sd,enable_kubernetes_sd"
WANT_STAMP="prometheus=${PROMETHEUS_VERSION} tags=${TAGS}"

built() { [[ -x "${BIN_DIR}/prometheus" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${WANT_STAMP}" ]]; }

build_once built "${BIN_DIR}" "${1:-}"

# Module v0.3MM.P is Prometheus 3.MM.P (Prometheus tags its Go module v0.x since v2).
minor="${PROMETHEUS_VERSION#v0.}"; patch="${minor#*.}"; minor="${minor%%.*}"
RELEASE="$((minor / 100)).$((minor % 100)).${patch}"
LDFLAGS="-s -w -X github.com/prometheus/common/version.Version=${RELEASE}"
LDFLAGS+=" -X github.com/prometheus/common/version.Branch=module -X github.com/prometheus/common/version.Revision=${PROMETHEUS_VERSION}"

log "go install github.com/prometheus/prometheus/cmd/prometheus@${PROMETHEUS_VERSION} (Prometheus ${RELEASE}, tags ${TAGS})"
go install -tags "${TAGS}" -ldflags "${LDFLAGS}" "github.com/prometheus/prometheus/cmd/prometheus@${PROMETHEUS_VERSION}"

"${BIN_DIR}/prometheus" --version | head -1 >&2
echo "${WANT_STAMP}" > "${STAMP}"
echo "${BIN_DIR}"
