"""The vLLM server's objects (training.generation vllm-server) on the real API server: it accepts the rendered
Deployment and Service, the scheduler puts the server's pod on a GPU node for its nvidia.com/gpu, the
operator's scale-down is a valid patch, and deleting the run garbage-collects both.

Nothing runs vLLM here (no GPU, no vLLM): the pod is left to kwok (`tarot.dev/pod-runner: skip`, as the
scale benchmark's pods), which marks it Running without starting a process.
"""

from __future__ import annotations

from typing import Any

import pytest
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster
from spec_corpus import REPO, example_runs
from tarot_operator.config import PodScheduling
from tarot_operator.generation import generation_server_deployment, generation_server_service
from tarot_operator.run_spec import parse_spec

from tarot_jobs.spec.crd import CRD_NAME

pytestmark = pytest.mark.cluster

NAME = "served"
SERVER = f"{NAME}-generation-server"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> Cluster:
    cluster.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
    return cluster


def served_run(cluster: Cluster, namespace: str) -> JSON:
    """The reference example (vllm-server on one GPU beside 7 training GPUs), created for real."""
    run: dict[str, Any] = example_runs()["reference-qwen2.5-coder-1.5b.yaml"]
    run["metadata"] = {"name": NAME}
    run["spec"]["resources"] |= {"cpu": "1", "memory": "1Gi", "tolerations": [GPU_TOLERATION]}
    created: JSON = cluster.api.create(f"/apis/tarot.dev/v1alpha1/namespaces/{namespace}/tarotruns", run)
    return created


def test_the_api_server_accepts_the_server_and_schedules_it_on_a_gpu_node(
    crd: Cluster, namespace: str
) -> None:
    run = served_run(crd, namespace)
    spec = parse_spec(run)
    server = spec.training.generation_server()
    assert server is not None and server.gpus == 1
    apps, core = f"/apis/apps/v1/namespaces/{namespace}", f"/api/v1/namespaces/{namespace}"
    skip = {"tarot.dev/pod-runner": "skip"}  # kwok plays the kubelet: nothing is executed
    deployment = generation_server_deployment(
        run, SERVER, spec, server, "trainer:vllm", skip, PodScheduling()
    )
    crd.api.create(f"{apps}/deployments", deployment)
    crd.api.create(f"{core}/services", generation_server_service(run, SERVER, server))

    stored = crd.api.get(f"{apps}/deployments/{SERVER}")
    [container] = stored["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["command"][:4] == ["trl", "vllm-serve", "--model", "Qwen/Qwen2.5-Coder-1.5B-Instruct"]
    assert stored["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]
    service = crd.api.get(f"{core}/services/{SERVER}")
    assert service["spec"]["ports"][0]["port"] == 8000

    def placed() -> JSON | None:
        pods = crd.api.get(
            f"{core}/pods", params={"labelSelector": "app.kubernetes.io/component=generation-server"}
        )
        return next((p for p in pods["items"] if p["spec"].get("nodeName")), None)

    pod = crd.wait_for("the server's pod to be scheduled", placed)
    node = crd.api.get(f"/api/v1/nodes/{pod['spec']['nodeName']}")
    assert int(node["status"]["allocatable"].get("nvidia.com/gpu", "0")) >= 1

    # The operator's stop (the last phase done): a merge patch to 0 replicas that the API server takes.
    crd.api.merge_patch(f"{apps}/deployments/{SERVER}", {"spec": {"replicas": 0}})
    assert crd.api.get(f"{apps}/deployments/{SERVER}")["spec"]["replicas"] == 0

    crd.api.delete(f"/apis/tarot.dev/v1alpha1/namespaces/{namespace}/tarotruns/{NAME}")

    def collected() -> bool:
        return (
            crd.api.get_or_none(f"{apps}/deployments/{SERVER}") is None
            and crd.api.get_or_none(f"{core}/services/{SERVER}") is None
        )

    crd.wait_for("the garbage collector to delete the server's Deployment and Service", collected)
