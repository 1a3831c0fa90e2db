"""Kueue for real: a TarotRun's Jobs admitted by Kueue's own controller, a 2-pod phase as one gang.

Kueue's manager (built from its Go module by hack/build-kueue.sh) runs as a host process against the
local control plane (hack/pytest_kueue.py), beside `tarot operator run`. Nothing here plays Kueue: the
test creates a ResourceFlavor, a ClusterQueue and a LocalQueue as a cluster admin would, and a TarotRun
that names the LocalQueue (spec.resources.kueueQueue) with `resources.nodes: 2`. The operator creates
each stage Job suspended and labelled with the queue; Kueue makes a Workload of it and, when the
ClusterQueue's quota allows, admits it and unsuspends the Job (the Job's managedFields name Kueue as the
writer of spec.suspend). The data and probe Jobs (one pod of 500m CPU each) fit the quota of 750m and run
for real; the train phase (an Indexed Job, parallelism 2, 2 x 500m) is ONE Workload with a pod set of
count 2 that the 750m cannot hold: it stays pending and suspended, no pod of it starts (gang: not 1 of 2).
Once the quota is raised to 1 CPU Kueue admits both pods at once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from local_processes import OperatorProcess
from operator_helpers import running_operator
from pod_runner.kube_api import JSON, ApiError
from pytest_cluster import Cluster
from pytest_kueue import KUEUE_API, QUEUE_LABEL, Kueue, running_kueue

pytestmark = pytest.mark.cluster

RUNS = "/apis/tarot.dev/v1alpha1/namespaces/{ns}/tarotruns"
CPU_PER_POD = "500m"
SMALL_QUOTA = "750m"  # one stage pod fits, the 2-pod train phase does not
GANG_QUOTA = "1"  # both train pods
SPEC: JSON = {
    "model": {"name": "tiny", "dtype": "float32"},
    "probe": {"problems": 2, "samples": 1, "maxNewTokens": 32},
    "training": {"maxSteps": 2, "numGenerations": 4, "perDeviceTrainBatchSize": 4, "maxRetries": 0},
    "evaluation": {"problems": 2, "maxNewTokens": 32},
    "resources": {"cpu": CPU_PER_POD, "memory": "1Gi", "nodes": 2},
    "storage": {"size": "1Gi"},
}


@pytest.fixture(scope="module")
def kueue(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kueue]:
    workdir = tmp_path_factory.mktemp("kueue")
    with running_kueue(cluster, workdir) as process:
        yield process
        print(f"kueue log ({process.log}):\n{process.log_tail(60)}")


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as process:
        yield process


def _cq_resources(cpu: str) -> list[JSON]:
    return [
        {
            "coveredResources": ["cpu", "memory"],
            "flavors": [
                {
                    "name": "default",
                    "resources": [
                        {"name": "cpu", "nominalQuota": cpu},
                        {"name": "memory", "nominalQuota": "8Gi"},
                    ],
                }
            ],
        }
    ]


def _gone(cluster: Cluster, path: str) -> bool:
    return cluster.api.get_or_none(path) is None


def _delete_and_wait(cluster: Cluster, path: str, timeout: float = 60) -> None:
    """Deletes while Kueue still runs (it holds finalizers on queues and Workloads); a finalizer still
    there after `timeout` is removed so that no stuck object outlives the test."""
    with contextlib.suppress(ApiError):
        cluster.api.delete(path)
    try:
        cluster.wait_for(f"{path} to be deleted", lambda: _gone(cluster, path), timeout=timeout)
    except AssertionError:
        with contextlib.suppress(ApiError):
            cluster.api.merge_patch(path, {"metadata": {"finalizers": None}})
        raise


@pytest.fixture
def queue(cluster: Cluster, namespace: str, kueue: Kueue) -> Iterator[str]:
    """A LocalQueue in the test's namespace, on a ClusterQueue of SMALL_QUOTA CPU (ResourceFlavor
    `default`); yields the ClusterQueue's name. Torn down, Jobs first, while Kueue still runs."""
    cq_name = f"cq-{namespace}"[:63]
    flavor = f"{KUEUE_API}/resourceflavors/default"
    if cluster.api.get_or_none(flavor) is None:
        cluster.api.create(
            f"{KUEUE_API}/resourceflavors",
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ResourceFlavor",
                "metadata": {"name": "default"},
            },
        )
    selector = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    cluster.api.create(
        f"{KUEUE_API}/clusterqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": cq_name},
            "spec": {"namespaceSelector": selector, "resourceGroups": _cq_resources(SMALL_QUOTA)},
        },
    )
    cluster.api.create(
        f"{KUEUE_API}/namespaces/{namespace}/localqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "team-a"},
            "spec": {"clusterQueue": cq_name},
        },
    )
    try:
        yield cq_name
    finally:
        for run in cluster.api.get(RUNS.format(ns=namespace))["items"]:
            _delete_and_wait(cluster, f"{RUNS.format(ns=namespace)}/{run['metadata']['name']}", timeout=90)
        jobs, workloads = (
            f"/apis/batch/v1/namespaces/{namespace}/jobs",
            f"{KUEUE_API}/namespaces/{namespace}/workloads",
        )
        for path in (jobs, workloads):
            for item in cluster.api.get(path)["items"]:
                _delete_and_wait(cluster, f"{path}/{item['metadata']['name']}")
        _delete_and_wait(cluster, f"{KUEUE_API}/namespaces/{namespace}/localqueues/team-a")
        _delete_and_wait(cluster, f"{KUEUE_API}/clusterqueues/{cq_name}")
        _delete_and_wait(cluster, flavor)


