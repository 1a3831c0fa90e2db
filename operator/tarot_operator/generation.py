"""The run's vLLM server (training.generation: vllm-server): a Deployment of `trl vllm-serve` and its Service.

The train Jobs reach it through the Service: the operator writes its URL into the spec they read
(training.vllmServer.url), and trl's client in the trainer waits for its /health, generates through it
and pushes each step's weights into it over NCCL (the server's workers connect back to the trainer's pod
on trl's vllm_group_port). It serves the base model by name (model.name, a hub id or a path in its
image): the run's volume is ReadWriteOnce and stays with the Jobs.
"""

from __future__ import annotations

from tarot_jobs.lifecycle.types import ChildKind, ChildRef
from tarot_jobs.spec.model import TarotRunSpec, VllmServerSpec

from .config import PodScheduling
from .jobs import place_on_training_nodes
from .names import JSON, RUN_LABEL, component, metadata

GENERATION_SERVER = ChildRef(ChildKind.GENERATION_SERVER)
COMPONENT = component(GENERATION_SERVER)
CONTAINER = "vllm"
PORT_NAME = "http"  # the chart's PodMonitor scrapes ports named "http": vLLM serves /metrics there too


def generation_server_selector(run_name: str) -> dict[str, str]:
    return {RUN_LABEL: run_name, "app.kubernetes.io/component": COMPONENT}


def generation_server_url(name: str, namespace: str, port: int) -> str:
    """trl's vllm_server_base_url: the Service's cluster DNS name."""
    return f"http://{name}.{namespace}.svc:{port}"


def vllm_serve_command(spec: TarotRunSpec, server: VllmServerSpec) -> list[str]:
    """`trl vllm-serve` for the model the train Jobs start from (same revision, dtype, remote code)."""
    model = spec.model
    command = ["trl", "vllm-serve", "--model", model.name, "--port", str(server.port)]
    if model.revision is not None:
        command += ["--revision", model.revision]
    if model.dtype != "auto":
        command += ["--dtype", model.dtype]
    if model.trust_remote_code:
        command += ["--trust-remote-code", "true"]
    if server.parallel_size() > 1:
        command += ["--tensor-parallel-size", str(server.parallel_size())]
    return command


def generation_server_deployment(
    run: JSON,
    name: str,
    spec: TarotRunSpec,
    server: VllmServerSpec,
    image: str,
    pod_labels: dict[str, str],
    scheduling: PodScheduling | None = None,
) -> JSON:
    """One replica on the run's GPU nodes: placed like the run's Jobs (the operator's scheduling, then the
    run's nodeSelector and tolerations), with the training pods' cpu and memory and its own GPUs."""
    scheduling = scheduling or PodScheduling()
    run_name = run["metadata"]["name"]
    amounts = {
        "cpu": spec.resources.cpu,
        "memory": spec.resources.memory,
        "nvidia.com/gpu": str(server.gpus),
    }
    container: JSON = {
        "name": CONTAINER,
        "image": image,
        "command": vllm_serve_command(spec, server),
        "ports": [{"name": PORT_NAME, "containerPort": server.port, "protocol": "TCP"}],
        # vLLM answers /health once the model is loaded; loading takes minutes, so no liveness probe
        # (a slow load must not be killed and restarted).
        "readinessProbe": {"httpGet": {"path": "/health", "port": PORT_NAME}, "periodSeconds": 10},
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod_spec: JSON = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        # Tensor-parallel workers share memory through /dev/shm, which a container gets only 64 MiB of.
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
    }
    place_on_training_nodes(pod_spec, scheduling, spec)
    meta = metadata(run, name, COMPONENT)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,  # trl's client talks to one server
            "strategy": {"type": "Recreate"},  # a rolling update would need a second set of GPUs
            "selector": {"matchLabels": generation_server_selector(run_name)},
            "template": {"metadata": {"labels": {**meta["labels"], **pod_labels}}, "spec": pod_spec},
        },
    }


def generation_server_service(run: JSON, name: str, server: VllmServerSpec) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(run, name, COMPONENT),
        "spec": {
            "selector": generation_server_selector(run["metadata"]["name"]),
            "ports": [{"name": PORT_NAME, "port": server.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
