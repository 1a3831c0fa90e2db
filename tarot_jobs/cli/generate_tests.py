"""`tarot generate-tests`: tiered tests for problems that have a statement and a gold solution only.

A model behind an OpenAI-compatible API (`--endpoint`, `--model`) proposes the inputs of each tier; the
gold solution computes every expected output in the sandbox; `data check` judges the result; finished
problems are appended to `--out` (a rerun skips them). The per-tier report is printed and written as JSON.
Exit codes (cli/output.py): 0 done (even when tests or problems were left out: the report says why),
2 bad input or options refused by the endpoint, 3 the endpoint or the sandbox is unavailable, 1 an
output could not be written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.cli.output import ExitCode, exit_codes, fail, literal, reporter, stderr, stdout
from tarot_jobs.cli.shutdown import sandbox_dies_with_the_command
from tarot_jobs.pipeline.errors import BadInput
from tarot_jobs.pipeline.testgen.endpoint import (
    ChatClient,
    EndpointOptions,
    EndpointRejected,
    EndpointUnavailable,
)
from tarot_jobs.pipeline.testgen.generate import GenerationOptions, OutputFile, generate_tests, pending
from tarot_jobs.pipeline.testgen.report import GenerationReport
from tarot_jobs.problems.untested import UntestedProblem, read_untested
from tarot_jobs.sandbox.types import ProgramKind, SandboxBackend

API_KEY_VARIABLE = "TAROT_GENERATION_API_KEY"


def generate_tests_command(
    problems_file: Annotated[
        Path,
        typer.Argument(
            metavar="PROBLEMS",
            help="A .jsonl/.json file of problems (canonical or TAROT fields); their tests may be missing.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Canonical jsonl the finished problems are appended to.")
    ],
    endpoint: Annotated[
        str, typer.Option("--endpoint", help="OpenAI-compatible API base, e.g. http://host:8000/v1.")
    ],
    model: Annotated[str, typer.Option("--model", help="The model name the endpoint serves.")],
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar=API_KEY_VARIABLE, help="Bearer key for the endpoint.", show_default=False
        ),
    ] = None,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="The JSON report (default: OUT with .report.json).")
    ] = None,
    tests_per_tier: Annotated[
        int, typer.Option("--tests-per-tier", min=1, max=50, help="Inputs asked of the model per tier.")
    ] = 5,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=256, help="Requests (and problems) in flight at once.")
    ] = 4,
    tries: Annotated[
        int, typer.Option("--tries", min=1, max=20, help="Attempts per request (HTTP errors, timeouts).")
    ] = 5,
    retry_backoff: Annotated[
        float,
        typer.Option("--retry-backoff", min=0, help="Seconds before the first retry; doubles each time."),
    ] = 1.0,
    request_timeout: Annotated[
        float, typer.Option("--request-timeout", min=0.1, help="Seconds one model request may take.")
    ] = 120.0,
    temperature: Annotated[float, typer.Option("--temperature", min=0, max=2)] = 0.7,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=16, help="Tokens per model answer.")] = 2048,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.001, max=300, help="Wall-clock seconds per gold run.")
    ] = 10.0,
    memory_mb: Annotated[int, typer.Option("--memory-mb", min=1, help="Address-space limit per run.")] = 512,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Parallel runs (default: all usable cores).")
    ] = None,
    sandbox_url: Annotated[
        str | None,
        typer.Option(
            "--sandbox-url", envvar="TAROT_SANDBOX_URL", help="Use a `tarot sandbox serve` service."
        ),
    ] = None,
    allow_missing_tiers: Annotated[
        bool,
        typer.Option("--allow-missing-tiers", help="Write problems that kept no test in some tier."),
    ] = False,
) -> None:
    """Ask a model for each tier's test inputs; the gold solution computes the expected outputs."""
    report_path = report_file or out.with_name(out.name + ".report.json")
    with exit_codes():
        _check_endpoint(endpoint)
        problems = read_untested(problems_file)
        _check_kinds(problems_file, problems)
        output = OutputFile(out)
        todo = pending(problems, output)
    report = GenerationReport(
        endpoint=endpoint,
        model=model,
        input=str(problems_file),
        output=str(out),
        problems=len(problems),
        already_done=len(problems) - len(todo),
    )
    endpoint_options = EndpointOptions(
        url=endpoint,
        model=model,
        api_key=api_key,
        concurrency=concurrency,
        tries=tries,
        backoff_s=retry_backoff,
        timeout_s=request_timeout,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    options = GenerationOptions(
        tests_per_tier=tests_per_tier,
        concurrency=concurrency,
        timeout_s=timeout,
        memory_limit_mb=memory_mb,
        require_all_tiers=not allow_missing_tiers,
    )
    try:
        with exit_codes(), sandbox_dies_with_the_command():
            _run(todo, endpoint_options, options, output, report, workers, sandbox_url)
    finally:
        # Also after a failure: the report counts what this run did before it stopped.
        try:
            write_json_atomically(report_path, report.model_dump(mode="json"))
        except OSError as exc:
            fail(f"--report: cannot write {report_path}: {exc.strerror or exc}", ExitCode.FAILED)
    _print_report(report, report_path)


def _check_endpoint(endpoint: str) -> None:
    if not endpoint.startswith(("http://", "https://")):
        raise BadInput(f"--endpoint: expected an http(s) URL such as http://host:8000/v1, got {endpoint!r}")


def _check_kinds(path: Path, problems: list[UntestedProblem]) -> None:
    for problem in problems:
        if problem.kind is not ProgramKind.STDIN_STDOUT:
            raise BadInput(
                f"{path}: problem {problem.id!r}: kind: tests can be generated for stdin_stdout problems "
                f"only, not {problem.kind.value}"
            )


def _run(
    todo: list[UntestedProblem],
    endpoint: EndpointOptions,
    options: GenerationOptions,
    output: OutputFile,
    report: GenerationReport,
    workers: int | None,
    sandbox_url: str | None,
) -> None:
    from tarot_jobs.sandbox.client import backend_for

    backend = backend_for(sandbox_url, workers) if todo else None
    try:
        with reporter().task("generating tests", max(len(todo), 1)) as task:
            if backend is not None:
                asyncio.run(_generate(todo, endpoint, backend, output, report, options, task.advance))
    except EndpointRejected as exc:
        fail(str(exc), ExitCode.BAD_INPUT)
    except EndpointUnavailable as exc:
        fail(str(exc), ExitCode.UNAVAILABLE)
    except OSError as exc:
        fail(f"--out: cannot write {output.path}: {exc.strerror or exc}", ExitCode.FAILED)
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


async def _generate(
    todo: list[UntestedProblem],
    endpoint: EndpointOptions,
    backend: SandboxBackend,
    output: OutputFile,
    report: GenerationReport,
    options: GenerationOptions,
    advance: Callable[[], None],
) -> None:
    async with ChatClient(endpoint) as client:
        await generate_tests(todo, client, backend, output, report, options, advance)


def _print_report(report: GenerationReport, report_path: Path) -> None:
    table = Table(title=literal(f"Generated tests of {report.input}"))
    for column in ("tier", "proposed", "kept", "dropped"):
        table.add_column(column, justify="left" if column in ("tier", "dropped") else "right")
    for tier, counts in report.tiers.items():
        dropped = ", ".join(f"{reason.value} {count}" for reason, count in sorted(counts.dropped.items()))
        table.add_row(tier.value, str(counts.proposed), str(counts.kept), dropped or "-")
    stdout.print(table)
    for problem in report.not_written:
        stdout.print(literal(f"not written: {problem.problem_id}: {problem.why}"))
    stdout.print(
        Text(
            f"{report.written} problem(s) written, {len(report.not_written)} left for a rerun, "
            f"{report.already_done} already done"
        )
    )
    stderr.print(literal(f"report: {report_path}"))


def register(app: typer.Typer) -> None:
    app.command("generate-tests")(generate_tests_command)