def job(cluster: Cluster, namespace: str, name: str) -> JSON | None:
    return cluster.api.get_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")


def workloads_of(cluster: Cluster, namespace: str, job_name: str) -> list[JSON]:
    items = cluster.api.get(f"{KUEUE_API}/namespaces/{namespace}/workloads")["items"]
    return [
        w
        for w in items
        if any(o["kind"] == "Job" and o["name"] == job_name for o in w["metadata"].get("ownerReferences", []))
    ]


def wl_condition(workload: JSON, type_: str) -> JSON | None:
    found = [c for c in (workload.get("status") or {}).get("conditions") or [] if c["type"] == type_]
    return found[0] if found else None


def pods_of(cluster: Cluster, namespace: str, job_name: str) -> list[JSON]:
    pods = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    return [p for p in pods if p["metadata"].get("labels", {}).get("job-name") == job_name]


def suspend_writer(job_obj: JSON) -> str:
    """The field manager that last set the Job's spec.suspend (the API server records it)."""
    for entry in job_obj["metadata"].get("managedFields") or []:
        if "f:suspend" in json.dumps((entry.get("fieldsV1") or {}).get("f:spec", {})):
            return str(entry["manager"])
    return ""


def admitted_by_kueue(cluster: Cluster, namespace: str, job_name: str, timeout: float) -> JSON:
    """Waits for Kueue to admit the Job's one Workload and unsuspend the Job; returns the Workload."""

    def probe() -> Any:
        found = workloads_of(cluster, namespace, job_name)
        current = job(cluster, namespace, job_name)
        if len(found) == 1 and current is not None and current["spec"].get("suspend") is False:
            admitted = wl_condition(found[0], "Admitted")
            return admitted and admitted["status"] == "True" and found[0]
        return None

    workload = cluster.wait_for(f"Kueue to admit {job_name}", probe, timeout=timeout)
    current = job(cluster, namespace, job_name)
    assert current is not None
    assert suspend_writer(current) == "kueue", current["metadata"].get("managedFields")
    return dict(workload)


