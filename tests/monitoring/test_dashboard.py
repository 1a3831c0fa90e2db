"""The Grafana dashboard's JSON: current schema, variables, the panels the issue asks for, and queries that
only use the datasource variable and label what they select by namespace and run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "tarot" / "files" / "dashboard.json"
# The classic JSON model's schemaVersion that Grafana 12 writes (and the sidecar loads as is).
CURRENT_SCHEMA_VERSION = 42


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def test_schema_and_variables() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] == CURRENT_SCHEMA_VERSION
    assert dashboard["uid"] == "tarot-runs"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "run"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert 'namespace="$namespace"' in variables["run"]["query"]["query"]


def test_every_panel_uses_the_datasource_variable() -> None:
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_every_query_is_scoped_to_the_chosen_run() -> None:
    for expr in expressions():
        assert 'namespace="$namespace", run="$run"' in expr, expr


def test_panel_ids_and_positions_are_unique() -> None:
    dashboard = _dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_the_issue_s_panels_are_there() -> None:
    titles = " | ".join(p["title"] for p in panels())
    for wanted in [
        "Run phase",
        "Curriculum phase",
        "Training progress",
        "Mean reward",
        "Pass rate per tier",
        "pass@1 per tier, before and after",
        "KL and loss",
        "Tokens per second",
        "Sandbox throughput",
        "Sandbox latency",
        "GPU utilisation",
        "GPU memory used",
    ]:
        assert wanted in titles, wanted
    exprs = " ".join(expressions())
    for metric in ["DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "tarot_run_phase", "tarot_train_pass_rate"]:
        assert metric in exprs, metric
    # GPU series are joined to the run's trainer pods by pod.
    gpu = [e for e in expressions() if "DCGM_" in e]
    assert gpu and all(re.search(r"and on \(namespace, pod\)", e) for e in gpu)
