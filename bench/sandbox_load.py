"""Load benchmark: many concurrent clients against `tarot sandbox serve` in another process.

Starts the service as a subprocess on a free port (or uses --url), then runs
--clients concurrent clients that together send --requests requests (each one
program x 5 tests from the bundled problems, correct and wrong mixed). A
client that gets 429/503 waits Retry-After and tries again, as HttpSandbox
does. Every request has a deadline: one that does not answer in time counts as
hung, one that fails otherwise as lost. At the end the service's own
/metrics count of executed tests is compared with what the clients received.

Prints a summary, then one JSON line:
{"requests_per_s", "tests_per_s", "p50_ms", "p99_ms", "max_ms", "hung", "lost", "retried_429", ...}.

    python3 bench/sandbox_load.py [--clients 64] [--requests 1000] [--workers N] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tarot_jobs.problems.bundled import load_bundled
from tarot_jobs.sandbox.local import default_workers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))
from local_processes import start_sandbox_service
from percentiles import percentile

DEADLINE_S = 120.0


def payloads(count: int) -> list[dict[str, Any]]:
    problems = load_bundled()
    out = []
    for i in range(count):
        problem = problems[i % len(problems)]
        code = problem.gold_solution if i % 3 else problem.gold_solution + "\nprint('extra')\n"
        out.append(problem.execution_request(code, problem.tests[:5], time_limit_s=5).model_dump(mode="json"))
    return out


class Tally:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.tests = 0
        self.retried = 0
        self.hung = 0
        self.lost: list[str] = []


async def one_request(http: httpx.AsyncClient, url: str, body: dict[str, Any], tally: Tally) -> None:
    start = time.monotonic()
    deadline = start + DEADLINE_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            tally.hung += 1
            return
        try:
            response = await http.post(f"{url}/v1/execute", json=body, timeout=remaining)
        except httpx.TimeoutException:
            tally.hung += 1
            return
        except httpx.HTTPError as exc:
            tally.lost.append(f"{type(exc).__name__}: {exc}")
            return
        if response.status_code in (429, 503):
            tally.retried += 1
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        if response.status_code != 200 or len(response.json()["results"]) != len(body["tests"]):
            tally.lost.append(f"HTTP {response.status_code}: {response.text[:200]}")
            return
        tally.latencies_ms.append((time.monotonic() - start) * 1000)
        tally.tests += len(body["tests"])
        return


async def drive(url: str, bodies: list[dict[str, Any]], clients: int) -> tuple[Tally, float]:
    tally = Tally()
    work: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        work.put_nowait(body)

    async def client() -> None:
        async with httpx.AsyncClient() as http:  # one connection per client, as separate trainers would
            while not work.empty():
                await one_request(http, url, work.get_nowait(), tally)
                done = len(tally.latencies_ms)
                if done % 200 == 0 and done:
                    print(f"  {done}/{len(bodies)} requests answered", file=sys.stderr)

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return tally, time.monotonic() - start


def server_executions(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^tarot_sandbox_executions_total\{[^}]*\} (\S+)$", text, re.M))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument(
        "--max-queued", type=int, default=32, help="the service's queue bound (small: exercise 429)"
    )
    parser.add_argument("--url", help="an already running service (default: start one)")
    args = parser.parse_args()

    process, url = (
        (None, args.url)
        if args.url
        else start_sandbox_service("--workers", str(args.workers), "--max-queued", str(args.max_queued))
    )
    try:
        bodies = payloads(args.requests)
        before = server_executions(url)
        print(
            f"{args.clients} clients, {len(bodies)} requests -> {url} (load {os.getloadavg()[0]:.2f})",
            file=sys.stderr,
        )
        tally, seconds = asyncio.run(drive(url, bodies, args.clients))
        executed = server_executions(url) - before
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    answered = len(tally.latencies_ms)
    summary = {
        "requests": len(bodies),
        "answered": answered,
        "clients": args.clients,
        "workers": args.workers,
        "requests_per_s": round(answered / seconds, 1),
        "tests_per_s": round(tally.tests / seconds, 1),
        "p50_ms": round(percentile(tally.latencies_ms, 0.5), 1),
        "p99_ms": round(percentile(tally.latencies_ms, 0.99), 1),
        "max_ms": round(max(tally.latencies_ms, default=float("nan")), 1),
        "retried_429": tally.retried,
        "hung": tally.hung,
        "lost": len(tally.lost),
        "server_executed_tests": int(executed),
        "client_received_tests": tally.tests,
    }
    print(
        f"{answered}/{len(bodies)} requests answered in {seconds:.1f}s: {summary['requests_per_s']} req/s, "
        f"{summary['tests_per_s']} tests/s; latency p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms; "
        f"{tally.retried} retries after 429; hung {tally.hung}, lost {len(tally.lost)}; "
        f"server executed {int(executed)} tests, clients received {tally.tests}"
    )
    for problem in tally.lost[:5]:
        print(f"  lost: {problem}")
    print(json.dumps(summary))
    if tally.hung or tally.lost or executed != tally.tests:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
