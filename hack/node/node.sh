# The real node of a hack/cluster cluster: containerd + runc, the kubelet, kube-proxy and CoreDNS as
# background processes (no systemd), a CNI bridge, and nftables rules that keep pod traffic on this host.
# Sourced by hack/cluster, which sets NAME, STATE_DIR, CLUSTER_WORKDIR, KUBECONFIG_PATH, BIN, HACK_DIR,
# TAROT_CACHE and log(). One real node per machine (a bridge, a kube-proxy table and port 53 on the bridge
# address are host-wide): the cluster that holds it is written in $NODE_OWNER.
# shellcheck shell=bash

NODE_NAME="real-node-0"
NODE_BRIDGE="tarot0"
NODE_CLUSTER_CIDR="10.244.0.0/16"   # off this machine's interfaces (192.0.2.0/24) and the 10.0.0.0/24 Services
NODE_POD_CIDR="10.244.0.0/24"
NODE_IP="10.244.0.1"                # the bridge's address: node InternalIP, kubelet, kube-proxy and DNS bind here
NODE_TABLE="tarot-node"
NODE_STATE="${STATE_DIR}/node"      # config, logs, pid files, containerd's socket and state
NODE_ROOT="${TAROT_CACHE}/node/containerd"   # containerd's content and snapshots: imported images stay cached
NODE_OWNER="${TAROT_CACHE}/node/owner"
CONTAINERD_SOCK="${NODE_STATE}/containerd.sock"
NODE_PROCS=(containerd kubelet kube-proxy coredns)

node_ctr() { ctr --address "${CONTAINERD_SOCK}" --namespace k8s.io "$@"; }

# TAROT_REAL_NODE: 1 = required (up fails without it), 0 = off, unset = on when kubelet and containerd exist.
node_mode() {
  case "${TAROT_REAL_NODE:-auto}" in
    0|1|auto) echo "${TAROT_REAL_NODE:-auto}" ;;
    *) echo "error: TAROT_REAL_NODE must be 0, 1 or unset" >&2; exit 2 ;;
  esac
}

# Why the real node cannot start here, or nothing.
node_obstacle() {
  local tool
  for tool in "${BIN}/kubelet" "${BIN}/kube-proxy" "${BIN}/coredns"; do
    [[ -x "${tool}" ]] || { echo "${tool} is not built (hack/build-cluster-tools.sh)"; return; }
  done
  for tool in containerd ctr runc nft ip; do
    command -v "${tool}" >/dev/null || { echo "${tool} is not installed (hack/install-system-packages.sh)"; return; }
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || { echo "CNI plugins missing (containernetworking-plugins)"; return; }
  [[ "$(id -u)" -eq 0 ]] || { echo "the real node needs root (containerd, bridge, nftables)"; return; }
  if [[ -f "${CLUSTER_WORKDIR}/kwok.yaml" ]] \
    && ! grep -q -- "manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" "${CLUSTER_WORKDIR}/kwok.yaml"; then
    echo "cluster ${NAME} was created before the real node existed (its kwok manages all nodes): hack/cluster down, then up"; return
  fi
  local owner; owner="$(cat "${NODE_OWNER}" 2>/dev/null || true)"
  if [[ -n "${owner}" && "${owner}" != "${NAME}" ]] && node_owner_alive "${owner}"; then
    echo "cluster '${owner}' holds this machine's real node (one per machine)"; return
  fi
}

node_owner_alive() { alive "${TAROT_CACHE}/clusters/$1/node/containerd.pid"; }

node_held() { [[ "$(cat "${NODE_OWNER}" 2>/dev/null)" == "${NAME}" ]]; }

node_render() {  # template -> file, with this node's values
  sed -e "s#@STATE@#${NODE_STATE}#g" -e "s#@ROOT@#${NODE_ROOT}#g" -e "s#@BRIDGE@#${NODE_BRIDGE}#g" \
      -e "s#@POD_CIDR@#${NODE_POD_CIDR}#g" -e "s#@CLUSTER_CIDR@#${NODE_CLUSTER_CIDR}#g" \
      -e "s#@GATEWAY@#${NODE_IP}#g" -e "s#@NODE_IP@#${NODE_IP}#g" -e "s#@NODE_NAME@#${NODE_NAME}#g" \
      -e "s#@KUBECONFIG@#${KUBECONFIG_PATH}#g" -e "s#@CA@#${CLUSTER_WORKDIR}/pki/ca.crt#g" \
      -e "s#@API_PORT@#${API_PORT:-0}#g" "${HACK_DIR}/node/$1" > "${NODE_STATE}/$2"
}

