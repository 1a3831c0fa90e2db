"""The dashboard's and the alerts' PromQL against a real Prometheus scraping real tarot processes.

A Prometheus server (Debian's package) on loopback scrapes, every second:
- a real sandbox service (`tarot sandbox serve`),
- a real training process (`tarot train --metrics-port`, the tiny model, a few GRPO steps) whose rewards
  come from that sandbox service over HTTP, so the sandbox's series are the training's real traffic,
- a DCGM exporter stand-in: this machine has no GPU, so a small exporter serves DCGM_FI_DEV_GPU_UTIL and
  DCGM_FI_DEV_FB_USED for the trainer's pod and for a pod of another run (which the join must drop).
Scrape targets carry the labels a PodMonitor gives a run's pods (namespace, run, pod).

Then every dashboard query of the trainer, sandbox and GPU panels must return data for the run, the
variables' label queries must list it, and every query (the operator's tarot_run_* panels and the alert
rules included) must be accepted by Prometheus. The operator's own series are checked for data by the
operator's end-to-end run (see docs/monitoring.md).
A PNG of the main panels is drawn from the scraped data (TAROT_UPDATE_DOCS=1 writes docs/monitoring.png).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from live_stack import (
    DASHBOARD,
    Prometheus,
    Target,
    concrete,
    dashboard_targets,
    process,
    prometheus,
    python_command,
    queries_without_data,
    wait_until,
)
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from pytest_cluster import free_port

from tarot_jobs.pipeline.stages.data import prepare_data, write_data
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.spec.model import load_spec

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "charts" / "tarot" / "files" / "alerts.yaml"
NAMESPACE, RUN, TRAIN_POD = "ml", "demo", "demo-train-phase-0-x7k2p"
STEPS = 4
# Series of the processes scraped here; the operator's (tarot_run_*, tarot_operator_*) are not among them.
SCRAPED_PREFIXES = ("tarot_train_", "tarot_sandbox_", "DCGM_")

SPEC = """
model: {name: tiny}
dataset: {source: bundled}
curriculum:
  policy: custom
  phases:
    - {start: 0.0, end: 1.0, tiers: [basic, intermediate, complex, edge]}
reward: {normalize: true, formatWeight: 0.1}
training:
  maxSteps: %(steps)d
  learningRate: 1.0e-4
  beta: 0.02
  numGenerations: 4
  perDeviceTrainBatchSize: 8
  maxPromptLength: 512
  maxCompletionLength: 64
  temperature: 0.6
  saveSteps: %(steps)d
  loggingSteps: 1
sandbox: {workers: 2, timeLimitSeconds: 2, memoryLimitMb: 256, url: "%(sandbox)s"}
"""


@pytest.fixture(scope="module")
def gpu_exporter() -> Iterator[int]:
    """The DCGM stand-in (no GPU here): the labels dcgm-exporter's Kubernetes mode gives GPU series."""
    registry = CollectorRegistry()
    labels = ["gpu", "UUID", "modelName", "Hostname", "namespace", "pod", "container"]
    util = Gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", labels, registry=registry)
    used = Gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", labels, registry=registry)
    for gpu, pod, busy in (("0", TRAIN_POD, 87.0), ("1", "other-run-train-phase-0-abcde", 12.0)):
        values = [gpu, f"GPU-{gpu}", "NVIDIA H100 80GB HBM3", "gpu-node-1", NAMESPACE, pod, "trainer"]
        util.labels(*values).set(busy)
        used.labels(*values).set(40_000 + float(gpu))
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def scraped(
    tmp_path_factory: pytest.TempPathFactory, gpu_exporter: int
) -> Iterator[tuple[Prometheus, float, float]]:
    """Runs the stack; yields (prometheus, start, end) once training has finished and been scraped."""
    root = tmp_path_factory.mktemp("monitoring")
    sandbox_port, train_port = free_port(), free_port()
    spec = root / "spec.yaml"
    spec.write_text(SPEC % {"steps": STEPS, "sandbox": f"http://127.0.0.1:{sandbox_port}"})
    with LocalSandbox(2) as local:
        write_data(prepare_data(load_spec(spec), local), root / "data")
    env = {
        **os.environ,
        "TAROT_MODEL_CACHE": str(Path(os.environ.get("TMPDIR", "/tmp")) / "tarot-test-model-cache"),
    }
    selected = subprocess.run(
        python_command("select", str(spec), "--out", str(root)), capture_output=True, text=True
    )
    assert selected.returncode == 0, selected.stderr
    run_labels = {"namespace": NAMESPACE, "run": RUN}
    targets = [
        Target("tarot-sandbox", sandbox_port, {**run_labels, "pod": "demo-sandbox-6d9f7-abcde"}),
        Target("tarot-train", train_port, {**run_labels, "pod": TRAIN_POD}),
        Target("dcgm-exporter", gpu_exporter, {}, honor_labels=True),
    ]
    serve = python_command(
        "sandbox", "serve", "--host", "127.0.0.1", "--port", str(sandbox_port), "--workers", "2"
    )
    train = python_command(
        "train", str(spec), "--phase", "0", "--out", str(root), "--data", str(root / "data"),
        "--metrics-port", str(train_port),
    )  # fmt: skip
    with (
        prometheus(root, targets) as server,
        process(serve, root / "sandbox.log", env={**env, "TAROT_SANDBOX_POD_BOUNDARY": "1"}) as sandbox,
    ):
        wait_until(
            "the sandbox service",
            lambda: httpx.get(f"http://127.0.0.1:{sandbox_port}/healthz").is_success,
            60,
            sandbox,
        )
        start = time.time()
        with process(train, root / "train.log", env=env) as trainer:
            # The trainer serves /metrics from its first step to the end of the phase (it stops serving
            # then), several seconds of 1 s scrapes; what matters is that Prometheus holds its series.
            assert trainer.wait(timeout=600) == 0, (root / "train.log").read_text()[-3000:]
        scraped_steps = server.query(f'max_over_time(tarot_train_step{{run="{RUN}"}}[10m])')["data"]["result"]
        assert scraped_steps, (
            f"Prometheus never scraped the trainer:\n{(root / 'prometheus.log').read_text()}"
        )
        # The sandbox is idle now: wait until Prometheus holds its final execution count.
        served = _executions(httpx.get(f"http://127.0.0.1:{sandbox_port}/metrics").text)
        assert served > 0, "the training sent no program to the sandbox service"
        total = f'sum(tarot_sandbox_executions_total{{run="{RUN}"}})'
        wait_until(
            f"Prometheus to scrape the sandbox's {served:.0f} executions",
            lambda: (r := server.query(total)["data"]["result"]) and float(r[0]["value"][1]) == served,
            60,
            sandbox,
        )
        yield server, start, time.time()
    if os.environ.get("TAROT_KEEP_MONITORING_LOGS"):
        shutil.copytree(root, os.environ["TAROT_KEEP_MONITORING_LOGS"], dirs_exist_ok=True)


