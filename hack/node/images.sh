#!/usr/bin/env bash
# Builds the real node's two local images as OCI archives, once, into $TAROT_CACHE/node/images:
#   localhost/tarot/pause:v1     the pod sandbox image (hack/node/pause/main.go; containerd's sandbox_image)
#   localhost/tarot/busybox:v1   Debian's busybox-static in an empty image: a shell, wget and nslookup for tests
# No registry is reachable, so both are built from local files (hack/node/oci_image.py); hack/cluster
# imports them into the node's containerd. Prints the images directory.
set -euo pipefail

NODE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TAROT_CACHE="${TAROT_CACHE:-${HOME}/.cache/tarot}"
OUT="${TAROT_CACHE}/node/images"
PYTHON="${PYTHON:-python3}"
STAMP_WANT="$(cat "${NODE_DIR}/pause/main.go" "${NODE_DIR}/oci_image.py" "${BASH_SOURCE[0]}" /bin/busybox | sha256sum | cut -c1-16)"

if [[ -f "${OUT}/.stamp" && "$(cat "${OUT}/.stamp")" == "${STAMP_WANT}" ]]; then
  echo "${OUT}"
  exit 0
fi
[[ -x /bin/busybox ]] || { echo "error: /bin/busybox missing: run hack/install-system-packages.sh (busybox-static)" >&2; exit 1; }
mkdir -p "${OUT}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

(cd "${NODE_DIR}/pause" && GOTOOLCHAIN=local CGO_ENABLED=0 GOCACHE="${TAROT_CACHE}/go-build" \
  go build -trimpath -ldflags "-s -w" -o "${WORK}/pause" main.go)
"${PYTHON}" "${NODE_DIR}/oci_image.py" "${OUT}/pause.tar" localhost/tarot/pause:v1 \
  --entrypoint /pause --file "${WORK}/pause:/pause"

links=()
for applet in $(/bin/busybox --list | grep -vx busybox); do links+=(--link "/bin/busybox:/bin/${applet}"); done
"${PYTHON}" "${NODE_DIR}/oci_image.py" "${OUT}/busybox.tar" localhost/tarot/busybox:v1 \
  --entrypoint /bin/sh --file /bin/busybox:/bin/busybox "${links[@]}"

echo "${STAMP_WANT}" > "${OUT}/.stamp"
echo "${OUT}"
