"""Operators and tiny TarotRuns on the local control plane: start them, watch them, read their Jobs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local_processes import OperatorProcess, apply_crd
from pipeline_helpers import SHARED_MODEL_CACHE, TINY_RUN_SPEC
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster

CRD = Path(__file__).resolve().parents[1] / "crds" / "tarot.dev_tarotruns.yaml"
# A TarotRun as the object builders and the reconciler receive it (the unit tests' run r1 in namespace ns).
RUN: dict[str, Any] = {
    "apiVersion": "tarot.dev/v1alpha1",
    "kind": "TarotRun",
    "metadata": {"name": "r1", "namespace": "ns", "uid": "u-1", "generation": 1},
}


def runs_being_deleted(cluster: Cluster) -> list[str]:
    """Runs deleted, or in a namespace being deleted: they need the operator to release its finalizer."""
    items = cluster.api.get("/apis/tarot.dev/v1alpha1/tarotruns")["items"]
    terminating = {
        ns["metadata"]["name"]
        for ns in cluster.api.get("/api/v1/namespaces")["items"]
        if ns["metadata"].get("deletionTimestamp")
    }
    return [
        r["metadata"]["name"]
        for r in items
        if r["metadata"].get("deletionTimestamp") or r["metadata"]["namespace"] in terminating
    ]


@contextmanager
def running_operator(cluster: Cluster, log_dir: Path, *extra_args: str) -> Iterator[OperatorProcess]:
    """The CRD applied and `tarot operator run` started; Jobs sandbox in-process (no pod network here)."""
    apply_crd(cluster.kubectl_path, cluster.kubeconfig, CRD)
    log = log_dir / "operator.log"
    process = OperatorProcess(
        cluster.kubeconfig,
        log,
        "--job-sandbox", "in-process",
        "--model-cache", str(SHARED_MODEL_CACHE),
        *extra_args,
    )  # fmt: skip
    process.start()
    try:
        yield process
        # The last test's namespace is being deleted: let the operator release its runs' finalizers first.
        cluster.wait_for(
            "runs being deleted to be released", lambda: not runs_being_deleted(cluster), timeout=90
        )
    finally:
        process.stop()
        print(f"operator log ({log}):\n{process.log_tail(200)}")


RUNS = "/apis/tarot.dev/v1alpha1/namespaces/{ns}/tarotruns"

# A tiny run for a test operator: two phases (the fewest Jobs that still hand a checkpoint from one
# phase to the next), tiny numbers.
TWO_PHASE_RUN_SPEC: JSON = {
    **TINY_RUN_SPEC,
    "probe": {**TINY_RUN_SPEC["probe"], "samples": 2, "maxNewTokens": 48},
    "curriculum": {
        "policy": "custom",
        "phases": [
            {"start": 0.0, "end": 0.5, "tiers": ["basic"]},
            {"start": 0.5, "end": 1.0, "tiers": ["basic", "intermediate", "complex", "edge"]},
        ],
    },
    "training": {
        **TINY_RUN_SPEC["training"],
        "maxSteps": 4,
        "maxCompletionLength": 48,
        "saveSteps": 1,
        "maxRetries": 2,
    },
    "evaluation": {**TINY_RUN_SPEC["evaluation"], "maxNewTokens": 48},
}


def run_manifest(name: str, **overrides: Any) -> JSON:
    spec = json.loads(json.dumps(TWO_PHASE_RUN_SPEC))
    for path, value in overrides.items():
        target = spec
        *parents, leaf = path.split("__")
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value
    return {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": name}, "spec": spec}


def get_run(cluster: Cluster, namespace: str, name: str) -> JSON:
    return cluster.api.get(f"{RUNS.format(ns=namespace)}/{name}")


def run_phase(cluster: Cluster, namespace: str, name: str) -> str | None:
    return (get_run(cluster, namespace, name).get("status") or {}).get("phase")


def wait_phase(cluster: Cluster, namespace: str, name: str, phase: str, timeout: float) -> JSON:
    def reached() -> JSON | None:
        run = get_run(cluster, namespace, name)
        status = run.get("status") or {}
        if status.get("phase") == "Failed" and phase != "Failed":
            raise AssertionError(f"the run failed: {json.dumps(status.get('conditions'), indent=1)}")
        return run if status.get("phase") == phase else None

    return cluster.wait_for(f"run {name} to reach {phase}", reached, timeout=timeout, interval=1.0)


def jobs(cluster: Cluster, namespace: str) -> dict[str, JSON]:
    items = cluster.api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    return {job["metadata"]["name"]: job for job in items}


def pods_of(cluster: Cluster, namespace: str, job: str) -> list[JSON]:
    selector = {"labelSelector": f"batch.kubernetes.io/job-name={job}"}
    pods = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods", params=selector)["items"]
    return sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"])


def running_pod(cluster: Cluster, namespace: str, job: str) -> JSON | None:
    for pod in pods_of(cluster, namespace, job):
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if statuses and "running" in (statuses[0].get("state") or {}):
            return pod
    return None
