"""How many optimizer steps each curriculum phase gets.

The run's step budget is `training.maxSteps`, or else `training.epochs` (or
the policy's own epochs, 3 for the `-3epoch` variants) passes over the
training problems. One optimizer step consumes
perDeviceTrainBatchSize x processes x gradientAccumulationSteps completions,
that is that many / numGenerations prompts, and an epoch is ceil(problems /
prompts per step) steps (its last batch completed by the sampler, so that
every problem is drawn once an epoch). Phase i gets its fraction of the
budget, rounded by largest remainder so the phases add up to the budget
exactly, and at least one step each.

The phases are cuts of ONE trajectory (docs/pipeline.md, "Training"): optimizer step
s (1-based, run-wide) belongs to the phase whose range holds it, and the
reward of the step is that phase's. `phase_at_step` is the single place that
maps a step to its phase, for the cut Jobs and the uninterrupted trainer alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from tarot_jobs.curriculum.policy import CurriculumPolicy, tier_order
from tarot_jobs.spec.model import TarotRunSpec


@dataclass(frozen=True)
class PhasePlan:
    index: int
    tiers: list[str]
    weights: dict[str, float]
    fraction: float
    steps: int
    step_offset: int  # steps of the earlier phases

    @property
    def end_step(self) -> int:
        """The run-wide number of the phase's last optimizer step (its boundary checkpoint)."""
        return self.step_offset + self.steps

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompts_per_step(spec: TarotRunSpec) -> float:
    t = spec.training
    return (
        t.per_device_train_batch_size
        * spec.training_processes()
        * t.gradient_accumulation_steps
        / t.num_generations
    )


def steps_per_epoch(spec: TarotRunSpec, train_problems: int) -> int:
    """Optimizer steps of one epoch, as the trainer's sampler (trainer.EpochSampler) draws it: every
    training problem once, the last step's batch completed with problems drawn a second time."""
    return math.ceil(train_problems / prompts_per_step(spec))


def total_steps(spec: TarotRunSpec, policy: CurriculumPolicy, train_problems: int) -> int:
    """The run's optimizer-step budget over all phases (never fewer steps than phases)."""
    if spec.training.max_steps is not None:
        budget = spec.training.max_steps
    else:
        epochs = spec.training.epochs if spec.training.epochs is not None else policy.epochs
        budget = math.ceil(epochs * steps_per_epoch(spec, train_problems))
    return max(budget, len(policy.phases))


def split_steps(fractions: list[float], total: int) -> list[int]:
    """`total` split by `fractions` (largest remainder), each part at least 1."""
    if total < len(fractions):
        raise ValueError(f"{total} steps cannot cover {len(fractions)} phases")
    exact = [f * total / sum(fractions) for f in fractions]
    steps = [max(1, math.floor(x)) for x in exact]
    # Hand out the missing steps to the phases furthest below their exact share
    # (ties: the earlier phase), and take back any excess the minimum of 1 caused.
    while sum(steps) < total:
        steps[max(range(len(steps)), key=lambda i: exact[i] - steps[i])] += 1
    while sum(steps) > total:
        steps[max((i for i in range(len(steps)) if steps[i] > 1), key=lambda i: steps[i] - exact[i])] -= 1
    return steps


def plan_phases(spec: TarotRunSpec, policy: CurriculumPolicy, train_problems: int) -> list[PhasePlan]:
    total = total_steps(spec, policy, train_problems)
    steps = split_steps([p.end - p.start for p in policy.phases], total)
    plans = []
    offset = 0
    for index, (phase, count) in enumerate(zip(policy.phases, steps, strict=True)):
        tiers = tier_order(phase.tiers)
        plans.append(
            PhasePlan(
                index=index,
                tiers=[t.value for t in tiers],
                weights={t.value: phase.weights[t] for t in tiers},
                fraction=phase.end - phase.start,
                steps=count,
                step_offset=offset,
            )
        )
        offset += count
    return plans


def phase_at_step(plans: list[PhasePlan], done_steps: int) -> PhasePlan:
    """The phase that trains the next optimizer step, after `done_steps` run-wide steps."""
    for plan in plans:
        if done_steps < plan.end_step:
            return plan
    return plans[-1]  # past the budget (trl's last logging call): the last phase
