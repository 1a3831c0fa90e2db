"""The contract between the lifecycle planner and the two executors that drive it.

The planner (planner.py) is a pure function:

    plan(spec, status, observed, now, *, generation=None) -> Plan

`observed` is what an executor found of the run's children; the Plan says which
children should exist (the executor creates the missing ones, deterministically
named, and never creates one twice), the status to write, and the events to emit.
The kopf operator (operator/tarot_operator/) maps children to Kubernetes objects
(PVC, sandbox Deployment/Service/NetworkPolicy, Jobs); `tarot run` (local.py) maps
them to stages run on this machine. Both call plan() again after each change,
until the status phase is final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tarot_jobs.pipeline.selection import Selection


class ChildKind(StrEnum):
    """What a child of a run does. Later modes add kinds (e.g. pilot phases of a tournament)."""

    WORKSPACE = "workspace"  # the volume every Job shares (a PVC; the workdir locally)
    SANDBOX = "sandbox"  # the sandbox service (Deployment + Service + NetworkPolicy; in-process locally)
    # The vLLM server of training.generation vllm-server (Deployment + Service); none locally.
    GENERATION_SERVER = "generation-server"
    DATA = "data"  # load, split and check the problems
    PROBE = "probe"  # capability probe of the base model
    TRAIN = "train"  # one curriculum phase (index = phase number)
    EVALUATE_BEFORE = "evaluate-before"  # evaluation of the base model
    EVALUATE_AFTER = "evaluate-after"  # evaluation of the final model


@dataclass(frozen=True, order=True)
class ChildRef:
    """One child of a run; `index` only for kinds that repeat (TRAIN)."""

    kind: ChildKind
    index: int | None = None

    def suffix(self) -> str:
        """The child's name suffix; the object's name is `<run>-<suffix>` (a DNS label)."""
        return self.kind.value if self.index is None else f"{self.kind.value}-{self.index}"


class ChildState(StrEnum):
    QUEUED = "Queued"  # exists but not admitted/started (e.g. a Job suspended by Kueue)
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # terminally: retries (backoffLimit) used up or a bad-input exit
    SUSPENDED = "Suspended"  # stopped because the run is suspended


@dataclass(frozen=True)
class ObservedChild:
    """What an executor saw of one child."""

    ref: ChildRef
    state: ChildState
    # A finished Job's small JSON result (termination message / the stage's output file).
    result: dict[str, Any] | None = None
    # Why it failed (reason and message, e.g. "BadInput: spec.dataset.source: no such file").
    failure: str | None = None
    # Training progress reported while running: step, total, reward, reward per tier, eta seconds.
    progress: dict[str, Any] | None = None
    retries: int = 0


@dataclass(frozen=True)
class RunEvent:
    """An event to emit on the run (Kubernetes Event; a log line locally)."""

    type: str  # "Normal" or "Warning"
    reason: str  # CamelCase, e.g. "PhaseStarted"
    message: str


@dataclass
class Plan:
    """The planner's answer for one observation."""

    children: list[ChildRef]  # the children that should exist now (create the missing ones)
    status: dict[str, Any]  # the whole status to write (camelCase, the CRD's status schema)
    events: list[RunEvent] = field(default_factory=list)
    # Children to stop (suspend) without deleting, e.g. the active Job when spec.suspend is true.
    suspend: list[ChildRef] = field(default_factory=list)
    # Stage children to create suspended: those in `suspend`, and every one when spec.resources.kueueQueue
    # is set (Kueue admits it; an executor never resumes a child Kueue holds).
    create_suspended: list[ChildRef] = field(default_factory=list)
    # The policy the planner selected (policy.json's content) once status.policy is set; None before.
    selection: Selection | None = None
