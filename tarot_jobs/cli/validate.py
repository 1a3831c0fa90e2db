"""`tarot validate FILE`: check a TarotRun manifest (or a bare spec) and list every error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape

from tarot_jobs.cli.output import ExitCode, stderr, stdout
from tarot_jobs.spec.model import SpecError, TarotRunManifest, TarotRunSpec, load_document


def _summary(spec: TarotRunSpec) -> str:
    t = spec.training
    if t.max_steps is not None:
        length = f"{t.max_steps} steps"
    elif t.epochs is not None:
        length = f"{t.epochs:g} epoch(s)"
    else:
        length = "the policy's epochs"
    curriculum = spec.curriculum
    policy = (
        f"auto (threshold {curriculum.threshold:g}: {curriculum.weak_policy} / {curriculum.strong_policy})"
        if curriculum.policy == "auto"
        else curriculum.policy
    )
    where = f"{spec.resources.gpus} GPU(s)" if spec.resources.gpus else "CPU"
    return (
        f"model {spec.model.name}, dataset {spec.dataset.source}, curriculum {policy}, "
        f"training {length} on {where}"
    )


def validate_command(
    file: Annotated[
        Path, typer.Argument(help="A TarotRun manifest (apiVersion/kind/metadata/spec) or a bare spec.")
    ],
    show: Annotated[
        bool, typer.Option("--show", help="Print the spec with every default filled in.")
    ] = False,
) -> None:
    """Check a run spec; print every error with its field path (exit 2 on errors)."""
    try:
        document = load_document(file)
    except SpecError as exc:  # every error, one per line (not exit_codes()'s one-line message)
        stderr.print(f"[red]{escape(exc.source)}: {len(exc.issues)} error(s)[/red]")
        for issue in exc.issues:
            stderr.print(f"  [bold]{escape(issue.path or '(file)')}[/bold]: {escape(issue.message)}")
        raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
    if isinstance(document, TarotRunManifest):
        spec, what = document.spec, f"TarotRun {document.metadata.name!r}"
    else:
        spec, what = document, "bare spec"
    stdout.print(f"[green]{escape(str(file))}: valid {escape(what)}[/green]: {escape(_summary(spec))}")
    if show:
        print(yaml.safe_dump(document.model_dump(mode="json", exclude_none=True), sort_keys=False), end="")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
