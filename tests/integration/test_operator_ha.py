"""Two operator processes, one Lease: the leader is SIGKILLed mid-run and the standby takes over.

Both run `tarot operator run --leader-election-lease <ns>/tarot-operator` against the real API server
(processes, not pods: the chart's replicaCount 2 runs the same command in two pods). The run's data
Job is admitted (the test plays Kueue) and runs for real while the leader is killed; the standby must
take the Lease within the lease plus a retry, create the Job of a run that arrived meanwhile, adopt
the killed leader's Jobs without creating any again, and move the run on to its probe.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from operator_helpers import CRD
from pipeline_helpers import SHARED_MODEL_CACHE
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster
from tarot_operator.process import OperatorProcess, apply_crd

pytestmark = pytest.mark.cluster

RUNS = "/apis/tarot.dev/v1alpha1/namespaces/{ns}/tarotruns"
LEASE_S = 10  # the Lease: renewed every 1.3 s, given up by a leader that cannot renew for 6.7 s
# A standby takes the Lease once it has seen the record unchanged for LEASE_S (from its own last
# sighting: up to one retry after the leader's last renewal), plus its next retry (1.3-1.6 s).
TAKEOVER_BOUND_S = LEASE_S + 5
# ... and then starts kopf (its watches listed, every run's daemon started) before the first new Job.
FIRST_JOB_BOUND_S = TAKEOVER_BOUND_S + 15
SPEC: JSON = {
    "model": {"name": "tiny", "dtype": "float32"},
    "probe": {"problems": 2, "samples": 1, "maxNewTokens": 32},
    "training": {"maxSteps": 2, "numGenerations": 4, "perDeviceTrainBatchSize": 4, "maxRetries": 2},
    "evaluation": {"problems": 2, "maxNewTokens": 32},
    "resources": {"cpu": "500m", "memory": "1Gi", "kueueQueue": "team-a"},
    "storage": {"size": "1Gi"},
}


def manifest(name: str) -> JSON:
    return {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": name}, "spec": SPEC}


def job(cluster: Cluster, namespace: str, name: str) -> JSON | None:
    return cluster.api.get_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")


def holder(cluster: Cluster, namespace: str) -> str | None:
    lease = cluster.api.get_or_none(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/tarot-operator"
    )
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def identity(process: OperatorProcess) -> str:
    assert process.process is not None
    return f"{socket.gethostname()}-{process.process.pid}"


def test_the_standby_takes_over_when_the_leader_is_killed(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    apply_crd(cluster.kubectl_path, cluster.kubeconfig, CRD)
    args = (
        "--job-sandbox", "in-process", "--model-cache", str(SHARED_MODEL_CACHE),
        "--leader-election-lease", f"{namespace}/tarot-operator",
        "--leader-election-lease-seconds", str(LEASE_S),
        "--namespace", namespace,
    )  # fmt: skip
    leader = OperatorProcess(cluster.kubeconfig, tmp_path / "leader.log", *args)
    standby = OperatorProcess(cluster.kubeconfig, tmp_path / "standby.log", *args)
    runs = RUNS.format(ns=namespace)
    try:
        leader.start()
        standby.start()  # ready as a standby: it answers /readyz while it waits for the Lease
        assert holder(cluster, namespace) == identity(leader)

        cluster.api.create(runs, manifest("ha-1"))
        data = cluster.wait_for("ha-1-data", lambda: job(cluster, namespace, "ha-1-data"), timeout=60)
        assert "created Job" not in standby.log_file.read_text()  # the standby drove nothing
        # Play Kueue: the data stage runs for real (pod runner) while the leader dies.
        cluster.api.merge_patch(
            f"/apis/batch/v1/namespaces/{namespace}/jobs/ha-1-data", {"spec": {"suspend": False}}
        )
        leader.kill()
        killed = time.monotonic()
        cluster.api.create(runs, manifest("ha-2"))  # arrives while nobody leads

        cluster.wait_for(
            "the standby to hold the Lease",
            lambda: holder(cluster, namespace) == identity(standby),
            timeout=TAKEOVER_BOUND_S + 10,
        )
        takeover_s = time.monotonic() - killed
        cluster.wait_for(
            "ha-2-data", lambda: job(cluster, namespace, "ha-2-data"), timeout=FIRST_JOB_BOUND_S + 10
        )
        first_job_s = time.monotonic() - killed
        print(f"takeover {takeover_s:.1f} s, first Job of the new leader {first_job_s:.1f} s after the kill")
        assert takeover_s <= TAKEOVER_BOUND_S
        assert first_job_s <= FIRST_JOB_BOUND_S

        # The run goes on under the new leader: data finishes, the probe Job is created (suspended: Kueue).
        cluster.wait_for("ha-1-probe", lambda: job(cluster, namespace, "ha-1-probe"), timeout=180)
        after = job(cluster, namespace, "ha-1-data")
        assert after is not None and after["metadata"]["uid"] == data["metadata"]["uid"]  # adopted, not new
        names = sorted(
            j["metadata"]["name"]
            for j in cluster.api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
        )
        assert names == ["ha-1-data", "ha-1-probe", "ha-2-data"]
        created = [line for line in standby.log_file.read_text().splitlines() if "created Job" in line]
        assert sorted(line.rsplit("/", 1)[1].strip() for line in created) == ["ha-1-probe", "ha-2-data"], (
            created
        )
        status = cluster.api.get(f"{runs}/ha-1").get("status") or {}
        assert status.get("phase") == "Probing", json.dumps(status)[:2000]
    finally:
        try:
            # The runs' finalizers need the (new) leader to be released.
            for name in ("ha-1", "ha-2"):
                cluster.api.delete(f"{runs}/{name}")
            cluster.wait_for(
                "the runs to be released",
                lambda: not cluster.api.get(runs)["items"],
                timeout=60,
            )
        finally:
            leader.kill()
            standby.stop()
            print(f"leader log:\n{leader.log_tail(80)}\nstandby log:\n{standby.log_tail(120)}")
