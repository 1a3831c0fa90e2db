"""Real Jobs on the local control plane: the Job controller creates pods, the scheduler places them on
kwok nodes, the pod runner runs them as local processes and reports the outcome back."""

from __future__ import annotations

import pytest
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster

pytestmark = pytest.mark.cluster


def _job(name: str, code: str, backoff_limit: int = 0) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "python:3.11-slim", "command": ["python3", "-c", code]}
                    ],
                }
            },
        },
    }


def _condition(job: JSON, kind: str) -> JSON | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition["type"] == kind and condition["status"] == "True":
            return condition
    return None


def _pods(cluster: Cluster, namespace: str, job: str) -> list[JSON]:
    selector = {"labelSelector": f"job-name={job}"}
    return list(cluster.api.get(f"/api/v1/namespaces/{namespace}/pods", params=selector)["items"])


def test_job_runs_its_command_and_logs_show_the_output(cluster: Cluster, namespace: str) -> None:
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    cluster.api.create(jobs, _job("answer", "print(6*7)"))

    done = cluster.wait_for(
        "the Job to complete", lambda: _condition(cluster.api.get(f"{jobs}/answer"), "Complete"), timeout=90
    )
    assert done["type"] == "Complete"
    job = cluster.api.get(f"{jobs}/answer")
    assert job["status"]["succeeded"] == 1 and not job["status"].get("failed")

    [pod] = _pods(cluster, namespace, "answer")
    assert pod["status"]["phase"] == "Succeeded"
    [status] = pod["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["containerID"].startswith("local://"), "the pod runner, not kwok, ran this pod"
    assert pod["spec"]["nodeName"] == "cpu-node-0"  # the GPU nodes are tainted

    logs = cluster.kubectl("logs", "-n", namespace, "job/answer")
    assert logs.stdout == "42\n"


def test_failing_pod_makes_the_job_retry_up_to_its_backoff_limit(cluster: Cluster, namespace: str) -> None:
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    code = "import sys; print('attempt failed', file=sys.stderr); sys.exit(3)"
    cluster.api.create(jobs, _job("flaky", code, backoff_limit=2))

    # The Job controller waits 10 s, then 20 s between attempts (its own exponential backoff).
    failed = cluster.wait_for(
        "the Job to fail",
        lambda: _condition(cluster.api.get(f"{jobs}/flaky"), "Failed"),
        timeout=150,
        interval=0.5,
    )
    assert failed["reason"] == "BackoffLimitExceeded"
    job = cluster.api.get(f"{jobs}/flaky")
    assert job["status"]["failed"] == 3 and not job["status"].get("succeeded")

    pods = _pods(cluster, namespace, "flaky")
    assert len(pods) == 3  # the first attempt and two retries, each a new pod
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    first = min(pods, key=lambda p: p["metadata"]["creationTimestamp"])
    logs = cluster.kubectl("logs", "-n", namespace, first["metadata"]["name"])
    assert logs.stdout == "attempt failed\n"


def test_pod_failure_policy_sees_the_real_exit_code(cluster: Cluster, namespace: str) -> None:
    """A podFailurePolicy rule on exit code 42 fails the Job at once: exit codes reach the controller."""
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    job = _job("fatal", "raise SystemExit(42)", backoff_limit=5)
    job["spec"]["podFailurePolicy"] = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        ]
    }
    cluster.api.create(jobs, job)
    failed = cluster.wait_for(
        "the Job to fail", lambda: _condition(cluster.api.get(f"{jobs}/fatal"), "Failed"), timeout=60
    )
    assert failed["reason"] == "PodFailurePolicy"
    assert len(_pods(cluster, namespace, "fatal")) == 1
