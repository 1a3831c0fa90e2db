"""The HTTP client against a service that answers wrongly: bounded retries, then SandboxUnavailable,
and the reward's own bounded retries, then None (never 0).

The misbehaving service is a real aiohttp server on 127.0.0.1 (a stand-in: the real service never
answers like this, which is why it has to be made up here)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.rewards.tiered import score_batch
from tarot_jobs.sandbox.client import HttpSandbox
from tarot_jobs.sandbox.types import ExecutionRequest, SandboxUnavailable, TestSpec

PASSED = {"status": "passed"}
ECHO = ExecutionRequest(code="print(1)", tests=[TestSpec(output="1"), TestSpec(output="1")])


@contextlib.contextmanager
def _served(answer: Callable[[dict[str, Any]], Any]) -> Iterator[tuple[str, list[int]]]:
    """Serve `answer(body)` as the JSON of every batch request; yields (url, [requests seen])."""
    seen = [0]

    async def batch(http: web.Request) -> web.Response:
        seen[0] += 1
        return web.json_response(answer(await http.json()))

    app = web.Application()
    app.add_routes([web.post("/v1/execute/batch", batch)])
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def _one_result_too_few(body: dict[str, Any]) -> Any:
    return {"results": [{"results": [PASSED, PASSED], "path": "forkserver"}] * (len(body["requests"]) - 1)}


def _one_verdict_too_few(body: dict[str, Any]) -> Any:
    return {"results": [{"results": [PASSED], "path": "forkserver"}] * len(body["requests"])}


def _not_results(body: dict[str, Any]) -> Any:
    return {"results": [{"verdict": "passed"}]}


@pytest.mark.parametrize("answer", [_one_result_too_few, _one_verdict_too_few, _not_results])
def test_a_malformed_answer_is_retried_then_unavailable(answer: Callable[[dict[str, Any]], Any]) -> None:
    with _served(answer) as (url, seen):
        with (
            HttpSandbox(url, retries=2, backoff_s=0.01) as client,
            pytest.raises(SandboxUnavailable, match="malformed answer 3 times"),
        ):
            client.run_batch([ECHO, ECHO])
        assert seen[0] == 3  # the first try and two retries, no more


def test_the_reward_retries_a_bounded_number_of_times_then_gives_none() -> None:
    problem = Problem(
        id="one",
        statement="Print 1.",
        gold_solution="print(1)\n",
        tests=[TestCase(input="", output="1", tier=tier) for tier in (Tier.BASIC, Tier.EDGE)],
    )
    with _served(_one_verdict_too_few) as (url, seen):
        with HttpSandbox(url, retries=1, backoff_s=0.01) as client:
            [detail] = score_batch(
                [(problem, "```python\nprint(1)\n```")], get_policy("static").phases[0], client, retries=2
            )
        assert detail.reward is None and detail.sandbox_failed  # dropped from training, never a 0
        assert seen[0] == 2 * 3  # (1 + client retries) per call, (1 + reward retries) calls