node_daemon() {  # name, command...: start in the background unless running; log and pid in NODE_STATE
  local name="$1"; shift
  alive "${NODE_STATE}/${name}.pid" && return
  setsid "$@" >>"${NODE_STATE}/${name}.log" 2>&1 < /dev/null &
  echo $! > "${NODE_STATE}/${name}.pid"
}

node_sysctl() {  # key value: set it, remembering the value found (restored by `down`)
  local file="/proc/sys/${1//.//}"
  [[ -f "${NODE_STATE}/sysctl.prev" ]] && grep -q "^$1 " "${NODE_STATE}/sysctl.prev" \
    || echo "$1 $(cat "${file}")" >> "${NODE_STATE}/sysctl.prev"
  echo "$2" > "${file}"
}

# Before the control plane exists: network, containerd, images (so they overlap kwokctl's start).
node_prepare() {
  mkdir -p "${NODE_STATE}/cni" "${NODE_STATE}/ipam" "${NODE_ROOT}"
  echo "${NAME}" > "${NODE_OWNER}"
  node_sysctl net.ipv4.ip_forward 1                    # Service DNAT routes pod -> bridge -> pod
  node_sysctl net.bridge.bridge-nf-call-iptables 1     # ... and replies on the same bridge pass netfilter
  if ! ip link show "${NODE_BRIDGE}" >/dev/null 2>&1; then
    ip link add "${NODE_BRIDGE}" type bridge
    ip addr add "${NODE_IP}/${NODE_POD_CIDR#*/}" dev "${NODE_BRIDGE}"
  fi
  ip link set "${NODE_BRIDGE}" up
  : > "${NODE_STATE}/resolv.conf"
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do   # the kubelet's cgroupRoot must exist in every v1 hierarchy
    [[ -f "${hierarchy}cgroup.procs" && ! -f "${hierarchy}cgroup.controllers" ]] || continue
    mkdir -p "${hierarchy}tarot-node"
    if [[ -f "${hierarchy}cpuset.cpus" ]]; then   # a new cpuset takes no task until it has cpus and mems
      cat "${hierarchy}cpuset.cpus" > "${hierarchy}tarot-node/cpuset.cpus"
      cat "${hierarchy}cpuset.mems" > "${hierarchy}tarot-node/cpuset.mems"
    fi
  done
  node_render containerd.toml containerd.toml
  node_render cni.conflist cni/10-tarot.conflist
  node_daemon containerd containerd --config "${NODE_STATE}/containerd.toml"
  local images; images="$(bash "${HACK_DIR}/node/images.sh")"
  for _ in $(seq 100); do [[ -S "${CONTAINERD_SOCK}" ]] && node_ctr version >/dev/null 2>&1 && break; sleep 0.1; done
  for image in pause busybox; do   # a no-op for unchanged content; a rebuilt archive replaces the tag
    node_ctr images import "${images}/${image}.tar" >/dev/null
  done
}

# After the API server answers: isolation rules (they need its port), the Node object, the node daemons.
node_join() {
  API_PORT="$(sed -n 's#^[[:space:]]*server: https://[^:]*:\([0-9]*\).*#\1#p' "${KUBECONFIG_PATH}" | head -1)"
  node_render nftables.nft nftables.nft
  nft delete table inet "${NODE_TABLE}" 2>/dev/null || true
  nft -f "${NODE_STATE}/nftables.nft"
  node_render kubelet.yaml kubelet.yaml
  node_render kube-proxy.yaml kube-proxy.yaml
  node_render Corefile Corefile
  node_render node.yaml node.yaml
  "${BIN}/kubectl" --kubeconfig "${KUBECONFIG_PATH}" get node "${NODE_NAME}" >/dev/null 2>&1 \
    || "${BIN}/kubectl" --kubeconfig "${KUBECONFIG_PATH}" create -f "${NODE_STATE}/node.yaml" >&2
  node_daemon kubelet "${BIN}/kubelet" --config "${NODE_STATE}/kubelet.yaml" \
    --kubeconfig "${KUBECONFIG_PATH}" --hostname-override "${NODE_NAME}" --node-ip "${NODE_IP}" \
    --root-dir "${NODE_STATE}/kubelet" --cert-dir "${NODE_STATE}/kubelet-pki" --v 1
  node_daemon kube-proxy "${BIN}/kube-proxy" --config "${NODE_STATE}/kube-proxy.yaml" --v 1
  node_daemon coredns "${BIN}/coredns" -conf "${NODE_STATE}/Corefile"
  log "real node ${NODE_NAME}: containerd ${CONTAINERD_SOCK} (namespace k8s.io), logs in ${NODE_STATE}"
}

