"""The README's cluster section, as a user runs it, on the local cluster's real node.

tarot's images are built with buildah and imported into the real node's containerd (`make images`,
`hack/cluster load`), Helm installs the operator as a pod (`-f hack/cluster-values.yaml`), and
`kubectl apply -f examples/quickstart-cluster.yaml` must reach Succeeded with every pod a container on
the real node and with the operator's default `--job-sandbox service`: every stage Job sends its
programs to the run's sandbox pods through their Service, by DNS name.

A real Prometheus (built with Kubernetes service discovery) discovers the pods as the chart's
PodMonitor and ServiceMonitor select them while the run goes: the operator, the sandbox and every phase's
trainer must have been scraped, and every query of the chart's dashboard must return data from them
(tests/monitoring/cluster_prometheus.py).

The proof of the sandbox traffic is counted on both ends: each stage's result (its pod's termination message)
says which sandbox scored how many tests, and the sandbox pods' own executions counter, which their
`tarot sandbox serve` writes to their termination message when the finished run scales them to zero,
must add up to the same number. The test holds each sandbox pod with a finalizer of its own so that
message can still be read after the pod stopped.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml
from pod_runner.kube_api import JSON, ApiError
from pytest_cluster import CLUSTER_VALUES, Cluster, container_id, terminated_state
from pytest_cluster import OPERATOR_NAMESPACE as RELEASE_NS
from pytest_cluster import OPERATOR_RELEASE as RELEASE

from tarot_jobs.lifecycle.results import SandboxServiceResult

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "monitoring"))
from cluster_prometheus import check_run_monitoring, cluster_prometheus  # noqa: E402

# The first cluster test to ask for real_node_images builds and loads them (minutes, cold much more).
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

EXAMPLE = REPO / "examples" / "quickstart-cluster.yaml"
NODE = "real-node-0"
HOLD = "tarot.dev/e2e-hold"  # keeps a stopped sandbox pod's object so its termination message can be read
RUN_TIMEOUT_S = 1800.0


class SandboxPods:
    """The run's sandbox pods, each held by our finalizer from the first time it is seen."""

    def __init__(self, cluster: Cluster, namespace: str, run: str) -> None:
        self.cluster, self.path = cluster, f"/api/v1/namespaces/{namespace}/pods"
        self.selector = f"tarot.dev/run={run},app.kubernetes.io/component=sandbox"
        self.held: set[str] = set()

    def list(self) -> list[JSON]:
        return list(self.cluster.api.get(self.path, params={"labelSelector": self.selector})["items"])

    def hold_new(self) -> None:
        for pod in self.list():
            name = pod["metadata"]["name"]
            if name not in self.held and not pod["metadata"].get("deletionTimestamp"):
                finalizers = [*(pod["metadata"].get("finalizers") or []), HOLD]
                self.cluster.api.merge_patch(f"{self.path}/{name}", {"metadata": {"finalizers": finalizers}})
                self.held.add(name)

    def release(self) -> None:
        for name in self.held:
            try:
                pod = self.cluster.api.get(f"{self.path}/{name}")
            except ApiError:
                continue
            kept = [f for f in pod["metadata"].get("finalizers") or [] if f != HOLD]
            self.cluster.api.merge_patch(f"{self.path}/{name}", {"metadata": {"finalizers": kept or None}})


