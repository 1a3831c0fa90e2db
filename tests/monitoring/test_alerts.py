"""The alert rules (charts/tarot/files/alerts.yaml): valid for Prometheus, and each fires, or stays silent, as
its `promtool test rules` unit test (alerts.test.yaml) says on synthetic series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "charts" / "tarot" / "files" / "alerts.yaml"
UNIT_TESTS = HERE / "alerts.test.yaml"
ALERTS = {
    "TarotRunFailed",
    "TarotRunStalled",
    "TarotRunRewardFlat",
    "TarotRunRewardCollapsing",
    "TarotSandboxErrorRateHigh",
    "TarotSandboxQueueSaturated",
    "TarotOperatorReconcileErrors",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: bash hack/install-system-packages.sh (Debian's prometheus)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=HERE)


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_every_alert_has_a_unit_test_and_a_summary() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert "summary" in rule["annotations"], rule["alert"]
    tested = {
        case["alertname"]
        for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == ALERTS, f"alerts never shown firing: {ALERTS - tested}"


def test_alert_unit_tests_pass() -> None:
    result = _promtool("test", "rules", UNIT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_expectation_fails(tmp_path: Path) -> None:
    """The unit tests can fail: the same file, expecting the failed run to be called something else."""
    text = UNIT_TESTS.read_text().replace("../../charts", str(RULES.parents[2]) + "/charts")
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(text.replace("summary: TarotRun ml/bad failed", "summary: TarotRun ml/other failed"))
    result = _promtool("test", "rules", str(broken))
    assert result.returncode != 0
    assert "TarotRunFailed" in result.stdout + result.stderr
