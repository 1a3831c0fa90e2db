"""`tarot score`: the tiered reward of saved completions, the offline evaluation harness.

Scores completions sampled from any model (jsonl of {problem_id, completion})
against a problem set, exactly as training rewards them, and prints per
completion the reward and every test's verdict in the problem's test order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from tarot_jobs.cli.output import exit_codes, literal, reporter, stdout
from tarot_jobs.cli.shutdown import sandbox_dies_with_the_command
from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.pipeline.errors import BadInput
from tarot_jobs.problems.model import ALL_TIERS, Problem
from tarot_jobs.rewards.tiered import RewardDetail, score_batch

# Completions per sandbox batch: enough to keep the workers busy, few enough to show progress.
CHUNK = 64


class CompletionsError(BadInput):
    """A completions file that cannot be scored; the message names the line."""


def read_completions(path: Path, problems: dict[str, Problem]) -> list[tuple[str, Any]]:
    """(problem_id, completion) pairs from jsonl; a bad line raises CompletionsError naming it."""
    pairs: list[tuple[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CompletionsError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CompletionsError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise CompletionsError(f"{where}: expected an object with problem_id and completion")
        for field in ("problem_id", "completion"):
            if field not in record:
                raise CompletionsError(f"{where}: field {field!r} is missing")
        problem_id, completion = str(record["problem_id"]), record["completion"]
        if problem_id not in problems:
            raise CompletionsError(f"{where}: problem_id {problem_id!r} is not in the problem set")
        if not isinstance(completion, str | list):
            raise CompletionsError(f"{where}: completion must be a string or a list of messages")
        pairs.append((problem_id, completion))
    if not pairs:
        raise CompletionsError(f"{path}: no completions")
    return pairs


def _chunks(items: list[tuple[Problem, Any]]) -> Iterator[list[tuple[Problem, Any]]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _json_line(detail: RewardDetail) -> str:
    return json.dumps(
        {
            "problem_id": detail.problem_id,
            "reward": detail.reward,
            "sandbox_failed": detail.sandbox_failed,
            "code_found": detail.code_found,
            "tests": [{"tier": t.tier.value if t.tier else None, "status": t.status} for t in detail.tests],
        }
    )


def _print_table(details: list[RewardDetail]) -> None:
    table = Table(title="Scores (tests passed per tier)")
    table.add_column("#", justify="right")
    table.add_column("problem")
    table.add_column("reward", justify="right")
    for tier in ALL_TIERS:
        table.add_column(tier.value[:5], justify="right")
    table.add_column("failures")
    for i, detail in enumerate(details):
        reward = "sandbox failed" if detail.reward is None else f"{detail.reward:.3f}"
        tallies = [
            f"{detail.tiers[t].passed}/{detail.tiers[t].total}" if detail.tiers.get(t) else "-"
            for t in ALL_TIERS
        ]
        failures = ", ".join(
            f"{status} x{n}" for status, n in detail.verdict_counts().items() if status != "passed"
        )
        table.add_row(
            str(i), literal(detail.problem_id), reward, *tallies, failures if detail.code_found else "no code"
        )
    stdout.print(table)
    stdout.print(_summary(details))


def _summary(details: list[RewardDetail]) -> Text:
    """The mean reward over every completion, one the sandbox failed on counting 0 (as evaluation counts it
    a failure): a mean over the scored ones only would rise with every completion the sandbox dropped."""
    scored = [d.reward for d in details if d.reward is not None]
    mean = sum(scored) / len(details) if details else float("nan")
    rates = []
    for tier in ALL_TIERS:
        total = sum(d.tiers[tier].total for d in details if tier in d.tiers)
        if total:
            passed = sum(d.tiers[tier].passed for d in details if tier in d.tiers)
            rates.append(f"{tier.value} {passed}/{total}")
    summary = Text(
        f"mean reward {mean:.3f} over {len(details)} completion(s); tests passed: {', '.join(rates)}"
    )
    failed = len(details) - len(scored)
    if failed:
        summary.append(
            f"\n{failed} completion(s) not scored, counted 0: the sandbox failed"
            f" (mean over the {len(scored)} scored: "
            + (f"{sum(scored) / len(scored):.3f})" if scored else "-)"),
            style="yellow",
        )
    return summary


def score_command(
    problems_source: Annotated[
        str, typer.Argument(metavar="PROBLEMS", help="Problem set: a file, folder or 'bundled'.")
    ],
    completions_file: Annotated[
        Path, typer.Argument(metavar="COMPLETIONS", help="jsonl of {problem_id, completion}.")
    ],
    policy_name: Annotated[
        str, typer.Option("--policy", help="Curriculum policy whose phase decides the tiers.")
    ] = "static",
    progress: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Training progress that picks the policy's phase.")
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per completion.")] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Sum of passed weights, not divided by the allowed.")
    ] = False,
    sandbox_url: Annotated[
        str | None, typer.Option(help="A running sandbox service (default: run locally).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Local sandbox workers (default: cores).")
    ] = None,
    time_limit: Annotated[float, typer.Option(min=0.001, help="Seconds per test.")] = 5.0,
    memory_limit: Annotated[int, typer.Option(min=16, help="MiB per test.")] = 512,
    float_tolerance: Annotated[
        float | None, typer.Option(min=0.0, help="Accept numbers within this tolerance.")
    ] = None,
) -> None:
    """Score saved completions with the tiered reward; every test is reported in the problem's order."""
    from tarot_jobs.problems.loaders import load_problems
    from tarot_jobs.sandbox.client import backend_for

    with exit_codes(), sandbox_dies_with_the_command():
        policy = get_policy(policy_name)
        loaded = load_problems(problems_source)
        problems = {p.id: p for p in loaded.problems}
        pairs = read_completions(completions_file, problems)
        phase = policy.phase_at(progress)
        items = [(problems[pid], completion) for pid, completion in pairs]
        backend = backend_for(sandbox_url, workers)
        details: list[RewardDetail] = []
        try:
            with reporter().task(f"scoring ({policy.name}, phase {phase.label()})", len(items)) as task:
                for chunk in _chunks(items):
                    details += score_batch(
                        chunk,
                        phase,
                        backend,
                        normalize=not raw,
                        time_limit_s=time_limit,
                        memory_limit_mb=memory_limit,
                        float_tolerance=float_tolerance,
                        run_untiered=True,
                    )
                    task.advance(len(chunk))
        finally:
            close = getattr(backend, "close", None)
            if callable(close):
                close()
    if as_json:
        for detail in details:
            print(_json_line(detail))
    else:
        _print_table(details)


def register(app: typer.Typer) -> None:
    app.command("score")(score_command)
