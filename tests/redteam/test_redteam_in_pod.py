"""Every hostile program through a sandbox **pod's Service** on the local cluster's real node.

The pod is the one the operator makes for a run (operator/tarot_operator/sandbox.py: non-root, read-only
root, no capabilities, no token), from the sandbox image, reached the way a phase Job reaches it: through
its Service's ClusterIP (kube-proxy). Both confinements the chart offers (defaults.sandboxSeccompProfile):
under RuntimeDefault the kernel refuses the helpers' namespaces, so the pod is the boundary (`pod-boundary`
in /healthz); under a profile that allows them (Unconfined here) every program gets the namespace jail
inside the pod. The attacks must earn nothing in either. The data and the witness process the stdin
attacks look for live on this machine, outside the pod.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster
from tarot_operator.config import SANDBOX_SECCOMP_ENV, PodScheduling, SandboxConfinement
from tarot_operator.sandbox import SANDBOX_PORT, sandbox_deployment, sandbox_selector, sandbox_service
from test_redteam_routes import assert_the_service_gives_nothing

from tarot_jobs.spec.model import TarotRunSpec

# The first cluster test to ask for real_node_images builds and loads them (minutes, cold much more).
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]

IMAGE = "localhost/tarot/tarot-sandbox:0.1.0"
REAL_NODE = PodScheduling(
    node_selector={"tarot.dev/node": "real"},
    tolerations=(
        {"key": "tarot.dev/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
    ),
)


# seccomp profile -> the isolation the sandbox pod reports.
CONFINEMENTS = {"RuntimeDefault": "pod-boundary(", "Unconfined": "jail(user,mnt,pid,net,ipc,uts)"}


@pytest.fixture(scope="module", params=sorted(CONFINEMENTS))
def pod_service(
    cluster: Cluster, real_node_images: list[str], request: pytest.FixtureRequest
) -> Iterator[str]:
    """A run's sandbox Deployment and Service (as the operator makes them, with the seccomp profile of the
    parameter) in a namespace of its own; the Service's ClusterIP URL once a pod is ready."""
    namespace = f"t-redteam-pod-{uuid.uuid4().hex[:5]}"
    cluster.api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    run: JSON = {"metadata": {"name": "redteam", "namespace": namespace, "uid": "0" * 8}}
    spec = TarotRunSpec.model_validate({"sandbox": {"workers": 1, "timeLimitSeconds": 5}})
    confinement = SandboxConfinement.from_env({SANDBOX_SECCOMP_ENV: request.param})
    deployment = sandbox_deployment(run, "redteam-sandbox", spec, IMAGE, 1, {}, REAL_NODE, confinement)
    service = sandbox_service(run, "redteam-sandbox")
    for manifest in (deployment, service):
        manifest["metadata"].pop("ownerReferences", None)  # no TarotRun owns them here
    try:
        cluster.api.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment)
        created = cluster.api.create(f"/api/v1/namespaces/{namespace}/services", service)
        pods = f"/api/v1/namespaces/{namespace}/pods"
        selector = ",".join(f"{k}={v}" for k, v in sandbox_selector("redteam").items())

        def ready() -> JSON | None:
            for pod in cluster.api.get(pods, params={"labelSelector": selector})["items"]:
                if any(s.get("ready") for s in pod["status"].get("containerStatuses") or []):
                    return pod
            return None

        pod = cluster.wait_for("the sandbox pod to be ready", ready, timeout=180)
        assert pod["spec"]["nodeName"] == "real-node-0"
        url = f"http://{created['spec']['clusterIP']}:{SANDBOX_PORT}"
        # A ready pod is not yet a reachable Service: kube-proxy programs the ClusterIP on its own sync.
        cluster.wait_for(f"the Service {url} to answer", lambda: _answers(f"{url}/healthz"), timeout=60)
        yield url
    finally:
        cluster.api.delete(f"/api/v1/namespaces/{namespace}")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("kind", ["function", "stdin", "drop"])
def test_the_sandbox_pods_service_gives_every_attack_nothing(
    kind: str, pod_service: str, token: str, places: dict[str, object], request: pytest.FixtureRequest
) -> None:
    profile = request.node.callspec.params["pod_service"]
    health = httpx.get(f"{pod_service}/healthz", timeout=10).json()
    print(f"sandbox pod isolation under seccomp {profile}: {health['isolation']}")
    assert health["isolation"].startswith(CONFINEMENTS[profile])
    assert_the_service_gives_nothing(pod_service, kind, token, places)
