"""`tarot run SPEC [--workdir DIR]`: the whole pipeline on this machine (tarot_jobs/lifecycle/local.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tarot_jobs.cli.output import exit_codes, reporter, stdout
from tarot_jobs.cli.stage_options import ModelCacheOption, SpecArgument, pass_rate_table, read_spec


def run_command(
    spec_file: SpecArgument,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where every stage writes (default: runs/<spec file name>)."),
    ] = None,
    cache: ModelCacheOption = None,
) -> None:
    """Check data, probe, select, train every phase, evaluate base and final, report; reruns resume."""
    from tarot_jobs.lifecycle.local import run_pipeline

    read_spec(spec_file)  # a bad spec fails here, naming its fields, before anything else happens
    root = workdir or Path("runs") / spec_file.stem
    with exit_codes():
        report = run_pipeline(spec_file, root, reporter(), model_cache=cache)
    policy = report["policy"]
    stdout.print(
        f"capability {report['capability']['score']:.3f} -> policy {policy['name']}: {policy['reason']}"
    )
    for phase in report["phases"]:
        reward = phase["mean_reward"]
        stdout.print(
            f"  phase {phase['index']} [{'+'.join(t[0].upper() for t in phase['tiers'])}]: "
            f"{phase['steps']} steps, "
            f"mean reward {'-' if reward is None else f'{reward:.3f}'}"
        )
    evaluation = report["evaluation"]
    stdout.print(
        pass_rate_table("Held-out pass@1", {"before": evaluation["before"], "after": evaluation["after"]})
    )
    stdout.print(f"report: {root / 'report.md'}, {root / 'report.json'}, {root / 'curves.png'}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
