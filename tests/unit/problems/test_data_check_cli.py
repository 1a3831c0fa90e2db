"""`tarot data check`: exit codes, the --json report, --out, on fixtures and on the shared TAROT sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from process_helpers import FailingSandbox
from typer.testing import CliRunner

from tarot_jobs.cli import app
from tarot_jobs.problems.loaders import load_problems, save_problems
from tarot_jobs.problems.model import ALL_TIERS, Problem, TestCase

runner = CliRunner()


def problem(problem_id: str, expected_intermediate: str = "10\n") -> Problem:
    """Doubles its input; one test per tier, the intermediate one's expectation chosen by the caller."""
    cases = [("1\n", "2\n"), ("5\n", expected_intermediate), ("50\n", "100\n"), ("0\n", "0\n")]
    return Problem(
        id=problem_id,
        statement="Read n, print 2n.",
        gold_solution="print(2 * int(input()))\n",
        tests=[TestCase(input=i, output=o, tier=tier) for (i, o), tier in zip(cases, ALL_TIERS, strict=True)],
    )


@pytest.fixture
def problem_file(tmp_path: Path) -> Path:
    path = tmp_path / "problems.jsonl"
    save_problems([problem("good"), problem("bad-test", expected_intermediate="11\n")], path)
    return path


def check(*args: str) -> Any:
    return runner.invoke(app, ["data", "check", *args])


def test_json_report_exits_0_even_when_tests_are_dropped(problem_file: Path) -> None:
    result = check(str(problem_file), "--json", "--workers", "2")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["problems"] == 2 and report["usable_problems"] == 1
    assert report["tiers"]["intermediate"] == {"total": 2, "valid": 1, "invalid": 1}
    assert [(b["problem_id"], b["tier"], b["test_index"], b["reason"]) for b in report["invalid"]] == [
        ("bad-test", "intermediate", 1, "wrong_output")
    ]
    assert report["skipped_records"] == []


def test_allow_missing_tiers_keeps_the_problem(problem_file: Path) -> None:
    report = json.loads(check(str(problem_file), "--json", "--allow-missing-tiers").stdout)
    assert report["usable_problems"] == 2 and report["unusable"] == []


def test_out_writes_the_cleaned_set_which_loads_back(problem_file: Path, tmp_path: Path) -> None:
    cleaned = tmp_path / "clean" / "usable.jsonl"

    result = check(str(problem_file), "--out", str(cleaned), "--allow-missing-tiers")

    assert result.exit_code == 0, result.output
    loaded = load_problems(cleaned).problems
    assert [p.id for p in loaded] == ["good", "bad-test"]
    assert loaded[0] == problem("good")
    assert [t.tier for t in loaded[1].tests] == [
        ALL_TIERS[0],
        ALL_TIERS[2],
        ALL_TIERS[3],
    ]  # the bad test is gone
    # The cleaned set checks clean.
    again = json.loads(check(str(cleaned), "--json", "--allow-missing-tiers").stdout)
    assert again["invalid"] == [] and again["usable_problems"] == 2


def test_human_output_has_the_tier_table_and_the_invalid_tests(problem_file: Path) -> None:
    result = check(str(problem_file))

    assert result.exit_code == 0, result.output
    assert "intermediate" in result.stdout and "wrong_output" in result.stdout
    assert "unusable: bad-test: no valid test in tier(s) intermediate" in result.stdout
    assert "1 of 2 problems usable, 1 invalid test(s) dropped" in result.stdout


def test_unreadable_input_exits_2_with_the_location(tmp_path: Path) -> None:
    missing = check(str(tmp_path / "nope.jsonl"), "--json")
    assert missing.exit_code == 2
    assert "no such file or directory" in missing.stderr and missing.stdout == ""

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {"id": "a", "statement": "s", "gold_solution": "print(1)", "tests": [{"input": "", "tier": "x"}]}
        )
        + "\n"
    )
    result = check(str(bad), "--json")
    assert result.exit_code == 2
    assert f"{bad}:1: tests[0].tier: unknown tier 'x'" in " ".join(result.stderr.split())


def test_skip_bad_records_checks_the_rest_and_lists_what_was_skipped(problem_file: Path) -> None:
    with problem_file.open("a") as out:
        out.write("{broken\n")

    result = check(str(problem_file), "--json", "--skip-bad-records")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["problems"] == 2
    assert report["skipped_records"] == [
        f"{problem_file}:3: not valid JSON (Expecting property name enclosed in double quotes, column 2)"
    ]


def test_a_sandbox_failure_exits_3_and_writes_nothing(
    problem_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tarot_jobs.sandbox.client.backend_for", lambda url, workers: FailingSandbox())
    out = tmp_path / "clean.jsonl"

    result = check(str(problem_file), "--json", "--out", str(out))

    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["invalid"] == [] and len(report["infrastructure_errors"]) == 8
    assert "validity is unknown" in result.stderr
    assert not out.exists()


def test_the_shared_tarot_sample_is_fully_usable(tmp_path: Path, tarot_sample: Path) -> None:
    """Through the installed console script, as a user runs it. A generous timeout: the machine is shared."""
    out = tmp_path / "clean.jsonl"
    tarot = [sys.executable, "-c", "from tarot_jobs.cli import main; main()"]
    command = [*tarot, "data", "check", str(tarot_sample), "--json", "--timeout", "60"]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=600, check=False
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["problems"] == 14 and report["usable_problems"] == 14
    for tier in ("basic", "intermediate", "complex", "edge"):
        assert report["tiers"][tier] == {"total": 14, "valid": 14, "invalid": 0}
    assert [b for b in report["invalid"] if b["tier"] is not None] == []
    assert len(load_problems(out).problems) == 14

    assert report["invalid"] == []
