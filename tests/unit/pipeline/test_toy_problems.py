"""The `toy` problem source: valid gold programs, discriminating tiers, disjoint splits."""

from __future__ import annotations

import pytest

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.problems.check import check_problems
from tarot_jobs.problems.errors import ProblemSourceError
from tarot_jobs.problems.loaders import load_problems
from tarot_jobs.problems.model import Tier
from tarot_jobs.problems.toy import SPLITS, ToyRule, toy_problems
from tarot_jobs.rewards.tiered import score_batch
from tarot_jobs.sandbox.local import LocalSandbox

STATIC = get_policy("static").phases[0]  # every tier, uniform weights


def _block(code: str) -> str:
    return f"```python\n{code}```"


def test_splits_are_deterministic_and_share_no_problem() -> None:
    splits = {name: toy_problems(name) for name in SPLITS}
    assert {name: len(problems) for name, problems in splits.items()} == SPLITS
    assert toy_problems("train") == splits["train"]
    statements = {name: {p.statement for p in problems} for name, problems in splits.items()}
    assert not statements["train"] & statements["heldout"]
    assert not statements["warmup"] & (statements["train"] | statements["heldout"])
    assert load_problems("toy:warmup:5").problems == splits["warmup"][:5]
    for bad in ("toy:nope", "toy:train:0", "toy:train:x"):
        with pytest.raises(ProblemSourceError, match="toy"):
            load_problems(bad)


def test_gold_passes_and_each_tier_checks_its_own_rule() -> None:
    problems = toy_problems("heldout", 6)
    with LocalSandbox(1) as sandbox:
        report = check_problems(problems, sandbox, timeout_s=5, memory_limit_mb=256)
        assert report.usable_problems == len(problems) and all(
            len(p.tests) == len(o.tests) for p, o in zip(report.cleaned, problems, strict=True)
        )
        # No program that ignores its input passes a single test: three different answers per test.
        constants = ["print(0)\nprint(1)\nprint(2)\n", "print(1)\n", "x = input()\nprint(x)\n"]
        items = [(p, _block(c)) for p in problems for c in constants]
        assert all(d.reward == 0.0 for d in score_batch(items, STATIC, sandbox, time_limit_s=5))
        # Right basic rule, every other rule wrong: exactly the basic tier passes.
        for problem in problems:
            basic_line = problem.gold_solution.rstrip().splitlines()[-1].strip()
            basic_only = f"for x in map(int, input().split()):\n    {basic_line}\n"
            [detail] = score_batch([(problem, _block(basic_only))], STATIC, sandbox, time_limit_s=5)
            passed = {tier for tier, tally in detail.tiers.items() if tally.passed}
            assert passed == {Tier.BASIC}, (problem.id, detail.tiers)
            assert detail.tiers[Tier.BASIC].passed == detail.tiers[Tier.BASIC].total


def test_a_guessed_threshold_cannot_pass_both_threshold_tiers() -> None:
    """Without the numbers either side of T, `x > 22` in every program passed whenever a problem's
    numbers fell far enough from its T (what GRPO learned in docs/learning.md's runs 2a and 2c)."""
    problems = toy_problems("heldout", 6)
    with LocalSandbox(1) as sandbox:
        for problem in problems:
            t = int(problem.gold_solution.split("elif x > ")[1].split(":")[0])
            # The nearest thresholds that treat some number differently (a multiple of K at T
            # goes to the edge rule either way, so T - 1 can be the same program as T).
            below, above = ToyRule(
                k=int(problem.gold_solution.split("x % ")[1].split(" ")[0]),
                c=1,
                t=t,
                b=2,
                op1="+",
                a=1,
                op2="+",
            ).threshold_sides()
            for guess in (below - 1, above):
                program = problem.gold_solution.replace(f"elif x > {t}:", f"elif x > {guess}:")
                [detail] = score_batch([(problem, _block(program))], STATIC, sandbox, time_limit_s=5)
                basic, middle = detail.tiers[Tier.BASIC], detail.tiers[Tier.INTERMEDIATE]
                assert basic.passed < basic.total or middle.passed < middle.total, (problem.id, guess)


def test_a_large_heldout_split_stays_disjoint_from_training_and_warmup() -> None:
    """The learning bench holds out 128+ problems (`toy:heldout:128`): more than the default 32, still
    sharing no constant tuple with the training problems or a longer warm-up."""
    heldout = toy_problems("heldout", 160)
    assert heldout[:32] == toy_problems("heldout") and len({p.statement for p in heldout}) == 160
    others = {p.statement for p in toy_problems("train") + toy_problems("warmup", 1000)}
    assert not {p.statement for p in heldout} & others
