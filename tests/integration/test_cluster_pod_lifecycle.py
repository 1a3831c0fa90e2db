"""The pod runner as a kubelet over a pod's life: logs from the first moment, the pod's ServiceAccount
identity, termination messages, restarts with back-off and --previous logs, and a runner restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from pod_runner.kube_api import JSON
from pytest_cluster import CACHE, CLUSTER_SCRIPT, Cluster

pytestmark = pytest.mark.cluster


def _pod(name: str, command: list[str], **spec: object) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "tarot/jobs:dev", "command": command}],
            **spec,
        },
    }


def _status(cluster: Cluster, namespace: str, name: str) -> JSON:
    return cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/{name}").get("status") or {}


def _finished(cluster: Cluster, namespace: str, name: str) -> bool:
    return _status(cluster, namespace, name).get("phase") in ("Succeeded", "Failed")


def test_logs_are_served_the_moment_a_fast_pod_has_finished(cluster: Cluster, namespace: str) -> None:
    """kubectl logs right after completion, 20 times: never "no logs found", always the whole output."""
    for i in range(20):
        name = f"fast-{i}"
        cluster.api.create(f"/api/v1/namespaces/{namespace}/pods", _pod(name, ["echo", f"line {i}"]))
        cluster.wait_for(f"{name} to succeed", lambda n=name: _finished(cluster, namespace, n), interval=0.02)
        logs = cluster.kubectl("logs", "-n", namespace, name, check=False)
        assert (logs.returncode, logs.stdout, logs.stderr) == (0, f"line {i}\n", ""), f"read {i}"


LISTER = r"""
import json
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
config.load_config()  # in-cluster, else KUBECONFIG: what the runner hands over
core = client.CoreV1Api()
seen = {"pods": sorted(p.metadata.name for p in core.list_namespaced_pod(NAMESPACE).items)}
try:
    core.list_namespaced_secret(NAMESPACE)
    seen["secrets"] = 200
except ApiException as exc:
    seen["secrets"] = exc.status