def test_readme_cluster_quickstart_runs_in_pods_and_the_sandbox_pods_score_it(
    cluster: Cluster, namespace: str, operator_pod: JSON, real_node_images: list[str], tmp_path: Path
) -> None:
    print("\n".join(["images:", *real_node_images]))
    # The operator is a container on the real node, not a local process of the pod runner.
    assert operator_pod["spec"]["nodeName"] == NODE
    assert container_id(operator_pod) in cluster.ctr("tasks", "ls", "-q").split()

    manifest = yaml.safe_load(EXAMPLE.read_text())
    run_name = manifest["metadata"]["name"]
    runs = f"/apis/tarot.dev/v1alpha1/namespaces/{namespace}/tarotruns"
    sandbox_pods = SandboxPods(cluster, namespace, run_name)
    prometheus = cluster_prometheus(
        cluster,
        tmp_path / "prometheus",
        release=RELEASE,
        release_namespace=RELEASE_NS,
        values_files=[CLUSTER_VALUES],
    )
    try:
        with prometheus as server:
            start = time.time()
            cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
            run = _wait_succeeded(cluster, f"{runs}/{run_name}", sandbox_pods)
            print(f"{EXAMPLE.name}: Succeeded {time.time() - start:.0f} s after kubectl apply")
            _check_every_pod_and_every_score(cluster, namespace, run, sandbox_pods)
            report = check_run_monitoring(
                server, cluster, run, start, release=RELEASE, release_namespace=RELEASE_NS
            )
            print(report.summary())
    finally:
        sandbox_pods.release()
        cluster.kubectl("delete", "tarotrun", run_name, "-n", namespace, "--timeout=120s", check=False)


def _wait_succeeded(cluster: Cluster, path: str, sandbox_pods: SandboxPods) -> JSON:
    def succeeded() -> JSON | None:
        sandbox_pods.hold_new()
        run = cluster.api.get(path)
        phase = (run.get("status") or {}).get("phase")
        if phase == "Failed":
            raise AssertionError(f"the run failed: {json.dumps(run['status'], indent=1)[-4000:]}")
        return run if phase == "Succeeded" else None

    return cluster.wait_for("the quickstart run to succeed", succeeded, timeout=RUN_TIMEOUT_S, interval=1.0)


def _check_every_pod_and_every_score(
    cluster: Cluster, namespace: str, run: JSON, sandbox_pods: SandboxPods
) -> None:
    service_url = f"http://{run['metadata']['name']}-sandbox.{namespace}.svc:8080"
    pods = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    job_pods = [p for p in pods if "job-name" in p["metadata"].get("labels", {})]
    assert job_pods and sandbox_pods.held
    for pod in pods:  # stage Jobs and sandbox: containers on the real node
        assert pod["spec"]["nodeName"] == NODE, pod["metadata"]["name"]
        container_id(pod)

    # Every stage says it was scored by the Service, and how many tests it sent there.
    stage_results = {}
    for pod in job_pods:
        terminated = terminated_state(pod)
        if terminated and terminated["exitCode"] == 0:
            stage_results[pod["metadata"]["labels"]["job-name"]] = json.loads(terminated["message"])
    assert len(stage_results) == len({p["metadata"]["labels"]["job-name"] for p in job_pods}), stage_results
    usages = [result["sandbox"] for result in stage_results.values()]
    assert {usage["backend"] for usage in usages} == {service_url}, usages
    scored = sum(usage["scoredTests"] for usage in usages)
    assert scored > 0
    phases = run["status"]["curriculum"]["phases"]
    assert [p["sandbox"]["backend"] for p in phases] == [service_url] * len(phases)
    phase_results = [r for name, r in stage_results.items() if "-train-" in name]
    assert sorted(p["sandbox"]["scoredTests"] for p in phases) == sorted(
        r["sandbox"]["scoredTests"] for r in phase_results
    )

    # The sandbox pods' own count, kept in their termination messages once the finished run stopped them.
    def stopped() -> list[JSON] | None:
        held = [p for p in sandbox_pods.list() if p["metadata"]["name"] in sandbox_pods.held]
        return held if held and all(terminated_state(p) for p in held) else None

    final = cluster.wait_for("the finished run's sandbox pods to stop", stopped, timeout=120)
    executed = sum(
        sum(SandboxServiceResult.model_validate_json(terminated_state(p)["message"]).executions.values())
        for p in final
    )
    print(
        f"tests scored through {service_url}: {scored} by the stages' count, {executed} by the sandbox pods'"
    )
    assert executed == scored
