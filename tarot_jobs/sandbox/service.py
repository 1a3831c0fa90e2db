"""The sandbox HTTP service: `tarot sandbox serve`.

An aiohttp application in front of one `LocalSandbox`. The service is
asynchronous and only talks to its helpers through the executor pool; it
never forks itself.

Admission: at most `max_inflight` programs execute at once; up to
`max_queued` more wait for a slot. A request that would overflow the queue is
answered 429 with Retry-After at once, never left hanging.

API
- POST /v1/execute        one ExecutionRequest           -> ExecutionResult
- POST /v1/execute/batch  {"requests": [ExecutionRequest]} -> {"results": [ExecutionResult]}
- GET  /healthz           liveness and the isolation in effect (which namespaces, which refused);
                          503 "failing" while the helpers cannot run programs
- GET  /metrics           Prometheus text format
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import ValidationError

from tarot_jobs.sandbox.limits import RunLimits
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.pool import JailOptions
from tarot_jobs.sandbox.types import ExecutionRequest, ExecutionResult, Verdict

SELF_TEST_FAILED_EXIT = 3
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class ServiceConfig:
    max_inflight: int = 0  # programs executing at once; 0: 2 per worker, so helpers never idle
    max_queued: int = 1024  # programs waiting for a slot before requests are refused (429)
    max_code_bytes: int = 256 << 10
    max_input_bytes: int = 8 << 20  # per test
    max_batch: int = 512  # programs per batch request
    max_body_bytes: int = 64 << 20
    retry_after_s: int = 1


class RequestProblem(Exception):
    """A request the service refuses; becomes an HTTP error naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Metrics:
    def __init__(self, service: SandboxService) -> None:
        self.registry = CollectorRegistry()
        self.executed: dict[str, int] = {}  # the executions counter's values, for the summary at exit
        self.executions = Counter(
            "tarot_sandbox_executions", "Tests executed, by verdict.", ["verdict"], registry=self.registry
        )
        for verdict in Verdict:
            self.executions.labels(verdict.value)
        self.rejected = Counter(
            "tarot_sandbox_rejected_requests",
            "Requests refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("overloaded", "malformed", "too_large"):
            self.rejected.labels(reason)
        self.test_seconds = Histogram(
            "tarot_sandbox_test_wall_seconds",
            "Wall time of one test run.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.program_seconds = Histogram(
            "tarot_sandbox_program_latency_seconds",
            "From admission to the verdicts of one program.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        queue = Gauge("tarot_sandbox_queue_depth", "Programs waiting for a slot.", registry=self.registry)
        queue.set_function(lambda: service.waiting)
        inflight = Gauge("tarot_sandbox_inflight", "Programs executing now.", registry=self.registry)
        inflight.set_function(lambda: service.inflight)
        runs = Gauge("tarot_sandbox_queued_runs", "Test runs waiting for a helper.", registry=self.registry)
        runs.set_function(lambda: service.backend.queued_runs)
        workers = Gauge("tarot_sandbox_workers", "Helper processes.", registry=self.registry)
        workers.set(service.backend.workers)

    def observe(self, result: ExecutionResult, seconds: float) -> None:
        self.program_seconds.observe(seconds)
        for test in result.results:
            self.executions.labels(test.status.value).inc()
            self.executed[test.status.value] = self.executed.get(test.status.value, 0) + 1
            self.test_seconds.observe(test.wall_ms / 1000)


class SandboxService:
    def __init__(self, backend: LocalSandbox, config: ServiceConfig | None = None) -> None:
        self.backend = backend
        self.config = config or ServiceConfig()
        self.max_inflight = self.config.max_inflight or 2 * backend.workers
        self.waiting = 0
        self.inflight = 0
        self._slots = asyncio.Semaphore(self.max_inflight)
        self.metrics = _Metrics(self)
        self.app = web.Application(client_max_size=self.config.max_body_bytes)
        self.app.add_routes(
            [
                web.post("/v1/execute", self._execute_one),
                web.post("/v1/execute/batch", self._execute_batch),
                web.get("/healthz", self._healthz),
                web.get("/metrics", self._metrics),
            ]
        )

    # --- handlers ---

    async def _execute_one(self, http: web.Request) -> web.Response:
        try:
            request = self._parse(await self._json(http), "")
            [result] = await self._admit_and_run([request])
        except RequestProblem as problem:
            return self._refuse(problem)
        return web.json_response(result.model_dump(mode="json"))

    async def _execute_batch(self, http: web.Request) -> web.Response:
        try:
            body = await self._json(http)
            items = body.get("requests") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                raise RequestProblem(400, "requests: must be a non-empty list of execution requests")
            if len(items) > self.config.max_batch:
                raise RequestProblem(
                    413, f"requests: {len(items)} programs exceed the limit of {self.config.max_batch}"
                )
            requests = [self._parse(item, f"requests.{i}.") for i, item in enumerate(items)]
            results = await self._admit_and_run(requests)
        except RequestProblem as problem:
            return self._refuse(problem)
        return web.json_response({"results": [r.model_dump(mode="json") for r in results]})

    async def _healthz(self, _: web.Request) -> web.Response:
        """Liveness, and the isolation in effect: the label every result's `path` carries, the
        namespaces entered and any the kernel refused (with why), and whether runs fell back.
        503 while runs keep ending in sandbox errors (the helpers cannot run programs)."""
        failing = self.backend.failing
        status = "failing" if failing else "ok" if self.backend.fast_path_error is None else "degraded"
        return web.json_response(
            {
                "status": status,
                "failing": failing,
                "workers": self.backend.workers,
                "inflight": self.inflight,
                "queued": self.waiting,
                "isolation": self.backend.isolation,
                "isolation_detail": self.backend.capabilities,
                "fast_path_error": self.backend.fast_path_error,
            },
            status=503 if failing else 200,
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # --- admission and execution ---

    async def _admit_and_run(self, requests: list[ExecutionRequest]) -> list[ExecutionResult]:
        if self.waiting + len(requests) > self.config.max_queued:
            raise RequestProblem(429, f"overloaded: {self.waiting} programs already queued")
        self.waiting += len(requests)
        return list(await asyncio.gather(*(self._run(request) for request in requests)))

    async def _run(self, request: ExecutionRequest) -> ExecutionResult:
        started = time.monotonic()
        admitted = False
        try:
            async with self._slots:
                self.waiting -= 1
                admitted = True
                self.inflight += 1
                try:
                    result = await self.backend.run_async(request)
                finally:
                    self.inflight -= 1
        finally:
            if not admitted:
                self.waiting -= 1
        self.metrics.observe(result, time.monotonic() - started)
        return result

    # --- request checking ---

    async def _json(self, http: web.Request) -> Any:
        try:
            return await http.json()
        except web.HTTPRequestEntityTooLarge as exc:
            raise RequestProblem(413, f"body: larger than {self.config.max_body_bytes} bytes") from exc
        except ValueError as exc:
            raise RequestProblem(400, f"body: not valid JSON ({exc})") from exc

    def _parse(self, item: Any, prefix: str) -> ExecutionRequest:
        try:
            request = ExecutionRequest.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = (
                prefix + ".".join(str(part) for part in first["loc"]) if first["loc"] else prefix.rstrip(".")
            )
            raise RequestProblem(400, f"{field or 'body'}: {first['msg']}") from exc
        if len(request.code.encode()) > self.config.max_code_bytes:
            raise RequestProblem(413, f"{prefix}code: larger than {self.config.max_code_bytes} bytes")
        for index, test in enumerate(request.tests):
            if len(test.input.encode()) > self.config.max_input_bytes:
                raise RequestProblem(
                    413, f"{prefix}tests.{index}.input: larger than {self.config.max_input_bytes} bytes"
                )
        return request

    def _refuse(self, problem: RequestProblem) -> web.Response:
        reason = {429: "overloaded", 503: "overloaded", 413: "too_large"}.get(problem.status, "malformed")
        self.metrics.rejected.labels(reason).inc()
        headers = {"Retry-After": str(self.config.retry_after_s)} if problem.status in (429, 503) else None
        return web.json_response({"error": str(problem)}, status=problem.status, headers=headers)


def _make_undumpable() -> None:
    """Same-uid sandbox children must not read our /proc/<pid>/environ nor ptrace us."""
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


async def serve(
    host: str,
    port: int,
    workers: int | None = None,
    *,
    config: ServiceConfig | None = None,
    limits: RunLimits | None = None,
    jail: JailOptions | None = None,
    on_ready: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run the service until SIGINT/SIGTERM; return the tests it executed, by verdict (what the
    executions counter said last: the summary a pod keeps in its termination message).

    `jail` defaults to the environment (TAROT_SANDBOX_POD_BOUNDARY=1 on a sandbox
    Deployment whose runtime refuses namespaces). A self-test at start-up (known programs
    that must pass) builds the jail, so /healthz and the ready line say what isolation is in
    effect; when it fails the service says why on stderr and exits 3 instead of serving."""
    _make_undumpable()
    with LocalSandbox(workers, limits=limits, jail=jail) as backend:
        problem = await asyncio.to_thread(backend.self_test)
        if problem is not None:
            print(f"tarot sandbox: not serving: {problem}", file=sys.stderr, flush=True)
            raise SystemExit(SELF_TEST_FAILED_EXIT)
        service = SandboxService(backend, config)
        runner = web.AppRunner(service.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        on_ready(
            f"tarot sandbox listening on http://{bound_host}:{bound_port} with {backend.workers} workers,"
            f" isolation {backend.isolation}"
            + (f" ({backend.fast_path_error})" if backend.fast_path_error else "")
        )
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
        return dict(service.metrics.executed)