node_ready() {
  [[ "$("${BIN}/kubectl" --kubeconfig "${KUBECONFIG_PATH}" get node "${NODE_NAME}" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == "True" ]]
}

node_stop_daemon() {  # name, signal: the kubelet, kube-proxy and CoreDNS keep nothing `down` keeps: KILL
  local pidfile="${NODE_STATE}/$1.pid" pid
  [[ -f "${pidfile}" ]] || return 0
  pid="$(cat "${pidfile}")"
  kill "-$2" "${pid}" 2>/dev/null || true
  for _ in $(seq 50); do alive "${pidfile}" || break; sleep 0.1; done   # a zombie is not alive
  kill -KILL "${pid}" 2>/dev/null || true
  rm -f "${pidfile}"
}

# Stops everything node_prepare/node_join started and removes what they created on this host.
node_down() {
  node_held || return 0
  local pid f
  node_stop_daemon kubelet KILL
  node_stop_daemon kube-proxy KILL
  node_stop_daemon coredns KILL
  # The pods' containers: kill their tasks, then every process left in the node's cgroups.
  if [[ -S "${CONTAINERD_SOCK}" ]]; then
    for f in $(node_ctr tasks ls -q 2>/dev/null); do node_ctr tasks kill -s KILL "${f}" >/dev/null 2>&1 || true; done
  fi
  for f in /sys/fs/cgroup/*/tarot-node; do
    [[ -d "${f}" ]] || continue
    for pid in $(find "${f}" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "${pid}" 2>/dev/null || true; done
  done
  if [[ -S "${CONTAINERD_SOCK}" ]]; then
    for f in $(node_ctr tasks ls -q 2>/dev/null); do node_ctr tasks delete -f "${f}" >/dev/null 2>&1 || true; done
    for f in $(node_ctr containers ls -q 2>/dev/null); do node_ctr containers rm "${f}" >/dev/null 2>&1 || true; done
  fi
  node_stop_daemon containerd TERM
  for pid in $(pgrep -f -- "-address ${CONTAINERD_SOCK}" || true); do kill -KILL "${pid}" 2>/dev/null || true; done
  # Pod network namespaces (the veths die with them), then mounts left under the node's directories.
  for f in /var/run/netns/cni-*; do
    [[ -e "${f}" ]] || continue
    if ip -n "$(basename "${f}")" -o -4 addr show 2>/dev/null | grep -q " ${NODE_POD_CIDR%.*}\."; then
      ip netns delete "$(basename "${f}")" 2>/dev/null || { umount -l "${f}" 2>/dev/null; rm -f "${f}"; }
    fi
  done
  for f in $(awk '{print $2}' /proc/mounts | grep -E "^(${NODE_STATE}|${NODE_ROOT})/" | sort -r); do umount -l "${f}" 2>/dev/null || true; done
  for f in $(find /sys/fs/cgroup/*/tarot-node -depth -type d 2>/dev/null); do rmdir "${f}" 2>/dev/null || true; done
  ip link delete "${NODE_BRIDGE}" 2>/dev/null || true
  nft delete table inet "${NODE_TABLE}" 2>/dev/null || true
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  if [[ -f "${NODE_STATE}/sysctl.prev" ]]; then
    while read -r key value; do echo "${value}" > "/proc/sys/${key//.//}"; done < "${NODE_STATE}/sysctl.prev"
  fi
  rm -f "${NODE_OWNER}"
}

node_status() {
  if ! node_held; then
    echo "  real node: not held by this cluster ($(node_obstacle || true))"
    return
  fi
  local name
  for name in "${NODE_PROCS[@]}"; do
    printf '  %-26s pid %-8s %s\n' "${name}" "$(cat "${NODE_STATE}/${name}.pid" 2>/dev/null || echo -)" \
      "$(alive "${NODE_STATE}/${name}.pid" && echo running || echo STOPPED)"
  done
  echo "  containerd socket: ${CONTAINERD_SOCK} (namespace k8s.io)"
}
