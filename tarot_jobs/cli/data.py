"""`tarot data`: problem sets before training on them.

`tarot data check PATH` runs every gold solution on every test of its problem
in the sandbox and reports (and optionally writes out) what is usable.
`tarot data prepare SPEC --out DIR` is the run's data stage: the spec's problems
loaded, split and checked into DIR/{train,heldout}.jsonl and check.json.
Exit codes (cli/output.py): 0 done (even when tests were dropped), 2 the input
could not be read, 3 the sandbox failed (its verdicts say nothing about the
tests), 1 an output could not be written.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tarot_jobs.cli.output import ExitCode, exit_codes, fail, literal, reporter, stderr, stdout, write_result
from tarot_jobs.cli.shutdown import sandbox_dies_with_the_command
from tarot_jobs.cli.stage_options import SpecArgument, read_spec
from tarot_jobs.lifecycle.results import data_result
from tarot_jobs.problems.check import CheckReport, check_problems
from tarot_jobs.problems.loaders import LoadResult, load_problems, save_problems


class RecordFormat(StrEnum):
    AUTO = "auto"
    TAROT = "tarot"
    CANONICAL = "canonical"
    HUMANEVAL = "humaneval"


def check_command(
    path: Annotated[
        str,
        typer.Argument(
            help="A .jsonl/.json/.parquet file, a datasets folder, a hub dataset id, or 'bundled'.",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the cleaned usable problems here (canonical jsonl).")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.001,
            max=300,
            help="Wall-clock seconds per test (generous: a busy machine slows correct gold solutions).",
        ),
    ] = 10.0,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Parallel runs (default: all usable cores).")
    ] = None,
    allow_missing_tiers: Annotated[
        bool,
        typer.Option(
            "--allow-missing-tiers",
            help="Keep problems that lost every valid test of some tier (or never had one).",
        ),
    ] = False,
    skip_bad_records: Annotated[
        bool, typer.Option("--skip-bad-records", help="Skip and report malformed records instead of failing.")
    ] = False,
    record_format: Annotated[
        RecordFormat, typer.Option("--format", help="Record shape (default: detected per file).")
    ] = RecordFormat.AUTO,
    memory_mb: Annotated[int, typer.Option("--memory-mb", min=1, help="Address-space limit per run.")] = 512,
    sandbox_url: Annotated[
        str | None,
        typer.Option(
            "--sandbox-url", envvar="TAROT_SANDBOX_URL", help="Use a `tarot sandbox serve` service."
        ),
    ] = None,
) -> None:
    """Run every gold solution on all its tests; drop invalid tests and report usable problems."""
    started = time.monotonic()
    with exit_codes(), sandbox_dies_with_the_command():
        loaded = load_problems(
            path, format=record_format.value, on_error="skip" if skip_bad_records else "raise"
        )
        report = _run_check(loaded, timeout, memory_mb, workers, sandbox_url, not allow_missing_tiers)
    elapsed = time.monotonic() - started

    if as_json:
        payload = report.model_dump(mode="json")
        payload["skipped_records"] = [str(record) for record in loaded.skipped]
        print(json.dumps(payload, indent=2))
    else:
        _print_human(report, loaded, elapsed)

    if report.infrastructure_errors:
        fail(
            f"the sandbox failed on {len(report.infrastructure_errors)} test(s); "
            "their validity is unknown" + (", so nothing was written" if out else ""),
            ExitCode.UNAVAILABLE,
        )
    if out is not None:
        try:
            save_problems(report.cleaned, out)
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror or exc}", ExitCode.FAILED)
        stderr.print(literal(f"wrote {len(report.cleaned)} usable problem(s) to {out}"))


def prepare_command(
    spec_file: SpecArgument,
    out: Annotated[Path, typer.Option("--out", help="Directory for train.jsonl, heldout.jsonl, check.json.")],
) -> None:
    """The run's data stage: load the spec's problems, split them, check their tests (dataset.check)."""
    from tarot_jobs.pipeline.context import open_sandbox
    from tarot_jobs.pipeline.stages.data import prepare_data, write_data

    spec = read_spec(spec_file)
    report = reporter()
    with exit_codes(), sandbox_dies_with_the_command(), open_sandbox(spec) as sandbox:
        data = prepare_data(spec, sandbox, report.log)
    try:
        write_data(data, out)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}", ExitCode.FAILED)
    result = data_result(data.summary, sandbox.usage())
    write_result(result)
    stdout.print(
        f"{result.train} training and {result.heldout} held-out problems in {out}"
        + (f"; the check dropped {result.dropped}" if result.dropped else "")
    )


def _run_check(
    loaded: LoadResult,
    timeout: float,
    memory_mb: int,
    workers: int | None,
    sandbox_url: str | None,
    require_all_tiers: bool,
) -> CheckReport:
    from tarot_jobs.sandbox.client import backend_for

    backend = backend_for(sandbox_url, workers)
    total_tests = sum(len(problem.tests) for problem in loaded.problems)
    try:
        with reporter().task("checking tests", total_tests) as task:
            return check_problems(
                loaded.problems,
                backend,
                timeout_s=timeout,
                memory_limit_mb=memory_mb,
                require_all_tiers=require_all_tiers,
                # Small chunks keep the bar moving; two in flight keep every worker busy.
                chunk_size=max(4, 2 * getattr(backend, "workers", workers or 2)),
                progress=task.advance,
            )
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


def _print_human(report: CheckReport, loaded: LoadResult, elapsed: float) -> None:
    table = Table(title=literal(f"Tests of {loaded.source}"))
    for column in ("tier", "total", "valid", "invalid"):
        table.add_column(column, justify="left" if column == "tier" else "right")
    for tier, counts in report.tiers.items():
        table.add_row(tier.value, str(counts.total), str(counts.valid), str(counts.invalid))
    table.add_row(
        "(none)", str(report.untiered.total), str(report.untiered.valid), str(report.untiered.invalid)
    )
    stdout.print(table)

    if report.invalid:
        invalid = Table(title="Invalid tests (dropped)")
        for column in ("problem", "tier", "test", "reason", "detail"):
            invalid.add_column(column)
        for bad in report.invalid:
            tier_name = bad.tier.value if bad.tier else "(none)"
            invalid.add_row(
                literal(bad.problem_id), tier_name, str(bad.test_index), bad.reason.value, literal(bad.detail)
            )
        stdout.print(invalid)
    # literal() everywhere: ids, paths and details (the gold solutions' output among them) may hold
    # [brackets] that are not rich markup and control characters that must not reach the terminal.
    for problem in report.unusable:
        stdout.print(literal(f"unusable: {problem.problem_id}: {problem.why}"))
    if any(problem.missing_tiers for problem in report.unusable):
        stdout.print(
            Text("hint: --allow-missing-tiers keeps problems that lack a tier (e.g. HumanEval-style sets)")
        )
    for record in loaded.skipped:
        stdout.print(literal(f"skipped record: {record}"))
    for error in report.infrastructure_errors:
        stdout.print(literal(f"sandbox error: {error.problem_id} test {error.test_index}: {error.detail}"))
    stdout.print(
        Text(
            f"{report.usable_problems} of {report.problems} problems usable, {len(report.invalid)} invalid "
            f"test(s) dropped; checked in {elapsed:.1f}s"
        )
    )


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Inspect, validate and prepare problem sets.", no_args_is_help=True)
    data_app.command("check")(check_command)
    data_app.command("prepare")(prepare_command)
    app.add_typer(data_app, name="data")
