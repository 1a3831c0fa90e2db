"""The portfolio: every curriculum policy of the TAROT reference runs, as data.

Names are `<schedule>[-<weights>][-3epoch]`:
- schedules over progress 0-0.2 / 0.2-0.4 / 0.4-0.6 / 0.6-1.0:
  forward B / B+I / B+I+C / all, reverse C / C+E / I+C+E / all;
  static (all tiers throughout); basic-only, complex-only, edge-only;
- weights B/I/C/E: uniform (no suffix) .25/.25/.25/.25, `basic-heavy`
  .35/.35/.15/.15, `hard-heavy` .15/.15/.35/.35 (the reference's
  "var_asce_*" runs are forward-hard-heavy and reverse-hard-heavy);
- `-3epoch`: the forward and reverse schedules stretched over three epochs;
- `random`: the cumulative (forward-like) schedule over a seeded random tier order.
"""

from __future__ import annotations

import itertools
import random

from tarot_jobs.curriculum.policy import CurriculumPolicy, Phase, tier_letters
from tarot_jobs.problems.model import ALL_TIERS, Tier

B, I, C, E = Tier.BASIC, Tier.INTERMEDIATE, Tier.COMPLEX, Tier.EDGE  # noqa: E741 - the paper's letters

# The reference repository switches tiers at these fractions of training.
BOUNDARIES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 1.0)

SCHEDULES: dict[str, tuple[str, list[frozenset[Tier]]]] = {
    "forward": (
        "easy to hard",
        [frozenset({B}), frozenset({B, I}), frozenset({B, I, C}), frozenset(ALL_TIERS)],
    ),
    "reverse": (
        "hard first",
        [frozenset({C}), frozenset({C, E}), frozenset({I, C, E}), frozenset(ALL_TIERS)],
    ),
    "static": ("all tiers throughout", [frozenset(ALL_TIERS)]),
    "basic-only": ("basic tests only", [frozenset({B})]),
    "complex-only": ("complex tests only", [frozenset({C})]),
    "edge-only": ("edge tests only", [frozenset({E})]),
}

WEIGHTINGS: dict[str, dict[Tier, float]] = {
    "uniform": {B: 0.25, I: 0.25, C: 0.25, E: 0.25},
    "basic-heavy": {B: 0.35, I: 0.35, C: 0.15, E: 0.15},
    "hard-heavy": {B: 0.15, I: 0.15, C: 0.35, E: 0.35},
}

STRETCHED_SCHEDULES: tuple[str, ...] = ("forward", "reverse")
STRETCHED_EPOCHS = 3


def schedule_policy(
    name: str, description: str, tier_sets: list[frozenset[Tier]], weights: dict[Tier, float], epochs: int = 1
) -> CurriculumPolicy:
    """A policy whose phases allow `tier_sets` in turn (one set: all of training; four: BOUNDARIES)."""
    spans = [(0.0, 1.0)] if len(tier_sets) == 1 else list(itertools.pairwise(BOUNDARIES))
    phases = [
        Phase(start=start, end=end, tiers=tiers, weights=weights)
        for (start, end), tiers in zip(spans, tier_sets, strict=True)
    ]
    return CurriculumPolicy(name=name, description=description, phases=phases, epochs=epochs)


def random_policy(seed: int = 0) -> CurriculumPolicy:
    """The forward schedule's shape (one more tier per phase) over a tier order shuffled with `seed`."""
    order = list(ALL_TIERS)
    random.Random(seed).shuffle(order)
    tier_sets = [frozenset(order[: i + 1]) for i in range(len(order))]
    letters = " / ".join(tier_letters(s) for s in tier_sets)
    return schedule_policy(
        "random", f"seeded random tier order (seed {seed}): {letters}", tier_sets, WEIGHTINGS["uniform"]
    )


def _build_portfolio() -> dict[str, CurriculumPolicy]:
    portfolio: dict[str, CurriculumPolicy] = {}
    for schedule, (what, tier_sets) in SCHEDULES.items():
        for weighting, weights in WEIGHTINGS.items():
            suffix = "" if weighting == "uniform" else f"-{weighting}"
            portfolio[f"{schedule}{suffix}"] = schedule_policy(
                f"{schedule}{suffix}", f"{what}, {weighting} weights", tier_sets, weights
            )
            if schedule in STRETCHED_SCHEDULES:
                name = f"{schedule}{suffix}-3epoch"
                portfolio[name] = schedule_policy(
                    name, f"{what}, {weighting} weights, over 3 epochs", tier_sets, weights, STRETCHED_EPOCHS
                )
    portfolio["random"] = random_policy(0)
    return portfolio


PORTFOLIO: dict[str, CurriculumPolicy] = _build_portfolio()


class UnknownPolicyError(KeyError):
    """A policy name that is not in the portfolio."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_policy(name: str, *, seed: int = 0) -> CurriculumPolicy:
    """The portfolio policy called `name`; `seed` only matters for `random`."""
    if name == "random":
        return random_policy(seed)
    try:
        return PORTFOLIO[name]
    except KeyError:
        known = ", ".join(sorted(PORTFOLIO))
        raise UnknownPolicyError(f"unknown curriculum policy {name!r}; known policies: {known}") from None
