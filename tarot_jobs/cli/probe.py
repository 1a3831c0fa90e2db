"""`tarot probe SPEC --out DIR`: measure the base model's capability on held-out problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tarot_jobs.cli.output import exit_codes, reporter, stdout, write_result
from tarot_jobs.cli.stage_options import (
    DataOption,
    ModelCacheOption,
    SpecArgument,
    capability_table,
    model_cache,
    read_spec,
)
from tarot_jobs.lifecycle.results import probe_result


def probe_command(
    spec_file: SpecArgument,
    out: Annotated[Path, typer.Option("--out", help="Directory for capability.json and samples.jsonl.")],
    data: DataOption = None,
    cache: ModelCacheOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print capability.json instead of a table.")
    ] = False,
) -> None:
    """Sample k completions per held-out problem with the base model, score every tier: capability.json."""
    from tarot_jobs.pipeline.context import base_model, open_sandbox, stage_data
    from tarot_jobs.pipeline.stages.probe import run_probe

    spec = read_spec(spec_file)
    report = reporter()
    with exit_codes(), open_sandbox(spec) as sandbox:
        run_data = stage_data(spec, data, sandbox, report)
        base = base_model(spec, run_data, model_cache(cache), report)
        capability = run_probe(spec, run_data.heldout, base, sandbox, out, report)
    write_result(probe_result(capability, sandbox.usage()))
    if as_json:
        print(json.dumps(capability, indent=2))
    else:
        stdout.print(capability_table(capability))
        stdout.print(f"wrote {out / 'capability.json'}")


def register(app: typer.Typer) -> None:
    app.command("probe")(probe_command)
