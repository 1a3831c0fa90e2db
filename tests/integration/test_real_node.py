"""The real node of hack/cluster (hack/node): kubelet + containerd + runc, pod IPs from its podCIDR on a
bridge, ClusterIP Services through kube-proxy, Service names through CoreDNS, and nothing left behind.

These tests fail (never skip) when the cluster has no real node: `hack/cluster status` says why."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster

pytestmark = pytest.mark.cluster

NODE = "real-node-0"
BRIDGE = "tarot0"
IMAGE = "localhost/tarot/busybox:v1"
ON_REAL_NODE = {
    "nodeSelector": {"tarot.dev/node": "real"},
    "tolerations": [
        {"key": "tarot.dev/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ],
}


def _real_node(cluster: Cluster) -> JSON:
    node = cluster.api.get_or_none(f"/api/v1/nodes/{NODE}")
    assert node is not None, (
        f"cluster {cluster.name} has no real node: see `hack/cluster --name {cluster.name} status`"
    )
    return node


def _veths() -> set[str]:
    out = subprocess.run(
        ["ip", "-o", "link", "show", "master", BRIDGE], capture_output=True, text=True
    ).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


def _pod(name: str, command: str, labels: dict[str, str] | None = None) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", command]}
            ],
            **ON_REAL_NODE,
        },
    }


def _phase(cluster: Cluster, namespace: str, name: str) -> str:
    pod = cluster.api.get_or_none(f"/api/v1/namespaces/{namespace}/pods/{name}")
    return str(((pod or {}).get("status") or {}).get("phase", ""))


def test_the_real_node_is_ready_with_a_pod_cidr_label_and_taint(cluster: Cluster) -> None:
    node = _real_node(cluster)
    ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"]
    assert ipaddress.IPv4Network(node["spec"]["podCIDR"]).subnet_of(ipaddress.IPv4Network("10.244.0.0/16"))
    assert node["metadata"]["labels"]["tarot.dev/node"] == "real"
    assert {"key": "tarot.dev/real-node", "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_pods_run_as_containers_reach_a_service_by_name_and_leave_nothing(
    cluster: Cluster, namespace: str
) -> None:
    pod_cidr = ipaddress.ip_network(_real_node(cluster)["spec"]["podCIDR"])
    veths_before = _veths()
    pods = f"/api/v1/namespaces/{namespace}/pods"
    serve = (
        "echo serving; mkdir /www; echo hello-through-the-service > /www/index.html; "
        "exec httpd -f -p 8080 -h /www"
    )
    cluster.api.create(pods, _pod("web", serve, labels={"app": "web"}))
    cluster.api.create(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    cluster.wait_for("web Running", lambda: _phase(cluster, namespace, "web") == "Running")
    web = cluster.api.get(f"{pods}/web")
    assert web["spec"]["nodeName"] == NODE
    assert ipaddress.ip_address(web["status"]["podIP"]) in pod_cidr
    container_id = web["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    assert container_id in cluster.ctr("tasks", "ls", "-q").split()  # a runc task, not a local process
    cluster.wait_for("web's log", lambda: "serving" in cluster.kubectl("-n", namespace, "logs", "web").stdout)

    # busybox's static wget crashes resolving names, so: nslookup (CoreDNS), then nc to the ClusterIP.
    fetch = (
        f"ip=$(nslookup web.{namespace}.svc.cluster.local | sed -n 's/^Address: //p' | tail -1); "
        "echo ip=$ip; "
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $ip 80"
    )
    cluster.api.create(pods, _pod("client", fetch))
    cluster.wait_for("client done", lambda: _phase(cluster, namespace, "client") in ("Succeeded", "Failed"))
    output = cluster.kubectl("-n", namespace, "logs", "client").stdout
    service = cluster.api.get(f"/api/v1/namespaces/{namespace}/services/web")
    assert f"ip={service['spec']['clusterIP']}" in output
    assert "hello-through-the-service" in output

    ids = {container_id} | {s["containerID"].removeprefix("containerd://") for s in _statuses(cluster, pods)}
    assert _veths() - veths_before, "web's veth on the bridge"  # the finished client's is gone already
    cluster.kubectl("-n", namespace, "delete", "pods", "--all", "--wait=true", "--timeout=60s")
    cluster.wait_for("the pods' veths removed", lambda: not (_veths() - veths_before))
    # No runc task (process) is left; the kubelet's container GC drops the stopped records within a minute.
    cluster.wait_for("no task left", lambda: not ids & set(cluster.ctr("tasks", "ls", "-q").split()))


def _statuses(cluster: Cluster, pods: str) -> list[JSON]:
    return [s for pod in cluster.api.get(pods)["items"] for s in pod["status"].get("containerStatuses") or []]


def test_pod_traffic_cannot_leave_the_machine(cluster: Cluster, namespace: str) -> None:
    _real_node(cluster)
    gateway = Path("/proc/net/route").read_text().splitlines()[1].split()[2]  # this host's default gateway
    address = str(ipaddress.ip_address(bytes.fromhex(gateway)[::-1]))
    pods = f"/api/v1/namespaces/{namespace}/pods"
    # nc's own complaint ("timed out") goes to /dev/null: the log interleaves stdout and stderr in no
    # fixed order, and only the verdict line is the test's.
    cluster.api.create(
        pods,
        _pod("probe", f"printf x | nc -w 3 {address} 80 2>/dev/null && echo REACHED || echo blocked"),
    )
    cluster.wait_for("probe done", lambda: _phase(cluster, namespace, "probe") in ("Succeeded", "Failed"))
    assert cluster.kubectl("-n", namespace, "logs", "probe").stdout.split() == ["blocked"]
