"""`tarot sandbox`: serve the sandbox over HTTP, or run one program through it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from tarot_jobs.cli.output import ExitCode, literal, stdout, write_result
from tarot_jobs.cli.shutdown import sandbox_dies_with_the_command
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, ProgramKind, TestSpec, Verdict


def _read_text(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=option) from exc


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8080,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Helper processes (default: all usable cores).")
    ] = None,
    max_queued: Annotated[
        int, typer.Option(min=1, help="Programs that may wait for a slot before 429.")
    ] = 1024,
    max_code_kb: Annotated[int, typer.Option(min=1, help="Largest program accepted (413 above).")] = 256,
    max_input_mb: Annotated[
        int, typer.Option(min=1, help="Largest stdin of one test accepted (413 above).")
    ] = 8,
) -> None:
    """Serve POST /v1/execute, /v1/execute/batch, GET /healthz and /metrics. On SIGTERM, the tests it
    executed by verdict go to $TAROT_RESULT_FILE (a pod's termination message: its last count is kept)."""
    from tarot_jobs.lifecycle.results import SandboxServiceResult
    from tarot_jobs.sandbox.service import ServiceConfig, serve

    config = ServiceConfig(
        max_queued=max_queued, max_code_bytes=max_code_kb << 10, max_input_bytes=max_input_mb << 20
    )
    executed = asyncio.run(
        serve(host, port, workers, config=config, on_ready=lambda line: print(line, flush=True))
    )
    write_result(SandboxServiceResult(executions=executed))


def exec_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The Python program to run.")],
    stdin: Annotated[Path | None, typer.Option("--stdin", help="File fed to the program's stdin.")] = None,
    expect: Annotated[
        Path | None, typer.Option("--expect", help="Expected stdout (judged like a reward).")
    ] = None,
    tests: Annotated[
        Path | None,
        typer.Option("--tests", help="Function-style test code (asserts) run after the program, not stdin."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, max=300, help="Wall-clock limit in seconds.")
    ] = 5.0,
    memory_mb: Annotated[int, typer.Option("--memory-mb", min=1, help="Address-space limit in MB.")] = 512,
    float_tolerance: Annotated[
        float | None, typer.Option(help="Accept numbers this close in the output.")
    ] = None,
    subprocess_path: Annotated[
        bool, typer.Option("--subprocess", help="Use a fresh interpreter, not the fork server.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run one program through the executor and show the verdict (exit status 0 only when it passed)."""
    from tarot_jobs.sandbox.limits import RunLimits
    from tarot_jobs.sandbox.local import LocalSandbox

    code = _read_text(file, "FILE") or ""
    if tests is not None and (stdin is not None or expect is not None):
        raise typer.BadParameter("--tests cannot be combined with --stdin/--expect", param_hint="--tests")
    if tests is not None:
        test = TestSpec(input=_read_text(tests, "--tests") or "")
        kind = ProgramKind.FUNCTION
    else:
        test = TestSpec(input=_read_text(stdin, "--stdin") or "", output=_read_text(expect, "--expect"))
        kind = ProgramKind.STDIN_STDOUT
    request = ExecutionRequest(
        code=code,
        kind=kind,
        tests=[test],
        time_limit_s=timeout,
        memory_limit_mb=memory_mb,
        float_tolerance=float_tolerance,
    )
    with (
        sandbox_dies_with_the_command(),
        LocalSandbox(1, limits=RunLimits(text_cap_chars=1 << 20), fast=not subprocess_path) as sandbox,
    ):
        [result] = sandbox.run_batch([request])
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        _show(result)
    if result.results[0].status not in (Verdict.PASSED, Verdict.COMPLETED):
        raise typer.Exit(int(ExitCode.FAILED))


def _show(result: ExecutionResult) -> None:
    """The verdict, then the program's output exactly as written (no markup, escapes made visible)."""
    test = result.results[0]
    table = Table(show_header=False, box=None)
    colour = "green" if test.status in (Verdict.PASSED, Verdict.COMPLETED) else "red"
    table.add_row("verdict", f"[bold {colour}]{test.status.value}[/]")
    if test.detail:
        table.add_row("detail", literal(test.detail))  # may quote the program's stderr
    table.add_row("exit code", str(test.exit_code) if test.signal is None else f"signal {test.signal}")
    table.add_row("wall", f"{test.wall_ms:.1f} ms")
    table.add_row("cpu", f"{test.cpu_ms:.1f} ms")
    table.add_row("path", result.path)
    stdout.print(table)
    for name, text in (("stdout", test.stdout), ("stderr", test.stderr)):
        if text:
            stdout.print(Panel(literal(text.rstrip("\n")), title=name, expand=False))


def register(app: typer.Typer) -> None:
    sandbox_app = typer.Typer(help="The sandboxed executor for model-written programs.", no_args_is_help=True)
    sandbox_app.command("serve")(serve_command)
    sandbox_app.command("exec")(exec_command)
    app.add_typer(sandbox_app, name="sandbox")
