"""check_problems on the real local sandbox: invalid tests are found, dropped and counted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from process_helpers import FailingSandbox

from tarot_jobs.problems.check import CheckReport, InvalidReason, check_problems
from tarot_jobs.problems.model import ALL_TIERS, Problem, TestCase, Tier
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import ProgramKind

B, M, C, E = ALL_TIERS  # M: intermediate, TAROT's 'medium'


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(workers=2) as backend:
        yield backend


def stdin_problem(problem_id: str, gold: str, tests: list[tuple[str, str, Tier | None]]) -> Problem:
    return Problem(
        id=problem_id,
        statement="Read n.",
        gold_solution=gold,
        tests=[TestCase(input=i, output=o, tier=t) for i, o, t in tests],
    )


DOUBLE = "print(2 * int(input()))\n"
GOOD = stdin_problem(
    "good", DOUBLE, [("1\n", "2\n", B), ("5\n", "10\n", M), ("50\n", "100\n", C), ("0\n", "0\n", E)]
)
# Its only intermediate test expects the wrong output: dropping it leaves the tier empty.
WRONG = stdin_problem(
    "wrong",
    DOUBLE,
    [("1\n", "2\n", B), ("3\n", "7\n", M), ("50\n", "100\n", C), ("0\n", "0\n", E), ("2\n", "4\n", None)],
)
# The gold solution loops forever on a negative input; a second edge test keeps the tier.
SLOW = stdin_problem(
    "slow",
    "n = int(input())\nwhile n < 0:\n    pass\nprint(n)\n",
    [("1\n", "1\n", B), ("2\n", "2\n", M), ("3\n", "3\n", C), ("-1\n", "-1\n", E), ("0\n", "0\n", E)],
)
# The gold solution divides by its input: the edge test 0 crashes it, and is its only edge test.
CRASH = stdin_problem(
    "crash",
    "print(12 // int(input()))\n",
    [("1\n", "12\n", B), ("2\n", "6\n", M), ("3\n", "4\n", C), ("0\n", "0\n", E)],
)


def run(problems: Sequence[Problem], backend: object, **options: object) -> CheckReport:
    return check_problems(problems, backend, timeout_s=2.0, **options)  # type: ignore[arg-type]


def test_valid_problems_keep_every_test(sandbox: LocalSandbox) -> None:
    report = run([GOOD], sandbox)

    assert report.problems == report.usable_problems == 1
    assert report.invalid == [] and report.unusable == [] and report.infrastructure_errors == []
    assert report.cleaned == [GOOD]
    assert all(
        counts.model_dump() == {"total": 1, "valid": 1, "invalid": 0} for counts in report.tiers.values()
    )


def test_wrong_output_timeout_and_crash_are_detected_and_dropped(sandbox: LocalSandbox) -> None:
    progress: list[int] = []
    report = run([GOOD, WRONG, SLOW, CRASH], sandbox, chunk_size=1, progress=progress.append)

    assert sum(progress) == sum(len(p.tests) for p in (GOOD, WRONG, SLOW, CRASH)) and len(progress) == 4
    found = {(bad.problem_id, bad.tier, bad.test_index, bad.reason) for bad in report.invalid}
    assert found == {
        ("wrong", M, 1, InvalidReason.WRONG_OUTPUT),
        ("slow", E, 3, InvalidReason.TIMEOUT),
        ("crash", E, 3, InvalidReason.CRASH),
    }
    crash_detail = next(bad.detail for bad in report.invalid if bad.problem_id == "crash")
    assert "ZeroDivisionError" in crash_detail
    assert "expected '7\\n', got '6\\n'" in next(
        bad.detail for bad in report.invalid if bad.problem_id == "wrong"
    )

    # wrong and crash lost their only test of a tier; slow keeps a second edge test.
    assert {u.problem_id: u.missing_tiers for u in report.unusable} == {"wrong": [M], "crash": [E]}
    assert [p.id for p in report.cleaned] == ["good", "slow"]
    assert report.usable_problems == 2
    slow_clean = report.cleaned[1]
    assert [t.input for t in slow_clean.tests] == ["1\n", "2\n", "3\n", "0\n"]

    assert report.tiers[E].model_dump() == {"total": 5, "valid": 3, "invalid": 2}
    assert report.tiers[M].model_dump() == {"total": 4, "valid": 3, "invalid": 1}
    assert report.untiered.model_dump() == {"total": 1, "valid": 1, "invalid": 0}


def test_the_tier_rule_can_be_relaxed_but_a_problem_needs_one_valid_test(sandbox: LocalSandbox) -> None:
    hopeless = stdin_problem("hopeless", DOUBLE, [("1\n", "3\n", B), ("2\n", "5\n", None)])
    report = run([WRONG, CRASH, hopeless], sandbox, require_all_tiers=False)

    assert [p.id for p in report.cleaned] == ["wrong", "crash"]
    assert [t.tier for t in report.cleaned[0].tests] == [B, C, E, None]
    assert [(u.problem_id, u.why) for u in report.unusable] == [("hopeless", "no valid test left")]


def test_function_problems_are_checked_with_their_asserts(sandbox: LocalSandbox) -> None:
    def add_problem(problem_id: str, body: str) -> Problem:
        prompt = "def add(a, b):\n"
        return Problem(
            id=problem_id,
            statement=prompt,
            gold_solution=prompt + body,
            kind=ProgramKind.FUNCTION,
            entry_point="add",
            tests=[TestCase(input="def check(f):\n    assert f(1, 2) == 3\n\ncheck(add)\n")],
        )

    report = run(
        [add_problem("right", "    return a + b\n"), add_problem("off", "    return a - b\n")],
        sandbox,
        require_all_tiers=False,
    )

    assert [p.id for p in report.cleaned] == ["right"]
    assert [(b.problem_id, b.tier, b.reason) for b in report.invalid] == [
        ("off", None, InvalidReason.WRONG_OUTPUT)
    ]


def test_a_sandbox_failure_is_not_an_invalid_test() -> None:
    report = run([GOOD], FailingSandbox())

    assert report.invalid == []
    assert len(report.infrastructure_errors) == 4
    assert report.infrastructure_errors[0].detail == "helper died"
    assert report.usable_problems == 0 and report.unusable[0].why == "the sandbox could not judge every test"
    assert report.tiers[B].model_dump() == {"total": 1, "valid": 0, "invalid": 0}


def test_the_json_shape_of_the_report(sandbox: LocalSandbox) -> None:
    dumped = run([GOOD, CRASH], sandbox).model_dump(mode="json")

    assert set(dumped) >= {"problems", "usable_problems", "tiers", "invalid"}
    assert "cleaned" not in dumped
    assert list(dumped["tiers"]) == ["basic", "intermediate", "complex", "edge"]
    assert dumped["tiers"]["edge"] == {"total": 2, "valid": 1, "invalid": 1}
    assert dumped["invalid"] == [
        {
            "problem_id": "crash",
            "tier": "edge",
            "test_index": 3,
            "reason": "crash",
            "detail": dumped["invalid"][0]["detail"],
        }
    ]
