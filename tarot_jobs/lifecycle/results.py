"""The small JSON result each stage hands its executor (STATUS-CONTRACT.md, "Job results").

A stage command writes it to the file named by $TAROT_RESULT_FILE (a pod's
/dev/termination-log, so it must stay under 4 KiB); the local runner reads
the same shapes from the workdir. The planner validates every result with
these models before it trusts a number, so a malformed result fails the run
with a message naming the field instead of corrupting the status.
"""

from __future__ import annotations

from typing import Annotated

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
