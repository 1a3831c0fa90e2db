"""The operator's own settings: what `tarot operator run` was started with."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from tarot_jobs.spec.model import Toleration

from .names import POD_WORKSPACE


def _tarot_version() -> str:
    try:
        return version("tarot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "latest"


DEFAULT_TRAINER_IMAGE = f"ghcr.io/tarot-dev/tarot-trainer:{_tarot_version()}"
DEFAULT_SANDBOX_IMAGE = f"ghcr.io/tarot-dev/tarot-sandbox:{_tarot_version()}"
# The vLLM server runs `trl vllm-serve`: the trainer image holds trl, and vLLM when built with VLLM_VERSION,
# which the train Jobs of a vLLM run need as well.
DEFAULT_VLLM_SERVER_IMAGE = DEFAULT_TRAINER_IMAGE
# The stage commands' --model-cache: on the run's own volume unless the operator is told otherwise.
DEFAULT_MODEL_CACHE = str(POD_WORKSPACE.models)


class JobSandbox(StrEnum):
    """How stage Jobs reach a sandbox."""

    SERVICE = "service"  # the run's sandbox Service (cluster DNS); the normal case
    # The Jobs run the executor in their own pod; the sandbox Deployment stays at 0 replicas. For
    # control planes without pod networking (hack/cluster: pods are local processes, no cluster DNS).
    IN_PROCESS = "in-process"


NODE_SELECTOR_ENV = "TAROT_OPERATOR_POD_NODE_SELECTOR"  # KEY=VALUE,KEY=VALUE
TOLERATIONS_ENV = "TAROT_OPERATOR_POD_TOLERATIONS"  # a JSON list of core/v1 tolerations
_TOLERATIONS = TypeAdapter(list[Toleration])


@dataclass(frozen=True)
class PodScheduling:
    """Where every pod of every run may go (Jobs and sandbox): the cluster's choice, e.g. a node pool set
    aside for tarot. A run's spec.resources.nodeSelector and tolerations add to it on its Jobs."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> PodScheduling:
        """From TAROT_OPERATOR_POD_NODE_SELECTOR and TAROT_OPERATOR_POD_TOLERATIONS (the chart sets both)."""
        selector: dict[str, str] = {}
        for item in filter(None, env.get(NODE_SELECTOR_ENV, "").split(",")):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"{NODE_SELECTOR_ENV}: {item!r} is not KEY=VALUE")
            selector[key] = value
        try:
            tolerations = _TOLERATIONS.validate_python(json.loads(env.get(TOLERATIONS_ENV) or "[]"))
        except (ValueError, ValidationError) as exc:
            raise ValueError(f"{TOLERATIONS_ENV}: not a JSON list of tolerations ({exc})") from None
        dumped = tuple(t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tolerations)
        return cls(selector, dumped)


METRICS_SCRAPERS_ENV = "TAROT_OPERATOR_METRICS_SCRAPERS"  # a JSON list of networking/v1 NetworkPolicyPeers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Requirement(_Strict):
    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class _LabelSelector(_Strict):
    match_labels: dict[str, str] | None = Field(default=None, alias="matchLabels")
    match_expressions: list[_Requirement] | None = Field(default=None, alias="matchExpressions")


class _IPBlock(_Strict):
    cidr: str
    except_: list[str] | None = Field(default=None, alias="except")

    @field_validator("cidr")
    @classmethod
    def _network(cls, value: str) -> str:
        ipaddress.ip_network(value, strict=False)  # ValueError names the bad address
        return value


class _Peer(_Strict):
    pod_selector: _LabelSelector | None = Field(default=None, alias="podSelector")
    namespace_selector: _LabelSelector | None = Field(default=None, alias="namespaceSelector")
    ip_block: _IPBlock | None = Field(default=None, alias="ipBlock")

    @model_validator(mode="after")
    def _one_kind(self) -> _Peer:
        selectors = self.pod_selector is not None or self.namespace_selector is not None
        if selectors == (self.ip_block is not None):
            raise ValueError("a peer is an ipBlock, or a podSelector and/or a namespaceSelector")
        return self


