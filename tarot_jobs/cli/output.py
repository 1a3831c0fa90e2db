"""How every `tarot` command talks back: one pair of consoles, one error helper, one set of exit codes,
and the small JSON result a stage hands its executor.

Exit codes, the same for every command (README, "Exit codes"):

    0  success
    1  the work failed (a program failed its test, an output could not be written, a crash)
    2  bad input or usage; the message names the field, argument or file (typer's own usage errors,
       e.g. a missing option, exit 2 too)
    3  a required service is unavailable (the sandbox service)

A Job's podFailurePolicy fails a run at once on 2 (retrying cannot fix the input) and retries the
others. Tables and results go to stdout; errors, log lines and progress to stderr, so `--json` output
stays parseable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from tarot_jobs.lifecycle.results import RESULT_FILE_VARIABLE
from tarot_jobs.pipeline.errors import BAD_INPUT_ERRORS
from tarot_jobs.pipeline.progress import Reporter
from tarot_jobs.sandbox.types import SandboxUnavailable

# The kubelet keeps at most 4096 bytes of a termination message.
RESULT_LIMIT_BYTES = 4096


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    UNAVAILABLE = 3


stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)  # an error line stays whole (file:line)

# Control characters (but newline and tab), DEL, C1 controls and the bidirectional overrides, each shown as
# its escape: a program's output cannot move the cursor, clear the screen or reorder what is shown.
_VISIBLE = (
    {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code not in (0x09, 0x0A)}
    | {code: f"\\u{code:04x}" for code in (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))}
    | {0x0D: "\\r"}
)


def literal(text: str) -> Text:
    """Text shown exactly as it is (program output, ids and paths from data): never rich markup, and with
    every control character made visible as an escape."""
    return Text(text.translate(_VISIBLE))


def error(message: str) -> None:
    """`error: message` on stderr; the message is plain text (paths may hold [brackets])."""
    stderr.print(Text.assemble(("error: ", "bold red"), literal(message)))


def fail(message: str, code: ExitCode) -> NoReturn:
    error(message)
    raise typer.Exit(int(code))


@contextmanager
def exit_codes() -> Iterator[None]:
    """Turn the errors a command expects into a one-line message and the convention's exit code."""
    try:
        yield
    except BAD_INPUT_ERRORS as exc:
        fail(str(exc), ExitCode.BAD_INPUT)
    except SandboxUnavailable as exc:
        fail(f"the sandbox is unavailable: {exc}", ExitCode.UNAVAILABLE)


def reporter() -> Reporter:
    """Stage messages and progress, on the shared stderr console."""
    return Reporter(stderr)


def write_result(result: BaseModel) -> None:
    """Write a stage's result (camelCase JSON, < 4 KiB) to $TAROT_RESULT_FILE when it is set."""
    target = os.environ.get(RESULT_FILE_VARIABLE)
    if not target:
        return
    text = json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"))
    if len(text.encode()) > RESULT_LIMIT_BYTES:
        # Never a truncated (unparseable) result: the executor would fail the run on it.
        raise RuntimeError(f"the stage result is {len(text.encode())} bytes, over {RESULT_LIMIT_BYTES}")
    Path(target).write_text(text)
