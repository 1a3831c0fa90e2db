"""The `tarot` console script.

Each module in COMMAND_MODULES owns one group of subcommands and exposes
`register(app)`. Modules import their heavy dependencies (torch, trl) inside
the command functions, so `tarot --help` and the sandbox stay light.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES: tuple[str, ...] = (
    # One line per module; each defines `register(app: typer.Typer) -> None`.
    "sandbox",
    "data",
    "curriculum",
    "validate",
    "score",
    "probe",
    "select",
    "train",
    "evaluate",
    "run",
)

app = typer.Typer(
    name="tarot",
    help="TAROT curriculum reinforcement fine-tuning of code LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module_name in COMMAND_MODULES:
    importlib.import_module(f"tarot_jobs.cli.{_module_name}").register(app)


def main() -> None:
    app()
