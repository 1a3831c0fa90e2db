"""`tarot run`'s executor (local.py) drives the planner: same phases, same status, failures and resume.

The stage work itself (a model, training, the sandbox) is what tests/e2e/test_pipeline_e2e.py runs
for real; here a recording stand-in returns the contract's results, so these tests check the
executor's loop: what it runs in which run phase, what it leaves in DIR/status.json, and that the
status equals what the pure planner computes from the same results.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_lifecycle_planner import PHASE_STEPS, RESULTS, make_spec

from tarot_jobs.lifecycle import planner
from tarot_jobs.lifecycle.local import LocalExecutor, Workdir, claim_workdir
from tarot_jobs.lifecycle.planner import DATA, EVALUATE_AFTER, EVALUATE_BEFORE, PROBE, train
from tarot_jobs.lifecycle.types import ChildRef, ChildState, ObservedChild
from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.pipeline.progress import Reporter
from tarot_jobs.pipeline.selection import Selection
from tarot_jobs.spec.model import TarotRunSpec

SPEC = make_spec()
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class Ticks:
    """A clock that moves one second per reading, so every status write has its own time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class RecordingStages:
    """Stands in for LocalStages: records the status.json each stage starts under, returns its result."""

    wd: Workdir
    fail: dict[str, BaseException] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)  # (stage, phase, progress)
    live: list[dict[str, Any]] = field(default_factory=list)  # status.json after each training step

    def _enter(self, name: str) -> None:
        status = json.loads(self.wd.status.read_text())
        self.calls.append((name, status["phase"], status.get("progress")))
        if name in self.fail:
            raise self.fail[name]

    def data(self) -> dict[str, Any]:
        self._enter("data")
        return RESULTS[DATA]

    def probe(self) -> dict[str, Any]:
        self._enter("probe")
        return RESULTS[PROBE]

    def train(
        self, index: int, selection: Selection, on_step: Callable[[Mapping[str, Any]], None]
    ) -> dict[str, Any]:
        self._enter(f"train-{index}")
        assert selection.policy.name == "forward"
        steps = PHASE_STEPS[index]
        for step in range(1, steps + 1):
            # A steplog record as the trainer's on_step hands it (the fields live_progress reads).
            on_step(
                {
                    "phase": index,
                    "phase_step": step,
                    "phase_steps": steps,
                    "reward": 0.5,
                    "seconds": {"step": 30},
                }
            )
            self.live.append(json.loads(self.wd.status.read_text()))
        return RESULTS[train(index)]

    def evaluate(self, *, final: bool) -> dict[str, Any]:
        self._enter("evaluate-after" if final else "evaluate-before")
        return RESULTS[EVALUATE_AFTER if final else EVALUATE_BEFORE]


def executor(
    tmp_path: Path, spec: TarotRunSpec = SPEC, fail: dict[str, BaseException] | None = None
) -> tuple[LocalExecutor, RecordingStages, io.StringIO]:
    wd = Workdir(tmp_path / "run")
    log = io.StringIO()
    stages = RecordingStages(wd, fail=fail or {})
    return LocalExecutor(spec, wd, Reporter(Console(file=log, width=200)), stages, clock=Ticks()), stages, log


def pure_walk(spec: TarotRunSpec) -> dict[str, Any]:
    """The status the planner alone reaches with the same results and the same clock readings."""
    clock = Ticks()
    status: dict[str, Any] = {}
    observed: dict[ChildRef, ObservedChild] = {}
    while status.get("phase") not in ("Succeeded", "Failed"):
        result = planner.plan(spec, status, observed, clock())
        status = result.status
        todo = [c for c in result.children if c not in observed]
        if todo:
            ref = todo[0]
            if ref.kind is planner.ChildKind.TRAIN:
                steps = PHASE_STEPS[ref.index or 0]
                for step in range(1, steps + 1):  # the executor plans once per logged step
                    live: dict[str, Any] = {
                        "phase": ref.index,
                        "step": step,
                        "total": steps,
                        "meanReward": 0.5,
                    }
                    live["etaSeconds"] = 30.0 * (steps - step)
                    live["updateTime"] = clock().strftime("%Y-%m-%dT%H:%M:%SZ")
                    status = {**status, "curriculum": {**status["curriculum"], "live": live}}
                    status = planner.plan(spec, status, observed, clock()).status
            state = (
                ChildState.RUNNING if ref in (planner.WORKSPACE, planner.SANDBOX) else ChildState.SUCCEEDED
            )
            observed[ref] = ObservedChild(ref, state, result=RESULTS.get(ref))
    return status


def test_the_local_run_passes_through_the_planners_phases_and_leaves_its_status(tmp_path: Path) -> None:
    run, stages, log = executor(tmp_path)
    final = run.run()
    assert stages.calls == [
        ("data", "Pending", None),
        ("probe", "Probing", None),
        ("train-0", "Training", "1/4 0%"),
        ("train-1", "Training", "2/4 25%"),
        ("train-2", "Training", "3/4 50%"),
        ("train-3", "Training", "4/4 62%"),
        ("evaluate-before", "Evaluating", "4/4 100%"),
        ("evaluate-after", "Evaluating", "4/4 100%"),
    ]
    written = json.loads(run.wd.status.read_text())
    assert written == final and written["phase"] == "Succeeded"
    assert written == pure_walk(SPEC)  # the executor adds nothing the planner would not write
    lines = log.getvalue()
    for reason in (
        "Pending",
        "DataPrepared",
        "Probing",
        "Probed",
        "Selecting",
        "PolicySelected",
        "Evaluated",
    ):
        assert f"] {reason}: " in lines
    assert lines.count("] PhaseStarted: ") == lines.count("] PhaseCompleted: ") == 4


