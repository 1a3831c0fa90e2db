"""`tarot score`: saved completions scored for real, one JSON line each."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tarot_jobs.cli import app
from tarot_jobs.problems.loaders import save_problems
from tarot_jobs.problems.model import Problem, TestCase, Tier

ECHO_SUM = Problem(
    id="sum",
    statement="Print the sum of two integers.",
    gold_solution="a, b = map(int, input().split())\nprint(a + b)\n",
    tests=[
        TestCase(input="1 2\n", output="3\n", tier=None),
        TestCase(input="2 2\n", output="4\n", tier=Tier.BASIC),
        TestCase(input="10 20\n", output="30\n", tier=Tier.INTERMEDIATE),
        TestCase(input="123456789 987654321\n", output="1111111110\n", tier=Tier.COMPLEX),
        TestCase(input="-5 5\n", output="0\n", tier=Tier.EDGE),
    ],
)
GOLD = f"```python\n{ECHO_SUM.gold_solution}```"
SMALL_ONLY = "```python\na, b = map(int, input().split())\nprint(a + b if abs(a) < 100 and a > 0 else 1)\n```"


def _write(tmp_path: Path, completions: list[object]) -> tuple[Path, Path]:
    problems = tmp_path / "problems.jsonl"
    save_problems([ECHO_SUM], problems)
    lines = tmp_path / "completions.jsonl"
    lines.write_text("".join(json.dumps(c) + "\n" for c in completions))
    return problems, lines


def test_score_prints_one_json_line_per_completion_in_test_order(tmp_path: Path) -> None:
    problems, completions = _write(
        tmp_path,
        [
            {"problem_id": "sum", "completion": GOLD},
            {"problem_id": "sum", "completion": SMALL_ONLY},
            {"problem_id": "sum", "completion": "no idea"},
        ],
    )
    result = CliRunner().invoke(app, ["score", str(problems), str(completions), "--json", "--workers", "2"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["problem_id"] for r in rows] == ["sum"] * 3
    assert [r["reward"] for r in rows] == [1.0, 0.5, 0.0]
    assert [t["tier"] for t in rows[1]["tests"]] == [None, "basic", "intermediate", "complex", "edge"]
    assert [t["status"] for t in rows[1]["tests"]] == [
        "passed",  # untiered tests are run and reported, never weighted
        "passed",
        "passed",
        "wrong_answer",
        "wrong_answer",
    ]
    assert {t["status"] for t in rows[2]["tests"]} == {"not_run"}


def test_score_with_a_policy_phase_only_runs_its_tiers(tmp_path: Path) -> None:
    problems, completions = _write(tmp_path, [{"problem_id": "sum", "completion": SMALL_ONLY}])
    args = ["score", str(problems), str(completions), "--json", "--policy", "reverse", "--progress", "0.1"]
    result = CliRunner().invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["reward"] == 0.0  # reverse starts with complex tests only, which this program fails
    assert [t["status"] for t in row["tests"]][1:] == ["not_run", "not_run", "wrong_answer", "not_run"]


def test_score_names_the_bad_line_and_exits_2(tmp_path: Path) -> None:
    """Bad input exits 2 (the CLI convention), naming the line or the option."""
    problems, completions = _write(tmp_path, [{"problem_id": "sum", "completion": GOLD}])
    completions.write_text(completions.read_text() + '{"problem_id": "nope", "completion": "x"}\n')
    result = CliRunner().invoke(app, ["score", str(problems), str(completions)])
    assert result.exit_code == 2
    assert "completions.jsonl:2" in " ".join(result.output.split())
    assert "'nope' is not in the problem set" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["score", str(problems), str(completions), "--policy", "backwards"])
    assert result.exit_code == 2
    assert "unknown curriculum policy 'backwards'" in " ".join(result.output.split())
