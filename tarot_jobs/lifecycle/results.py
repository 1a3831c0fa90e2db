"""The small JSON result each stage hands its executor (docs/architecture.md, "Stage results"), and
the pure functions that cut each stage's output down to it.

A stage command writes it to the file named by $TAROT_RESULT_FILE (a pod's
/dev/termination-log, so it must stay under 4 KiB); the local runner reads
the same shapes from the workdir. The planner validates every result with
these models before it trusts a number, so a malformed result fails the run
with a message naming the field instead of corrupting the status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from tarot_jobs.spec.status import PassAtOne, SandboxUsage, StatusModel, TierValues

# The file a stage writes its result to (a pod sets /dev/termination-log, terminationMessagePolicy File).
RESULT_FILE_VARIABLE = "TAROT_RESULT_FILE"

Count = Annotated[int, Field(ge=0)]


class DataResult(StatusModel):
    train: Count
    heldout: Count
    dropped: Count = 0
    sandbox: SandboxUsage | None = None  # which sandbox checked the tests, and how many it ran


class ProbeResult(StatusModel):
    score: float = Field(ge=0.0, le=1.0)
    pass_at_one: PassAtOne = Field(default_factory=PassAtOne)
    sandbox: SandboxUsage | None = None


class TrainResult(StatusModel):
    phase: Count
    steps: Count
    completed_steps: Count
    mean_reward: float | None = None
    reward_per_tier: TierValues = Field(default_factory=TierValues)
    checkpoint: str | None = Field(default=None, max_length=1024)
    sandbox: SandboxUsage | None = None  # None: a result from a trainer that did not report it
    world_size: Count | None = None  # the processes that trained the phase (None: not reported)


class EvaluateResult(StatusModel):
    pass_at_one: PassAtOne = Field(default_factory=PassAtOne)
    failed_executions: Count = 0
    sandbox: SandboxUsage | None = None


class SandboxServiceResult(StatusModel):
    """What `tarot sandbox serve` executed, by verdict, when it stopped: a sandbox pod's termination
    message, so the count survives the pod (a finished run's sandbox is scaled to zero)."""

    executions: dict[str, Count] = Field(default_factory=dict)


# A train Job's progress report (status.curriculum.live, or ObservedChild.progress) is
# tarot_jobs.spec.status.LiveProgress.


# Each stage's output, cut down to its result: pure functions of what the stages return, so they are
# tested without running a stage.
def data_result(summary: Mapping[str, Any], sandbox: SandboxUsage | None = None) -> DataResult:
    """From the data stage's check.json summary: usable problems, and those the check dropped."""
    dropped = sum(
        int(report["problems"]) - int(report["usable_problems"])
        for name in ("check_train", "check_heldout")
        if (report := summary.get(name)) is not None
    )
    usable = summary["usable"]
    return DataResult(train=usable["train"], heldout=usable["heldout"], dropped=dropped, sandbox=sandbox)


def probe_result(capability: Mapping[str, Any], sandbox: SandboxUsage | None = None) -> ProbeResult:
    """From capability.json: the score selection compares, and pass@1 per tier."""
    return ProbeResult.model_validate(
        {"score": capability["score"], "pass_at_one": _present(capability["pass_at_1"]), "sandbox": sandbox}
    )


def train_result(summary: Mapping[str, Any]) -> TrainResult:
    """From the phase summary (phase.json): its steps, how many are done, reward, its weights, and the
    sandbox that scored its rewards (tarot_jobs.pipeline.sandbox_usage)."""
    completed = max(0, min(int(summary["global_step"]) - int(summary["step_offset"]), int(summary["steps"])))
    return TrainResult.model_validate(
        {
            "phase": summary["index"],
            "steps": summary["steps"],
            "completed_steps": completed,
            "mean_reward": summary.get("mean_reward"),
            "reward_per_tier": _present(summary.get("mean_tier_pass_rate") or {}),
            "checkpoint": summary.get("final"),
            "sandbox": summary.get("sandbox"),
            "world_size": summary.get("world_size"),
        }
    )


def evaluate_result(evaluation: Mapping[str, Any], sandbox: SandboxUsage | None = None) -> EvaluateResult:
    """From evaluation.json: held-out pass@1 per tier, and completions the sandbox failed to run."""
    heldout = evaluation["heldout"]
    return EvaluateResult.model_validate(
        {
            "pass_at_one": _present(heldout["pass@1"]),
            "failed_executions": heldout["counts"]["sandbox_failed"],
            "sandbox": sandbox,
        }
    )


def _present(values: Mapping[str, float | None]) -> dict[str, float]:
    """Tiers without a value (none judged) are left out, as the status schema expects."""
    return {key: value for key, value in values.items() if value is not None}
