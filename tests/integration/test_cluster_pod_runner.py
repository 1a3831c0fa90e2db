"""The pod runner plays the kubelet: environment, volumes, termination message, deletion, deadlines,
GPU scheduling, and pods left to kwok."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster

pytestmark = pytest.mark.cluster

PROBE = r"""
import json, os, sys
out_path, message_path = sys.argv[1], sys.argv[2]
with open(out_path, "w") as f:
    f.write("written by " + os.environ["POD_NAME"])
with open(message_path, "w") as f:
    f.write("all good")
print(json.dumps({
    "env": {k: v for k, v in os.environ.items()
            if k.startswith(("POD_", "CFG_", "TOKEN", "GREETING", "CPUS"))},
    "cwd": os.getcwd(),
    "settings": open(os.environ["SETTINGS_DIR"] + "/config.yaml").read(),
    "secret": open(os.environ["CREDS_DIR"] + "/token").read(),
    "cwd_is_scratch": os.path.samefile(os.getcwd(), os.environ["SCRATCH"]),
}))
"""


def _pod(name: str, command: list[str], **spec: object) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"team": "curriculum"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "tarot/jobs:dev", "command": command}],
            **spec,
        },
    }


def _phase(cluster: Cluster, namespace: str, name: str) -> str:
    pod = cluster.api.get_or_none(f"/api/v1/namespaces/{namespace}/pods/{name}")
    return "" if pod is None else str((pod.get("status") or {}).get("phase", ""))


def test_pod_gets_its_environment_volumes_and_termination_message(cluster: Cluster, namespace: str) -> None:
    api, ns = cluster.api, f"/api/v1/namespaces/{namespace}"
    api.create(
        f"{ns}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"GREETING": "hello", "config.yaml": "tier: basic\n"},
        },
    )
    api.create(
        f"{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
    )
    api.create(
        f"{ns}/persistentvolumeclaims",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "checkpoints"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    pod = _pod(
        "probe",
        ["python3", "-c", PROBE],
        volumes=[
            {"name": "settings", "configMap": {"name": "settings"}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "checkpoints"}},
        ],
    )
    container = pod["spec"]["containers"][0]
    container.update(
        args=["$(CHECKPOINTS)/out.txt", "/dev/termination-log"],
        workingDir="/scratch",
        resources={"limits": {"cpu": "2", "memory": "1Gi"}},
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "POD_TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
            {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "GREETING"}}},
            {"name": "POD_GREETING", "value": "$(GREETING), world"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "CHECKPOINTS", "value": "/checkpoints"},
            {"name": "SETTINGS_DIR", "value": "/etc/tarot"},
            {"name": "CREDS_DIR", "value": "/var/run/creds"},
            {"name": "SCRATCH", "value": "/scratch"},
        ],
        volumeMounts=[
            {"name": "settings", "mountPath": "/etc/tarot"},
            {"name": "creds", "mountPath": "/var/run/creds", "readOnly": True},
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "checkpoints", "mountPath": "/checkpoints"},
        ],
    )
    api.create(f"{ns}/pods", pod)
    cluster.wait_for(
        "the pod to succeed", lambda: _phase(cluster, namespace, "probe") == "Succeeded", timeout=60
    )

    seen = json.loads(cluster.kubectl("logs", "-n", namespace, "probe").stdout)
    assert seen["env"] == {
        "POD_NAME": "probe",
        "POD_NAMESPACE": namespace,
        "POD_NODE": "cpu-node-0",
        "POD_TEAM": "curriculum",
        "CPUS": "2",
        "GREETING": "hello",
        "POD_GREETING": "hello, world",
        "TOKEN": "s3cret",
        "CFG_GREETING": "hello",
        "CFG_config.yaml": "tier: basic\n",
    }
    assert seen["settings"] == "tier: basic\n" and seen["secret"] == "s3cret" and seen["cwd_is_scratch"]
    terminated = api.get(f"{ns}/pods/probe")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["message"] == "all good"

    # The claim is a directory that outlives the pod: a second pod reads what the first one wrote.
    reader = _pod(
        "reader",
        ["python3", "-c", "import sys; print(open(sys.argv[1]).read())", "/ckpt/out.txt"],
        volumes=[{"name": "c", "persistentVolumeClaim": {"claimName": "checkpoints"}}],
    )
    reader["spec"]["containers"][0]["volumeMounts"] = [{"name": "c", "mountPath": "/ckpt"}]
    api.create(f"{ns}/pods", reader)
    cluster.wait_for("the reader to succeed", lambda: _phase(cluster, namespace, "reader") == "Succeeded")
    assert cluster.kubectl("logs", "-n", namespace, "reader").stdout == "written by probe\n"


def test_missing_config_map_holds_the_pod_until_it_exists(cluster: Cluster, namespace: str) -> None:
    ns = f"/api/v1/namespaces/{namespace}"
    pod = _pod("waits", ["python3", "-c", "import os; print(os.environ['MODE'])"])
    pod["spec"]["containers"][0]["env"] = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "mode"}}}
    ]
    cluster.api.create(f"{ns}/pods", pod)

    def config_error() -> str:
        statuses = (cluster.api.get(f"{ns}/pods/waits").get("status") or {}).get("containerStatuses") or []
        return str(statuses[0]["state"].get("waiting", {}).get("message", "")) if statuses else ""

    assert 'configmap "late" not found' in cluster.wait_for("CreateContainerConfigError", config_error)
    cluster.api.create(
        f"{ns}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}, "data": {"mode": "reverse"}},
    )
    cluster.wait_for("the pod to succeed", lambda: _phase(cluster, namespace, "waits") == "Succeeded")
    assert cluster.kubectl("logs", "-n", namespace, "waits").stdout == "reverse\n"


def test_deleting_a_running_pod_stops_its_process(cluster: Cluster, namespace: str) -> None:
    ns = f"/api/v1/namespaces/{namespace}"
    cluster.api.create(
        f"{ns}/pods",
        _pod("sleeper", ["python3", "-c", "import time; time.sleep(600)"], terminationGracePeriodSeconds=5),
    )

    def pid() -> int | None:
        statuses = (cluster.api.get(f"{ns}/pods/sleeper").get("status") or {}).get("containerStatuses") or []
        if statuses and "running" in statuses[0]["state"]:
            return int(statuses[0]["containerID"].removeprefix("local://"))
        return None

    process = cluster.wait_for("the pod to run", pid)
    assert Path(f"/proc/{process}").exists()
    cluster.api.delete(f"{ns}/pods/sleeper")
    cluster.wait_for("the pod to be gone", lambda: cluster.api.get_or_none(f"{ns}/pods/sleeper") is None)
    with pytest.raises(ProcessLookupError):
        os.kill(process, 0)


def test_active_deadline_stops_a_pod_that_runs_too_long(cluster: Cluster, namespace: str) -> None:
    ns = f"/api/v1/namespaces/{namespace}"
    cluster.api.create(
        f"{ns}/pods", _pod("slow", ["python3", "-c", "import time; time.sleep(600)"], activeDeadlineSeconds=2)
    )
    cluster.wait_for("the pod to fail", lambda: _phase(cluster, namespace, "slow") == "Failed", timeout=30)
    status = cluster.api.get(f"{ns}/pods/slow")["status"]
    assert status["reason"] == "DeadlineExceeded"


def test_gpu_pods_fill_the_gpu_nodes_and_skipped_pods_are_left_to_kwok(
    cluster: Cluster, namespace: str
) -> None:
    ns = f"/api/v1/namespaces/{namespace}"
    for i in range(3):
        pod = _pod(
            f"trainer-{i}",
            ["python3", "-c", "raise SystemExit('must not run')"],
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        )
        pod["metadata"]["labels"]["tarot.dev/pod-runner"] = "skip"
        pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "8"}}
        cluster.api.create(f"{ns}/pods", pod)

    def placed() -> list[JSON] | None:
        pods = cluster.api.get(f"{ns}/pods")["items"]
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        return pods if len(running) == 2 else None

    pods = cluster.wait_for("two GPU pods to run", placed, timeout=60)
    running = [p for p in pods if p["status"]["phase"] == "Running"]
    assert sorted(p["spec"]["nodeName"] for p in running) == ["gpu-node-0", "gpu-node-1"]
    for pod in running:  # kwok's stage marked them Running; no local process was started
        assert not pod["status"]["containerStatuses"][0].get("containerID", "").startswith("local://")
    [waiting] = [p["metadata"]["name"] for p in pods if p["status"]["phase"] != "Running"]

    def unschedulable() -> JSON | None:
        conditions = (cluster.api.get(f"{ns}/pods/{waiting}").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    scheduled = cluster.wait_for("the third GPU pod to be unschedulable", unschedulable)
    assert scheduled["reason"] == "Unschedulable" and "nvidia.com/gpu" in scheduled["message"]
