"""Real processes for the live monitoring test: a Prometheus (Debian's package) on loopback, the sandbox
service, a training process, and the one stand-in: a DCGM exporter (no GPU on this machine).

Not named conftest.py: tests/conftest.py owns that name; the test imports these helpers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from pytest_cluster import free_port


def wait_until(
    what: str, probe: Callable[[], Any], timeout: float, process: subprocess.Popen[Any] | None = None
) -> Any:
    """Poll probe() until it is truthy; fail naming `what` (and the process's exit) on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        try:
            last = probe()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@contextlib.contextmanager
def process(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process in its own group, logging to `log`; SIGTERM, then SIGKILL, on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@dataclass(frozen=True)
class Target:
    job: str
    port: int
    labels: dict[str, str]
    honor_labels: bool = False


def prometheus_config(targets: list[Target], interval: str) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": t.job,
                    "honor_labels": t.honor_labels,
                    "static_configs": [{"targets": [f"127.0.0.1:{t.port}"], "labels": t.labels}],
                }
                for t in targets
            ],
        }
    )


class Prometheus:
    """A real Prometheus server, on loopback, with its own TSDB in a temporary directory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return self._get("/api/v1/query", params)

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        return self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})

    def label_values(self, label: str, match: str) -> list[str]:
        return list(self._get(f"/api/v1/label/{label}/values", {"match[]": match})["data"])

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        reply = self.http.get(path, params=params)
        body = reply.json()
        assert body["status"] == "success", f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
        return dict(body)

    def targets_up(self) -> dict[str, float]:
        result = self.query("up")["data"]["result"]
        return {r["metric"]["job"]: float(r["value"][1]) for r in result}


@contextlib.contextmanager
def prometheus(workdir: Path, targets: list[Target], interval: str = "1s") -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: bash hack/install-system-packages.sh (Debian's prometheus package)"
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets, interval))
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    with process(command, workdir / "prometheus.log") as proc:
        server = Prometheus(f"http://127.0.0.1:{port}")
        wait_until("Prometheus ready", lambda: server.http.get("/-/ready").status_code == 200, 60, proc)
        yield server


def python_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tarot_jobs.cli import main; main()", *args]


DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "tarot" / "files" / "dashboard.json"


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard."""
    import json

    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def concrete(expr: str, namespace: str, run: str) -> str:
    """The query as Grafana sends it for one namespace and run ($__rate_interval: 15 scrapes of 1 s)."""
    return expr.replace("$namespace", namespace).replace("$run", run).replace("$__rate_interval", "15s")


def queries_without_data(
    server: Prometheus, exprs: list[tuple[str, str]], start: float, end: float
) -> list[str]:
    """The (title, query) pairs whose range query over [start, end] returns no sample."""
    empty = []
    for title, expr in exprs:
        result = server.query_range(expr, start, end, 1)["data"]["result"]
        if not any(series["values"] for series in result):
            empty.append(f"{title}: {expr}")
    return empty
