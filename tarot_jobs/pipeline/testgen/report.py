"""What a `tarot generate-tests` run did: per tier, how many tests were kept and why the rest were dropped,
and which problems were not written (and why). `model_dump(mode="json")` is the JSON report file."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from tarot_jobs.pipeline.testgen.outputs import DropReason
from tarot_jobs.problems.model import ALL_TIERS, Tier


class TierReport(BaseModel):
    proposed: int = Field(
        default=0, description="Items in the model's answers (an answer that is no list counts as one)."
    )
    kept: int = Field(default=0, description="Tests written with an output computed by the gold solution.")
    dropped: dict[DropReason, int] = Field(default_factory=dict)


class NotWritten(BaseModel):
    """A problem left out of the output (a rerun tries it again)."""

    problem_id: str
    why: str


class GenerationReport(BaseModel):
    endpoint: str
    model: str
    input: str
    output: str
    problems: int = Field(description="Problems in the input.")
    already_done: int = Field(default=0, description="Problems already in the output, skipped (resume).")
    written: int = 0
    not_written: list[NotWritten] = Field(default_factory=list)
    tiers: dict[Tier, TierReport] = Field(default_factory=lambda: {tier: TierReport() for tier in ALL_TIERS})

    def add(
        self, tier: Tier, *, proposed: int = 0, kept: int = 0, dropped: Mapping[DropReason, int] | None = None
    ) -> None:
        """Count into `tier`: every proposed item ends up kept or dropped once."""
        counts = self.tiers[tier]
        counts.proposed += proposed
        counts.kept += kept
        for reason, count in (dropped or {}).items():
            if count:
                counts.dropped[reason] = counts.dropped.get(reason, 0) + count
