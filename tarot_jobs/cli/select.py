"""`tarot select SPEC --capability FILE --out DIR`: choose the curriculum policy (policy.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tarot_jobs.cli.output import exit_codes, stdout
from tarot_jobs.cli.stage_options import SpecArgument, read_spec
from tarot_jobs.curriculum.policy import tier_letters, tier_order


def select_command(
    spec_file: SpecArgument,
    out: Annotated[Path, typer.Option("--out", help="Directory for policy.json.")],
    capability: Annotated[
        Path | None,
        typer.Option("--capability", help="capability.json from `tarot probe` (required by policy: auto)."),
    ] = None,
) -> None:
    """Apply the spec's curriculum rule (auto, a named policy or custom phases) and write policy.json."""
    from tarot_jobs.pipeline.stages.select import select, write_policy

    spec = read_spec(spec_file)
    with exit_codes():
        selection = select(spec, capability)
        target = write_policy(selection, out)
    table = Table(title=f"Policy {selection.policy.name} ({selection.rule})", caption=selection.reason)
    for column in ("phase", "progress", "tiers", "weights"):
        table.add_column(column)
    for i, phase in enumerate(selection.policy.phases):
        weights = ", ".join(f"{t.value[0].upper()} {phase.weights[t]:g}" for t in tier_order(phase.tiers))
        table.add_row(str(i), f"{phase.start:g}-{phase.end:g}", tier_letters(phase.tiers), weights)
    stdout.print(table)
    stdout.print(f"wrote {target}")


def register(app: typer.Typer) -> None:
    app.command("select")(select_command)
