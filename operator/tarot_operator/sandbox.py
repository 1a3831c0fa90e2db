"""The run's sandbox: a Deployment of `tarot sandbox serve`, its Service, and a NetworkPolicy.

The sandbox executes model-written programs, which are hostile: its pods run as non-root with a
read-only root filesystem, no service-account token, every capability dropped, seccomp RuntimeDefault
and resource limits; the NetworkPolicy admits only this run's pods (and the operator's metrics scrapers)
and allows no egress at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from tarot_jobs.spec.model import TarotRunSpec

from .config import PodScheduling, SandboxConfinement
from .names import IMAGE_USER, JSON, RUN_LABEL, metadata

SANDBOX_PORT = 8080
SANDBOX_USER = IMAGE_USER  # any non-zero uid works


def sandbox_selector(run_name: str) -> dict[str, str]:
    return {RUN_LABEL: run_name, "app.kubernetes.io/component": "sandbox"}


def sandbox_url(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc:{SANDBOX_PORT}"


def _memory_limit_mi(spec: TarotRunSpec, workers: int) -> int:
    # Each worker runs one program under sandbox.memoryLimitMb; the service itself needs ~256 Mi.
    return workers * spec.sandbox.memory_limit_mb + 256


def sandbox_deployment(
    run: JSON,
    name: str,
    spec: TarotRunSpec,
    image: str,
    replicas: int,
    pod_labels: dict[str, str],
    scheduling: PodScheduling | None = None,
    confinement: SandboxConfinement | None = None,
) -> JSON:
    """The sandbox's pods go where the operator's scheduling says; a run's spec.resources place its
    Jobs (GPU nodes, typically), not the sandbox, which needs no accelerator. `confinement` is the
    operator's seccomp profile and runtime class for them (default: RuntimeDefault, the pod boundary)."""
    confinement = confinement or SandboxConfinement()
    run_name = run["metadata"]["name"]
    workers = spec.sandbox.workers or 2
    memory = f"{_memory_limit_mi(spec, workers)}Mi"
    container: JSON = {
        "name": "sandbox",
        "image": image,
        "command": ["tarot", "sandbox", "serve", "--port", str(SANDBOX_PORT), "--workers", str(workers)],
        "ports": [{"name": "http", "containerPort": SANDBOX_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20},
        # Half a core per worker requested, a core per worker at most: the sandbox works in bursts (a
        # batch of completions per training step) and idles while the trainer generates.
        "resources": {
            "requests": {"cpu": f"{workers * 500}m", "memory": memory},
            "limits": {"cpu": str(workers), "memory": memory},
        },
        # `tarot sandbox serve` writes what it executed to its termination message when it stops.
        "env": [{"name": "TAROT_RESULT_FILE", "value": "/dev/termination-log"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The executor's scratch files: the only writable path (the root filesystem is read-only).
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if confinement.pod_is_the_boundary:
        # seccomp RuntimeDefault refuses the helpers' namespaces (unshare without CAP_SYS_ADMIN): this pod,
        # with no data, no token and no egress, is the boundary (docs/sandbox.md, "the pod boundary").
        container["env"].append({"name": "TAROT_SANDBOX_POD_BOUNDARY", "value": "1"})
    labels = {**sandbox_selector(run_name), **pod_labels}
    pod_spec: JSON = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SANDBOX_USER,
            "runAsGroup": SANDBOX_USER,
            "seccompProfile": dict(confinement.seccomp_profile),
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}],
    }
    if confinement.runtime_class_name:
        pod_spec["runtimeClassName"] = confinement.runtime_class_name
    if scheduling is not None and scheduling.node_selector:
        pod_spec["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling is not None and scheduling.tolerations:
        pod_spec["tolerations"] = list(scheduling.tolerations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(run, name, "sandbox"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": sandbox_selector(run_name)},
            "template": {
                "metadata": {"labels": {**metadata(run, name, "sandbox")["labels"], **labels}},
                "spec": pod_spec,
            },
        },
    }


def sandbox_service(run: JSON, name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(run, name, "sandbox"),
        "spec": {
            "selector": sandbox_selector(run["metadata"]["name"]),
            "ports": [{"name": "http", "port": SANDBOX_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def sandbox_network_policy(run: JSON, name: str, scrapers: Sequence[JSON] = ()) -> JSON:
    """Ingress to the sandbox only from this run's pods, on its port; no egress at all.

    `scrapers` (the operator's metrics.scrapers: NetworkPolicy peers, e.g. the monitoring namespace's
    Prometheus pods) are admitted to the same port, where the sandbox serves /metrics beside its API:
    a NetworkPolicy admits ports, not paths. The run's other pods are selected by no policy of the run
    (the trainer's metrics port needs no rule), so this is the only one that a scraper must pass.
    """
    run_name = run["metadata"]["name"]
    port = [{"protocol": "TCP", "port": SANDBOX_PORT}]
    ingress: list[JSON] = [{"from": [{"podSelector": {"matchLabels": {RUN_LABEL: run_name}}}], "ports": port}]
    if scrapers:
        ingress.append({"from": [dict(peer) for peer in scrapers], "ports": port})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(run, name, "sandbox"),
        "spec": {
            "podSelector": {"matchLabels": sandbox_selector(run_name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [],
        },
    }
