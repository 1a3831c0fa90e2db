"""The lifecycle planner as tables of situations: (spec, status, observed, now) -> children, status, events.

Statuses in the tables are reached by walking the planner itself from an empty status with every
earlier child succeeded (`status_at`), so each row tests one transition from a state the planner
really produces. Every row is also re-planned from the status it wrote (idempotence).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tarot_jobs.lifecycle.planner import (
    DATA,
    EVALUATE_AFTER,
    EVALUATE_BEFORE,
    GENERATION_SERVER,
    PROBE,
    SANDBOX,
    WORKSPACE,
    format_eta,
    invalid_spec,
    plan,
    reopen,
    train,
)
from tarot_jobs.lifecycle.types import ChildRef, ChildState, ObservedChild
from tarot_jobs.problems.model import Tier
from tarot_jobs.spec.model import TarotRunSpec
from tarot_jobs.spec.status import TarotRunStatus

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)

PHASE_STEPS = [2, 2, 1, 3]  # maxSteps 8 split over forward's 0.2/0.2/0.2/0.4 phases
RESULTS: dict[ChildRef, dict[str, Any]] = {
    DATA: {"train": 20, "heldout": 5, "dropped": 1},
    PROBE: {
        "score": 0.2,
        "passAtOne": {"basic": 0.5, "intermediate": 0.2, "complex": 0.1, "edge": 0.0, "overall": 0.2},
    },
    EVALUATE_BEFORE: {"passAtOne": {"basic": 0.5, "overall": 0.2}, "failedExecutions": 0},
    EVALUATE_AFTER: {"passAtOne": {"basic": 0.75, "overall": 0.25}, "failedExecutions": 1},
    **{
        train(i): {
            "phase": i,
            "steps": steps,
            "completedSteps": steps,
            "meanReward": 0.1 * (i + 1),
            "rewardPerTier": {"basic": 0.5},
            "checkpoint": f"/workspace/train/phase-{i}/final",
            "sandbox": {"backend": "http://run-sandbox.ns.svc:8080", "scoredTests": 10 * (i + 1)},
            "worldSize": 2,
        }
        for i, steps in enumerate(PHASE_STEPS)
    },
}
ORDER = [DATA, PROBE, *(train(i) for i in range(4)), EVALUATE_BEFORE, EVALUATE_AFTER]


def make_spec(**overrides: Any) -> TarotRunSpec:
    data: dict[str, Any] = {"training": {"maxSteps": 8, "numGenerations": 4}}
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            data.setdefault(section, {})[name] = value
        else:
            data[section] = value
    return TarotRunSpec.model_validate(data)


SPEC = make_spec()
KUEUE = make_spec(resources__kueueQueue="team-a")


def ready_services() -> dict[ChildRef, ObservedChild]:
    return {ref: ObservedChild(ref, ChildState.RUNNING) for ref in (WORKSPACE, SANDBOX)}


def succeeded(
    *refs: ChildRef, results: dict[ChildRef, dict[str, Any]] | None = None
) -> dict[ChildRef, ObservedChild]:
    found = ready_services()
    for ref in refs:
        found[ref] = ObservedChild(ref, ChildState.SUCCEEDED, result=(results or RESULTS)[ref])
    return found


def status_at(active: ChildRef | None, spec: TarotRunSpec = SPEC, score: float = 0.2) -> dict[str, Any]:
    """The status the planner writes when `active` is the child to run (None: the run succeeded)."""
    results = {**RESULTS, PROBE: {**RESULTS[PROBE], "score": score}}
    status: dict[str, Any] = {}
    observed = ready_services()
    now = T0
    for _ in range(20):
        result = plan(spec, status, observed, now)
        status = result.status
        if active in result.children or status["phase"] in ("Succeeded", "Failed"):
            return status
        for ref in result.children:
            if ref == GENERATION_SERVER:
                observed[ref] = ObservedChild(ref, ChildState.RUNNING)  # a service, not a step
            elif ref not in observed:
                observed[ref] = ObservedChild(ref, ChildState.SUCCEEDED, result=results[ref])
        now += timedelta(minutes=1)
    raise AssertionError(f"{active} never became active")


def before(ref: ChildRef) -> list[ChildRef]:
    return ORDER[: ORDER.index(ref)]


@dataclass
class Case:
    name: str
    status: Callable[[], dict[str, Any]]
    observed: dict[ChildRef, ObservedChild]
    phase: str
    children: list[ChildRef]
    events: list[str]  # reasons, in order
    spec: TarotRunSpec = field(default_factory=lambda: SPEC)
    suspend: list[ChildRef] = field(default_factory=list)
    check: Callable[[dict[str, Any]], None] | None = None
    create_suspended: list[ChildRef] | None = None  # None: those in `suspend`


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions", [])}


def _phases(status: dict[str, Any]) -> list[dict[str, Any]]:
    phases: list[dict[str, Any]] = status["curriculum"]["phases"]
    return phases


def check_new(status: dict[str, Any]) -> None:
    assert status["startTime"] == "2026-12-01T11:00:00Z"
    assert "policy" not in status and "progress" not in status


def check_waiting_for_sandbox(status: dict[str, Any]) -> None:
    ready = conditions(status)["SandboxReady"]
    assert (ready["status"], ready["reason"]) == ("False", "WaitingForSandbox")
    assert "sandbox" in ready["message"]


def check_probing(status: dict[str, Any]) -> None:
    assert status["data"] == {"train": 20, "heldout": 5, "dropped": 1}
    assert conditions(status)["DataReady"]["status"] == "True"


def check_selected_forward(status: dict[str, Any]) -> None:
    assert status["capability"]["score"] == 0.2
    assert status["capability"]["passAtOne"]["basic"] == 0.5
    assert status["policy"]["name"] == "forward"
    assert "threshold 0.5" in status["policy"]["reason"]
    phases = _phases(status)
    assert [p["tiers"] for p in phases] == [
        ["basic"],
        ["basic", "intermediate"],
        ["basic", "intermediate", "complex"],
        ["basic", "intermediate", "complex", "edge"],
    ]
    assert [p["steps"] for p in phases] == PHASE_STEPS
    assert phases[0]["weights"] == {"basic": 0.25}
    assert phases[0]["startTime"] == "2026-12-01T11:00:00Z" and "startTime" not in phases[1]
    assert status["curriculum"]["currentPhase"] == 0
    assert status["progress"] == "1/4 0%"
    selected = conditions(status)["PolicySelected"]
    assert (selected["status"], selected["reason"]) == ("True", "SelectedByCapability")
    assert conditions(status)["Probed"]["status"] == "True"


def check_selected_reverse(status: dict[str, Any]) -> None:
    assert status["policy"]["name"] == "reverse"
    assert _phases(status)[0]["tiers"] == ["complex"]


def check_named_policy(status: dict[str, Any]) -> None:
    assert status["policy"]["name"] == "static"
    assert conditions(status)["PolicySelected"]["reason"] == "NamedInSpec"
    assert len(_phases(status)) == 1


def check_phase_1_done(status: dict[str, Any]) -> None:
    first = _phases(status)[0]
    assert first["completedSteps"] == 2 and first["meanReward"] == pytest.approx(0.1)
    assert first["finishTime"] == "2026-12-01T11:00:00Z"
    assert first["rewardPerTier"] == {"basic": 0.5}
    assert status["curriculum"]["currentPhase"] == 1
    assert status["progress"] == "2/4 25%"
    assert status["reward"] == pytest.approx(0.1)


def check_training_done(status: dict[str, Any]) -> None:
    assert status["progress"] == "4/4 100%"
    assert all("finishTime" in p for p in _phases(status))
    assert "eta" not in status


def check_succeeded(status: dict[str, Any]) -> None:
    assert status["completionTime"] == "2026-12-01T11:00:00Z"
    complete = conditions(status)["Complete"]
    assert (complete["status"], complete["reason"]) == ("True", "Succeeded")
    assert conditions(status)["Evaluated"]["message"].startswith("held-out pass@1 overall 20.0% -> 25.0%")
    assert status["evaluation"]["before"]["passAtOne"]["overall"] == 0.2
    assert status["evaluation"]["after"] == {
        "passAtOne": {"basic": 0.75, "overall": 0.25},
        "failedExecutions": 1,
    }


def failed_with(
    reason: str, *words: str, step_condition: str | None = None
) -> Callable[[dict[str, Any]], None]:
    def check(status: dict[str, Any]) -> None:
        failed = conditions(status)["Failed"]
        assert (failed["status"], failed["reason"]) == ("True", reason)
        for word in words:
            assert word in failed["message"]
        assert status["completionTime"] == "2026-12-01T11:00:00Z"
        assert "Complete" not in conditions(status)
        if step_condition:
            assert conditions(status)[step_condition]["status"] == "False"

    return check


def check_suspended(status: dict[str, Any]) -> None:
    suspended = conditions(status)["Suspended"]
    assert (suspended["status"], suspended["reason"]) == ("True", "SuspendedByUser")
    assert "spec.suspend to false" in suspended["message"]


def check_resumed(status: dict[str, Any]) -> None:
    suspended = conditions(status)["Suspended"]
    assert (suspended["status"], suspended["reason"]) == ("False", "Resumed")


def check_queued(reason: str) -> Callable[[dict[str, Any]], None]:
    def check(status: dict[str, Any]) -> None:
        queued = conditions(status)["Queued"]
        assert (queued["status"], queued["reason"]) == ("True", reason)
        assert "kueueQueue" in queued["message"]

    return check


def check_admitted(status: dict[str, Any]) -> None:
    queued = conditions(status)["Queued"]
    assert (queued["status"], queued["reason"]) == ("False", "Admitted")


def with_condition(status: dict[str, Any], type_: str, value: str, reason: str) -> dict[str, Any]:
    cond = {
        "type": type_,
        "status": value,
        "lastTransitionTime": "2026-12-01T10:30:00Z",
        "reason": reason,
        "message": "",
    }
    return {**status, "conditions": [*status.get("conditions", []), cond]}


def with_live(status: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    return {**status, "curriculum": {**status["curriculum"], "live": live}}


def check_live(status: dict[str, Any]) -> None:
    phase = _phases(status)[1]
    assert phase["completedSteps"] == 1
    assert phase["meanReward"] == 0.4 and phase["rewardPerTier"] == {"basic": 0.6, "intermediate": 0.2}
    assert status["reward"] == 0.4
    assert status["progress"] == "2/4 37%"  # (2 + 1) of 8 steps
    # 30 s for the phase's last step, then 4 more steps (phases 3 and 4) at 30 s each: 150 s.
    assert status["eta"] == "3m"
    assert status["curriculum"]["live"]["step"] == 1  # kept as the train Job wrote it


def check_stale_live_ignored(status: dict[str, Any]) -> None:
    assert _phases(status)[1]["completedSteps"] == 0
    assert status["progress"] == "2/4 25%"


def check_observed_progress(status: dict[str, Any]) -> None:
    assert _phases(status)[0]["completedSteps"] == 1
    assert status["eta"] == "2m"  # 10 s left in this phase + 6 later steps x 10 s = 70 s, rounded up


LIVE = {
    "phase": 1,
    "step": 1,
    "total": 2,
    "meanReward": 0.4,
    "rewardPerTier": {"basic": 0.6, "intermediate": 0.2},
    "etaSeconds": 30,
}
TRAIN0_RUNNING = {**succeeded(DATA, PROBE), train(0): ObservedChild(train(0), ChildState.RUNNING)}
# training.generation vllm-server: the run's own vLLM server lives exactly as long as its train steps.
SERVED = make_spec(
    model={"name": "org/coder-0.5b"},
    training={"maxSteps": 8, "numGenerations": 4, "generation": "vllm-server"},
)

CASES = [
    # -- the happy path, one transition at a time
    Case("new run", dict, {}, "Pending", [WORKSPACE, SANDBOX], ["Pending"], check=check_new),
    Case(
        "sandbox not ready yet",
        lambda: status_at(DATA),
        {SANDBOX: ObservedChild(SANDBOX, ChildState.QUEUED)},
        "Pending",
        [WORKSPACE, SANDBOX],
        [],
        check=check_waiting_for_sandbox,
    ),
    Case(
        "sandbox ready: data starts",
        lambda: status_at(DATA),
        ready_services(),
        "Pending",
        [WORKSPACE, SANDBOX, DATA],
        [],
    ),
    Case(
        "external sandbox: no sandbox child, data starts at once",
        dict,
        {},
        "Pending",
        [WORKSPACE, DATA],
        ["Pending"],
        spec=make_spec(sandbox__url="http://sandbox:8080"),
    ),
    Case(
        "data succeeded: probing",
        lambda: status_at(DATA),
        succeeded(DATA),
        "Probing",
        [WORKSPACE, SANDBOX, PROBE],
        ["DataPrepared", "Probing"],
        check=check_probing,
    ),
    Case(
        "probe succeeded, weak model: forward selected, phase 1 starts",
        lambda: status_at(PROBE),
        succeeded(DATA, PROBE),
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Probed", "Selecting", "PolicySelected", "Training", "PhaseStarted"],
        check=check_selected_forward,
    ),
    Case(
        "probe succeeded, strong model: reverse selected",
        lambda: status_at(PROBE),
        succeeded(DATA, PROBE, results={**RESULTS, PROBE: {"score": 0.8}}),
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Probed", "Selecting", "PolicySelected", "Training", "PhaseStarted"],
        check=check_selected_reverse,
    ),
    Case(
        "a named policy ignores the score",
        lambda: status_at(PROBE, spec=make_spec(curriculum__policy="static")),
        succeeded(DATA, PROBE),
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Probed", "Selecting", "PolicySelected", "Training", "PhaseStarted"],
        spec=make_spec(curriculum__policy="static"),
        check=check_named_policy,
    ),
    Case(
        "phase 1 running",
        lambda: status_at(train(0)),
        TRAIN0_RUNNING,
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        [],
    ),
    Case(
        "phase 1 succeeded: phase 2 starts",
        lambda: status_at(train(0)),
        succeeded(DATA, PROBE, train(0)),
        "Training",
        [WORKSPACE, SANDBOX, train(1)],
        ["PhaseCompleted", "PhaseStarted"],
        check=check_phase_1_done,
    ),
    Case(
        "last phase succeeded: evaluating the base model",
        lambda: status_at(train(3)),
        succeeded(*before(EVALUATE_BEFORE)),
        "Evaluating",
        [WORKSPACE, SANDBOX, EVALUATE_BEFORE],
        ["PhaseCompleted", "Evaluating"],
        check=check_training_done,
    ),
    Case(
        "evaluation.baseline false: only the final model is evaluated",
        lambda: status_at(train(3), spec=make_spec(evaluation__baseline=False)),
        succeeded(*before(EVALUATE_BEFORE)),
        "Evaluating",
        [WORKSPACE, SANDBOX, EVALUATE_AFTER],
        ["PhaseCompleted", "Evaluating"],
        spec=make_spec(evaluation__baseline=False),
    ),
    Case(
        "base evaluated: the final model next",
        lambda: status_at(EVALUATE_BEFORE),
        succeeded(*before(EVALUATE_AFTER)),
        "Evaluating",
        [WORKSPACE, SANDBOX, EVALUATE_AFTER],
        ["BaselineEvaluated"],
    ),
    Case(
        "final model evaluated: succeeded",
        lambda: status_at(EVALUATE_AFTER),
        succeeded(*ORDER),
        "Succeeded",
        [WORKSPACE],
        ["Evaluated", "Succeeded"],
        check=check_succeeded,
    ),
    Case(
        "a restarted operator finding every child done catches up in one call",
        lambda: status_at(DATA),
        succeeded(*ORDER),
        "Succeeded",
        [WORKSPACE],
        [
            "DataPrepared",
            "Probing",
            "Probed",
            "Selecting",
            "PolicySelected",
            "Training",
            "PhaseCompleted",
            "PhaseCompleted",
            "PhaseCompleted",
            "PhaseCompleted",
            "Evaluating",
            "BaselineEvaluated",
            "Evaluated",
            "Succeeded",
        ],
        check=check_succeeded,
    ),
    Case("a finished run stays finished", lambda: status_at(None), {}, "Succeeded", [WORKSPACE], []),
    # -- failures
    Case(
        "bad input in the data stage fails the run at once",
        lambda: status_at(DATA),
        {
            **ready_services(),
            DATA: ObservedChild(
                DATA, ChildState.FAILED, failure="BadInput: dataset.source: no such file x.jsonl"
            ),
        },
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with(
            "BadInput",
            "dataset.source: no such file x.jsonl",
            "retrying cannot help",
            "data stage",
            step_condition="DataReady",
        ),
    ),
    Case(
        "the probe failed without a reason",
        lambda: status_at(PROBE),
        {**succeeded(DATA), PROBE: ObservedChild(PROBE, ChildState.FAILED)},
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with(
            "ProbeFailed", "capability probe", "no reason given", "see its log", step_condition="Probed"
        ),
    ),
    Case(
        "a phase Job out of retries",
        lambda: status_at(train(1)),
        {
            **succeeded(DATA, PROBE, train(0)),
            train(1): ObservedChild(
                train(1),
                ChildState.FAILED,
                failure="BackoffLimitExceeded: Job has reached the specified backoff limit",
                retries=3,
            ),
        },
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with("BackoffLimitExceeded", "training phase 2/4", "after 3 retries", "train-1"),
    ),
    Case(
        "the final evaluation failed",
        lambda: status_at(EVALUATE_AFTER),
        {
            **succeeded(*before(EVALUATE_AFTER)),
            EVALUATE_AFTER: ObservedChild(EVALUATE_AFTER, ChildState.FAILED, failure="OOMKilled"),
        },
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with("EvaluationFailed", "OOMKilled", "final model", step_condition="Evaluated"),
    ),
    Case(
        "a failed sandbox fails the run",
        lambda: status_at(train(0)),
        {
            **TRAIN0_RUNNING,
            SANDBOX: ObservedChild(
                SANDBOX, ChildState.FAILED, failure="ProgressDeadlineExceeded: image pull"
            ),
        },
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with("ProgressDeadlineExceeded", "the sandbox", "image pull"),
    ),
    Case(
        "a malformed result names the field",
        lambda: status_at(PROBE),
        succeeded(DATA, PROBE, results={**RESULTS, PROBE: {"score": 1.5}}),
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with("InvalidResult", "score", "capability probe"),
    ),
    Case(
        "a succeeded child without a result",
        lambda: status_at(DATA),
        {**ready_services(), DATA: ObservedChild(DATA, ChildState.SUCCEEDED)},
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with("InvalidResult", "without a result"),
    ),
    Case(
        "a train result of another phase",
        lambda: status_at(train(0)),
        succeeded(DATA, PROBE, train(0), results={**RESULTS, train(0): RESULTS[train(1)]}),
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with("InvalidResult", "reported the result of phase 1"),
    ),
    Case(
        "no training problem left",
        lambda: status_at(DATA),
        succeeded(DATA, results={**RESULTS, DATA: {"train": 0, "heldout": 3, "dropped": 9}}),
        "Failed",
        [WORKSPACE],
        ["Failed"],
        check=failed_with("NoTrainingProblems", "spec.dataset"),
    ),
    Case(
        "selection fails when the spec's tiers leave a phase of the policy empty",
        lambda: status_at(PROBE),
        succeeded(DATA, PROBE),
        "Failed",
        [WORKSPACE],
        ["Probed", "Selecting", "Failed"],
        # The spec model and the CRD both refuse such a spec; the planner still fails cleanly without them.
        spec=SPEC.model_copy(update={"tiers": [Tier.EDGE]}),
        check=failed_with("SelectionFailed", "spec.curriculum", step_condition="PolicySelected"),
    ),
    Case(
        "a failed run stays failed",
        lambda: status_at(None, score=2.0),
        succeeded(*ORDER),
        "Failed",
        [WORKSPACE],
        [],
    ),
    # -- suspension
    Case(
        "suspended while a phase runs: it is stopped, kept, and nothing new starts",
        lambda: status_at(train(0)),
        TRAIN0_RUNNING,
        "Suspended",
        [WORKSPACE, SANDBOX, train(0)],
        ["Suspended"],
        spec=make_spec(suspend=True),
        suspend=[train(0)],
        check=check_suspended,
    ),
    Case(
        "suspended before the data Job exists: nothing to stop, nothing created",
        lambda: status_at(DATA),
        ready_services(),
        "Suspended",
        [WORKSPACE, SANDBOX],
        ["Suspended"],
        spec=make_spec(suspend=True),
        check=check_suspended,
    ),
    Case(
        "a phase that finished as the run was suspended is recorded; the next one does not start",
        lambda: status_at(train(0)),
        succeeded(DATA, PROBE, train(0)),
        "Suspended",
        [WORKSPACE, SANDBOX],
        ["PhaseCompleted", "Suspended"],
        spec=make_spec(suspend=True),
    ),
    Case(
        "suspended while evaluating: the evaluation Job is stopped",
        lambda: status_at(EVALUATE_BEFORE),
        {
            **succeeded(*before(EVALUATE_BEFORE)),
            EVALUATE_BEFORE: ObservedChild(EVALUATE_BEFORE, ChildState.RUNNING),
        },
        "Suspended",
        [WORKSPACE, SANDBOX, EVALUATE_BEFORE],
        ["Suspended"],
        spec=make_spec(suspend=True),
        suspend=[EVALUATE_BEFORE],
        check=check_suspended,
    ),
    Case(
        "resumed: the stopped phase runs again",
        lambda: plan(make_spec(suspend=True), status_at(train(0)), TRAIN0_RUNNING, T0).status,
        {**succeeded(DATA, PROBE), train(0): ObservedChild(train(0), ChildState.SUSPENDED)},
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Resumed", "Training"],
        check=check_resumed,
    ),
    # -- Kueue
    Case(
        "with a Kueue queue, each stage Job is created suspended for Kueue to admit; services are not",
        lambda: status_at(DATA, spec=KUEUE),
        succeeded(DATA),
        "Probing",
        [WORKSPACE, SANDBOX, PROBE],
        ["DataPrepared", "Probing"],
        spec=KUEUE,
        create_suspended=[PROBE],
    ),
    Case(
        "with a Kueue queue, the phase Job too",
        lambda: status_at(train(0), spec=KUEUE),
        succeeded(DATA, PROBE),
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        [],
        spec=KUEUE,
        create_suspended=[train(0)],
    ),
    Case(
        "a phase Job waiting for Kueue is queued, not failed",
        lambda: status_at(train(0)),
        {**succeeded(DATA, PROBE), train(0): ObservedChild(train(0), ChildState.QUEUED)},
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Queued"],
        check=check_queued("WaitingForAdmission"),
    ),
    Case(
        "admitted",
        lambda: with_condition(status_at(train(0)), "Queued", "True", "WaitingForAdmission"),
        TRAIN0_RUNNING,
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Admitted"],
        check=check_admitted,
    ),
    Case(
        "suspended again by Kueue (preempted): requeued",
        lambda: with_condition(status_at(train(0)), "Queued", "False", "Admitted"),
        {**succeeded(DATA, PROBE), train(0): ObservedChild(train(0), ChildState.QUEUED)},
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Queued"],
        check=check_queued("Requeued"),
    ),
    # -- the generation server (training.generation vllm-server)
    Case(
        "vllm-server: no server while probing",
        lambda: status_at(DATA, spec=SERVED),
        succeeded(DATA),
        "Probing",
        [WORKSPACE, SANDBOX, PROBE],
        ["DataPrepared", "Probing"],
        spec=SERVED,
    ),
    Case(
        "vllm-server: the server starts with the first phase, listed before its Job",
        lambda: status_at(PROBE, spec=SERVED),
        succeeded(DATA, PROBE),
        "Training",
        [WORKSPACE, SANDBOX, GENERATION_SERVER, train(0)],
        ["Probed", "Selecting", "PolicySelected", "Training", "PhaseStarted"],
        spec=SERVED,
    ),
    Case(
        "vllm-server: the phase Job does not wait for the server to be observed",
        lambda: status_at(train(0), spec=SERVED),
        TRAIN0_RUNNING,
        "Training",
        [WORKSPACE, SANDBOX, GENERATION_SERVER, train(0)],
        [],
        spec=SERVED,
    ),
    Case(
        "vllm-server: the server stays between phases",
        lambda: status_at(train(0), spec=SERVED),
        succeeded(DATA, PROBE, train(0)),
        "Training",
        [WORKSPACE, SANDBOX, GENERATION_SERVER, train(1)],
        ["PhaseCompleted", "PhaseStarted"],
        spec=SERVED,
    ),
    Case(
        "vllm-server: the last phase done, the server is no longer listed",
        lambda: status_at(train(3), spec=SERVED),
        succeeded(*before(EVALUATE_BEFORE)),
        "Evaluating",
        [WORKSPACE, SANDBOX, EVALUATE_BEFORE],
        ["PhaseCompleted", "Evaluating"],
        spec=SERVED,
    ),
    Case(
        "vllm-server: a failed phase ends the run and the server",
        lambda: status_at(train(0), spec=SERVED),
        {**succeeded(DATA, PROBE), train(0): ObservedChild(train(0), ChildState.FAILED, failure="OOMKilled")},
        "Failed",
        [WORKSPACE],
        ["Failed"],
        spec=SERVED,
    ),
    Case(
        "vllm-server: suspended, the stopped phase keeps no server",
        lambda: status_at(train(0), spec=SERVED),
        TRAIN0_RUNNING,
        "Suspended",
        [WORKSPACE, SANDBOX, train(0)],
        ["Suspended"],
        spec=SERVED.model_copy(update={"suspend": True}),
        suspend=[train(0)],
    ),
    Case(
        "vllm-server: a server that cannot run fails the run",
        lambda: status_at(train(0), spec=SERVED),
        {
            **TRAIN0_RUNNING,
            GENERATION_SERVER: ObservedChild(
                GENERATION_SERVER, ChildState.FAILED, failure="BadInput: training.vllmServer.url: no server"
            ),
        },
        "Failed",
        [WORKSPACE],
        ["Failed"],
        spec=SERVED,
        check=failed_with("BadInput", "vLLM generation server", "training.vllmServer.url"),
    ),
    Case(
        "vllm-server with vllmServer.url: the run starts no server",
        lambda: status_at(PROBE),
        succeeded(DATA, PROBE),
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Probed", "Selecting", "PolicySelected", "Training", "PhaseStarted"],
        spec=make_spec(
            training={
                "maxSteps": 8,
                "numGenerations": 4,
                "generation": "vllm-server",
                "vllmServer": {"url": "http://vllm.gpu.svc:8000"},
            }
        ),
    ),
    Case(
        "vllm-colocate: vLLM runs inside the phase Job, no server",
        lambda: status_at(PROBE),
        succeeded(DATA, PROBE),
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        ["Probed", "Selecting", "PolicySelected", "Training", "PhaseStarted"],
        spec=make_spec(training={"maxSteps": 8, "numGenerations": 4, "generation": "vllm-colocate"}),
    ),
    # -- live progress
    Case(
        "live progress of the running phase folds into phases, progress, reward and eta",
        lambda: with_live(status_at(train(1)), LIVE),
        {**succeeded(DATA, PROBE, train(0)), train(1): ObservedChild(train(1), ChildState.RUNNING)},
        "Training",
        [WORKSPACE, SANDBOX, train(1)],
        [],
        check=check_live,
    ),
    Case(
        "live progress of an earlier phase is ignored",
        lambda: with_live(status_at(train(1)), {**LIVE, "phase": 0}),
        {**succeeded(DATA, PROBE, train(0)), train(1): ObservedChild(train(1), ChildState.RUNNING)},
        "Training",
        [WORKSPACE, SANDBOX, train(1)],
        [],
        check=check_stale_live_ignored,
    ),
    Case(
        "progress reported on the observed child",
        lambda: status_at(train(0)),
        {
            **succeeded(DATA, PROBE),
            train(0): ObservedChild(
                train(0), ChildState.RUNNING, progress={"phase": 0, "step": 1, "total": 2, "etaSeconds": 10}
            ),
        },
        "Training",
        [WORKSPACE, SANDBOX, train(0)],
        [],
        check=check_observed_progress,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_situation(case: Case) -> None:
    result = plan(case.spec, case.status(), case.observed, NOW, generation=3)
    assert result.status["phase"] == case.phase
    assert result.children == case.children
    assert result.suspend == case.suspend
    expected = case.suspend if case.create_suspended is None else case.create_suspended
    assert result.create_suspended == expected
    # The selected policy travels with the plan once the status names it.
    policy = result.status.get("policy")
    assert (result.selection and result.selection.policy.name) == (policy and policy["name"])
    assert [e.reason for e in result.events] == case.events
    assert all(e.type == ("Warning" if e.reason == "Failed" else "Normal") for e in result.events)
    TarotRunStatus.model_validate(result.status)  # what the planner writes fits the CRD's status schema
    assert result.status["observedGeneration"] == 3
    if case.check:
        case.check(result.status)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_planning_again_from_the_written_status_changes_nothing(case: Case) -> None:
    first = plan(case.spec, case.status(), case.observed, NOW, generation=3)
    again = plan(case.spec, first.status, case.observed, NOW + timedelta(minutes=5), generation=3)
    assert again.events == []
    assert again.children == first.children and again.suspend == first.suspend
    assert again.status == first.status  # no timestamp moves without a change
    same = plan(case.spec, case.status(), case.observed, NOW, generation=3)
    assert same == first  # pure: same inputs, same plan


def test_a_whole_run_passes_through_every_phase_once() -> None:
    status: dict[str, Any] = {}
    observed = ready_services()
    phases: list[str] = []
    reasons: list[str] = []
    now = T0
    while status.get("phase") not in ("Succeeded", "Failed"):
        result = plan(SPEC, status, observed, now)
        status = result.status
        reasons += [e.reason for e in result.events]
        if not phases or phases[-1] != status["phase"]:
            phases.append(status["phase"])
        for ref in result.children:
            observed.setdefault(ref, ObservedChild(ref, ChildState.SUCCEEDED, result=RESULTS.get(ref)))
        now += timedelta(minutes=1)
    assert phases == ["Pending", "Probing", "Training", "Evaluating", "Succeeded"]
    transitions = [
        r for r in reasons if r in ("Pending", "Probing", "Selecting", "Training", "Evaluating", "Succeeded")
    ]
    assert transitions == ["Pending", "Probing", "Selecting", "Training", "Evaluating", "Succeeded"]
    assert reasons.count("PhaseStarted") == reasons.count("PhaseCompleted") == 4
    starts = [p["startTime"] for p in _phases(status)]
    finishes = [p["finishTime"] for p in _phases(status)]
    assert starts == sorted(starts) and all(s < f for s, f in zip(starts, finishes, strict=True))
    assert status["startTime"] < status["completionTime"]
    # Each phase's status names the sandbox its Job scored with, as its result reported it.
    assert [p["sandbox"]["scoredTests"] for p in _phases(status)] == [10, 20, 30, 40]
    assert {p["sandbox"]["backend"] for p in _phases(status)} == {"http://run-sandbox.ns.svc:8080"}
    assert [p["worldSize"] for p in _phases(status)] == [2, 2, 2, 2]  # the processes that trained each


def test_condition_transition_time_moves_only_when_its_status_changes() -> None:
    waiting = plan(SPEC, status_at(DATA), {}, T0 + timedelta(minutes=1))
    still = plan(SPEC, waiting.status, {}, T0 + timedelta(minutes=2))
    ready = plan(SPEC, still.status, ready_services(), T0 + timedelta(minutes=3))
    times = [conditions(p.status)["SandboxReady"]["lastTransitionTime"] for p in (waiting, still, ready)]
    assert times == ["2026-12-01T10:01:00Z", "2026-12-01T10:01:00Z", "2026-12-01T10:03:00Z"]


def test_the_plan_gives_executors_the_policy_the_status_names() -> None:
    status = status_at(train(0), score=0.9)
    chosen = plan(SPEC, status, succeeded(DATA, PROBE), NOW).selection
    assert chosen is not None
    assert chosen.policy.name == status["policy"]["name"] == "reverse"
    assert chosen.reason == status["policy"]["reason"]
    assert plan(SPEC, status_at(PROBE), succeeded(DATA), NOW).selection is None


def test_an_invalid_spec_fails_the_run_naming_the_fields_once() -> None:
    with pytest.raises(ValidationError) as invalid:
        TarotRunSpec.model_validate({"training": {"maxSteps": 0}})
    failed = invalid_spec({"phase": "Pending", "startTime": "2026-12-01T10:00:00Z"}, invalid.value, NOW)
    assert failed.children == [] and failed.status["phase"] == "Failed"
    assert failed.status["startTime"] == "2026-12-01T10:00:00Z"
    assert failed.status["completionTime"] == "2026-12-01T11:00:00Z"
    (condition,) = failed.status["conditions"]
    assert (condition["type"], condition["reason"]) == ("Failed", "InvalidSpec")
    assert "training.maxSteps" in condition["message"] and "tarot validate" in condition["message"]
    assert [(e.type, e.reason) for e in failed.events] == [("Warning", "InvalidSpec")]
    TarotRunStatus.model_validate(failed.status)
    again = invalid_spec(failed.status, invalid.value, NOW + timedelta(minutes=5))
    assert again.status == failed.status and again.events == []


def test_a_reopened_failed_run_retries_the_failed_step_and_keeps_the_rest() -> None:
    failed = plan(
        SPEC,
        status_at(PROBE),
        {**succeeded(DATA), PROBE: ObservedChild(PROBE, ChildState.FAILED, failure="x")},
        NOW,
    ).status
    reopened = reopen(failed)
    assert "Failed" not in conditions(reopened) and "completionTime" not in reopened
    assert "Probed" not in conditions(reopened)  # set False by the failure
    assert reopened["data"] == failed["data"]
    retry = plan(SPEC, reopened, ready_services(), NOW)
    assert retry.children == [WORKSPACE, SANDBOX, PROBE] and retry.status["phase"] == "Probing"
    assert reopen(status_at(None)) == status_at(None)  # only Failed runs reopen


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0s"), (44.2, "45s"), (60, "1m"), (719, "12m"), (3600, "1h"), (3900, "1h5m")]
)
def test_eta_format(seconds: float, shown: str) -> None:
    assert format_eta(seconds) == shown


def test_the_planner_imports_no_torch() -> None:
    """The operator image has no torch: the planner and all it imports must stay free of it."""
    code = (
        "import sys; import tarot_jobs.lifecycle.planner; "
        "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_at_a_phase_s_last_step_the_eta_comes_from_the_phase_s_pace() -> None:
    # The train Job reports etaSeconds 0 at its phase's last step: no rate can be derived from it,
    # so the later phases' 4 steps are timed at this phase's pace (2 steps in 60 s).
    status = with_live(status_at(train(1)), {**LIVE, "step": 2, "etaSeconds": 0, "meanReward": 0.123456789})
    status["curriculum"]["phases"][1]["startTime"] = "2026-12-01T10:59:00Z"
    result = plan(
        SPEC,
        status,
        {**succeeded(DATA, PROBE, train(0)), train(1): ObservedChild(train(1), ChildState.RUNNING)},
        NOW,
    )
    assert NOW.strftime("%H:%M:%S") == "11:00:00"
    assert result.status["eta"] == "2m"
    assert result.status["reward"] == 0.1235  # the REWARD column shows 4 decimals, not a float's 17
