"""The operator's panels of the dashboard against a real Prometheus scraping the real operator during a run.

`tarot operator run` (a real process, as the operator e2e tests start it) drives a tiny TarotRun to Succeeded
on the local control plane while a Prometheus (Debian's package, loopback, 1 s scrapes) scrapes its
/metrics. Then every dashboard query of the operator's series (tarot_run_*) returns data for the run, the
variables list it, and the alerts that read those series are accepted by Prometheus.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from live_stack import (
    DASHBOARD,
    Prometheus,
    Target,
    concrete,
    dashboard_targets,
    prometheus,
    queries_without_data,
)
from local_processes import OperatorProcess, apply_crd
from pipeline_helpers import SHARED_MODEL_CACHE, TINY_RUN_SPEC
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUNS = "/apis/tarot.dev/v1alpha1/namespaces/{ns}/tarotruns"
RUN = "watched"
ALERTS = REPO / "charts" / "tarot" / "files" / "alerts.yaml"
# One phase of two steps, two probe and evaluation problems: every stage, the fewest seconds.
SPEC: JSON = TINY_RUN_SPEC


def _operator_series(expr: str) -> bool:
    return "tarot_run_" in expr


@pytest.fixture(scope="module")
def scraped(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prometheus, str, float, float]]:
    """Yields (prometheus, namespace, start, end) once the run has Succeeded and Prometheus has seen it."""
    root = tmp_path_factory.mktemp("operator-metrics")
    apply_crd(cluster.kubectl_path, cluster.kubeconfig, REPO / "crds" / "tarot.dev_tarotruns.yaml")
    namespace = f"tarot-metrics-{int(time.time())}"
    cluster.kubectl("create", "namespace", namespace)
    operator = OperatorProcess(
        cluster.kubeconfig, root / "operator.log",
        "--namespace", namespace, "--job-sandbox", "in-process", "--model-cache", str(SHARED_MODEL_CACHE),
    )  # fmt: skip
    operator.start()
    try:
        # honor_labels: the run's own `namespace` label, as the chart's ServiceMonitor keeps it.
        targets = [Target("tarot-operator", operator.metrics_port, {}, honor_labels=True)]
        with prometheus(root, targets) as server:
            start = time.time()
            manifest = {"apiVersion": "tarot.dev/v1alpha1", "kind": "TarotRun", "metadata": {"name": RUN}}
            cluster.api.create(RUNS.format(ns=namespace), {**manifest, "spec": SPEC})

            def succeeded() -> bool:
                phase = (cluster.api.get(f"{RUNS.format(ns=namespace)}/{RUN}").get("status") or {}).get(
                    "phase"
                )
                assert phase != "Failed", operator.log_tail()
                return phase == "Succeeded"

            cluster.wait_for(f"run {RUN} to succeed", succeeded, timeout=900, interval=1.0)
            done = f'tarot_run_phase{{namespace="{namespace}", run="{RUN}", phase="Succeeded"}} == 1'
            cluster.wait_for(
                "Prometheus to scrape the run's success", lambda: server.query(done)["data"]["result"]
            )
            # A range query evaluates at start + k steps <= end: end one step past now, so the last
            # evaluation is not before the scrape just seen.
            yield server, namespace, start, time.time() + 1.0
            # The operator releases its finalizer, then the namespace can go.
            cluster.kubectl("delete", "tarotrun", RUN, "-n", namespace, "--timeout=120s")
    finally:
        operator.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_operator_panels_return_data(scraped: tuple[Prometheus, str, float, float]) -> None:
    server, namespace, start, end = scraped
    operator_queries = [
        (title, concrete(expr, namespace, RUN))
        for title, expr in dashboard_targets()
        if _operator_series(expr)
    ]
    titles = {title for title, _ in operator_queries}
    assert {
        "Run phase",
        "Capability score",
        "Training progress",
        "pass@1 per tier, before and after",
    } <= titles
    empty = queries_without_data(server, operator_queries, start, end)
    assert not empty, "operator queries without data:\n" + "\n".join(empty)


def test_run_phase_timeline_went_through_the_lifecycle(scraped: tuple[Prometheus, str, float, float]) -> None:
    server, namespace, start, end = scraped
    (expr,) = [e for title, e in dashboard_targets() if title == "Run phase"]
    result = server.query_range(concrete(expr, namespace, RUN), start, end, 1)["data"]["result"]
    seen = {series["metric"]["phase"] for series in result}
    assert {"Training", "Succeeded"} <= seen, seen


def test_variables_list_the_run(scraped: tuple[Prometheus, str, float, float]) -> None:
    server, namespace, _, _ = scraped
    variables = {
        v["name"]: v["query"]["query"]
        for v in json.loads(DASHBOARD.read_text())["templating"]["list"]
        if v["type"] == "query"
    }
    for name, wanted in (("namespace", namespace), ("run", RUN)):
        selector = variables[name].removeprefix("label_values(").rsplit(",", 1)[0]
        assert wanted in server.label_values(name, concrete(selector, namespace, RUN))


def test_operator_alerts_are_valid_on_its_series(scraped: tuple[Prometheus, str, float, float]) -> None:
    server, _, _, end = scraped
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        server.query(rule["expr"], at=end)  # raises naming the expression on a parse or type error
    # The reconcile-error ratio has its inputs: the operator counts its reconciles by outcome.
    counted = server.query("sum by (outcome) (tarot_operator_reconciles_total)", at=end)["data"]["result"]
    assert "success" in {r["metric"]["outcome"] for r in counted}
