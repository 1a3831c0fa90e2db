"""`tarot run` end to end on the tiny model: interrupted by a kill, rerun, finished, rerun again.

This is the local pipeline (no cluster): the quickstart's shape with smaller numbers, driven by the
lifecycle planner, which keeps the run's status in DIR/status.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pipeline_helpers import SHARED_MODEL_CACHE, run_tarot, tarot_command, tarot_env

pytestmark = pytest.mark.slow

SPEC = """
apiVersion: tarot.dev/v1alpha1
kind: TarotRun
metadata: {name: e2e}
spec:
  model: {name: tiny, dtype: float32}
  dataset: {source: bundled}
  probe: {problems: 3, samples: 2, temperature: 0.7, maxNewTokens: 64}
  curriculum: {policy: auto, threshold: 0.5}
  reward: {normalize: true, formatWeight: 0.1}
  training:
    maxSteps: 8
    learningRate: 1.0e-4
    beta: 0.02
    numGenerations: 4
    perDeviceTrainBatchSize: 8
    maxCompletionLength: 64
    temperature: 0.6
    saveSteps: 1
  sandbox: {workers: 2, timeLimitSeconds: 2, memoryLimitMb: 256}
  evaluation: {problems: 4, samples: 1, temperature: 0.0, maxNewTokens: 64}
"""


def _run_args(spec: Path, workdir: Path) -> tuple[str | Path, ...]:
    return ("run", spec, "--workdir", workdir, "--model-cache", SHARED_MODEL_CACHE)


def test_run_survives_a_kill_and_reports(tmp_path: Path) -> None:
    spec = tmp_path / "e2e.yaml"
    spec.write_text(SPEC)
    workdir = tmp_path / "run"

    # 1. Start the run and kill it as soon as training has a checkpoint.
    process = subprocess.Popen(
        tarot_command(*_run_args(spec, workdir)),
        env=tarot_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 500
    try:
        while not list((workdir / "train" / "phase-0").glob("checkpoint-*/tarot-complete.json")):
            assert process.poll() is None, "the run ended before training started"
            assert time.monotonic() < deadline, "training never checkpointed"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    capability = workdir / "probe" / "capability.json"
    assert capability.is_file()
    assert not (workdir / "report.json").exists()
    killed = json.loads((workdir / "status.json").read_text())
    assert (killed["phase"], killed["curriculum"]["currentPhase"]) == ("Training", 0)
    assert killed["policy"]["name"] == "forward"
    probed = capability.stat().st_mtime_ns

    # 2. Rerun: finished stages are not run again, training resumes, the run completes.
    rerun = run_tarot(*_run_args(spec, workdir), timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    for stage in ("data", "probe"):
        assert f"{stage}: started" not in rerun.stderr
    assert capability.stat().st_mtime_ns == probed
    assert "phase 0: resuming from its own checkpoint" in rerun.stderr
    assert "train phase 4/4" in rerun.stderr  # progress lines name the phase
    # The planner's transitions, as logged events, in order.
    transitions = [
        line.split("] ", 1)[1].split(":", 1)[0]
        for line in rerun.stderr.splitlines()
        if any(
            f"] {reason}: " in line for reason in ("PhaseCompleted", "Evaluating", "Evaluated", "Succeeded")
        )
    ]
    assert transitions == ["PhaseCompleted"] * 4 + ["Evaluating", "Evaluated", "Succeeded"]

    report = json.loads((workdir / "report.json").read_text())
    assert report["policy"]["name"] == "forward"  # the tiny model is weak: capability below 0.5
    assert "threshold 0.5" in report["policy"]["reason"]
    assert 0.0 <= report["capability"]["score"] < 0.5
    assert [p["tiers"] for p in report["phases"]] == [
        ["basic"],
        ["basic", "intermediate"],
        ["basic", "intermediate", "complex"],
        ["basic", "intermediate", "complex", "edge"],
    ]
    assert sum(p["steps"] for p in report["phases"]) == 8
    assert all(p["mean_reward"] is not None for p in report["phases"])
    # Locally every phase scored its rewards with the in-process executor, and the report says so.
    assert {p["sandbox"]["backend"] for p in report["phases"]} == {"in-process"}
    # A phase's count is its finishing attempt's: phase 0, killed after its last checkpoint, had nothing
    # left to score when it resumed; the later phases scored their completions' tests.
    assert sum(p["sandbox"]["scoredTests"] for p in report["phases"][1:]) > 0
    for when in ("before", "after"):
        assert set(report["evaluation"][when]) == {"basic", "intermediate", "complex", "edge", "overall"}
    before = json.loads((workdir / "eval" / "before" / "evaluation.json").read_text())
    after = json.loads((workdir / "eval" / "after" / "evaluation.json").read_text())
    assert before["heldout"]["counts"]["problems"] == after["heldout"]["counts"]["problems"] == 4
    assert after["model"].endswith("train/phase-3/final")
    markdown = (workdir / "report.md").read_text()
    assert "Policy **forward**" in markdown and "| basic |" in markdown and "curves.png" in markdown
    first = report["phases"][0]["sandbox"]["scoredTests"]
    assert f"| in-process ({first}) |" in markdown  # the curriculum table names each phase's sandbox
    assert (workdir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The status left in the workdir agrees with the report.
    status = json.loads((workdir / "status.json").read_text())
    assert status["phase"] == "Succeeded"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Complete"] == "True"
    assert status["policy"]["name"] == report["policy"]["name"]
    assert status["capability"]["score"] == report["capability"]["score"]
    assert [p["tiers"] for p in status["curriculum"]["phases"]] == [p["tiers"] for p in report["phases"]]
    assert all(p["completedSteps"] == p["steps"] for p in status["curriculum"]["phases"])
    assert sum(p["steps"] for p in status["curriculum"]["phases"]) == 8
    assert status["progress"] == "4/4 100%"
    assert status["evaluation"]["after"]["passAtOne"]["overall"] == report["evaluation"]["after"]["overall"]
    assert status["startTime"] <= status["completionTime"]

    # 3. A third run has nothing left to do.
    again = run_tarot(*_run_args(spec, workdir), timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "the run succeeded; nothing left to do" in again.stderr
    assert ": started" not in again.stderr
    assert json.loads((workdir / "report.json").read_text())["phases"] == report["phases"]


def test_a_changed_spec_is_refused_in_an_old_workdir(tmp_path: Path) -> None:
    spec = tmp_path / "e2e.yaml"
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "spec.json").write_text(json.dumps({"model": {"name": "something-else"}}))
    spec.write_text(SPEC)
    result = run_tarot(*_run_args(spec, workdir), timeout=120)
    assert result.returncode == 2
    assert "different spec" in result.stderr
