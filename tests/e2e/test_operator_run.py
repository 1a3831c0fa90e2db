"""A TarotRun on the real local control plane, driven by `tarot operator run`, end to end.

The pod runner (hack/pod_runner) runs every Job pod as a local process, so the real `tarot data
prepare / probe / train / evaluate` commands run on the tiny model against the real API server, Job
controller and garbage collector. The operator runs with `--job-sandbox in-process`: these pods are
local processes without pod networking, so Jobs cannot reach a sandbox Service; each runs the
sandbox executor itself (the Deployment, Service and NetworkPolicy are still created and checked).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_processes import OperatorProcess
from operator_helpers import RUNS, jobs, pods_of, run_manifest, running_operator, running_pod, wait_phase
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster

from tarot_jobs.pipeline.training.checkpoints import complete_checkpoints

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator"), "--resync-seconds", "30") as process:
        yield process


def workspace_dir(cluster: Cluster, namespace: str, run: str) -> Path:
    claim = cluster.api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{run}-workspace")
    volume = cluster.api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
    return Path(volume["spec"]["hostPath"]["path"])


def checkpoints(workspace: Path, phase: int) -> list[str]:
    """The phase's complete checkpoints (published with their marker): what a resume can use."""
    return [p.name for p in complete_checkpoints(workspace / "train" / f"phase-{phase}")]


def events(cluster: Cluster, namespace: str, name: str) -> list[JSON]:
    selector = {"fieldSelector": f"involvedObject.kind=TarotRun,involvedObject.name={name}"}
    return list(cluster.api.get(f"/api/v1/namespaces/{namespace}/events", params=selector)["items"])


def condition(run: JSON, type_: str) -> JSON:
    found = [c for c in (run.get("status") or {}).get("conditions") or [] if c["type"] == type_]
    assert found, f"no {type_} condition in {json.dumps(run.get('status'), indent=1)}"
    return dict(found[0])


def one_phase_run(name: str) -> JSON:
    """A run of one phase of 6 steps over every tier (a checkpoint after each), no baseline evaluation:
    long enough to stop its phase mid-way."""
    return run_manifest(
        name,
        curriculum__phases=[
            {"start": 0.0, "end": 1.0, "tiers": ["basic", "intermediate", "complex", "edge"]}
        ],
        training__maxSteps=6,
        evaluation__baseline=False,
    )


