"""The run's sandbox: a Deployment of `tarot sandbox serve`, its Service, and a NetworkPolicy.

The sandbox executes model-written programs, which are hostile: its pods run as non-root with a
read-only root filesystem, no service-account token, every capability dropped, seccomp RuntimeDefault
and resource limits; the NetworkPolicy admits only this run's pods and allows no egress at all.
"""

from __future__ import annotations

from tarot_jobs.spec.model import TarotRunSpec

from .names import JSON, RUN_LABEL, metadata

SANDBOX_PORT = 8080
SANDBOX_USER = 65532  # "nonroot" of distroless-style images; any non-zero uid works


def sandbox_selector(run_name: str) -> dict[str, str]:
    return {RUN_LABEL: run_name, "app.kubernetes.io/component": "sandbox"}


def sandbox_url(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc:{SANDBOX_PORT}"


def _memory_limit_mi(spec: TarotRunSpec, workers: int) -> int:
    # Each worker runs one program under sandbox.memoryLimitMb; the service itself needs ~256 Mi.
    return workers * spec.sandbox.memory_limit_mb + 256


def sandbox_deployment(
    run: JSON, name: str, spec: TarotRunSpec, image: str, replicas: int, pod_labels: dict[str, str]
) -> JSON:
    run_name = run["metadata"]["name"]
    workers = spec.sandbox.workers or 2
    memory = f"{_memory_limit_mi(spec, workers)}Mi"
    container: JSON = {
        "name": "sandbox",
        "image": image,
        "command": ["tarot", "sandbox", "serve", "--port", str(SANDBOX_PORT), "--workers", str(workers)],
        "ports": [{"name": "http", "containerPort": SANDBOX_PORT, "protocol": "TCP"}],
        # seccomp RuntimeDefault refuses the helpers' namespaces (unshare without CAP_SYS_ADMIN): this pod,
        # with no data, no token and no egress, is the boundary (docs/sandbox.md, "the pod boundary").
        "env": [{"name": "TAROT_SANDBOX_POD_BOUNDARY", "value": "1"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20},
        "resources": {
            "requests": {"cpu": str(workers), "memory": memory},
            "limits": {"cpu": str(workers), "memory": memory},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The executor's scratch files: the only writable path (the root filesystem is read-only).
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    labels = {**sandbox_selector(run_name), **pod_labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(run, name, "sandbox"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": sandbox_selector(run_name)},
            "template": {
                "metadata": {"labels": {**metadata(run, name, "sandbox")["labels"], **labels}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": SANDBOX_USER,
                        "runAsGroup": SANDBOX_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}],
                },
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


def sandbox_network_policy(run: JSON, name: str) -> JSON:
    """Ingress to the sandbox only from this run's pods, on its port; no egress at all."""
    run_name = run["metadata"]["name"]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(run, name, "sandbox"),
        "spec": {
            "podSelector": {"matchLabels": sandbox_selector(run_name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {RUN_LABEL: run_name}}}],
                    "ports": [{"protocol": "TCP", "port": SANDBOX_PORT}],
                }
            ],
            "egress": [],
        },
    }
