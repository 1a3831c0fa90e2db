"""The operator against the real API server: the children it makes, Kueue, deletion, bad input, RBAC.

Runs here mostly name a Kueue queue, so their Jobs are created suspended and no training runs: the
test plays Kueue itself where a Job should start (this cluster has no Kueue installed).
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes.client import Configuration
from kubernetes.config import kube_config
from local_processes import OperatorProcess
from operator_helpers import running_operator
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster
from tarot_operator.access import progress_account, progress_role, progress_role_binding

from tarot_jobs.lifecycle.progress_report import ProgressReporter

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
RUNS = "/apis/tarot.dev/v1alpha1/namespaces/{ns}/tarotruns"
SPEC: JSON = {
    "model": {"name": "tiny", "dtype": "float32"},
    "probe": {"problems": 2, "samples": 1, "maxNewTokens": 32},
    "training": {"maxSteps": 2, "numGenerations": 4, "perDeviceTrainBatchSize": 4, "maxRetries": 2},
    "evaluation": {"problems": 2, "maxNewTokens": 32},
    "resources": {"cpu": "500m", "memory": "1Gi", "kueueQueue": "team-a", "kueuePriorityClass": "high"},
    "storage": {"size": "1Gi"},
}


def manifest(name: str, **sections: JSON) -> JSON:
    spec = json.loads(json.dumps(SPEC))
    for section, values in sections.items():
        spec[section] = {**spec.get(section, {}), **values}
    return {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as process:
        yield process


def run_path(namespace: str, name: str = "") -> str:
    return f"{RUNS.format(ns=namespace)}/{name}".rstrip("/")


def status(cluster: Cluster, namespace: str, name: str) -> JSON:
    return cluster.api.get(run_path(namespace, name)).get("status") or {}


def condition(cluster: Cluster, namespace: str, name: str, type_: str) -> JSON | None:
    found = [c for c in status(cluster, namespace, name).get("conditions") or [] if c["type"] == type_]
    return found[0] if found else None


def job(cluster: Cluster, namespace: str, name: str) -> JSON | None:
    return cluster.api.get_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")


def wait_job(cluster: Cluster, namespace: str, name: str, timeout: float = 60) -> JSON:
    return cluster.wait_for(f"Job {name}", lambda: job(cluster, namespace, name), timeout=timeout)


def set_suspend(cluster: Cluster, namespace: str, name: str, suspend: bool) -> None:
    cluster.api.merge_patch(
        f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", {"spec": {"suspend": suspend}}
    )


def reconciles(operator: OperatorProcess) -> float:
    match = re.search(
        r'^tarot_operator_reconciles_total\{outcome="success"\} (\S+)$', operator.metrics(), re.M
    )
    return float(match.group(1)) if match else 0.0


def child_paths(namespace: str, run: str) -> dict[str, str]:
    return {
        "PersistentVolumeClaim": f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{run}-workspace",
        "ConfigMap": f"/api/v1/namespaces/{namespace}/configmaps/{run}-config",
        "Deployment": f"/apis/apps/v1/namespaces/{namespace}/deployments/{run}-sandbox",
        "Service": f"/api/v1/namespaces/{namespace}/services/{run}-sandbox",
        "NetworkPolicy": f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{run}-sandbox",
        "Job": f"/apis/batch/v1/namespaces/{namespace}/jobs/{run}-data",
    }


def gone(cluster: Cluster, path: str) -> bool:
    return cluster.api.get_or_none(path) is None


def test_children_are_owned_labelled_and_locked_down(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    created = cluster.api.create(run_path(namespace), manifest("kids"))
    data = wait_job(cluster, namespace, "kids-data")
    uid = created["metadata"]["uid"]
    for kind, path in child_paths(namespace, "kids").items():
        child = cluster.api.get(path)
        [owner] = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "TarotRun",
            "kids",
            uid,
            True,
        )
        labels = child["metadata"]["labels"]
        assert labels["tarot.dev/run"] == "kids" and labels["app.kubernetes.io/instance"] == "kids", kind
        assert labels["app.kubernetes.io/managed-by"] == "tarot-operator", kind
        assert labels["app.kubernetes.io/name"] == "tarot" and labels["app.kubernetes.io/component"], kind

    config = cluster.api.get(child_paths(namespace, "kids")["ConfigMap"])
    assert "numGenerations: 4" in config["data"]["spec.yaml"]
    deployment = cluster.api.get(child_paths(namespace, "kids")["Deployment"])
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [sandbox] = pod["containers"]
    assert sandbox["securityContext"]["readOnlyRootFilesystem"] is True
    assert sandbox["securityContext"]["allowPrivilegeEscalation"] is False
    assert sandbox["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert sandbox["resources"]["limits"]["cpu"] and sandbox["resources"]["limits"]["memory"]
    netpol = cluster.api.get(child_paths(namespace, "kids")["NetworkPolicy"])["spec"]
    assert netpol["policyTypes"] == ["Ingress", "Egress"] and not netpol.get("egress")
    assert netpol["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"tarot.dev/run": "kids"}}}]

    spec = data["spec"]
    assert spec["backoffLimit"] == 2  # training.maxRetries
    assert spec["podFailurePolicy"]["rules"][0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "main", "operator": "In", "values": [2]},
    }
    [container] = spec["template"]["spec"]["containers"]
    assert {"name": "TAROT_RESULT_FILE", "value": "/dev/termination-log"} in container["env"]
    assert container["command"][:3] == ["tarot", "data", "prepare"]
    assert spec["template"]["spec"]["automountServiceAccountToken"] is False


def test_kueue_admits_the_jobs_and_a_requeue_is_not_a_failure(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    def queued_condition(state: str, what: str) -> JSON:
        """The run's Queued condition, once its status is `state` (60 s at most)."""
        return cluster.wait_for(
            what,
            lambda: (c := condition(cluster, namespace, "queued", "Queued")) and c["status"] == state and c,
            timeout=60,
        )

    cluster.api.create(run_path(namespace), manifest("queued"))
    data = wait_job(cluster, namespace, "queued-data")
    labels = data["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "team-a"
    assert labels["kueue.x-k8s.io/priority-class"] == "high"
    assert data["spec"]["suspend"] is True, "a Kueue Job must be created suspended"
    queued = cluster.wait_for(
        "the Queued condition", lambda: condition(cluster, namespace, "queued", "Queued"), timeout=30
    )
    assert (queued["status"], queued["reason"]) == ("True", "WaitingForAdmission")

    # The operator reconciles the run again (woken by a label) and still leaves the Job to Kueue.
    seen = reconciles(operator)
    cluster.api.merge_patch(run_path(namespace, "queued"), {"metadata": {"labels": {"poke": "1"}}})
    cluster.wait_for("another reconciliation", lambda: reconciles(operator) > seen, timeout=30)
    assert job(cluster, namespace, "queued-data")["spec"]["suspend"] is True  # type: ignore[index]

    # Play Kueue: admit the data Job; it runs for real and the run moves on to the probe.
    set_suspend(cluster, namespace, "queued-data", False)
    probe = wait_job(cluster, namespace, "queued-probe", timeout=180)
    assert (
        probe["spec"]["suspend"] is True
        and probe["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    )
    set_suspend(cluster, namespace, "queued-probe", False)
    admitted = queued_condition("False", "the probe to be admitted")
    assert admitted["reason"] == "Admitted"

    # Kueue preempts it: suspended again. That is queueing, not a failure.
    set_suspend(cluster, namespace, "queued-probe", True)
    requeued = queued_condition("True", "the Requeued condition")
    assert requeued["reason"] == "Requeued"
    current = status(cluster, namespace, "queued")
    assert current["phase"] == "Probing"
    assert condition(cluster, namespace, "queued", "Failed") is None


@pytest.mark.parametrize("retain", [False, True], ids=["default", "retainOnDelete"])
def test_deleting_a_run_removes_its_children(
    cluster: Cluster, namespace: str, operator: OperatorProcess, retain: bool
) -> None:
    cluster.api.create(run_path(namespace), manifest("gone", storage={"retainOnDelete": retain}))
    wait_job(cluster, namespace, "gone-data")
    paths = child_paths(namespace, "gone")
    claim = paths.pop("PersistentVolumeClaim")
    cluster.api.delete(run_path(namespace, "gone"))

    cluster.wait_for(
        "the run to be deleted (finalizer released)",
        lambda: cluster.api.get_or_none(run_path(namespace, "gone")) is None,
        timeout=60,
    )
    for kind, path in paths.items():
        cluster.wait_for(f"the {kind} to be garbage-collected", lambda p=path: gone(cluster, p), timeout=90)
    if retain:
        kept = cluster.api.get(claim)
        assert not kept["metadata"].get("ownerReferences"), "a retained PVC must not be owned by the run"
        assert kept["metadata"].get("deletionTimestamp") is None
    else:
        cluster.wait_for("the PVC to be garbage-collected", lambda: gone(cluster, claim), timeout=90)


def test_bad_input_fails_the_run_at_once_naming_the_field(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    bad = manifest("bad", dataset={"source": "/nonexistent/problems.jsonl"})
    del bad["spec"]["resources"]["kueueQueue"], bad["spec"]["resources"]["kueuePriorityClass"]
    cluster.api.create(run_path(namespace), bad)
    failed = cluster.wait_for(
        "the run to fail", lambda: status(cluster, namespace, "bad").get("phase") == "Failed", timeout=180
    )
    assert failed
    reason = condition(cluster, namespace, "bad", "Failed")
    assert reason is not None and reason["reason"] == "BadInput", reason
    assert "dataset.source" in reason["message"] and "/nonexistent/problems.jsonl" in reason["message"]
    data = job(cluster, namespace, "bad-data")
    assert data is not None and data["spec"]["backoffLimit"] == 2
    assert data["status"]["failed"] == 1, "a bad-input exit must not be retried"
    assert [c["reason"] for c in data["status"]["conditions"] if c["type"] == "Failed"] == [
        "PodFailurePolicy"
    ]


def _server_and_ca(cluster: Cluster) -> tuple[str, str]:
    cfg = Configuration()
    kube_config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
    return cfg.host.rstrip("/"), cfg.ssl_ca_cert


def test_progress_identity_may_patch_only_its_own_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    own = cluster.api.create(run_path(namespace), manifest("own"))
    cluster.api.create(run_path(namespace), manifest("other"))
    for obj, plural in (
        (progress_account(own), "/api/v1/namespaces/{ns}/serviceaccounts"),
        (progress_role(own), "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles"),
        (progress_role_binding(own), "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
    ):
        cluster.api.create(plural.format(ns=namespace), obj)
    token = cluster.api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/own-progress/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    )["status"]["token"]
    token_file = tmp_path / "token"
    token_file.write_text(token)
    server, ca = _server_and_ca(cluster)
    record: dict[str, Any] = {
        "phase": 0,
        "phase_step": 1,
        "phase_steps": 4,
        "reward": 0.5,
        "seconds": {"step": 2.0},
    }

    # RBAC takes effect asynchronously after the binding is created: retry until it is allowed.
    mine = ProgressReporter(server, namespace, "own", str(token_file), ca, clock=time.monotonic)
    cluster.wait_for("the Role to take effect", lambda: mine.report({**record, "phase_step": 4}), timeout=30)
    live = status(cluster, namespace, "own")["curriculum"]["live"]
    assert (live["phase"], live["step"], live["total"], live["meanReward"]) == (0, 4, 4, 0.5)

    theirs = ProgressReporter(server, namespace, "other", str(token_file), ca)
    assert theirs.report({**record, "phase_step": 4}) is False
    assert "live" not in (status(cluster, namespace, "other").get("curriculum") or {})
    # The same token cannot even read the run itself: the Role names only the status subresource.
    response = httpx.get(
        f"{server}{run_path(namespace, 'own')}",
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=ca),
    )
    assert response.status_code == 403
