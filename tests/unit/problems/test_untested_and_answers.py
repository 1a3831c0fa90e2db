"""The parts of `tarot generate-tests`: problems without tests, the model's answers (inputs only), and
the gold run when the sandbox fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from process_helpers import FailingSandbox

from tarot_jobs.pipeline.testgen.answers import parse_answer
from tarot_jobs.pipeline.testgen.outputs import DropReason, gold_tests
from tarot_jobs.problems.errors import FieldError, ProblemFormatError
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.problems.untested import UntestedProblem, parse_untested, read_untested

GOLD = "print(2 * int(input()))\n"


def test_an_untested_problem_has_the_fields_of_a_problem() -> None:
    # A field added to Problem must be added here too, or generation would drop it on the way.
    assert list(UntestedProblem.model_fields) == list(Problem.model_fields)


@pytest.mark.parametrize(
    "record",
    [
        {"id": "p", "statement": "Double n.", "gold_solution": GOLD},
        {"id": "p", "statement": "Double n.", "gold_solution": GOLD, "tests": []},
        {"problem_id": "p", "problem": "Double n.", "gold_standard_solution": f"```python\n{GOLD}```"},
        {
            "problem_id": "p",
            "problem": "Double n.",
            "gold_standard_solution": GOLD,
            "verification_info": {"language": "python", "test_cases": []},
        },
    ],
    ids=["canonical", "canonical-empty", "tarot-no-info", "tarot-empty"],
)
def test_records_without_tests_parse_in_both_shapes(record: dict[str, object]) -> None:
    problem = parse_untested(record)
    assert (problem.id, problem.statement, problem.gold_solution, problem.tests) == (
        "p",
        "Double n.",
        GOLD,
        [],
    )


def test_the_input_s_own_tests_are_kept_before_the_generated_ones() -> None:
    example = {"input": "1\n", "output": "2\n", "tier": None}
    problem = parse_untested({"id": "p", "statement": "s", "gold_solution": GOLD, "tests": [example]})
    generated = TestCase(input="5\n", output="10\n", tier=Tier.BASIC)
    assert problem.with_tests([generated]).tests == [TestCase(input="1\n", output="2\n"), generated]


def test_a_bad_record_names_its_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    good = {"id": "a", "statement": "s", "gold_solution": GOLD}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "id": "b", "language": "c"}) + "\n")
    with pytest.raises(ProblemFormatError, match=r"p\.jsonl:3: language: unsupported language 'c'"):
        read_untested(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ProblemFormatError, match=r"p\.jsonl:2: id: duplicate problem id 'a'"):
        read_untested(path)
    with pytest.raises(FieldError, match="expected an object"):
        parse_untested([good])


@pytest.mark.parametrize(
    ("answer", "inputs", "unparseable", "surplus"),
    [
        ('["1", "2\\n"]', ["1\n", "2\n"], 0, 0),
        ('```json\n["3 4"]\n```\nThese cover the basics.', ["3 4\n"], 0, 0),
        ('Inputs: ["a", 5, {"input": "b", "output": "9"}] done', ["a\n"], 2, 0),
        ('["1", "2", "3", "4"]', ["1\n", "2\n", "3\n"], 0, 1),
        ('{"inputs": ["1"]}', ["1\n"], 0, 0),  # the outermost [...] is taken
        ('{"inputs": ["1"], "outputs": ["2"]}', [], 1, 0),  # the outputs are never used, not even as inputs
        ("no JSON here", [], 1, 0),
        (None, [], 1, 0),  # the endpoint's answer was not a chat completion
    ],
)
def test_only_strings_of_a_json_list_are_inputs(
    answer: str | None, inputs: list[str], unparseable: int, surplus: int
) -> None:
    parsed = parse_answer(answer, wanted=3)
    assert (parsed.inputs, parsed.unparseable, parsed.surplus) == (inputs, unparseable, surplus)


def test_a_sandbox_failure_is_retried_then_leaves_the_problem_for_a_rerun() -> None:
    sandbox = FailingSandbox()
    problem = parse_untested({"id": "p", "statement": "s", "gold_solution": GOLD})

    result = gold_tests(
        problem,
        {Tier.BASIC: ["1\n", "1 \n"], Tier.EDGE: ["0\n"]},
        sandbox,
        timeout_s=1,
        memory_limit_mb=64,
        retries=2,
        reason="",
    )

    assert sandbox.runs == 3 and result.tests == []
    assert result.failure == "the sandbox failed to run the gold solution: helper died"
    assert result.dropped[Tier.BASIC] == {DropReason.DUPLICATE: 1, DropReason.PROBLEM_NOT_WRITTEN: 1}
    assert result.dropped[Tier.EDGE] == {DropReason.PROBLEM_NOT_WRITTEN: 1}
