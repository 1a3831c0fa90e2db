"""`tarot evaluate SPEC --model PATH --out DIR`: pass@k per tier on held-out problems (evaluation.json)."""

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
    model_cache,
    pass_rate_table,
    read_spec,
)
from tarot_jobs.lifecycle.results import evaluate_result


def evaluate_command(
    spec_file: SpecArgument,
    out: Annotated[Path, typer.Option("--out", help="Directory for evaluation.json and samples.jsonl.")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Weights or LoRA adapter to evaluate (default: the spec's base model)."),
    ] = None,
    data: DataOption = None,
    cache: ModelCacheOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print evaluation.json instead of tables.")] = False,
) -> None:
    """pass@1 (and pass@k for k = evaluation.samples > 1) per tier, on held-out and extra problem sets."""
    from tarot_jobs.pipeline.context import base_model, open_sandbox, stage_data
    from tarot_jobs.pipeline.stages.evaluate import load_extra_problems, run_evaluation

    spec = read_spec(spec_file)
    report = reporter()
    with exit_codes():
        load_extra_problems(spec)
        if model is not None and not Path(model).exists() and spec.model.name != model:
            report.log(f"--model {model} is not a local path; loading it as a hub id")
        with open_sandbox(spec) as sandbox:
            run_data = stage_data(spec, data, sandbox, report)
            path = model or base_model(spec, run_data, model_cache(cache), report).path
            result = run_evaluation(spec, run_data.heldout, path, sandbox, out, report)
    write_result(evaluate_result(result, sandbox.usage()))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    heldout = result["heldout"]
    stdout.print(pass_rate_table(f"Held-out ({heldout['counts']['problems']} problems)", _columns(heldout)))
    for source, extra in result["extra"].items():
        stdout.print(pass_rate_table(f"{source} ({extra['counts']['problems']} problems)", _columns(extra)))
    stdout.print(f"wrote {out / 'evaluation.json'}")


def _columns(summary: dict[str, object]) -> dict[str, dict[str, float | None]]:
    return {key: value for key, value in summary.items() if key.startswith("pass@")}  # type: ignore[misc]


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
