"""Two operator processes, one Lease: the leader is SIGKILLed mid-phase, the standby finishes the run.

Both run `tarot operator run --leader-election-lease <ns>/tarot-operator` against the real API server
(processes, not pods: the chart's replicaCount 2 runs the same command in two pods), watching only the
test's namespace. The pod runner runs the Job pods as local processes. The leader is killed while the
run's first phase trains; the standby must take the Lease within the lease plus a retry, create the Job
of a run that arrived meanwhile, adopt the killed leader's Jobs without creating any again, and drive
the run to Succeeded.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from local_processes import OperatorProcess, apply_crd
from operator_helpers import CRD, RUNS, jobs, pods_of, run_manifest, running_pod, wait_phase
from pipeline_helpers import SHARED_MODEL_CACHE
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

LEASE_S = 10  # the Lease: renewed every 1.3 s, given up by a leader that cannot renew for 6.7 s
# A standby takes the Lease once it has seen the record unchanged for LEASE_S (from its own last
# sighting: up to one retry after the leader's last renewal), plus its next retry (1.3-1.6 s).
TAKEOVER_BOUND_S = LEASE_S + 5
# ... and then starts kopf (its watches listed, every run's daemon started) before the first new Job.
FIRST_JOB_BOUND_S = TAKEOVER_BOUND_S + 15


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


def created_jobs(process: OperatorProcess) -> list[str]:
    """The Jobs this operator's log says it created, in order."""
    lines = process.log_file.read_text().splitlines()
    return [line.rsplit("/", 1)[1].strip() for line in lines if "created Job" in line]


def test_the_standby_finishes_the_run_when_the_leader_is_killed_mid_phase(
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

        started = time.monotonic()
        cluster.api.create(runs, run_manifest("ha"))
        cluster.wait_for("the phase-0 pod to run", lambda: running_pod(cluster, namespace, "ha-train-0"), 300)
        assert created_jobs(standby) == []  # the standby drove nothing
        leader.kill()
        killed = time.monotonic()
        # Read after the kill: nobody creates a Job until the standby holds the Lease.
        before = {name: j["metadata"]["uid"] for name, j in jobs(cluster, namespace).items()}
        # Arrives while nobody leads; its Jobs stay suspended (queued for a Kueue that is not here).
        cluster.api.create(runs, run_manifest("late", resources__kueueQueue="team-a"))

        cluster.wait_for(
            "the standby to hold the Lease",
            lambda: holder(cluster, namespace) == identity(standby),
            timeout=TAKEOVER_BOUND_S + 10,
        )
        takeover_s = time.monotonic() - killed
        cluster.wait_for("late-data", lambda: job(cluster, namespace, "late-data"), FIRST_JOB_BOUND_S + 10)
        first_job_s = time.monotonic() - killed
        print(f"takeover {takeover_s:.1f} s, first Job of the new leader {first_job_s:.1f} s after the kill")
        assert takeover_s <= TAKEOVER_BOUND_S
        assert first_job_s <= FIRST_JOB_BOUND_S

        wait_phase(cluster, namespace, "ha", "Succeeded", timeout=600)
        print(f"run ha: Succeeded {time.monotonic() - started:.0f} s after its creation")
        after = jobs(cluster, namespace)
        for name, uid in before.items():
            assert after[name]["metadata"]["uid"] == uid, f"Job {name} was created again by the new leader"
        expected = ["data", "probe", "train-0", "train-1", "evaluate-before", "evaluate-after"]
        assert sorted(after) == sorted([f"ha-{suffix}" for suffix in expected] + ["late-data"])
        for name in (f"ha-{suffix}" for suffix in expected):
            assert after[name]["status"].get("succeeded") == 1 and not after[name]["status"].get("failed")
            assert len(pods_of(cluster, namespace, name)) == 1, f"{name} ran more than one pod"
        # Each Job created once: the standby created exactly those missing at the kill, and none twice.
        by_standby = created_jobs(standby)
        assert len(by_standby) == len(set(by_standby)), by_standby
        assert not set(by_standby) & set(before), (by_standby, sorted(before))
        assert set(before) | set(by_standby) == set(after), (by_standby, sorted(before))
        assert {"ha-train-1", "ha-evaluate-after", "late-data"} <= set(by_standby)
    finally:
        try:
            # The runs' finalizers need the (new) leader to be released.
            for name in ("ha", "late"):
                cluster.api.delete(f"{runs}/{name}")
            cluster.wait_for("the runs to be released", lambda: not cluster.api.get(runs)["items"], 60)
        finally:
            leader.kill()
            standby.stop()
            print(f"leader log:\n{leader.log_tail(80)}\nstandby log:\n{standby.log_tail(120)}")
