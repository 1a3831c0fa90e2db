"""Choosing the policy: auto by capability, a named policy, or custom phases."""

from __future__ import annotations

import pytest

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.pipeline.selection import DEFAULT_THRESHOLD, select_policy
from tarot_jobs.problems.model import Tier
from tarot_jobs.spec.model import CurriculumSpec


def test_auto_picks_forward_below_the_threshold_and_reverse_at_or_above() -> None:
    spec = CurriculumSpec()
    assert spec.threshold == DEFAULT_THRESHOLD == 0.5
    weak = select_policy(spec, 0.12)
    assert weak.policy == get_policy("forward")
    assert (weak.rule, weak.score, weak.threshold) == ("auto", 0.12, 0.5)
    assert "0.120 < threshold 0.5" in weak.reason
    assert select_policy(spec, 0.5).policy == get_policy("reverse")
    assert select_policy(spec, 0.93).policy == get_policy("reverse")


def test_auto_uses_the_spec_threshold_and_candidates() -> None:
    spec = CurriculumSpec.model_validate(
        {"threshold": 0.2, "weakPolicy": "forward-hard-heavy", "strongPolicy": "reverse-hard-heavy-3epoch"}
    )
    assert select_policy(spec, 0.19).policy.name == "forward-hard-heavy"
    chosen = select_policy(spec, 0.2).policy
    assert chosen.name == "reverse-hard-heavy-3epoch" and chosen.epochs == 3


def test_auto_without_a_probe_score_is_an_error() -> None:
    with pytest.raises(ValueError, match="no capability score"):
        select_policy(CurriculumSpec(), None)


def test_a_named_policy_ignores_the_score_and_random_uses_the_seed() -> None:
    named = select_policy(CurriculumSpec(policy="edge-only"), 0.99)
    assert named.policy == get_policy("edge-only") and named.rule == "named" and named.threshold is None
    seeded = select_policy(CurriculumSpec(policy="random", seed=11), None)
    assert seeded.policy == get_policy("random", seed=11)


def test_custom_phases_from_the_spec() -> None:
    spec = CurriculumSpec.model_validate(
        {
            "policy": "custom",
            "epochs": 2,
            "phases": [
                {"start": 0, "end": 0.5, "tiers": ["edge"], "weights": {"edge": 1.0}},
                {"start": 0.5, "end": 1, "tiers": ["basic", "edge"]},
            ],
        }
    )
    chosen = select_policy(spec, 0.3)
    assert chosen.rule == "custom"
    assert chosen.policy.epochs == 2
    assert chosen.policy.phase_at(0.7).tiers == {Tier.BASIC, Tier.EDGE}
    assert chosen.policy.phases[0].weights[Tier.EDGE] == 1.0


def test_reward_weights_override_every_phase() -> None:
    chosen = select_policy(CurriculumSpec(policy="reverse"), None, weights_override={Tier.COMPLEX: 0.9})
    assert [p.weights[Tier.COMPLEX] for p in chosen.policy.phases] == [0.9] * 4
    assert "spec.reward.weights" in chosen.reason


def test_spec_tiers_remove_the_other_tiers_from_every_phase() -> None:
    chosen = select_policy(CurriculumSpec(policy="reverse"), None, tiers=[Tier.BASIC, Tier.COMPLEX])
    assert [set(p.tiers) for p in chosen.policy.phases] == [
        {Tier.COMPLEX},
        {Tier.COMPLEX},
        {Tier.COMPLEX},
        {Tier.BASIC, Tier.COMPLEX},
    ]
    with pytest.raises(ValueError, match=r"phases\[0\].tiers: phase 0-0.2 B of forward allows none of C\+E"):
        select_policy(CurriculumSpec(policy="forward"), None, tiers=[Tier.COMPLEX, Tier.EDGE])
