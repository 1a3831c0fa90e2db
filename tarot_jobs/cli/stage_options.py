"""What the stage subcommands (probe, select, train, evaluate, run) share: options, errors, tables.

Exit codes: 2 when the input is at fault (spec, data, options, a missing
earlier stage), and nothing was trained; 3 when the sandbox is unreachable; 1
for anything else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.problems.model import ALL_TIERS
from tarot_jobs.sandbox.types import SandboxUnavailable
from tarot_jobs.spec.model import SpecError, TarotRunSpec, load_spec

EXIT_BAD_INPUT = 2
EXIT_SANDBOX = 3

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)

SpecArgument = Annotated[
    Path, typer.Argument(metavar="SPEC", help="The run spec (a TarotRun manifest or a bare spec, YAML).")
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Problems written by an earlier data stage (train.jsonl, heldout.jsonl, check.json); "
        "default: load and check the spec's dataset now.",
    ),
]
ModelCacheOption = Annotated[
    Path | None,
    typer.Option(
        "--model-cache",
        help="Where the tiny preset is built and cached "
        "(default: $TAROT_MODEL_CACHE or ~/.cache/tarot/models).",
    ),
]


def read_spec(path: Path) -> TarotRunSpec:
    try:
        return load_spec(path)
    except SpecError as exc:
        fail(str(exc), EXIT_BAD_INPUT)


def fail(message: str, code: int) -> NoReturn:
    stderr.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def stage_errors() -> Iterator[None]:
    """Turn the errors a user can act on into a one-line message and an exit code."""
    from tarot_jobs.problems.errors import ProblemDataError

    try:
        yield
    except (SpecError, StageError, ProblemDataError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except SandboxUnavailable as exc:
        fail(f"the sandbox is unavailable: {exc}", EXIT_SANDBOX)


def model_cache(option: Path | None) -> Path:
    from tarot_jobs.pipeline.model.loading import default_model_cache

    return option or default_model_cache()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def pass_rate_table(title: str, columns: Mapping[str, Mapping[str, float | None] | None]) -> Table:
    """Rows: the tiers and overall; one column per named pass@1 table."""
    table = Table(title=title)
    table.add_column("tier")
    for name in columns:
        table.add_column(name, justify="right")
    for row in [*(t.value for t in ALL_TIERS), "overall"]:
        table.add_row(row, *(_pct(col.get(row)) if col else "-" for col in columns.values()))
    return table


def capability_table(capability: Mapping[str, Any]) -> Table:
    table = pass_rate_table(
        f"Capability: score {capability['score']:.3f}",
        {"pass@1": capability["pass_at_1"], "tests passed": capability["test_pass_rate"]},
    )
    counts = capability["counts"]
    table.caption = (
        f"{counts['problems']} held-out problems x {counts['samples_per_problem']} samples; "
        f"{counts['code_found']} with code, {counts['solved']} solved, "
        f"{counts['sandbox_failed']} sandbox failures"
    )
    return table