print(json.dumps(seen))
"""


def test_the_process_acts_as_the_pods_service_account(cluster: Cluster, namespace: str) -> None:
    api, ns = cluster.api, f"/api/v1/namespaces/{namespace}"
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    api.create(
        f"{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "lister"}},
    )
    api.create(
        f"{rbac}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "list-pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
    )
    api.create(
        f"{rbac}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "lister"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "list-pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": namespace}],
        },
    )
    code = LISTER.replace("NAMESPACE", repr(namespace))
    api.create(f"{ns}/pods", _pod("lister", ["python3", "-c", code], serviceAccountName="lister"))
    cluster.wait_for("the lister to finish", lambda: _finished(cluster, namespace, "lister"), timeout=90)
    logs = cluster.kubectl("logs", "-n", namespace, "lister").stdout
    assert _status(cluster, namespace, "lister")["phase"] == "Succeeded", logs
    assert json.loads(logs) == {"pods": ["lister"], "secrets": 403}

    # automountServiceAccountToken: false on the pod: no identity reaches the process.
    blind = _pod(
        "blind",
        ["python3", "-c", "import os; print(sorted(k for k in os.environ if 'KUBECONFIG' in k))"],
        serviceAccountName="lister",
        automountServiceAccountToken=False,
    )
    api.create(f"{ns}/pods", blind)
    cluster.wait_for("the blind pod to finish", lambda: _finished(cluster, namespace, "blind"))
    assert cluster.kubectl("logs", "-n", namespace, "blind").stdout == "[]\n"


def test_the_termination_message_file_reaches_the_status(cluster: Cluster, namespace: str) -> None:
    """Written through $TAROT_RESULT_FILE (the contract's stage result), at a non-default path too."""
    ns = f"/api/v1/namespaces/{namespace}"
    write = "import os; open(os.environ['TAROT_RESULT_FILE'], 'w').write('{\"train\": 3}')"
    for name, path in (("default-path", None), ("own-path", "/results/stage.json")):
        pod = _pod(name, ["python3", "-c", write])
        container = pod["spec"]["containers"][0]
        container["env"] = [{"name": "TAROT_RESULT_FILE", "value": path or "/dev/termination-log"}]
        container["terminationMessagePolicy"] = "File"
        if path:
            container["terminationMessagePath"] = path
        cluster.api.create(f"{ns}/pods", pod)
    for name in ("default-path", "own-path"):
        cluster.wait_for(f"{name} to finish", lambda n=name: _finished(cluster, namespace, n))
        terminated = _status(cluster, namespace, name)["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated.get("message")) == (0, '{"train": 3}'), name


FLAKY = r"""
import os, sys
count_file = os.path.join(os.environ["STATE"], "attempts")
attempt = int(open(count_file).read()) + 1 if os.path.exists(count_file) else 1
open(count_file, "w").write(str(attempt))
print(f"attempt {attempt}")
sys.exit(0 if attempt == 3 else 5)
"""


def test_on_failure_restarts_with_back_off_and_keeps_the_previous_log(
    cluster: Cluster, namespace: str
) -> None:
    ns = f"/api/v1/namespaces/{namespace}"
    pod = _pod(
        "flaky", ["python3", "-c", FLAKY], restartPolicy="OnFailure", volumes=[{"name": "s", "emptyDir": {}}]
    )
    pod["spec"]["containers"][0].update(
        env=[{"name": "STATE", "value": "/state"}], volumeMounts=[{"name": "s", "mountPath": "/state"}]
    )
    created = cluster.api.create(f"{ns}/pods", pod)
    # Every status the runner writes arrives as a watch event: the short back-off cannot be missed.
    waiting_reasons: list[str] = []
    for event in cluster.api.watch(
        f"{ns}/pods", created["metadata"]["resourceVersion"], {"fieldSelector": "metadata.name=flaky"}, 90
    ):
        status = event["object"].get("status") or {}
        for container in status.get("containerStatuses") or []:
            if "waiting" in container["state"]:
                waiting_reasons.append(container["state"]["waiting"]["reason"])
        if status.get("phase") in ("Succeeded", "Failed"):
            break
    assert status["phase"] == "Succeeded"
    [container] = status["containerStatuses"]
    assert container["restartCount"] == 2
    assert container["state"]["terminated"]["exitCode"] == 0
    assert waiting_reasons.count("CrashLoopBackOff") >= 2  # one back-off before each restart
    assert cluster.kubectl("logs", "-n", namespace, "flaky").stdout == "attempt 3\n"
    assert cluster.kubectl("logs", "-n", namespace, "flaky", "--previous").stdout == "attempt 2\n"


SECOND_TRY = r"""
import os, sys, time
marker = os.path.join(os.environ["SHARED"], "first-attempt")
if not os.path.exists(marker):
    open(marker, "w").write(str(os.getpid()))
    time.sleep(600)  # in flight when the runner dies
print("second attempt")
"""


def _runner_pid(cluster: Cluster) -> int:
    return int((CACHE / "clusters" / cluster.name / "pod-runner.pid").read_text())


def test_a_runner_restart_fails_the_pods_it_lost_and_the_job_replaces_them(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    pod = _pod(
        "unused",
        ["python3", "-c", SECOND_TRY],
        volumes=[{"name": "shared", "hostPath": {"path": str(tmp_path)}}],
    )
    pod["spec"]["containers"][0].update(
        env=[{"name": "SHARED", "value": "/shared"}],
        volumeMounts=[{"name": "shared", "mountPath": "/shared"}],
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "survivor"},
        "spec": {"backoffLimit": 1, "template": {"spec": pod["spec"]}},
    }
    cluster.api.create(jobs, job)
    marker = tmp_path / "first-attempt"
    cluster.wait_for("the first attempt to run", lambda: marker.is_file() and marker.read_text())
    first_process = int(marker.read_text())

    old = _runner_pid(cluster)
    os.kill(old, signal.SIGKILL)  # a crash: no shutdown code runs
    cluster.wait_for("the runner to die", lambda: not _alive(old))
    cluster.wait_for("the lost process to die with it", lambda: not _alive(first_process), timeout=10)
    subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "--name", cluster.name, "up"], check=True, capture_output=True
    )
    assert _runner_pid(cluster) != old

    def complete() -> bool:
        conditions = (cluster.api.get(f"{jobs}/survivor").get("status") or {}).get("conditions") or []
        return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)

    cluster.wait_for("the Job to complete with a new pod", complete, timeout=120, interval=0.5)
    pods = cluster.api.get(
        f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": "job-name=survivor"}
    )
    phases = sorted(p["status"]["phase"] for p in pods["items"])
    assert phases == ["Failed", "Succeeded"]
    [lost] = [p for p in pods["items"] if p["status"]["phase"] == "Failed"]
    terminated = lost["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 137 and "restarted" in terminated["message"]


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
