"""The operator's own settings: what `tarot operator run` was started with."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version


def _tarot_version() -> str:
    try:
        return version("tarot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "latest"


DEFAULT_TRAINER_IMAGE = f"ghcr.io/tarot-dev/tarot-trainer:{_tarot_version()}"
DEFAULT_SANDBOX_IMAGE = f"ghcr.io/tarot-dev/tarot-sandbox:{_tarot_version()}"
# The stage commands' --model-cache: on the run's own volume unless the operator is told otherwise.
DEFAULT_MODEL_CACHE = "/workspace/models"


class JobSandbox(StrEnum):
    """How stage Jobs reach a sandbox."""

    SERVICE = "service"  # the run's sandbox Service (cluster DNS); the normal case
    # The Jobs run the executor in their own pod; the sandbox Deployment stays at 0 replicas. For
    # control planes without pod networking (hack/cluster: pods are local processes, no cluster DNS).
    IN_PROCESS = "in-process"


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    metrics_port: int = 8080
    health_port: int = 8081
    trainer_image: str = DEFAULT_TRAINER_IMAGE
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    job_sandbox: JobSandbox = JobSandbox.SERVICE
    pod_labels: dict[str, str] = field(default_factory=dict)
    model_cache: str = DEFAULT_MODEL_CACHE
    resync_seconds: float = 60.0
