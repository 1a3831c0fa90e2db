"""A curriculum policy as data: which tiers earn reward, with which weights, when.

Training progress runs from 0.0 (first step) to 1.0 (last step) over the whole
run, whatever its length. A policy cuts that range into contiguous phases;
each phase allows some tiers and weights them. The reward reads the phase of
the current progress; a cluster run starts one training Job per phase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from tarot_jobs.problems.model import ALL_TIERS, Tier

# Phase boundaries are user-written decimals (0.2, 0.4, ...); compare them with slack.
BOUNDARY_SLACK = 1e-9

UNIFORM_WEIGHTS: dict[Tier, float] = dict.fromkeys(ALL_TIERS, 0.25)


def tier_order(tiers: Iterable[Tier]) -> list[Tier]:
    """`tiers` sorted easy to hard (basic, intermediate, complex, edge)."""
    chosen = set(tiers)
    return [t for t in ALL_TIERS if t in chosen]


def tier_letters(tiers: Iterable[Tier]) -> str:
    """'B+I+C' style shorthand, as docs/architecture.md ("Curriculum policies") writes the schedules."""
    return "+".join(t.value[0].upper() for t in tier_order(tiers))


class Phase(BaseModel):
    """One stretch of training: [start, end) of progress, its tiers and their weights.

    `end` is exclusive except for the final phase, which ends at (and includes) 1.0.
    Weights only matter for the allowed tiers; a missing weight defaults to
    the uniform 0.25.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float = Field(ge=0.0, le=1.0, description="Fraction of training progress where the phase starts.")
    end: float = Field(ge=0.0, le=1.0, description="Fraction of training progress where the phase ends.")
    tiers: frozenset[Tier] = Field(min_length=1, description="Tiers whose tests earn reward in this phase.")
    weights: dict[Tier, float] = Field(
        default_factory=lambda: dict(UNIFORM_WEIGHTS),
        description="Reward weight of one passed test, per tier (only allowed tiers count).",
    )

    @field_validator("weights")
    @classmethod
    def _weights_are_not_negative(cls, weights: dict[Tier, float]) -> dict[Tier, float]:
        negative = [f"{tier.value}={w}" for tier, w in weights.items() if w < 0]
        if negative:
            raise ValueError(f"weights must not be negative ({', '.join(negative)})")
        return {**UNIFORM_WEIGHTS, **weights}

    @model_validator(mode="after")
    def _check_range_and_weights(self) -> Phase:
        if self.end <= self.start + BOUNDARY_SLACK:
            raise ValueError(f"end: {self.end} must be greater than start {self.start}")
        if all(self.weights[t] == 0 for t in self.tiers):
            raise ValueError(
                f"weights: every allowed tier ({tier_letters(self.tiers)}) weighs 0, so nothing earns reward"
            )
        return self

    @field_serializer("tiers")
    def _tiers_in_tier_order(self, tiers: frozenset[Tier]) -> list[str]:
        return [t.value for t in tier_order(tiers)]

    def weight(self, tier: Tier | None) -> float:
        """Reward weight of a passed test of `tier` in this phase (0 when the tier is not allowed)."""
        if tier is None or tier not in self.tiers:
            return 0.0
        return self.weights[tier]

    def label(self) -> str:
        return f"{self.start:g}-{self.end:g} {tier_letters(self.tiers)}"


def contiguity_problems(phases: list[Phase]) -> list[str]:
    """Every gap or overlap in `phases`, as 'phases[i].field: why' lines (empty when they tile [0, 1])."""
    if not phases:
        return ["phases: at least one phase is required"]
    problems: list[str] = []
    if abs(phases[0].start) > BOUNDARY_SLACK:
        problems.append(f"phases[0].start: the first phase must start at 0, not {phases[0].start}")
    for i in range(1, len(phases)):
        previous_end, start = phases[i - 1].end, phases[i].start
        if start > previous_end + BOUNDARY_SLACK:
            problems.append(
                f"phases[{i}].start: {start} leaves a gap after phases[{i - 1}].end {previous_end}"
            )
        elif start < previous_end - BOUNDARY_SLACK:
            problems.append(
                f"phases[{i}].start: {start} overlaps phases[{i - 1}], which ends at {previous_end}"
            )
    if abs(phases[-1].end - 1.0) > BOUNDARY_SLACK:
        problems.append(f"phases[{len(phases) - 1}].end: the last phase must end at 1, not {phases[-1].end}")
    return problems


class CurriculumPolicy(BaseModel):
    """A named schedule of phases covering training progress 0..1.

    `epochs` is how long the policy wants training to be when the run spec
    does not fix the length itself: the "3-epoch" variants keep the same
    phase fractions but stretch them over three passes over the data.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    phases: list[Phase] = Field(min_length=1)
    epochs: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _phases_tile_training(self) -> CurriculumPolicy:
        problems = contiguity_problems(self.phases)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def phase_index_at(self, progress: float) -> int:
        """Index of the phase that covers `progress` (clamped to [0, 1]; 1.0 is in the last phase)."""
        clamped = min(max(progress, 0.0), 1.0)
        for i, phase in enumerate(self.phases):
            if clamped < phase.end - BOUNDARY_SLACK:
                return i
        return len(self.phases) - 1

    def phase_at(self, progress: float) -> Phase:
        return self.phases[self.phase_index_at(progress)]

    def tiers_used(self) -> frozenset[Tier]:
        return frozenset().union(*(p.tiers for p in self.phases))

    def restricted_to(self, tiers: Iterable[Tier]) -> CurriculumPolicy:
        """The same schedule allowing only `tiers` (spec.tiers); a phase left without tiers is an error."""
        keep = frozenset(tiers)
        phases = []
        for i, p in enumerate(self.phases):
            if not p.tiers & keep:
                raise ValueError(
                    f"phases[{i}].tiers: phase {p.label()} of {self.name} allows none of {tier_letters(keep)}"
                )
            phases.append(Phase(start=p.start, end=p.end, tiers=p.tiers & keep, weights=p.weights))
        return self.model_copy(update={"phases": phases})

    def with_weights(self, weights: Mapping[Tier, float]) -> CurriculumPolicy:
        """The same schedule with `weights` (per tier) replacing the weights of every phase."""
        phases = [
            Phase(start=p.start, end=p.end, tiers=p.tiers, weights={**p.weights, **weights})
            for p in self.phases
        ]
        return CurriculumPolicy(
            name=self.name, description=self.description, phases=phases, epochs=self.epochs
        )
