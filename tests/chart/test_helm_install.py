"""`helm install` of the chart on the real local control plane, the operator running from it.

The pod runner (hack/pod_runner) runs the operator pod's command as a local process with the pod's
ServiceAccount identity (a TokenRequest token in a kubeconfig), so the chart's RBAC is what the operator
really has: a run in another namespace must reach Succeeded with it (enough), and in namespace-scoped mode
the operator's identity must be refused a run outside its namespaces (no more).
Then `helm upgrade` with changed values rolls the operator and `helm uninstall` leaves nothing of it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chart_tools import CHART, tool_dir
from pipeline_helpers import SHARED_MODEL_CACHE, TINY_RUN_SPEC
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster, free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RELEASE, RELEASE_NS = "tarot", "tarot-system"
RUNS = "/apis/tarot.dev/v1alpha1/namespaces/{ns}/tarotruns"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
# The smallest run that still passes every stage: one phase, two steps, two probe and evaluation problems.
# One run goes to Succeeded (cluster-wide); the namespace-scoped one only has to be taken up.
SPEC: JSON = TINY_RUN_SPEC


class Helm:
    def __init__(self, binary: Path, cluster: Cluster, tmp: Path) -> None:
        self.binary, self.cluster, self.tmp = binary, cluster, tmp
        # The operator runs as a local process: its ports are this machine's, so free ones, not 8080/8081.
        self.metrics_port, self.health_port = free_port(), free_port()

    def __call__(self, *args: str, values: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), "--kubeconfig", str(self.cluster.kubeconfig), *args]
        if values is not None:
            file = self.tmp / f"values-{len(list(self.tmp.glob('values-*')))}.yaml"
            file.write_text(yaml.safe_dump(self._values(values)))
            command += ["--values", str(file)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
        return result

    def _values(self, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "metrics": {"port": self.metrics_port},
            "health": {"port": self.health_port},
            # No pod networking here: each Job runs the sandbox executor itself (docs/operator.md);
            # all runs share one tiny-model cache, as the other end-to-end tests do.
            "extraArgs": ["--job-sandbox=in-process", f"--model-cache={SHARED_MODEL_CACHE}"],
            **values,
        }

    def health(self, path: str) -> int:
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}{path}", timeout=5).status_code
        except httpx.HTTPError:
            return 0


@pytest.fixture(scope="module")
def helm(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    runner = Helm(tool_dir("build-cluster-tools.sh") / "helm", cluster, tmp_path_factory.mktemp("helm"))
    yield runner
    subprocess.run(
        [str(runner.binary), "--kubeconfig", str(cluster.kubeconfig), "uninstall", RELEASE, "-n", RELEASE_NS],
        capture_output=True,
        timeout=120,
    )


def _operator_pod(cluster: Cluster) -> JSON | None:
    pods = cluster.api.get(f"/api/v1/namespaces/{RELEASE_NS}/pods", params={"labelSelector": INSTANCE})[
        "items"
    ]
    running = [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    return running[0] if len(running) == 1 and len(pods) == 1 else None


def _apply_run(cluster: Cluster, namespace: str, name: str) -> None:
    manifest = {
        "apiVersion": "tarot.dev/v1alpha1",
        "kind": "TarotRun",
        "metadata": {"name": name},
        "spec": SPEC,
    }
    cluster.api.create(RUNS.format(ns=namespace), manifest)


def _run(cluster: Cluster, namespace: str, name: str) -> JSON:
    return cluster.api.get(f"{RUNS.format(ns=namespace)}/{name}")


def _wait_phase(cluster: Cluster, namespace: str, name: str, phase: str, timeout: float) -> JSON:
    def reached() -> JSON | None:
        run = _run(cluster, namespace, name)
        if run.get("status", {}).get("phase") == "Failed" and phase != "Failed":
            raise AssertionError(f"run {namespace}/{name} failed: {run['status']}")
        return run if run.get("status", {}).get("phase") == phase else None

    return cluster.wait_for(
        f"run {namespace}/{name} to reach {phase}", reached, timeout=timeout, interval=1.0
    )


def _as_operator(cluster: Cluster, tmp: Path, *kubectl_args: str) -> subprocess.CompletedProcess[str]:
    """kubectl with the operator's own identity: a TokenRequest token of its ServiceAccount."""
    account = f"/api/v1/namespaces/{RELEASE_NS}/serviceaccounts/{RELEASE}/token"
    token = cluster.api.create(
        account, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    )
    cluster_entry: JSON = {"server": cluster.api.host}
    if cluster.api.ca_file:
        cluster_entry["certificate-authority"] = str(cluster.api.ca_file)
    kubeconfig = tmp / "operator-kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster_entry}],
                "users": [{"name": "operator", "user": {"token": token["status"]["token"]}}],
                "contexts": [{"name": "operator", "context": {"cluster": "c", "user": "operator"}}],
                "current-context": "operator",
            }
        )
    )
    return subprocess.run(
        [str(cluster.kubectl_path), "--kubeconfig", str(kubeconfig), *kubectl_args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_install_run_upgrade_uninstall(helm: Helm, cluster: Cluster, tmp_path: Path) -> None:
    teams = [f"tarot-chart-{suffix}" for suffix in ("a", "b")]
    for team in teams:
        cluster.kubectl("create", "namespace", team)
    try:
        _install_run_upgrade_uninstall(helm, cluster, tmp_path, *teams)
    finally:
        for team in teams:
            # Runs still holding the operator's finalizer (a failure midway) would keep the namespace forever.
            for run in cluster.api.get(RUNS.format(ns=team))["items"]:
                cluster.kubectl(
                    "patch", "tarotrun", run["metadata"]["name"], "-n", team, "--type=merge",
                    "-p", '{"metadata":{"finalizers":null}}', check=False,
                )  # fmt: skip
            cluster.kubectl("delete", "namespace", team, "--wait=false", check=False)


def _install_run_upgrade_uninstall(helm: Helm, cluster: Cluster, tmp: Path, team_a: str, team_b: str) -> None:
    # ---- install, cluster-wide: the CRD comes from the chart, the operator runs with the chart's RBAC.
    installed = helm("install", RELEASE, str(CHART), "-n", RELEASE_NS, "--create-namespace", values={})
    assert "kubectl get tarotruns -A -w" in installed.stdout  # NOTES
    cluster.wait_for(
        "the tarotruns CRD",
        lambda: cluster.kubectl("get", "crd", "tarotruns.tarot.dev", check=False).returncode == 0,
    )
    first = cluster.wait_for("the operator pod to run", lambda: _operator_pod(cluster), timeout=120)
    assert first["spec"]["serviceAccountName"] == RELEASE
    cluster.wait_for("the operator's /readyz", lambda: helm.health("/readyz") == 200, timeout=120)
    assert _as_operator(cluster, tmp, "auth", "can-i", "list", "tarotruns", "-A").stdout.strip() == "yes"

    _apply_run(cluster, team_a, "wide")
    run = _wait_phase(cluster, team_a, "wide", "Succeeded", timeout=900)
    assert run["status"]["evaluation"]["after"]["passAtOne"]
    metrics = httpx.get(f"http://127.0.0.1:{helm.metrics_port}/metrics", timeout=10).text
    assert f'tarot_run_phase{{namespace="{team_a}",phase="Succeeded",run="wide"}} 1.0' in metrics

    # ---- upgrade to namespace-scoped: the pod is replaced (new values roll it), RBAC shrinks to a Role.
    helm("upgrade", RELEASE, str(CHART), "-n", RELEASE_NS, values={"watchNamespaces": [team_a]})
    second = cluster.wait_for(
        "the operator pod to be replaced",
        lambda: (
            (pod := _operator_pod(cluster)) and pod["metadata"]["uid"] != first["metadata"]["uid"] and pod
        ),
        timeout=120,
    )
    assert f"--namespace={team_a}" in second["spec"]["containers"][0]["args"]
    assert not cluster.api.get(
        "/apis/rbac.authorization.k8s.io/v1/clusterroles", params={"labelSelector": INSTANCE}
    )["items"]
    cluster.wait_for(
        "the operator's /readyz after the upgrade", lambda: helm.health("/readyz") == 200, timeout=120
    )

    # A run outside the watched namespace is left alone, and the operator's identity may not even read it.
    # ("outside" goes first: by the time "inside" is being driven, a watch of team_b would have seen it.)
    _apply_run(cluster, team_b, "outside")
    _apply_run(cluster, team_a, "inside")
    cluster.wait_for(
        "the operator to take up the run in its namespace",
        lambda: (
            (run := _run(cluster, team_a, "inside")).get("status", {}).get("phase")
            and run["metadata"].get("finalizers")
        ),
        timeout=180,
    )
    outside = _run(cluster, team_b, "outside")
    assert "status" not in outside or not outside["status"]
    assert not outside["metadata"].get("finalizers")
    denied = _as_operator(cluster, tmp, "get", "tarotrun", "outside", "-n", team_b)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr, denied.stderr
    assert _as_operator(cluster, tmp, "get", "tarotrun", "inside", "-n", team_a).returncode == 0
    assert _as_operator(cluster, tmp, "auth", "can-i", "list", "tarotruns", "-A").stdout.strip() == "no"

    # The runs go first, while the operator is there to release its finalizer.
    cluster.kubectl("delete", "tarotruns", "--all", "-n", team_a, "--timeout=120s")

    # ---- uninstall: no object of the release is left, and the operator process is gone.
    helm("uninstall", RELEASE, "-n", RELEASE_NS, "--wait")
    for path in (
        f"/apis/apps/v1/namespaces/{RELEASE_NS}/deployments",
        f"/api/v1/namespaces/{RELEASE_NS}/services",
        f"/api/v1/namespaces/{RELEASE_NS}/serviceaccounts",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team_a}/roles",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team_a}/rolebindings",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    ):
        assert not cluster.api.get(path, params={"labelSelector": INSTANCE})["items"], path
    cluster.wait_for(
        "the operator pod to be gone",
        lambda: (
            not cluster.api.get(f"/api/v1/namespaces/{RELEASE_NS}/pods", params={"labelSelector": INSTANCE})[
                "items"
            ]
        ),
        timeout=120,
    )
    cluster.wait_for("the operator process to stop", lambda: helm.health("/healthz") == 0, timeout=60)