def _executions(metrics_text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == "tarot_sandbox_executions"
        for sample in family.samples
        if sample.name == "tarot_sandbox_executions_total"
    )


def _dashboard_targets() -> list[tuple[str, str]]:
    return dashboard_targets()


def _concrete(expr: str) -> str:
    return concrete(expr, NAMESPACE, RUN)


def _scraped_here(expr: str) -> bool:
    return any(prefix in expr for prefix in SCRAPED_PREFIXES)


def test_targets_are_up(scraped: tuple[Prometheus, float, float]) -> None:
    server, _, _ = scraped
    assert server.targets_up() == {"tarot-sandbox": 1.0, "dcgm-exporter": 1.0, "tarot-train": 0.0}


def test_dashboard_queries_of_scraped_series_return_data(scraped: tuple[Prometheus, float, float]) -> None:
    server, start, end = scraped
    mine = [(title, _concrete(expr)) for title, expr in _dashboard_targets() if _scraped_here(expr)]
    empty = queries_without_data(server, mine, start, end)
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert len(mine) >= 13


def test_every_dashboard_and_alert_query_is_valid(scraped: tuple[Prometheus, float, float]) -> None:
    server, _, end = scraped
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    for expr in [e for _, e in _dashboard_targets()] + [r["expr"] for r in rules]:
        server.query(_concrete(expr), at=end)  # raises naming the expression on a parse or type error


def test_variables_list_the_run(scraped: tuple[Prometheus, float, float]) -> None:
    server, _, _ = scraped
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {
        v["name"]: v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    }
    for name, wanted in (("namespace", NAMESPACE), ("run", RUN)):
        selector = variables[name].removeprefix("label_values(").rsplit(",", 1)[0]
        assert wanted in server.label_values(name, _concrete(selector))


def test_gpu_series_are_joined_to_the_run_s_trainer_pod(scraped: tuple[Prometheus, float, float]) -> None:
    """Only the GPU of the run's trainer pod, while it trains; the other run's GPU is left out."""
    server, start, end = scraped
    (expr,) = [e for title, e in _dashboard_targets() if title == "GPU utilisation"]
    result = server.query_range(_concrete(expr), start, end, 1)["data"]["result"]
    assert [r["metric"]["pod"] for r in result] == [TRAIN_POD]
    assert {value for _, value in result[0]["values"]} == {"87"}


def test_training_reached_the_sandbox_service(scraped: tuple[Prometheus, float, float]) -> None:
    """The sandbox panels show the training's own traffic: executions by verdict, latency observed."""
    server, _, end = scraped
    executed = server.query(f'sum(tarot_sandbox_executions_total{{run="{RUN}"}})', at=end)["data"]["result"]
    assert float(executed[0]["value"][1]) > 0
    # The trainer has exited (its series are stale at `end`): what it reported over the run.
    rates = server.query(f'max_over_time(tarot_train_pass_rate{{run="{RUN}"}}[10m])', at=end)["data"][
        "result"
    ]
    assert {r["metric"]["tier"] for r in rates} == {"basic", "intermediate", "complex", "edge"}


def test_render_main_panels(scraped: tuple[Prometheus, float, float], tmp_path: Path) -> None:
    from dashboard_png import render_panels

    server, start, end = scraped
    png = render_panels(server, DASHBOARD, _concrete, start, end, tmp_path / "monitoring.png")
    assert png.stat().st_size > 10_000
    if os.environ.get("TAROT_UPDATE_DOCS") == "1":
        shutil.copyfile(png, REPO / "docs" / "monitoring.png")
