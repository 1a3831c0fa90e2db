"""Choosing the curriculum policy of a run from its spec and the probed capability.

The `auto` rule. TAROT's finding is that weaker models learn best easy to hard
(forward) and stronger ones hard first (reverse), but the paper gives no
rule. Ours: the capability score is the probe's overall pass@1 (0..1) on
held-out problems; `auto` picks the spec's weak policy (default `forward`)
when the score is below the threshold and its strong policy (default
`reverse`) otherwise.

Why the default threshold is 0.5: GRPO learns only from groups of samples
whose rewards differ. A tier the model almost always fails (or almost always
passes) gives all-equal rewards, hence zero advantage and no gradient. A
model below 0.5 fails most tests, so reverse's opening phases (complex and
edge tests only) would be mostly all-zero groups and forward's basic tests
are where its signal is; a model at or above 0.5 passes most tests, so
forward's basic-only opening would be mostly saturated groups while the
hard tiers still discriminate. 0.5 is where a pass/fail reward has the most
variance, the point where the two failure modes balance. It is a default,
not a law: set `curriculum.threshold` from your own pilot runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel

from tarot_jobs.curriculum.policy import CurriculumPolicy, tier_letters
from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.problems.model import Tier
from tarot_jobs.spec.model import CurriculumSpec

DEFAULT_THRESHOLD = 0.5


class Selection(BaseModel):
    """The chosen policy and why it was chosen (shown in the run's status)."""

    policy: CurriculumPolicy
    rule: str  # "auto", "named" or "custom"
    reason: str
    score: float | None = None
    threshold: float | None = None


def select_policy(
    curriculum: CurriculumSpec,
    capability_score: float | None,
    *,
    weights_override: Mapping[Tier, float] | None = None,
    tiers: Iterable[Tier] | None = None,
) -> Selection:
    """Apply the spec's curriculum rule; `weights_override` (spec.reward.weights) replaces phase weights.

    `tiers` (spec.tiers) removes every other tier from the phases.
    `auto` needs a capability score (raises ValueError without one); a named
    policy and `custom` phases ignore the score but record it.
    """
    rule: str
    if curriculum.policy == "auto":
        if capability_score is None:
            raise ValueError(
                "curriculum.policy is 'auto' but no capability score was measured (run the probe)"
            )
        weak = capability_score < curriculum.threshold
        name = curriculum.weak_policy if weak else curriculum.strong_policy
        policy = get_policy(name, seed=curriculum.seed)
        relation = "<" if weak else ">="
        rule = "auto"
        reason = (
            f"capability {capability_score:.3f} {relation} threshold {curriculum.threshold:g}: "
            f"{'weaker' if weak else 'stronger'} model, {name} ({policy.description})"
        )
    elif curriculum.policy == "custom":
        assert curriculum.phases is not None  # the spec guarantees phases with policy: custom
        policy = CurriculumPolicy(
            name="custom",
            description="phases from the run spec",
            phases=curriculum.phases,
            epochs=curriculum.epochs,
        )
        rule = "custom"
        reason = f"custom phases from the run spec: {' / '.join(p.label() for p in policy.phases)}"
    else:
        policy = get_policy(curriculum.policy, seed=curriculum.seed)
        rule = "named"
        reason = f"policy {curriculum.policy} named in the run spec ({policy.description})"
    if tiers is not None and policy.tiers_used() - set(tiers):
        policy = policy.restricted_to(tiers)
        reason += f"; only tiers {tier_letters(tiers)}"
    if weights_override:
        policy = policy.with_weights(weights_override)
        reason += "; tier weights from spec.reward.weights"
    return Selection(
        policy=policy,
        rule=rule,
        reason=reason,
        score=capability_score,
        threshold=curriculum.threshold if rule == "auto" else None,
    )
