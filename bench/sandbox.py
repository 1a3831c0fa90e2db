"""Benchmark: tarot's executor against the reference way of running reward tests.

Workload: a realistic reward batch drawn from the bundled problem set: N
programs (default 256) x 5 tests, mixing correct programs (the gold
solutions), wrong ones (gold plus an extra output line, or a constant guess)
and crashing ones (gold that raises after its work).

In one invocation it runs:
  (a) the reference approach: one `subprocess.run([python, "-c", code])` per test, serially;
  (b) the same subprocess-per-test, on a thread pool with as many workers as ours;
  (c) tarot's LocalSandbox (warm fork-server helpers).
and checks that all three reach the same verdicts (exit status 1 when any
differ: the speed of a sandbox that judges wrongly means nothing, so then the
table shows what differed with no speed-up, the JSON line has null ratios and
"verdicts_agree": false, and stderr lists the first differences). Then it measures the
round trip of a trivial program through the executor, one test at a time
(the per-test overhead). Prints a table, then one JSON line:
{"tests_per_s", "vs_serial_subprocess", "vs_parallel_subprocess", "p50_ms", "p99_ms",
"function_p50_ms", "cpu_ms_per_test", "serial_cpu_ms_per_test", "helper_start_ms", ...}.
Wall-clock ratios move with the machine's load; CPU per test (all processes) does not.

    python3 bench/sandbox.py [--programs 256] [--tests 5] [--workers N] [--trivial-runs 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tarot_jobs.problems.bundled import load_bundled
from tarot_jobs.sandbox.compare import outputs_match
from tarot_jobs.sandbox.local import LocalSandbox, default_workers
from tarot_jobs.sandbox.types import ExecutionRequest, ProgramKind, TestSpec, Verdict

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))
from percentiles import percentile

console = Console(stderr=True)
TIME_LIMIT_S = 5.0


def build_workload(programs: int, tests_per_program: int) -> list[ExecutionRequest]:
    problems = load_bundled()
    choose = random.Random(0)  # the same workload every run
    requests = []
    for i in range(programs):
        problem = problems[i % len(problems)]
        gold = problem.gold_solution
        variant = choose.randrange(8)
        if variant < 4:  # half correct
            code = gold
        elif variant < 6:  # a quarter wrong: the right work, then an extra line / a wrong function
            if problem.kind is ProgramKind.FUNCTION:
                code = gold + f"\n{problem.entry_point} = lambda *args, **kwargs: None\n"
            else:
                code = gold + "\nprint('extra')\n"
        elif variant == 6:  # crashing after doing the work
            code = gold + "\nraise RuntimeError('boom')\n"
        else:  # crashing at once
            code = "import sys\nnumbers = [int(x) for x in sys.stdin.read().split()]\nprint(numbers[10**6])\n"
        requests.append(
            problem.execution_request(code, problem.tests[:tests_per_program], time_limit_s=TIME_LIMIT_S)
        )
    return requests


def reference_verdict(request: ExecutionRequest, test: TestSpec) -> Verdict:
    """What the reference code does: a fresh `python -c` per test (TAROT, open-r1)."""
    if request.kind is ProgramKind.FUNCTION:
        command, stdin = [sys.executable, "-c", request.code + "\n" + test.input], ""
    else:
        command, stdin = [sys.executable, "-c", request.code], test.input
    try:
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=request.time_limit_s
        )
    except subprocess.TimeoutExpired:
        return Verdict.TIMEOUT
    if done.returncode != 0:
        is_assert = "AssertionError" in done.stderr and request.kind is ProgramKind.FUNCTION
        return Verdict.WRONG_ANSWER if is_assert else Verdict.RUNTIME_ERROR
    if request.kind is ProgramKind.FUNCTION:
        return Verdict.PASSED
    if test.output is None:
        return Verdict.COMPLETED
    return Verdict.PASSED if outputs_match(done.stdout, test.output) else Verdict.WRONG_ANSWER


def timed(label: str, run: Callable[[], list[Verdict]]) -> tuple[float, list[Verdict]]:
    console.print(f"[bold]{label}[/] ...")
    start = time.perf_counter()
    verdicts = run()
    seconds = time.perf_counter() - start
    console.print(f"  {len(verdicts)} tests in {seconds:.2f}s ({len(verdicts) / seconds:.1f} tests/s)")
    return seconds, verdicts


def cpu_seconds() -> float:
    """CPU time of this process and of every child it has reaped (helpers once closed, subprocesses)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_at_a_time(sandbox: LocalSandbox, request: ExecutionRequest, runs: int) -> list[float]:
    """Round-trip milliseconds of `request`, run `runs` times one after another."""
    trips = []
    for _ in range(runs):
        start = time.perf_counter()
        sandbox.run_batch([request])
        trips.append((time.perf_counter() - start) * 1000)
    return trips


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--programs", type=int, default=256)
    parser.add_argument("--tests", type=int, default=5)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--trivial-runs", type=int, default=300)
    args = parser.parse_args()

    requests = build_workload(args.programs, args.tests)
    pairs = [(request, test) for request in requests for test in request.tests]
    console.print(
        f"workload: {len(requests)} programs, {len(pairs)} tests; {args.workers} workers; "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); load {os.getloadavg()[0]:.2f}"
    )

    cpu_before = cpu_seconds()
    serial_s, serial = timed(
        "(a) subprocess per test, serial", lambda: [reference_verdict(r, t) for r, t in pairs]
    )
    serial_cpu_ms = (cpu_seconds() - cpu_before) / len(pairs) * 1000
    with ThreadPoolExecutor(args.workers) as pool:
        parallel_s, parallel = timed(
            f"(b) subprocess per test, {args.workers} workers",
            lambda: list(pool.map(lambda pair: reference_verdict(*pair), pairs)),
        )
    cpu_before = cpu_seconds()
    with LocalSandbox(args.workers) as sandbox:
        sandbox.run_batch(requests[:1])  # start the helpers, as a running service has them
        ours_s, ours = timed(
            "(c) tarot executor",
            lambda: [t.status for result in sandbox.run_batch(requests) for t in result.results],
        )
    # All processes (this one, helpers, checkers, children), start-up included: not bent by load.
    ours_cpu_ms = (cpu_seconds() - cpu_before) / len(pairs) * 1000
    with LocalSandbox(args.workers) as sandbox:
        sandbox.run_batch(requests[:1])
        walls = [t.wall_ms for result in sandbox.run_batch(requests[:64]) for t in result.results]
        console.print(f"[bold]trivial program round trip[/], {args.trivial_runs} runs one at a time ...")
        trivial = ExecutionRequest(code="pass", tests=[TestSpec()])
        round_trips = one_at_a_time(sandbox, trivial, args.trivial_runs)
        # Function style adds the checker and the call channel: one call, one assertion.
        trivial_call = ExecutionRequest(
            code="def f(x):\n    return x\n",
            kind=ProgramKind.FUNCTION,
            entry_point="f",
            tests=[TestSpec(input="assert f(1) == 1")],
        )
        call_trips = one_at_a_time(sandbox, trivial_call, args.trivial_runs)
        path = sandbox.run_batch([trivial])[0].path
    jail_start_ms = []
    for _ in range(3):  # a fresh helper: interpreter start-up plus building its jail
        with LocalSandbox(1) as fresh:
            jail_start_ms += one_at_a_time(fresh, trivial, 1)

    agree_serial = sum(a == b for a, b in zip(serial, ours, strict=True))
    agree_parallel = sum(a == b for a, b in zip(parallel, ours, strict=True))
    counts = {v.value: ours.count(v) for v in Verdict if ours.count(v)}

    table = Table(title=f"sandbox benchmark: {len(pairs)} tests ({counts})")
    for column in ("approach", "seconds", "tests/s", "speed-up of (c)", "verdicts agreeing with (c)"):
        table.add_column(column, justify="right")
    n = len(pairs)
    agree = agree_serial == n and agree_parallel == n

    def ratio(reference_s: float) -> float | None:
        return round(reference_s / ours_s, 2) if agree else None

    table.add_row(
        "(a) subprocess, serial",
        f"{serial_s:.2f}",
        f"{n / serial_s:.1f}",
        f"{serial_s / ours_s:.1f}x" if agree else "-",
        f"{agree_serial}/{n}",
    )
    table.add_row(
        f"(b) subprocess, {args.workers} workers",
        f"{parallel_s:.2f}",
        f"{n / parallel_s:.1f}",
        f"{parallel_s / ours_s:.1f}x" if agree else "-",
        f"{agree_parallel}/{n}",
    )
    table.add_row(f"(c) tarot executor ({path})", f"{ours_s:.2f}", f"{n / ours_s:.1f}", "1.0x", f"{n}/{n}")
    Console().print(table)
    print(
        f"trivial program round trip: p50 {percentile(round_trips, 0.5):.2f} ms, "
        f"p99 {percentile(round_trips, 0.99):.2f} ms; trivial function-style test (checker + one call):"
        f" p50 {percentile(call_trips, 0.5):.2f} ms;"
        f" workload test wall p50 {statistics.median(walls):.2f} ms;"
        f" a fresh jailed helper's first run {statistics.median(jail_start_ms):.0f} ms"
    )
    print(
        f"CPU per test, all processes: (a) {serial_cpu_ms:.1f} ms, (c) {ours_cpu_ms:.2f} ms"
        f" (helper start-up included); load at the end {os.getloadavg()[0]:.2f}"
    )
    print(
        json.dumps(
            {
                "tests_per_s": round(n / ours_s, 1),
                "vs_serial_subprocess": ratio(serial_s),
                "vs_parallel_subprocess": ratio(parallel_s),
                "p50_ms": round(percentile(round_trips, 0.5), 3),
                "p99_ms": round(percentile(round_trips, 0.99), 3),
                "function_p50_ms": round(percentile(call_trips, 0.5), 3),
                "cpu_ms_per_test": round(ours_cpu_ms, 2),
                "serial_cpu_ms_per_test": round(serial_cpu_ms, 2),
                "helper_start_ms": round(statistics.median(jail_start_ms), 1),
                "tests": n,
                "workers": args.workers,
                "verdict_agreement_serial": agree_serial / n,
                "verdict_agreement_parallel": agree_parallel / n,
                "verdicts_agree": agree,
                "path": path,
            }
        )
    )
    if not agree:
        wrong = [
            f"{r.kind.value} #{i}: reference {a.value} / {p.value}, tarot {b.value}"
            for i, ((r, _), a, p, b) in enumerate(zip(pairs, serial, parallel, ours, strict=True))
            if not a == p == b
        ]
        print(f"verdicts disagree on {len(wrong)} of {n} tests, e.g. {wrong[:5]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