def test_kueue_admits_the_runs_jobs_and_the_two_pod_phase_as_one_gang(
    cluster: Cluster, namespace: str, kueue: Kueue, queue: str, operator: OperatorProcess
) -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["resources"]["kueueQueue"] = "team-a"
    cluster.api.create(
        RUNS.format(ns=namespace),
        {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": "gang"}, "spec": spec},
    )

    # The data Job: created suspended by the operator, admitted and started by Kueue.
    data = cluster.wait_for("the data Job", lambda: job(cluster, namespace, "gang-data"), timeout=120)
    assert data["metadata"]["labels"][QUEUE_LABEL] == "team-a"
    workload = admitted_by_kueue(cluster, namespace, "gang-data", timeout=120)
    [pod_set] = workload["spec"]["podSets"]
    assert pod_set["count"] == 1
    assert workload["status"]["admission"]["clusterQueue"] == queue

    # The probe Job, after the data Job ran for real: admitted the same way.
    cluster.wait_for("the probe Job", lambda: job(cluster, namespace, "gang-probe"), timeout=240)
    admitted_by_kueue(cluster, namespace, "gang-probe", timeout=120)

    # The train phase: one Indexed Job of 2 pods, one Workload of count 2, too large for the quota.
    train = cluster.wait_for("the train Job", lambda: job(cluster, namespace, "gang-train-0"), timeout=600)
    assert (train["spec"]["parallelism"], train["spec"]["completionMode"]) == (2, "Indexed")
    assert train["spec"]["suspend"] is True and train["metadata"]["labels"][QUEUE_LABEL] == "team-a"

    def pending() -> Any:
        found = workloads_of(cluster, namespace, "gang-train-0")
        reserved = wl_condition(found[0], "QuotaReserved") if len(found) == 1 else None
        return reserved and reserved["status"] == "False" and found[0]

    workload = cluster.wait_for("the train Workload to be pending", pending, timeout=60)
    [pod_set] = workload["spec"]["podSets"]
    assert pod_set["count"] == 2, pod_set
    reason = wl_condition(workload, "QuotaReserved")
    # Kueue weighs the pod set as a whole: 2 x 500m = 1 CPU against 750m (one pod alone would fit).
    assert reason is not None and "insufficient quota for cpu" in reason["message"], reason
    assert "request (1)" in reason["message"] and "(750m)" in reason["message"], reason
    admitted = wl_condition(workload, "Admitted")
    assert admitted is None or admitted["status"] == "False", admitted
    # Not 1 of 2: for a while, the Job stays suspended and no pod of it exists.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        train = job(cluster, namespace, "gang-train-0")
        assert train is not None and train["spec"]["suspend"] is True
        assert pods_of(cluster, namespace, "gang-train-0") == []
        time.sleep(0.5)
    cluster.wait_for(
        "the ClusterQueue to count it pending, nothing admitted",
        lambda: (
            (s := cluster.api.get(f"{KUEUE_API}/clusterqueues/{queue}").get("status") or {})
            and (s.get("pendingWorkloads"), s.get("admittedWorkloads")) == (1, 0)
        ),
        timeout=30,
    )

    # The admin raises the quota to 2 pods' worth: Kueue admits the whole gang at once.
    cluster.api.merge_patch(
        f"{KUEUE_API}/clusterqueues/{queue}", {"spec": {"resourceGroups": _cq_resources(GANG_QUOTA)}}
    )
    workload = admitted_by_kueue(cluster, namespace, "gang-train-0", timeout=60)
    assert len(workloads_of(cluster, namespace, "gang-train-0")) == 1, "one Workload for the whole phase"
    [assignment] = workload["status"]["admission"]["podSetAssignments"]
    assert assignment["count"] == 2 and assignment["resourceUsage"]["cpu"] == "1", assignment
    pods = cluster.wait_for(
        "both train pods", lambda: (p := pods_of(cluster, namespace, "gang-train-0")) and len(p) >= 2 and p
    )
    indexes = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods}
    assert indexes == {"0", "1"}
    assert kueue.alive(), kueue.log_tail()