_PEERS = TypeAdapter(list[_Peer])


def metrics_scrapers_from_env(env: Mapping[str, str] = os.environ) -> tuple[dict[str, Any], ...]:
    """Who scrapes the runs' pods (TAROT_OPERATOR_METRICS_SCRAPERS; the chart's `metrics.scrapers`): the
    NetworkPolicy peers a run's sandbox policy admits to its port, where the sandbox serves /metrics."""
    try:
        peers = _PEERS.validate_python(json.loads(env.get(METRICS_SCRAPERS_ENV) or "[]"))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"{METRICS_SCRAPERS_ENV}: not a JSON list of NetworkPolicy peers ({exc})") from None
    return tuple(p.model_dump(mode="json", by_alias=True, exclude_none=True) for p in peers)


# RuntimeDefault | Unconfined | Localhost:<file>
SANDBOX_SECCOMP_ENV = "TAROT_OPERATOR_SANDBOX_SECCOMP_PROFILE"
SANDBOX_RUNTIME_CLASS_ENV = "TAROT_OPERATOR_SANDBOX_RUNTIME_CLASS"


@dataclass(frozen=True)
class SandboxConfinement:
    """How the runs' sandbox pods are confined: the cluster's choice (docs/sandbox.md, "In a pod").

    Under seccomp RuntimeDefault the kernel refuses the helpers' namespaces, so the pod itself is the
    boundary. A profile that allows them (Unconfined, or a Localhost profile the nodes hold) gives every
    program the namespace jail inside the pod, under tarot's own seccomp filter; the sandbox then refuses
    to serve without it. A runtimeClassName (gVisor, Kata) puts a runtime boundary under either."""

    seccomp_profile: dict[str, str] = field(default_factory=lambda: {"type": "RuntimeDefault"})
    runtime_class_name: str | None = None

    @property
    def pod_is_the_boundary(self) -> bool:
        return self.seccomp_profile["type"] == "RuntimeDefault"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SandboxConfinement:
        """From TAROT_OPERATOR_SANDBOX_SECCOMP_PROFILE and TAROT_OPERATOR_SANDBOX_RUNTIME_CLASS (the chart's
        defaults.sandboxSeccompProfile and defaults.sandboxRuntimeClassName)."""
        value = env.get(SANDBOX_SECCOMP_ENV) or "RuntimeDefault"
        kind, _, file = value.partition(":")
        if kind in ("RuntimeDefault", "Unconfined") and not file:
            profile = {"type": kind}
        elif kind == "Localhost" and file:
            profile = {"type": kind, "localhostProfile": file}
        else:
            expected = "RuntimeDefault, Unconfined or Localhost:<file>"
            raise ValueError(f"{SANDBOX_SECCOMP_ENV}: {value!r} is not {expected}")
        return cls(profile, env.get(SANDBOX_RUNTIME_CLASS_ENV) or None)


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    metrics_port: int = 8080
    health_port: int = 8081
    trainer_image: str = DEFAULT_TRAINER_IMAGE
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    vllm_server_image: str = DEFAULT_VLLM_SERVER_IMAGE
    job_sandbox: JobSandbox = JobSandbox.SERVICE
    pod_labels: dict[str, str] = field(default_factory=dict)
    model_cache: str = DEFAULT_MODEL_CACHE
    resync_seconds: float = 60.0
    # The environment until `tarot operator run` has flags for it (the chart sets the variables).
    pod_scheduling: PodScheduling = field(default_factory=PodScheduling.from_env)
    # The environment too (the chart's metrics.scrapers): admitted to the runs' sandbox metrics.
    metrics_scrapers: tuple[dict[str, Any], ...] = field(default_factory=metrics_scrapers_from_env)
    # The environment too (the chart's defaults.sandboxSeccompProfile and sandboxRuntimeClassName).
    sandbox_confinement: SandboxConfinement = field(default_factory=SandboxConfinement.from_env)
    # NAMESPACE/NAME of the coordination.k8s.io Lease that elects one replica (None: run alone).
    leader_election_lease: str | None = None
    leader_election_lease_seconds: float = 15.0
