"""The TarotRun status: what the lifecycle planner writes and `kubectl get tr` shows.

One definition for three readers: the planner builds it (tarot_jobs/lifecycle/
planner.py), the CRD's status schema is generated from it (so the API server
prunes nothing the planner writes), and `tarot run` leaves it in
DIR/status.json. Field names are camelCase in the object and snake_case in
Python, as in the spec model; optional fields that are unset are left out of
the object (dump with `exclude_none=True`), never written as null.

Lists and strings are bounded so the generated schema is cheap for the API
server to validate (CEL cost estimates need maxItems/maxLength).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from tarot_jobs.spec.model import CAMEL_CASE_FIELDS

RunPhase = Literal[
    "Pending", "Probing", "Selecting", "Training", "Evaluating", "Succeeded", "Failed", "Suspended"
]
FINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed"})

# Condition types the planner sets (metav1.Condition `type`).
COMPLETE = "Complete"
FAILED = "Failed"
SUSPENDED = "Suspended"
SANDBOX_READY = "SandboxReady"  # the sandbox serves (the data check waits for it)
DATA_READY = "DataReady"
PROBED = "Probed"
POLICY_SELECTED = "PolicySelected"
EVALUATED = "Evaluated"
QUEUED = "Queued"  # a child Job waits for admission (Kueue keeps it suspended)
CONDITION_TYPES: tuple[str, ...] = (
    COMPLETE,
    FAILED,
    SUSPENDED,
    SANDBOX_READY,
    DATA_READY,
    PROBED,
    POLICY_SELECTED,
    EVALUATED,
    QUEUED,
)

MAX_PHASES = 16  # curriculum phases (spec.curriculum.phases allows at most 16; the portfolio has 1..4)
MAX_CONDITIONS = 16
CONDITION_MESSAGE_LIMIT = 32768  # metav1.Condition message limit

# RFC 3339 in UTC with second precision, as metav1.Time serialises ("2026-12-01T10:43:07Z").
Timestamp = Annotated[
    str,
    Field(
        max_length=32,
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
        json_schema_extra={"format": "date-time"},
    ),
]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def rfc3339(moment: datetime) -> str:
    """`moment` as a metav1.Time string (UTC, seconds); naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class StatusModel(BaseModel):
    """camelCase in the object, snake_case accepted; unknown fields are errors (the CRD would prune them)."""

    model_config = CAMEL_CASE_FIELDS


class Condition(StatusModel):
    """metav1.Condition, with its schema's limits."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = Field(default=None, ge=0)
    last_transition_time: Timestamp
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=CONDITION_MESSAGE_LIMIT)


class TierValues(StatusModel):
    """A number per tier (pass rate, reward or weight); tiers a run does not use are left out."""

    basic: float | None = None
    intermediate: float | None = None
    complex: float | None = None
    edge: float | None = None


class PassAtOne(StatusModel):
    """pass@1 per tier and overall, 0..1."""

    basic: Fraction | None = None
    intermediate: Fraction | None = None
    complex: Fraction | None = None
    edge: Fraction | None = None
    overall: Fraction | None = None


class Capability(StatusModel):
    """The probe's measurement of the base model; `score` is what selection compares with the threshold."""

    score: Fraction
    pass_at_one: PassAtOne = Field(default_factory=PassAtOne)


class PolicyStatus(StatusModel):
    name: str = Field(max_length=63)
    reason: str = Field(max_length=1024)


class DataStatus(StatusModel):
    """Problem counts of the data stage; the step budget of the phases depends on `train`."""

    train: int = Field(ge=0)
    heldout: int = Field(ge=0)
    dropped: int = Field(default=0, ge=0)


IN_PROCESS_SANDBOX = "in-process"  # SandboxUsage.backend of a stage that ran the executor in its own process


class SandboxUsage(StatusModel):
    """Which sandbox scored a stage's programs, and how many tests it scored there."""

    backend: str = Field(
        min_length=1,
        max_length=512,
        description='The sandbox service\'s URL the stage called (its Service by DNS name), or "in-process".',
    )
    scored_tests: int = Field(
        ge=0,
        description="Tests the backend answered for the attempt that finished the stage (a request sent "
        "again after a failure counts again).",
    )


class PhaseStatus(StatusModel):
    """One curriculum phase: its plan (tiers, weights, steps) and how far it got."""

    index: int = Field(ge=0)
    tiers: list[str] = Field(max_length=4)  # tier names, easy to hard
    weights: TierValues = Field(default_factory=TierValues)
    steps: int = Field(ge=0)
    completed_steps: int = Field(default=0, ge=0)
    mean_reward: float | None = None
    reward_per_tier: TierValues | None = None
    start_time: Timestamp | None = None
    finish_time: Timestamp | None = None
    sandbox: SandboxUsage | None = None  # from the phase Job's result, once it finished
    world_size: int | None = Field(
        default=None, ge=1, description="Processes the phase trained with (all nodes), once it finished."
    )


class LiveProgress(StatusModel):
    """What a running train Job merge-patches into status.curriculum.live after each logged step.

    `step` and `total` count the optimizer steps of phase `phase` alone (0..total), so the
    planner can fold them into that phase's completedSteps; `etaSeconds` is the phase's
    remaining time.
    """

    phase: int = Field(ge=0)
    step: int = Field(ge=0)
    total: int = Field(ge=0)
    mean_reward: float | None = None
    reward_per_tier: TierValues | None = None
    eta_seconds: float | None = Field(default=None, ge=0)
    update_time: Timestamp | None = None


class CurriculumStatus(StatusModel):
    current_phase: int | None = Field(default=None, ge=0, description="0-based phase training now (or last).")
    phases: list[PhaseStatus] = Field(default_factory=list, max_length=MAX_PHASES)
    live: LiveProgress | None = None


class EvaluationResult(StatusModel):
    pass_at_one: PassAtOne = Field(default_factory=PassAtOne)
    failed_executions: int | None = Field(default=None, ge=0)


class EvaluationStatus(StatusModel):
    before: EvaluationResult | None = None
    after: EvaluationResult | None = None


class TarotRunStatus(StatusModel):
    """`.status` of a TarotRun."""

    phase: RunPhase = "Pending"
    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    start_time: Timestamp | None = None
    completion_time: Timestamp | None = None
    data: DataStatus | None = None
    capability: Capability | None = None
    policy: PolicyStatus | None = None
    curriculum: CurriculumStatus = Field(default_factory=CurriculumStatus)
    progress: str | None = Field(default=None, max_length=32, description='e.g. "2/4 37%"')
    reward: float | None = Field(default=None, description="Latest mean reward.")
    eta: str | None = Field(default=None, max_length=32, description='e.g. "12m", "1h5m"')
    evaluation: EvaluationStatus = Field(default_factory=EvaluationStatus)

    def to_object(self) -> dict[str, Any]:
        """The status as the object holds it: camelCase, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