def test_tiny_run_succeeds_although_the_operator_is_killed_mid_phase(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    started = time.monotonic()
    cluster.api.create(RUNS.format(ns=namespace), run_manifest("tiny"))
    # Kill the operator while phase 0 trains: its Job exists and its pod runs.
    cluster.wait_for(
        "the phase-0 pod to run", lambda: running_pod(cluster, namespace, "tiny-train-0"), timeout=300
    )
    before = {name: job["metadata"]["uid"] for name, job in jobs(cluster, namespace).items()}
    operator.kill()
    operator.start()  # a new process: it must adopt, not duplicate

    run = wait_phase(cluster, namespace, "tiny", "Succeeded", timeout=600)
    print(f"tiny run: Succeeded after {time.monotonic() - started:.0f} s")
    after = jobs(cluster, namespace)
    for name, uid in before.items():
        assert after[name]["metadata"]["uid"] == uid, f"Job {name} was created again after the restart"
    expected = ["data", "probe", "train-0", "train-1", "evaluate-before", "evaluate-after"]
    assert sorted(after) == sorted(f"tiny-{suffix}" for suffix in expected)
    for name, job in after.items():
        assert job["status"].get("succeeded") == 1 and not job["status"].get("failed"), name
        assert len(pods_of(cluster, namespace, name)) == 1, f"{name} ran more than one pod"

    status = run["status"]
    assert status["observedGeneration"] == run["metadata"]["generation"]
    assert status["startTime"] and status["completionTime"]
    assert condition(run, "Complete")["status"] == "True"
    assert status["policy"]["name"] == "custom"
    assert 0.0 <= status["capability"]["score"] <= 1.0
    phases = status["curriculum"]["phases"]
    assert [(p["index"], p["steps"], p["completedSteps"]) for p in phases] == [(0, 2, 2), (1, 2, 2)]
    assert all(p["startTime"] and p["finishTime"] for p in phases)
    assert status["progress"] == "2/2 100%"
    assert set(status["evaluation"]) == {"before", "after"}
    assert "overall" in status["evaluation"]["after"]["passAtOne"]
    # The train pods reported live progress through their own, narrow identity.
    live = status["curriculum"]["live"]
    assert (live["phase"], live["step"], live["total"]) == (1, 2, 2)

    role = cluster.api.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/tiny-progress")
    assert role["rules"] == [
        {
            "apiGroups": ["tarot.dev"],
            "resources": ["tarotruns/status"],
            "resourceNames": ["tiny"],
            "verbs": ["get", "patch"],
        }
    ]

    # Events are posted before the status that records them: at least once, across the restart too.
    posted = {(e["reason"], e["message"].split(" [")[0]) for e in events(cluster, namespace, "tiny")}
    for expected_event in [
        ("Probed", "capability score"),
        ("PhaseStarted", "training phase 1/2"),
        ("PhaseStarted", "training phase 2/2"),
        ("Evaluated", "held-out pass@1 overall"),
    ]:
        assert any(r == expected_event[0] and m.startswith(expected_event[1]) for r, m in posted), posted
    assert {"PolicySelected", "Training", "Evaluating", "Succeeded"} <= {r for r, _ in posted}

    metrics = operator.metrics()
    assert f'tarot_run_phase{{namespace="{namespace}",phase="Succeeded",run="tiny"}} 1.0' in metrics
    assert f'tarot_run_steps_completed{{namespace="{namespace}",run="tiny"}} 4.0' in metrics


def test_a_killed_phase_pod_is_retried_from_its_newest_checkpoint(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    # One phase of 6 steps, a checkpoint after each: the retry must not start over.
    manifest = one_phase_run("retry")
    cluster.api.create(RUNS.format(ns=namespace), manifest)
    first = cluster.wait_for(
        "the phase-0 pod to run", lambda: running_pod(cluster, namespace, "retry-train-0"), timeout=300
    )
    workspace = workspace_dir(cluster, namespace, "retry")
    cluster.wait_for("a checkpoint of phase 0", lambda: checkpoints(workspace, 0), timeout=300, interval=0.5)
    pid = int(first["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))
    os.kill(pid, signal.SIGKILL)  # the stage process dies (OOM-killer style): exit 137

    run = wait_phase(cluster, namespace, "retry", "Succeeded", timeout=600)
    job = jobs(cluster, namespace)["retry-train-0"]
    assert (job["status"]["failed"], job["status"]["succeeded"]) == (1, 1)
    killed, retried = pods_of(cluster, namespace, "retry-train-0")
    assert killed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    log = cluster.kubectl("logs", "-n", namespace, retried["metadata"]["name"]).stdout
    assert "resuming from its own checkpoint" in log, log[-2000:]
    assert run["status"]["curriculum"]["phases"][0]["completedSteps"] == 6


def test_suspend_stops_the_phase_job_and_resume_continues_from_the_checkpoint(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    manifest = one_phase_run("pause")
    path = f"{RUNS.format(ns=namespace)}/pause"
    cluster.api.create(RUNS.format(ns=namespace), manifest)
    cluster.wait_for(
        "the phase-0 pod to run", lambda: running_pod(cluster, namespace, "pause-train-0"), timeout=300
    )
    workspace = workspace_dir(cluster, namespace, "pause")
    cluster.wait_for("a checkpoint of phase 0", lambda: checkpoints(workspace, 0), timeout=300, interval=0.5)

    cluster.api.merge_patch(path, {"spec": {"suspend": True}})
    run = wait_phase(cluster, namespace, "pause", "Suspended", timeout=60)
    assert condition(run, "Suspended")["status"] == "True"
    cluster.wait_for(
        "the phase Job to be suspended with no pod left",
        lambda: (
            jobs(cluster, namespace)["pause-train-0"]["spec"]["suspend"]
            and not jobs(cluster, namespace)["pause-train-0"]["status"].get("active")
        ),
        timeout=60,
    )
    kept = checkpoints(workspace, 0)
    assert kept, "suspending removed the checkpoints"

    cluster.api.merge_patch(path, {"spec": {"suspend": False}})
    run = wait_phase(cluster, namespace, "pause", "Succeeded", timeout=600)
    assert condition(run, "Suspended")["status"] == "False"
    last = pods_of(cluster, namespace, "pause-train-0")[-1]
    log = cluster.kubectl("logs", "-n", namespace, last["metadata"]["name"]).stdout
    assert "resuming from its own checkpoint" in log, log[-2000:]
    assert not jobs(cluster, namespace)["pause-train-0"]["status"].get("failed")