def test_training_steps_reach_status_json_as_they_happen(tmp_path: Path) -> None:
    run, stages, _ = executor(tmp_path)
    run.run()
    first_step = stages.live[0]  # phase 1 of 4 after its first of 2 steps
    assert first_step["phase"] == "Training"
    assert first_step["curriculum"]["phases"][0]["completedSteps"] == 1
    assert first_step["progress"] == "1/4 12%"  # 1 of 8 steps
    assert first_step["reward"] == 0.5
    assert first_step["eta"] == "4m"  # 30 s left in the phase + 6 later steps x 30 s


def test_a_failed_stage_fails_the_status_and_a_rerun_retries_only_that_stage(tmp_path: Path) -> None:
    bad = StageError("probe.problems: the held-out split has no problem with code")
    run, stages, log = executor(tmp_path, fail={"probe": bad})
    with pytest.raises(StageError) as raised:
        run.run()
    assert raised.value is bad  # the CLI maps it to its exit code as before
    failed = json.loads(run.wd.status.read_text())
    assert failed["phase"] == "Failed"
    condition = next(c for c in failed["conditions"] if c["type"] == "Failed")
    assert condition["reason"] == "BadInput"
    assert "probe.problems: the held-out split has no problem with code" in condition["message"]
    assert "] Failed: Probing -> Failed" in log.getvalue()

    rerun, stages, log = executor(tmp_path)
    assert rerun.run()["phase"] == "Succeeded"
    assert [name for name, _, _ in stages.calls][:2] == ["probe", "train-0"]  # data was kept
    assert "retrying from the step that failed" in log.getvalue()


def test_a_crash_is_not_bad_input(tmp_path: Path) -> None:
    run, _, _ = executor(tmp_path, fail={"train-1": RuntimeError("CUDA error: device-side assert")})
    with pytest.raises(RuntimeError):
        run.run()
    failed = json.loads(run.wd.status.read_text())
    condition = next(c for c in failed["conditions"] if c["type"] == "Failed")
    assert condition["reason"] == "RuntimeError" and "training phase 2/4" in condition["message"]
    assert "see its log" in condition["message"]


def test_a_vllm_server_run_is_refused_at_its_first_phase_naming_the_field(tmp_path: Path) -> None:
    # `tarot run` refuses such a spec before any stage (check_training_options); the executor itself
    # never pretends to have started the server the planner lists.
    served = make_spec(
        model={"name": "org/coder"},
        training={"maxSteps": 8, "numGenerations": 4, "generation": "vllm-server"},
    )
    run, stages, _ = executor(tmp_path, spec=served)
    with pytest.raises(StageError, match=r"training\.vllmServer\.url: .*only the operator starts one"):
        run.run()
    assert [name for name, _, _ in stages.calls] == ["data", "probe"]
    failed = json.loads(run.wd.status.read_text())
    assert failed["phase"] == "Failed"
    condition = next(c for c in failed["conditions"] if c["type"] == "Failed")
    assert condition["reason"] == "BadInput" and "vLLM generation server" in condition["message"]


def test_a_result_the_planner_rejects_fails_the_run_naming_the_field(tmp_path: Path) -> None:
    run, stages, _ = executor(tmp_path)
    stages.probe = lambda: {"score": 1.5}  # type: ignore[method-assign]
    with pytest.raises(
        StageError, match=r"capability probe \(child probe\) finished with an invalid result: score"
    ):
        run.run()
    assert json.loads(run.wd.status.read_text())["phase"] == "Failed"


def test_a_finished_run_runs_nothing_again(tmp_path: Path) -> None:
    executor(tmp_path)[0].run()
    again, stages, log = executor(tmp_path)
    assert again.run()["phase"] == "Succeeded"
    assert stages.calls == []
    assert "the run succeeded; nothing left to do" in log.getvalue()


def test_a_suspended_spec_runs_nothing_and_says_how_to_continue(tmp_path: Path) -> None:
    first, _, _ = executor(tmp_path, fail={"probe": KeyboardInterrupt()})  # interrupted: not a failure
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert json.loads(first.wd.status.read_text())["phase"] == "Probing"
    suspended, stages, _ = executor(tmp_path, spec=make_spec(suspend=True))
    with pytest.raises(StageError, match=r"spec\.suspend is true"):
        suspended.run()
    assert stages.calls == []
    assert json.loads(suspended.wd.status.read_text())["phase"] == "Suspended"
    resumed, stages, log = executor(tmp_path)
    assert resumed.run()["phase"] == "Succeeded"
    assert stages.calls[0][:2] == ("probe", "Probing")
    assert "] Resumed: " in log.getvalue()


def test_the_workdir_claim_ignores_only_suspend(tmp_path: Path) -> None:
    wd = Workdir(tmp_path / "run")
    claim_workdir(wd, SPEC)
    claim_workdir(wd, make_spec(suspend=True))  # pausing and resuming is the same run
    with pytest.raises(StageError, match="different spec"):
        claim_workdir(wd, make_spec(training={"maxSteps": 9, "numGenerations": 4}))
