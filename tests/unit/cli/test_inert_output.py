"""A program's output reaches the console literally: no rich markup, control characters shown as escapes.

Each command runs as a real process writing to a pipe, as it would to a terminal; what it prints must
hold the program's text with `[/]`, `[bold]` intact, and no raw escape (ESC, CR) that could clear a
screen, move the cursor or overwrite a line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tarot_jobs.problems.loaders import save_problems
from tarot_jobs.problems.model import Problem, TestCase, Tier

CLI = [sys.executable, "-c", "from tarot_jobs.cli import main; main()"]
# Markup that would crash rich ([/] closes nothing) or restyle the text, a clear-screen, a carriage return.
HOSTILE = "[/] [bold]big[/bold] \x1b[2J\rgone"
SHOWN = "[/] [bold]big[/bold] \\x1b[2J\\rgone"
PROGRAM = f"import sys\nprint({HOSTILE!r})\nsys.stderr.write({HOSTILE!r} + '\\n')\nsys.exit(1)\n"


def tarot(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}  # wide: no cell of a table is wrapped
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def assert_inert(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text, repr(text)


def test_sandbox_exec_prints_the_programs_output_literally(tmp_path: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text(PROGRAM)
    done = tarot("sandbox", "exec", program)
    assert done.returncode == 1, done.stderr  # the program failed; the command did not crash
    assert_inert(done.stdout + done.stderr)
    assert done.stdout.count(SHOWN) == 2, done.stdout  # in the stdout and the stderr panels
    assert "runtime_error" in done.stdout


def test_data_check_prints_the_gold_solutions_output_literally(tmp_path: Path) -> None:
    problems = tmp_path / "problems.jsonl"
    save_problems(
        [
            Problem(
                id="[/]x",
                statement="s",
                gold_solution=PROGRAM,
                tests=[TestCase(input="", output="1\n", tier=Tier.BASIC)],
            )
        ],
        problems,
    )
    done = tarot("data", "check", problems, "--allow-missing-tiers")
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout + done.stderr)
    assert "[/]x" in done.stdout and SHOWN in done.stdout, done.stdout


def test_score_prints_problem_ids_literally(tmp_path: Path) -> None:
    problems = tmp_path / "problems.jsonl"
    odd = "[/][red]odd\x1b[2J"
    save_problems(
        [Problem(id=odd, statement="s", gold_solution="print(1)", tests=[TestCase(input="", output="1\n")])],
        problems,
    )
    completions = tmp_path / "completions.jsonl"
    completions.write_text(json.dumps({"problem_id": odd, "completion": "```python\nprint(2)\n```"}) + "\n")
    done = tarot("score", problems, completions, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout + done.stderr)
    assert "[/][red]odd\\x1b[2J" in done.stdout, done.stdout
