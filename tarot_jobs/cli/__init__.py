"""The `tarot` console script.

Each module in COMMAND_MODULES owns one command or group and exposes
`register(app)`, the only place commands are registered (command functions
carry no decorators). Modules import their heavy dependencies (torch, trl)
inside the command functions, so `tarot --help` and the sandbox stay light.

  output.py         the one Console pair, `fail`/`exit_codes` and the exit codes
                    (0 ok, 1 the work failed, 2 bad input, 3 service unavailable),
                    the stage result file ($TAROT_RESULT_FILE), and `literal` for text that must
                    reach a console as written (program output: no markup, escapes shown)
  shutdown.py       SIGTERM/SIGINT kill the jails a command started (no sandbox process outlives it)
  stage_options.py  what the stage commands share: SPEC, --data, --model-cache, tables
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES: tuple[str, ...] = (
    # One line per module; each defines `register(app: typer.Typer) -> None`.
    "sandbox",
    "data",
    "generate_tests",
    "curriculum",
    "validate",
    "crd",
    "score",
    "probe",
    "select",
    "train",
    "evaluate",
    "run",
    "operator",
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
