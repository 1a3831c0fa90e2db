"""The policy portfolio matches the reference runs
(docs/architecture.md, "Curriculum policies"), and bad policies are rejected naming the field."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tarot_jobs.cli import app
from tarot_jobs.curriculum.policy import CurriculumPolicy, Phase
from tarot_jobs.curriculum.portfolio import PORTFOLIO, UnknownPolicyError, get_policy, random_policy
from tarot_jobs.problems.model import ALL_TIERS, Tier

B, I, C, E = Tier.BASIC, Tier.INTERMEDIATE, Tier.COMPLEX, Tier.EDGE  # noqa: E741
SPANS = [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 1.0)]


def schedule(policy: CurriculumPolicy) -> list[tuple[float, float, set[Tier]]]:
    return [(p.start, p.end, set(p.tiers)) for p in policy.phases]


def test_every_portfolio_policy_is_valid_and_round_trips() -> None:
    expected = (
        {
            f"{s}{w}{e}"
            for s in ("forward", "reverse")
            for w in ("", "-basic-heavy", "-hard-heavy")
            for e in ("", "-3epoch")
        }
        | {
            f"{s}{w}"
            for s in ("static", "basic-only", "complex-only", "edge-only")
            for w in ("", "-basic-heavy", "-hard-heavy")
        }
        | {"random"}
    )
    assert set(PORTFOLIO) == expected
    for name, policy in PORTFOLIO.items():
        assert policy.name == name
        assert CurriculumPolicy.model_validate(policy.model_dump(mode="json")) == policy
        assert policy.phases[0].start == 0.0 and policy.phases[-1].end == 1.0


def test_forward_and_reverse_match_the_design_exactly() -> None:
    assert schedule(get_policy("forward")) == [
        (s, e, t) for (s, e), t in zip(SPANS, [{B}, {B, I}, {B, I, C}, {B, I, C, E}], strict=True)
    ]
    assert schedule(get_policy("reverse")) == [
        (s, e, t) for (s, e), t in zip(SPANS, [{C}, {C, E}, {I, C, E}, {B, I, C, E}], strict=True)
    ]
    assert schedule(get_policy("static")) == [(0.0, 1.0, {B, I, C, E})]
    assert schedule(get_policy("basic-only")) == [(0.0, 1.0, {B})]
    assert schedule(get_policy("complex-only")) == [(0.0, 1.0, {C})]
    assert schedule(get_policy("edge-only")) == [(0.0, 1.0, {E})]


@pytest.mark.parametrize(
    ("suffix", "weights"),
    [
        ("", (0.25, 0.25, 0.25, 0.25)),
        ("-basic-heavy", (0.35, 0.35, 0.15, 0.15)),
        ("-hard-heavy", (0.15, 0.15, 0.35, 0.35)),
    ],
)
def test_weightings(suffix: str, weights: tuple[float, ...]) -> None:
    for base in ("forward", "reverse", "static", "edge-only"):
        for phase in get_policy(f"{base}{suffix}").phases:
            assert tuple(phase.weights[t] for t in ALL_TIERS) == weights


def test_three_epoch_variants_stretch_the_same_phases() -> None:
    for base in ("forward", "reverse-hard-heavy"):
        one, three = get_policy(base), get_policy(f"{base}-3epoch")
        assert three.epochs == 3 and one.epochs == 1
        assert three.phases == one.phases


@pytest.mark.parametrize(
    ("progress", "index"),
    [
        (-0.5, 0),
        (0.0, 0),
        (0.19, 0),
        (0.2, 1),
        (0.39999, 1),
        (0.4, 2),
        (0.6, 3),
        (0.99, 3),
        (1.0, 3),
        (7.0, 3),
    ],
)
def test_phase_at_progress(progress: float, index: int) -> None:
    forward = get_policy("forward")
    assert forward.phase_index_at(progress) == index
    assert forward.phase_at(progress) is forward.phases[index]


def test_random_is_seeded_and_deterministic() -> None:
    assert random_policy(7) == random_policy(7) == get_policy("random", seed=7)
    orders = set()
    for seed in range(12):
        tier_sets = [p.tiers for p in get_policy("random", seed=seed).phases]
        assert [len(s) for s in tier_sets] == [1, 2, 3, 4]  # one more tier per phase
        assert all(a < b for a, b in itertools.pairwise(tier_sets))
        added = [next(iter(tier_sets[0]))] + [next(iter(b - a)) for a, b in itertools.pairwise(tier_sets)]
        orders.add(tuple(added))
    assert len(orders) > 1  # different seeds give different orders


def test_unknown_policy_lists_the_known_names() -> None:
    with pytest.raises(UnknownPolicyError, match=r"unknown curriculum policy 'sideways'.*forward-hard-heavy"):
        get_policy("sideways")


def _phase(start: float, end: float, tiers: list[str], **weights: float) -> dict[str, object]:
    return {"start": start, "end": end, "tiers": tiers, **({"weights": weights} if weights else {})}


@pytest.mark.parametrize(
    ("phases", "field", "why"),
    [
        ([_phase(0, 0.5, ["basic"]), _phase(0.6, 1, ["edge"])], "phases[1].start", "gap"),
        ([_phase(0, 0.5, ["basic"]), _phase(0.4, 1, ["edge"])], "phases[1].start", "overlaps"),
        ([_phase(0.1, 1, ["basic"])], "phases[0].start", "must start at 0"),
        ([_phase(0, 0.8, ["basic"])], "phases[0].end", "must end at 1"),
    ],
)
def test_gaps_and_overlaps_are_rejected_naming_the_field(
    phases: list[dict[str, object]], field: str, why: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        CurriculumPolicy.model_validate({"name": "mine", "phases": phases})
    message = str(caught.value)
    assert field in message and why in message


@pytest.mark.parametrize(
    ("phase", "field", "why"),
    [
        (_phase(0, 1, ["basic", "expert"]), "tiers", "'basic', 'intermediate', 'complex' or 'edge'"),
        (_phase(0, 1, []), "tiers", "at least 1 item"),
        (_phase(0, 1, ["basic"], basic=-0.5), "weights", "must not be negative"),
        (_phase(0, 1, ["basic", "edge"], basic=0, edge=0, complex=1), "weights", "weighs 0"),
        (_phase(0.5, 0.5, ["basic"]), "end", "must be greater than start"),
    ],
)
def test_bad_phases_are_rejected_naming_the_field(phase: dict[str, object], field: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Phase.model_validate(phase)
    message = str(caught.value)
    assert field in message and why in message


def test_weights_only_count_for_allowed_tiers() -> None:
    phase = Phase(start=0, end=1, tiers=frozenset({B}), weights={B: 0.4, E: 0.9})
    assert phase.weight(B) == 0.4
    assert phase.weight(E) == 0.0
    assert phase.weight(None) == 0.0


def test_with_weights_replaces_every_phase() -> None:
    heavy = get_policy("forward").with_weights({B: 1.0, E: 2.0})
    assert [p.weights[B] for p in heavy.phases] == [1.0] * 4
    assert heavy.phases[3].weights == {B: 1.0, I: 0.25, C: 0.25, E: 2.0}
    assert schedule(heavy) == schedule(get_policy("forward"))


def test_curriculum_list_and_show_cli() -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["curriculum", "list"])
    assert listed.exit_code == 0
    for name in PORTFOLIO:
        assert f" {name} " in listed.output
    assert "C/C+E/I+C+E/all" in listed.output
    shown = runner.invoke(app, ["curriculum", "show", "reverse-hard-heavy"])
    assert shown.exit_code == 0
    assert "0.4 - 0.6" in shown.output and "I+C+E" in shown.output and "I=0.15 C=0.35 E=0.35" in shown.output
    as_json = runner.invoke(app, ["curriculum", "show", "random", "--seed", "5", "--json"])
    assert CurriculumPolicy.model_validate_json(as_json.output) == get_policy("random", seed=5)
    missing = runner.invoke(app, ["curriculum", "show", "sideways"])
    assert missing.exit_code == 2
    assert "unknown curriculum policy" in missing.output
