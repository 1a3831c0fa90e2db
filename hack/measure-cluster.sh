#!/usr/bin/env bash
# Measures the local control plane on this machine: `hack/cluster up` from a warm tool cache, a second
# (idempotent) `up`, the resident memory of every process it started, `down`, and that nothing is left.
# Runs a private cluster (name measure-<pid>) so a developer's cluster is not touched.
# The last line is one JSON object with the figures.
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TAROT_CACHE="${TAROT_CACHE:-${HOME}/.cache/tarot}"
NAME="measure-$$"
CLUSTER_WORKDIR="${TAROT_CACHE}/kwok/clusters/${NAME}"
STATE_DIR="${TAROT_CACHE}/clusters/${NAME}"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
rss_mib() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }

t=$(now); bash "${HACK_DIR}/build-cluster-tools.sh" >/dev/null; tools_s=$(elapsed "$t" "$(now)")
trap 'bash "${HACK_DIR}/cluster" --name "${NAME}" down >/dev/null 2>&1 || true' EXIT

t=$(now); bash "${HACK_DIR}/cluster" --name "${NAME}" up >/dev/null 2>&1; up_s=$(elapsed "$t" "$(now)")
t=$(now); bash "${HACK_DIR}/cluster" --name "${NAME}" up >/dev/null 2>&1; again_s=$(elapsed "$t" "$(now)")
sleep 5  # let the components settle after start-up before reading their memory

total=0; parts=""
for pidfile in "${CLUSTER_WORKDIR}"/pids/*.pid "${STATE_DIR}/pod-runner.pid"; do
  component="$(basename "${pidfile}" .pid)"
  mib="$(rss_mib "$(cat "${pidfile}")")"
  echo "RSS ${component}: ${mib} MiB"
  total=$((total + mib)); parts="${parts}\"${component}\": ${mib}, "
done
echo "RSS total: ${total} MiB"

t=$(now); bash "${HACK_DIR}/cluster" --name "${NAME}" down >/dev/null 2>&1; down_s=$(elapsed "$t" "$(now)")
trap - EXIT
left="$(pgrep -f -- "${CLUSTER_WORKDIR}/" | wc -l || true)"
echo "tools check ${tools_s}s, up (warm cache) ${up_s}s, second up ${again_s}s, down ${down_s}s, processes left ${left}"
echo "{\"tools_check_s\": ${tools_s}, \"up_warm_s\": ${up_s}, \"up_again_s\": ${again_s}, \"down_s\": ${down_s}, \"rss_mib\": {${parts}\"total\": ${total}}, \"processes_left\": ${left}}"
