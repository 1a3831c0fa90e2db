#!/usr/bin/env bash
# Debian packages the chart, image and monitoring tests need, on a fresh Debian (12) machine, as root:
#   buildah, podman   build and run images with no Docker engine (buildah bud/run --isolation chroot)
#   mmdebstrap        the images' base root filesystem (hack/images.sh)
#   prometheus        the real Prometheus and promtool of tests/monitoring
#   git               hack/images.sh packs tarot's source from `git ls-files`
#   containerd, runc, containernetworking-plugins, nftables, iproute2, busybox-static, conntrack
#                     the real node of hack/cluster (hack/node): runtime, CNI bridge, isolation rules,
#                     the busybox test image, kube-proxy's conntrack cleanup
# Idempotent: installs only what is missing, and says so; nothing at all when everything is there.
set -euo pipefail

PACKAGES=(buildah podman mmdebstrap prometheus git containerd runc containernetworking-plugins nftables iproute2 busybox-static conntrack)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed" || missing+=("${package}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[system-packages] all present: ${PACKAGES[*]}" >&2
  exit 0
fi

SUDO=()
[[ "$(id -u)" -eq 0 ]] || SUDO=(sudo)
echo "[system-packages] installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# With their recommends (mmdebstrap's uidmap, gpg and mount helpers; buildah's runtime), as a user gets them.
"${SUDO[@]}" apt-get install -y -qq "${missing[@]}"
# Debian's prometheus and containerd packages start system services; the tests start their own.
for service in prometheus containerd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "${service}" 2>/dev/null; then
    "${SUDO[@]}" systemctl disable --now "${service}" >/dev/null 2>&1 || true
  fi
done
