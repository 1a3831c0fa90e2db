"""The HTTP client of the sandbox service, and the choice between it and the local executor.

`HttpSandbox.run_batch` is synchronous (trl calls reward functions
synchronously) but runs on an async httpx client in a background event loop,
so it also works when the caller is itself inside an event loop, and several
chunks of a large batch go out concurrently.

Failure policy: 429/503, connection errors and malformed answers (not JSON,
a wrong number of results or verdicts) are retried with exponential backoff
(honouring Retry-After); when retries run out the call raises
`SandboxUnavailable`, which the rewards retry a bounded number of times more
and then turn into None, never 0. A request the
service finds too large (413) comes back as `sandbox_error` results for that
program only.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import httpx

from tarot_jobs.sandbox.types import (
    ExecutionRequest,
    ExecutionResult,
    SandboxBackend,
    SandboxUnavailable,
    TestResult,
    Verdict,
)

BATCH_PATH = "/v1/execute/batch"
_RETRY_STATUSES = {429, 502, 503, 504}
T = TypeVar("T")


class SandboxRequestError(ValueError):
    """The service rejected a request as malformed (HTTP 400): a bug in the caller."""


def _too_large(request: ExecutionRequest, detail: str) -> ExecutionResult:
    result = TestResult(status=Verdict.SANDBOX_ERROR, detail=f"rejected by the sandbox service: {detail}")
    return ExecutionResult(results=[result] * len(request.tests), path="remote")


def _results_for(chunk: list[ExecutionRequest], body: dict[str, Any]) -> list[ExecutionResult]:
    """The results in `body`, one per request with one verdict per test; ValueError when not."""
    results = [ExecutionResult.model_validate(item) for item in body["results"]]
    if len(results) != len(chunk):
        raise ValueError(f"{len(results)} results for {len(chunk)} programs")
    for index, (result, request) in enumerate(zip(results, chunk, strict=True)):
        if len(result.results) != len(request.tests):
            raise ValueError(
                f"program {index}: {len(result.results)} verdicts for {len(request.tests)} tests"
            )
    return results


class HttpSandbox:
    """A `SandboxBackend` that sends requests to `tarot sandbox serve` at `base_url`."""

    def __init__(
        self,
        base_url: str,
        *,
        retries: int = 6,
        backoff_s: float = 0.25,
        max_backoff_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        batch_size: int = 32,
        concurrency: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._lock = threading.Lock()

    # --- sync API (the SandboxBackend protocol) ---

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        return self._on_loop(self.run_batch_async(requests))

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            if self._client is not None:
                asyncio.run_coroutine_threadsafe(self._client.aclose(), loop).result()
                self._client = None
            loop.call_soon_threadsafe(loop.stop)

    def __enter__(self) -> HttpSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- async API ---

    async def run_batch_async(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        chunks = [list(requests[i : i + self.batch_size]) for i in range(0, len(requests), self.batch_size)]
        limit = asyncio.Semaphore(self.concurrency)

        async def send(chunk: list[ExecutionRequest]) -> list[ExecutionResult]:
            async with limit:
                return await self._send_chunk(chunk)

        answers = await asyncio.gather(*(send(chunk) for chunk in chunks))
        return [result for answer in answers for result in answer]

    async def healthy(self) -> bool:
        try:
            response = await self._http().get(f"{self.base_url}/healthz", timeout=self.connect_timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    # --- internals ---

    async def _send_chunk(self, chunk: list[ExecutionRequest]) -> list[ExecutionResult]:
        problem = ""
        for attempt in range(self.retries + 1):
            status, body = await self._post(chunk)
            if status == 413:
                if len(chunk) == 1:
                    return [_too_large(chunk[0], str(body.get("error", body)))]
                # Find the oversized program(s): send the rest one by one.
                return [result for request in chunk for result in await self._send_chunk([request])]
            if status == 400:
                raise SandboxRequestError(f"sandbox service rejected the request: {body.get('error', body)}")
            if status != 200:
                raise SandboxUnavailable(f"sandbox service at {self.base_url} answered HTTP {status}: {body}")
            try:
                return _results_for(chunk, body)
            except (KeyError, TypeError, ValueError) as exc:
                # A broken answer says nothing about the programs: ask again, a bounded number of times.
                problem = str(exc)
                if attempt < self.retries:
                    await asyncio.sleep(self._backoff(attempt))
        raise SandboxUnavailable(
            f"sandbox service at {self.base_url} sent a malformed answer {self.retries + 1} times: {problem}"
        )

    async def _post(self, chunk: list[ExecutionRequest]) -> tuple[int, dict[str, Any]]:
        """POST one chunk, retrying overload and connection failures; returns (status, JSON body)."""
        payload = {"requests": [request.model_dump(mode="json") for request in chunk]}
        # Worst case the service runs every test of the chunk one after another.
        read_timeout = 30.0 + sum(r.time_limit_s * len(r.tests) for r in chunk)
        timeout = httpx.Timeout(read_timeout, connect=self.connect_timeout_s)
        last_problem = ""
        for attempt in range(self.retries + 1):
            try:
                response = await self._http().post(
                    f"{self.base_url}{BATCH_PATH}", json=payload, timeout=timeout
                )
            except httpx.TransportError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                delay = self._backoff(attempt)
            else:
                if response.status_code not in _RETRY_STATUSES:
                    try:
                        body = response.json()
                    except ValueError:
                        body = {"error": response.text[:500]}
                    return response.status_code, body if isinstance(body, dict) else {"error": body}
                last_problem = f"HTTP {response.status_code}"
                delay = self._retry_after(response) or self._backoff(attempt)
            if attempt < self.retries:
                await asyncio.sleep(delay)
        raise SandboxUnavailable(
            f"sandbox service at {self.base_url} unavailable after {self.retries + 1} attempts"
            f" ({last_problem})"
        )

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)

    def _retry_after(self, response: httpx.Response) -> float | None:
        try:
            return min(self.max_backoff_s, float(response.headers["Retry-After"]))
        except (KeyError, ValueError):
            return None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=self.concurrency * 2))
        return self._client

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on this client's background event loop and wait for it."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="sandbox-http-client", daemon=True).start()
                self._loop = loop
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


def backend_for(url: str | None, workers: int | None = None) -> SandboxBackend:
    """The sandbox service at `url`, or the local executor with `workers` helpers when `url` is None.

    The local executor is self-tested first (known programs that must pass): one that cannot run
    programs here raises SandboxUnavailable with the reason (exit status 3 in the CLI), rather than
    turning every test into a sandbox error (the service does the same at its start)."""
    if url:
        return HttpSandbox(url)
    from tarot_jobs.sandbox.local import LocalSandbox

    local = LocalSandbox(workers)
    problem = local.self_test()
    if problem is not None:
        local.close()
        raise SandboxUnavailable(f"the local sandbox cannot run programs here: {problem}")
    return local
