"""The tiered reward, run for real: programs execute in the local sandbox on problems built here."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from process_helpers import FailingSandbox

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.rewards import TestOutcome, TieredReward, format_reward, score_batch, score_completion
from tarot_jobs.sandbox.client import HttpSandbox
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import (
    ExecutionRequest,
    ExecutionResult,
    SandboxUnavailable,
    TestResult,
    Verdict,
)

B, I, C, E = Tier.BASIC, Tier.INTERMEDIATE, Tier.COMPLEX, Tier.EDGE  # noqa: E741

# "Count up": read n, print 1..n on separate lines. Multi-line outputs, one test per tier,
# plus the statement's example (no tier, no weight).
COUNT_UP = Problem(
    id="count-up",
    statement="Read n and print the numbers 1..n, one per line.",
    gold_solution="n = int(input())\nfor i in range(1, n + 1):\n    print(i)\n",
    tests=[
        TestCase(input="2\n", output="1\n2\n", tier=None),
        TestCase(input="1\n", output="1\n", tier=B),
        TestCase(input="3\n", output="1\n2\n3\n", tier=I),
        TestCase(input="5\n", output="1\n2\n3\n4\n5\n", tier=C),
        TestCase(input="0\n", output="", tier=E),
    ],
)
PROBLEMS = {COUNT_UP.id: COUNT_UP}

GOLD = f"Here you go:\n```python\n{COUNT_UP.gold_solution}```\n"


def fenced(code: str, tag: str = "python") -> str:
    return f"```{tag}\n{code}\n```"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(workers=2) as backend:
        yield backend


def statuses(tests: Sequence[TestOutcome]) -> list[str]:
    return [t.status for t in tests]


def test_gold_solution_earns_full_reward_and_every_verdict_is_reported(sandbox: LocalSandbox) -> None:
    detail = score_completion(COUNT_UP, GOLD, get_policy("static").phases[0], sandbox)
    assert detail.reward == pytest.approx(1.0)
    assert statuses(detail.tests) == ["not_run", "passed", "passed", "passed", "passed"]
    assert {t: (v.passed, v.total) for t, v in detail.tiers.items()} == {
        B: (1, 1),
        I: (1, 1),
        C: (1, 1),
        E: (1, 1),
    }


def test_the_last_python_block_is_the_one_run(sandbox: LocalSandbox) -> None:
    wrong = fenced("print('nope')")
    phase = get_policy("static").phases[0]
    last_right = score_completion(COUNT_UP, f"First try:\n{wrong}\nBetter:\n{GOLD}", phase, sandbox)
    last_wrong = score_completion(COUNT_UP, f"{GOLD}\nOr maybe:\n{wrong}", phase, sandbox)
    assert last_right.reward == pytest.approx(1.0)
    assert last_wrong.reward == pytest.approx(0.0)


def test_printing_only_the_first_line_of_a_multi_line_answer_fails(sandbox: LocalSandbox) -> None:
    first_line_only = fenced("n = int(input())\nprint(1 if n else '')")
    detail = score_completion(COUNT_UP, first_line_only, get_policy("static").phases[0], sandbox)
    by_tier = {t.tier: t.status for t in detail.tests}
    assert by_tier[B] == "passed"  # n=1: the whole answer is one line
    assert by_tier[I] == "wrong_answer"  # n=3: lines 2 and 3 missing
    assert by_tier[C] == "wrong_answer"
    assert by_tier[E] == "passed"  # n=0: the expected output is empty, and so is this one
    assert detail.reward == pytest.approx(0.5)


def test_an_extra_output_line_fails(sandbox: LocalSandbox) -> None:
    extra_line = fenced(f"{COUNT_UP.gold_solution}print('done')")
    detail = score_completion(COUNT_UP, extra_line, get_policy("static").phases[0], sandbox)
    assert statuses(detail.tests)[1:] == ["wrong_answer"] * 4
    assert detail.reward == pytest.approx(0.0)


def test_trailing_spaces_and_the_final_newline_do_not_matter(sandbox: LocalSandbox) -> None:
    sloppy = fenced(
        "import sys\nn = int(input())\nsys.stdout.write('\\n'.join(f'{i}   ' for i in range(1, n + 1)))"
    )
    detail = score_completion(COUNT_UP, sloppy, get_policy("static").phases[0], sandbox)
    assert statuses(detail.tests)[1:] == ["passed"] * 4
    assert detail.reward == pytest.approx(1.0)


def test_no_code_gives_zero_without_running_anything(sandbox: LocalSandbox) -> None:
    for completion in ["I don't know.", "```bash\necho 1\n```", "```python\nprint(1)"]:
        detail = score_completion(COUNT_UP, completion, get_policy("static").phases[0], sandbox)
        assert detail.reward == 0.0, completion
        assert not detail.code_found
        assert set(statuses(detail.tests)) == {"not_run"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_an_unreachable_sandbox_gives_none_not_zero() -> None:
    down = HttpSandbox(f"http://127.0.0.1:{_closed_port()}", retries=1, backoff_s=0.01)
    try:
        reward = TieredReward(PROBLEMS, get_policy("static"), down)
        rewards = reward(["p"] * 2, [GOLD, "no code here"], problem_id=["count-up"] * 2)
    finally:
        down.close()
    assert rewards == [None, 0.0]  # the program could not be judged; the missing program is simply wrong
    assert reward.last_details[0].sandbox_failed
    assert not reward.last_details[1].sandbox_failed


def test_a_sandbox_error_verdict_gives_none() -> None:
    detail = score_completion(COUNT_UP, GOLD, get_policy("static").phases[0], FailingSandbox())
    assert detail.reward is None
    assert detail.sandbox_failed


class TruncatingBackend:
    """Test double of a faulty sandbox boundary: answers fewer test results than it was asked for."""

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        passed = TestResult(status=Verdict.PASSED)
        return [ExecutionResult(results=[passed], path="test-double") for _ in requests]


def test_an_answer_that_does_not_match_the_request_gives_none() -> None:
    detail = score_completion(COUNT_UP, GOLD, get_policy("static").phases[0], TruncatingBackend())
    assert detail.reward is None and detail.sandbox_failed


def test_a_sandbox_that_stays_down_stops_training() -> None:
    backend = FailingSandbox()
    reward = TieredReward(PROBLEMS, get_policy("static"), backend, max_unavailable_calls=3)
    assert reward([""], [GOLD], problem_id=["count-up"]) == [None]
    assert reward([""], [GOLD], problem_id=["count-up"]) == [None]
    with pytest.raises(SandboxUnavailable, match="3 reward calls in a row"):
        reward([""], [GOLD], problem_id=["count-up"])


def test_a_phase_gives_no_weight_to_tiers_it_does_not_allow(sandbox: LocalSandbox) -> None:
    basic_only = get_policy("forward").phases[0]  # 0-0.2: basic tests only
    # Right for n=1 only: passes the basic test, fails every other tier.
    basic_solver = fenced("input()\nprint(1)")
    # Right everywhere except the basic test.
    all_but_basic = fenced(
        "n = int(input())\nif n == 1:\n    print('x')\nelse:\n    for i in range(1, n + 1):\n        print(i)"
    )
    good = score_completion(COUNT_UP, basic_solver, basic_only, sandbox)
    bad = score_completion(COUNT_UP, all_but_basic, basic_only, sandbox)
    assert good.reward == pytest.approx(1.0)
    assert bad.reward == pytest.approx(0.0)
    assert statuses(good.tests) == ["not_run", "passed", "not_run", "not_run", "not_run"]
    assert list(good.tiers) == [B]
    # The same all-but-basic program earns 0.75 once every tier counts.
    assert score_completion(COUNT_UP, all_but_basic, get_policy("static").phases[0], sandbox).reward == (
        pytest.approx(0.75)
    )


def test_raw_and_normalised_modes(sandbox: LocalSandbox) -> None:
    phase = get_policy("forward-hard-heavy").phases[2]  # B+I+C with weights .15/.15/.35
    passes_basic_and_intermediate = fenced(
        "n = int(input())\nfor i in range(1, n + 1):\n    print(i if n < 4 else 0)"
    )
    normalised = score_completion(COUNT_UP, passes_basic_and_intermediate, phase, sandbox)
    raw = score_completion(COUNT_UP, passes_basic_and_intermediate, phase, sandbox, normalize=False)
    assert raw.reward == pytest.approx(0.30)
    assert normalised.reward == pytest.approx(0.30 / 0.65)
    assert raw.allowed_weight == pytest.approx(0.65)


def test_float_tolerance_is_opt_in(sandbox: LocalSandbox) -> None:
    third = Problem(
        id="third",
        statement="Print 1/3.",
        gold_solution="print('0.333333')",
        tests=[TestCase(input="", output="0.333333\n", tier=B)],
    )
    close = fenced("print(0.3333334)")
    phase = get_policy("basic-only").phases[0]
    assert score_completion(third, close, phase, sandbox).reward == 0.0
    assert score_completion(third, close, phase, sandbox, float_tolerance=1e-3).reward == pytest.approx(1.0)


class CountingBackend:
    """Wraps the real local sandbox to count how often the reward calls it."""

    def __init__(self, inner: LocalSandbox) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        self.batches.append(len(requests))
        return self.inner.run_batch(requests)


def test_trl_call_convention_progress_and_one_batch_per_call(sandbox: LocalSandbox) -> None:
    backend = CountingBackend(sandbox)
    reward = TieredReward(PROBLEMS, get_policy("forward"), backend)
    assert reward.__name__ == "tiered_reward"
    logged: dict[str, float] = {}
    basic_solver = [{"role": "assistant", "content": fenced("input()\nprint(1)")}]  # conversational form
    completions = [basic_solver, GOLD, "no code", basic_solver]
    kwargs = {
        "problem_id": ["count-up"] * 4,
        "difficulty": ["easy"] * 4,  # any other dataset column is passed too and must be accepted
        "log_metric": lambda name, value: logged.__setitem__(name, value),
        "log_extra": lambda *args: None,
    }
    early = reward(
        ["p"] * 4, completions, trainer_state=SimpleNamespace(global_step=0, max_steps=10), **kwargs
    )
    late = reward(
        ["p"] * 4, completions, trainer_state=SimpleNamespace(global_step=9, max_steps=10), **kwargs
    )
    assert early == pytest.approx([1.0, 1.0, 0.0, 1.0])  # phase 0: only the basic test counts
    assert late == pytest.approx([0.25, 1.0, 0.0, 0.25])  # last phase: every tier counts
    assert reward.last_phase_index == 3
    assert backend.batches == [3, 3]  # one sandbox batch per call; the completion without code is not sent
    assert logged["tiers/edge/pass_rate"] == pytest.approx(1 / 4)
    assert logged["code/found_fraction"] == pytest.approx(0.75)


def test_a_fixed_phase_index_wins_over_progress(sandbox: LocalSandbox) -> None:
    reward = TieredReward(PROBLEMS, get_policy("forward"), sandbox, phase_index=0)
    late = SimpleNamespace(global_step=9, max_steps=10)
    assert reward([""], [fenced("input()\nprint(1)")], ["count-up"], trainer_state=late) == [
        pytest.approx(1.0)
    ]
    with pytest.raises(ValueError, match="phase_index 4"):
        TieredReward(PROBLEMS, get_policy("forward"), sandbox, phase_index=4)


def test_an_unknown_problem_id_is_an_error(sandbox: LocalSandbox) -> None:
    reward = TieredReward(PROBLEMS, get_policy("static"), sandbox)
    with pytest.raises(KeyError, match="missing-problem"):
        reward([""], [GOLD], problem_id=["missing-problem"])


def test_format_reward() -> None:
    completions = [
        GOLD,
        fenced("def f(:\n    pass"),  # does not parse
        fenced("print(1)", tag=""),  # untagged: runnable, but not the asked-for format
        "no code",
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": GOLD}],
    ]
    assert format_reward(completions) == [1.0, 0.0, 0.0, 0.0, 1.0]


def test_real_tarot_problems_reward_their_gold_solutions_fully(
    sandbox: LocalSandbox, tarot_sample: Path
) -> None:
    from tarot_jobs.pipeline.model.prompts import reference_answer
    from tarot_jobs.problems.loaders import load_problems

    problems = load_problems(tarot_sample).problems
    assert len(problems) == 14
    # One gold solution needs ~1.5 s of CPU per test; a loaded CI machine must not turn that into a timeout.
    details = score_batch(
        [(p, reference_answer(p)) for p in problems], get_policy("static").phases[0], sandbox, time_limit_s=20
    )
    failures = {d.problem_id: d.verdict_counts() for d in details if d.reward != pytest.approx(1.0)}
    assert failures == {}
    wrong = score_batch([(p, fenced("print(42)")) for p in problems], get_policy("static").phases[0], sandbox)
    assert all(d.reward is not None and d.reward < 1.0 for d in wrong)
