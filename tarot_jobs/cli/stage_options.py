"""What the stage subcommands (data prepare, probe, select, train, evaluate, run) share: options,
the spec, tables. Errors and exit codes are cli/output.py's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tarot_jobs.cli.output import ExitCode, fail
from tarot_jobs.problems.model import ALL_TIERS
from tarot_jobs.spec.model import SpecError, TarotRunSpec, load_spec

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
        fail(str(exc), ExitCode.BAD_INPUT)


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
