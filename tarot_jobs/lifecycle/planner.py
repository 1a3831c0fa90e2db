"""The lifecycle planner: one state machine for a TarotRun, whoever executes it.

    plan(spec, status, observed, now, *, generation=None) -> Plan

Pure: no I/O, no clock (time comes in as `now`), no torch; the same inputs
give the same Plan. The kopf operator calls it with the TarotRun's status and
the Kubernetes children it found; `tarot run` (local.py) with DIR/status.json
and the stages it finished on this machine. Each executor then creates the
listed children it lacks, stops those in `Plan.suspend`, writes `Plan.status`,
emits `Plan.events`, and calls plan() again after anything changed, until
the status phase is Succeeded or Failed.

The run is a sequence of steps; the first step whose result is not yet in
the status is the current one, and it sets the phase:

    step                    child               phase        result kept in status
    data                    DATA                Pending      data {train, heldout, dropped}
    probe                   PROBE               Probing      capability {score, passAtOne}
    select                  (the planner)       Selecting    policy, curriculum.phases[]
    train phase i of n      TRAIN(i)            Training     curriculum.phases[i] (finishTime)
    evaluate the base       EVALUATE_BEFORE     Evaluating   evaluation.before   (evaluation.baseline)
    evaluate the final      EVALUATE_AFTER      Evaluating   evaluation.after
    (none left)                                 Succeeded

One call walks as far as the observations allow (a finished child's result is
folded into the status and the next step becomes current), so a restarted
operator that finds every Job done catches up in one call. Policy selection is
a step without a child: the planner applies the spec's rule to the probe's
capability (tarot_jobs.curriculum) and plans the phases' steps
(tarot_jobs.pipeline.training.phases). Later modes are new steps, not a
rewrite: a tournament is a select step whose children are pilot phase Jobs,
a re-probe is a probe step between train steps.

Contract with the executors:
- `Plan.children` are the children that should exist now: WORKSPACE, SANDBOX
  (unless spec.sandbox.url names an external one), GENERATION_SERVER while a
  train step is current (training.generation vllm-server without a
  vllmServer.url; not while suspended) and the current step's child. Create
  the missing ones, deterministically named `<run>-<ref.suffix()>`, never one
  twice. A child whose result is already in the status is not listed and must
  not be recreated; an executor may keep it (a finished Job, for its logs) or
  delete it (the sandbox of a finished run). A service no longer listed should
  stop: the generation server holds GPUs, so it goes once the last phase has
  trained (or the run ends or is suspended).
- TRAIN does not wait for GENERATION_SERVER: both start together, and trl's
  client waits for the server's /health (training.vllmServer.timeoutSeconds).
- A listed child that is not in `Plan.suspend` should run: an executor
  resumes a child it suspended itself, but never one that Kueue holds.
- DATA waits until the SANDBOX child is observed ready (Running): the data
  check runs gold solutions in it.
- A child observed FAILED (retries used up, or a bad-input exit; a service
  that cannot run, such as GENERATION_SERVER locally) fails the run; its
  `failure` "Reason: message" becomes the Failed condition.
- Progress of the running TRAIN(i) comes from status.curriculum.live (patched
  by the train Job) or ObservedChild.progress (same shape, LiveProgress); the
  planner keeps `live` as it found it and folds it into phases[i], progress,
  reward and eta.
- Events are emitted once: the planner emits an event only with the status
  change it describes, so planning again from the written status with the
  same observations yields no events.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tarot_jobs.curriculum.policy import tier_letters
from tarot_jobs.lifecycle.results import DataResult, EvaluateResult, ProbeResult, TrainResult
from tarot_jobs.lifecycle.types import ChildKind, ChildRef, ChildState, ObservedChild, Plan, RunEvent
from tarot_jobs.pipeline.selection import Selection, select_policy
from tarot_jobs.pipeline.training.phases import plan_phases
from tarot_jobs.problems.model import Tier
from tarot_jobs.spec.model import TarotRunSpec, issues_from
from tarot_jobs.spec.status import (
    COMPLETE,
    CONDITION_MESSAGE_LIMIT,
    DATA_READY,
    EVALUATED,
    FAILED,
    FINAL_PHASES,
    POLICY_SELECTED,
    PROBED,
    QUEUED,
    SANDBOX_READY,
    SUSPENDED,
    Capability,
    Condition,
    DataStatus,
    EvaluationResult,
    LiveProgress,
    PhaseStatus,
    PolicyStatus,
    RunPhase,
    TarotRunStatus,
    TierValues,
    parse_rfc3339,
    rfc3339,
)

WORKSPACE = ChildRef(ChildKind.WORKSPACE)
SANDBOX = ChildRef(ChildKind.SANDBOX)
GENERATION_SERVER = ChildRef(ChildKind.GENERATION_SERVER)
DATA = ChildRef(ChildKind.DATA)
PROBE = ChildRef(ChildKind.PROBE)
EVALUATE_BEFORE = ChildRef(ChildKind.EVALUATE_BEFORE)
EVALUATE_AFTER = ChildRef(ChildKind.EVALUATE_AFTER)
# The kinds that serve the run (a volume, Deployments) rather than do one of its steps (the stage Jobs).
SERVICE_KINDS = (ChildKind.WORKSPACE, ChildKind.SANDBOX, ChildKind.GENERATION_SERVER)


def train(index: int) -> ChildRef:
    return ChildRef(ChildKind.TRAIN, index)


NORMAL, WARNING = "Normal", "Warning"
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Step:
    """One step of the run: the phase it shows and the child doing it (None: the planner itself)."""

    phase: RunPhase
    child: ChildRef | None


def plan(
    spec: TarotRunSpec,
    status: Mapping[str, Any] | None,
    observed: Mapping[ChildRef, ObservedChild],
    now: datetime,
    *,
    generation: int | None = None,
) -> Plan:
    """The children that should exist, the status to write and the events to emit (module docstring).

    `status` is the run's current status object (camelCase; empty or None for a new run);
    `generation` is metadata.generation, recorded as observedGeneration.
    """
    st = TarotRunStatus.model_validate(dict(status or {}))
    planned = _Planning(spec, st, observed, now, generation).run()
    queued = spec.resources.kueue_queue is not None
    return replace(
        planned,
        create_suspended=[
            ref
            for ref in planned.children
            if ref.kind not in SERVICE_KINDS and (queued or ref in planned.suspend)
        ],
        selection=_selected(spec, planned.status),
    )


def _selected(spec: TarotRunSpec, status: Mapping[str, Any]) -> Selection | None:
    """The policy the planner selected for this run (policy.json's content), from the recorded capability;
    None until status.policy is set. Deterministic, so every train Job gets the policy the status names."""
    if status.get("policy") is None:
        return None
    capability = status.get("capability")
    return _select(spec, capability.get("score") if capability else None)


def invalid_spec(status: Mapping[str, Any] | None, exc: ValidationError, now: datetime) -> Plan:
    """A spec the model rejects (a CRD older than this operator): the run fails naming the fields, with an
    InvalidSpec event; nothing is created. A run already Failed is left as it is."""
    status = dict(status or {})
    if status.get("phase") == "Failed":
        return Plan(children=[], status=status)
    problems = "; ".join(str(issue) for issue in issues_from(exc, TarotRunSpec))
    message = f"the spec is invalid: {problems}; fix it (tarot validate) and create the run again"
    when = rfc3339(now)
    condition = {
        "type": "Failed",
        "status": "True",
        "lastTransitionTime": when,
        "reason": "InvalidSpec",
        "message": message[:CONDITION_MESSAGE_LIMIT],
    }
    return Plan(
        children=[],
        status={**status, "phase": "Failed", "completionTime": when, "conditions": [condition]},
        events=[RunEvent(WARNING, "InvalidSpec", message)],
    )


def reopen(status: Mapping[str, Any]) -> dict[str, Any]:
    """A Failed status made non-final again, keeping every recorded result; planning retries the failed step.

    The local runner reopens a failed workdir when it is run again; a cluster run stays Failed.
    """
    st = TarotRunStatus.model_validate(dict(status))
    if st.phase != "Failed":
        return st.to_object()
    failed = st.condition(FAILED)
    reason = failed.reason if failed else None
    st.phase = "Pending"  # the next plan() sets the phase of the step still to do
    st.completion_time = None
    # Drop the Failed condition and the step condition the failure set to False (e.g. Probed).
    st.conditions = [
        c for c in st.conditions if c.type != FAILED and not (c.status == "False" and c.reason == reason)
    ]
    return st.to_object()


def steps(spec: TarotRunSpec, st: TarotRunStatus) -> list[Step]:
    """The run's steps in order; train steps appear once the policy is selected."""
    out = [Step("Pending", DATA), Step("Probing", PROBE), Step("Selecting", None)]
    out += [Step("Training", train(p.index)) for p in st.curriculum.phases]
    if spec.evaluation.baseline:
        out.append(Step("Evaluating", EVALUATE_BEFORE))
    out.append(Step("Evaluating", EVALUATE_AFTER))
    return out


def step_done(step: Step, st: TarotRunStatus) -> bool:
    if step.child is None:
        return st.policy is not None
    kind = step.child.kind
    if kind is ChildKind.DATA:
        return st.data is not None
    if kind is ChildKind.PROBE:
        return st.capability is not None
    if kind is ChildKind.TRAIN:
        return st.curriculum.phases[_index(step.child)].finish_time is not None
    if kind is ChildKind.EVALUATE_BEFORE:
        return st.evaluation.before is not None
    if kind is ChildKind.EVALUATE_AFTER:
        return st.evaluation.after is not None
    raise ValueError(f"no step runs a {kind} child")


def format_eta(seconds: float) -> str:
    """'45s', '12m', '1h5m': short enough for a printer column."""
    seconds = max(math.ceil(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60}m" if minutes % 60 else f"{minutes // 60}h"


class _Failure(Exception):
    """The current step cannot succeed: fail the run with this reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class _Planning:
    """One plan() call: mutates its own copy of the status and collects events."""

    def __init__(
        self,
        spec: TarotRunSpec,
        st: TarotRunStatus,
        observed: Mapping[ChildRef, ObservedChild],
        now: datetime,
        generation: int | None,
    ) -> None:
        self.spec, self.st, self.observed = spec, st, observed
        self.now, self.generation = rfc3339(now), generation
        self.events: list[RunEvent] = []

    def run(self) -> Plan:
        st = self.st
        if self.generation is not None:
            st.observed_generation = self.generation
        if st.phase in FINAL_PHASES:
            return Plan(children=[WORKSPACE], status=st.to_object())
        if st.start_time is None:
            st.start_time = self.now
            self._event(NORMAL, "Pending", "run accepted: preparing the workspace, the sandbox and the data")
        if not self.spec.suspend:
            self._resume_if_suspended()
        step = self._advance()
        if step is None or st.phase in FINAL_PHASES:
            return Plan(children=[WORKSPACE], status=st.to_object(), events=self.events)
        base = [WORKSPACE] + ([SANDBOX] if self.spec.sandbox.url is None else [])
        assert step.child is not None  # steps without a child complete inside _advance
        if self.spec.suspend:
            return self._suspended(step.child, base)
        self._set_phase(step.phase)
        training = step.child.kind is ChildKind.TRAIN
        # The generation server is created before the phase Job (executors create in list order).
        server = [GENERATION_SERVER] if training and self._needs_generation_server() else []
        children = base + server + ([step.child] if self._ready(step.child) else [])
        if training:
            self._start_phase(_index(step.child))
        else:
            st.eta = None  # the ETA covers training; evaluation time is not predicted
        self._track_queue(step.child)
        self._fold_progress()
        return Plan(children=children, status=st.to_object(), events=self.events)

    # -- walking the steps --------------------------------------------------------------------

    def _advance(self) -> Step | None:
        """Fold every finished step's result into the status; the step still to do, or None when all are."""
        try:
            self._check_services()
            while True:
                step = next((s for s in steps(self.spec, self.st) if not step_done(s, self.st)), None)
                if step is None:
                    self._succeed()
                    return None
                if not self.spec.suspend:
                    self._set_phase(step.phase)
                if step.child is None:
                    self._select()
                    continue
                seen = self.observed.get(step.child)
                if seen is None or seen.state not in (ChildState.SUCCEEDED, ChildState.FAILED):
                    return step
                if seen.state is ChildState.FAILED:
                    raise _child_failure(step.child, seen, self._what(step.child))
                self._absorb(step.child, seen.result)
        except _Failure as failure:
            self._fail(failure)
            return None

    def _check_services(self) -> None:
        for ref in (WORKSPACE, SANDBOX, GENERATION_SERVER):
            seen = self.observed.get(ref)
            if seen is not None and seen.state is ChildState.FAILED:
                raise _child_failure(ref, seen, self._what(ref))

    def _needs_generation_server(self) -> bool:
        """vllm-server generation with no external server (vllmServer.url): the run starts its own."""
        server = self.spec.training.generation_server()
        return server is not None and server.url is None

    def _ready(self, child: ChildRef) -> bool:
        """DATA starts once the sandbox serves (its check runs gold solutions); later Jobs need no gate."""
        if child != DATA:
            return True
        if self.spec.sandbox.url is not None:
            return True
        sandbox = self.observed.get(SANDBOX)
        ready = sandbox is not None and sandbox.state in (ChildState.RUNNING, ChildState.SUCCEEDED)
        if ready:
            self._condition(SANDBOX_READY, "True", "SandboxReady", "the sandbox serves executions")
        else:
            self._condition(
                SANDBOX_READY,
                "False",
                "WaitingForSandbox",
                "waiting for the sandbox to serve before the data check; if this lasts, look at the "
                "sandbox child's pods (image pull, resources)",
            )
        return ready

    # -- results ------------------------------------------------------------------------------

    def _absorb(self, child: ChildRef, result: dict[str, Any] | None) -> None:
        st, what = self.st, self._what(child)
        if child.kind is ChildKind.DATA:
            data = _parse(DataResult, result, what)
            if data.train == 0:
                raise _Failure(
                    "NoTrainingProblems",
                    f"the data stage kept no training problem ({data.dropped} dropped); check "
                    "spec.dataset (source, requireAllTiers) and the data check's report",
                )
            st.data = DataStatus(train=data.train, heldout=data.heldout, dropped=data.dropped)
            message = f"{data.train} training and {data.heldout} held-out problems ({data.dropped} dropped)"
            self._condition(DATA_READY, "True", "DataPrepared", message)
            self._event(NORMAL, "DataPrepared", message)
        elif child.kind is ChildKind.PROBE:
            probe = _parse(ProbeResult, result, what)
            st.capability = Capability(score=probe.score, pass_at_one=probe.pass_at_one)
            message = f"capability score {probe.score:.3f} (held-out pass@1 of the base model)"
            self._condition(PROBED, "True", "Probed", message)
            self._event(NORMAL, "Probed", message)
        elif child.kind is ChildKind.TRAIN:
            self._absorb_phase(_index(child), _parse(TrainResult, result, what))
        else:
            evaluation = _parse(EvaluateResult, result, what)
            recorded = EvaluationResult(
                pass_at_one=evaluation.pass_at_one, failed_executions=evaluation.failed_executions
            )
            overall = _pct(evaluation.pass_at_one.overall)
            if child.kind is ChildKind.EVALUATE_BEFORE:
                st.evaluation.before = recorded
                self._event(NORMAL, "BaselineEvaluated", f"base model: held-out pass@1 {overall}")
            else:
                st.evaluation.after = recorded
                before = st.evaluation.before
                change = f"{_pct(before.pass_at_one.overall)} -> {overall}" if before else overall
                message = f"held-out pass@1 overall {change}; per tier in status.evaluation"
                self._condition(EVALUATED, "True", "Evaluated", message)
                self._event(NORMAL, "Evaluated", message)

    def _absorb_phase(self, index: int, result: TrainResult) -> None:
        phases = self.st.curriculum.phases
        if result.phase != index:
            raise _Failure(
                "InvalidResult",
                f"training phase {index + 1}/{len(phases)} reported the result of phase {result.phase}",
            )
        phase = phases[index]
        self.st.curriculum.current_phase = index
        phase.completed_steps = result.completed_steps
        phase.mean_reward = result.mean_reward
        phase.reward_per_tier = result.reward_per_tier
        phase.sandbox = result.sandbox
        phase.world_size = result.world_size
        phase.start_time = phase.start_time or self.now
        phase.finish_time = self.now
        if result.mean_reward is not None:
            self.st.reward = round(result.mean_reward, 4)  # the REWARD column
        self._update_progress(index)
        self._event(
            NORMAL,
            "PhaseCompleted",
            f"phase {index + 1}/{len(phases)} [{tier_letters(map(Tier, phase.tiers))}]: "
            f"{result.completed_steps}/{phase.steps} steps, mean reward {_num(result.mean_reward)}",
        )

    def _select(self) -> None:
        st = self.st
        assert st.data is not None and st.capability is not None  # earlier steps
        try:
            chosen = _select(self.spec, st.capability.score)
            plans = plan_phases(self.spec, chosen.policy, st.data.train)
        except ValueError as exc:
            raise _Failure("SelectionFailed", f"{exc}; fix spec.curriculum") from None
        st.policy = PolicyStatus(name=chosen.policy.name, reason=chosen.reason[:1024])
        st.curriculum.phases = [
            PhaseStatus(
                index=p.index, tiers=p.tiers, weights=TierValues.model_validate(p.weights), steps=p.steps
            )
            for p in plans
        ]
        self._update_progress(0)
        message = f"{chosen.policy.name}: {chosen.reason}"
        self._condition(POLICY_SELECTED, "True", _RULE_REASONS.get(chosen.rule, "Selected"), message)
        self._event(NORMAL, "PolicySelected", message)

    # -- training progress ------------------------------------------------------------------

    def _start_phase(self, index: int) -> None:
        curriculum = self.st.curriculum
        curriculum.current_phase = index
        phase = curriculum.phases[index]
        if phase.start_time is None:
            phase.start_time = self.now
            tiers = tier_letters(map(Tier, phase.tiers))
            self._event(
                NORMAL,
                "PhaseStarted",
                f"training phase {index + 1}/{len(curriculum.phases)} [{tiers}] for {phase.steps} steps",
            )
        self._update_progress(index)

    def _fold_progress(self) -> None:
        """Fold the running phase's live report (status.curriculum.live or the child's) into the status."""
        st = self.st
        index = st.curriculum.current_phase
        if st.phase != "Training" or index is None:
            return
        reports = [st.curriculum.live]
        seen = self.observed.get(train(index))
        if seen is not None and seen.progress:
            # A garbled progress report only costs a stale progress column.
            with contextlib.suppress(ValidationError):
                reports.append(LiveProgress.model_validate(seen.progress))
        live = max(
            (r for r in reports if r is not None and r.phase == index), key=lambda r: r.step, default=None
        )
        if live is None:
            return
        phase = st.curriculum.phases[index]
        phase.completed_steps = max(phase.completed_steps, min(live.step, phase.steps))
        if live.mean_reward is not None:
            phase.mean_reward = live.mean_reward
            st.reward = round(live.mean_reward, 4)  # the REWARD column
        if live.reward_per_tier is not None:
            phase.reward_per_tier = live.reward_per_tier
        self._update_progress(index)
        if live.eta_seconds is not None:
            remaining_here = max(live.total - live.step, 0)
            per_step = live.eta_seconds / remaining_here if remaining_here else self._seconds_per_step(phase)
            later = sum(p.steps for p in st.curriculum.phases[index + 1 :])
            st.eta = format_eta(live.eta_seconds + per_step * later)

    def _seconds_per_step(self, phase: PhaseStatus) -> float:
        """The phase's pace so far: at its last step the report's ETA is 0 and cannot give a rate."""
        if phase.start_time is None or phase.completed_steps == 0:
            return 0.0
        elapsed = parse_rfc3339(self.now) - parse_rfc3339(phase.start_time)
        return max(elapsed.total_seconds(), 0.0) / phase.completed_steps

    def _update_progress(self, index: int) -> None:
        phases = self.st.curriculum.phases
        total = sum(p.steps for p in phases)
        done = sum(p.steps if p.finish_time else p.completed_steps for p in phases)
        percent = math.floor(100 * done / total) if total else 100
        self.st.progress = f"{min(index + 1, len(phases))}/{len(phases)} {percent}%"

    # -- suspension and queueing ------------------------------------------------------------

    def _suspended(self, active: ChildRef, base: list[ChildRef]) -> Plan:
        """spec.suspend: stop the active child (keeping it and its checkpoints), start nothing new."""
        if self.st.phase != "Suspended":
            self._condition(
                SUSPENDED,
                "True",
                "SuspendedByUser",
                "spec.suspend is true: the active Job is stopped, its checkpoints are kept; "
                "set spec.suspend to false to resume where it stopped",
            )
            self._set_phase("Suspended")
            self.st.eta = None
        exists = active in self.observed
        return Plan(
            children=base + ([active] if exists else []),
            status=self.st.to_object(),
            events=self.events,
            suspend=[active] if exists else [],
        )

    def _resume_if_suspended(self) -> None:
        if self.st.phase == "Suspended":
            self._condition(
                SUSPENDED, "False", "Resumed", "spec.suspend is false: the run continues where it stopped"
            )
            self._event(NORMAL, "Resumed", "spec.suspend is false: continuing where the run stopped")

    def _track_queue(self, active: ChildRef) -> None:
        """A Job Kueue has not admitted (or suspended again) is queued, not failed; the operator waits."""
        seen = self.observed.get(active)
        queued = self.st.condition(QUEUED)
        what = self._what(active)
        if seen is not None and seen.state is ChildState.QUEUED:
            requeued = queued is not None and queued.reason in ("Admitted", "Requeued")
            reason = "Requeued" if requeued else "WaitingForAdmission"
            message = (
                f"{what} waits for admission by its Kueue queue (spec.resources.kueueQueue)"
                + (
                    "; Kueue suspended it again (preempted or evicted), it resumes from its checkpoint"
                    if requeued
                    else ""
                )
                + "; if it waits long, check the queue's quota (kubectl get workloads)"
            )
            if queued is None or queued.status != "True":
                self._event(NORMAL, "Queued", message)
            self._condition(QUEUED, "True", reason, message)
        elif (
            seen is not None
            and seen.state is ChildState.RUNNING
            and queued is not None
            and queued.status == "True"
        ):
            self._condition(QUEUED, "False", "Admitted", f"{what} was admitted and runs")
            self._event(NORMAL, "Admitted", f"{what} was admitted and runs")

    # -- endings ------------------------------------------------------------------------------

    def _succeed(self) -> None:
        st = self.st
        after = st.evaluation.after
        overall = _pct(after.pass_at_one.overall) if after else "-"
        self._condition(
            COMPLETE,
            "True",
            "Succeeded",
            f"every phase trained and the final model evaluated (held-out pass@1 {overall}); "
            "results are in status.evaluation and on the workspace",
        )
        self._finish("Succeeded", "every step finished")
        if st.curriculum.phases:
            self._update_progress(len(st.curriculum.phases) - 1)

    def _fail(self, failure: _Failure) -> None:
        self._condition(FAILED, "True", failure.reason, failure.message)
        if self.st.phase == "Pending":
            self._condition(DATA_READY, "False", failure.reason, failure.message)
        elif self.st.phase == "Probing":
            self._condition(PROBED, "False", failure.reason, failure.message)
        elif self.st.phase == "Selecting":
            self._condition(POLICY_SELECTED, "False", failure.reason, failure.message)
        elif self.st.phase == "Evaluating":
            self._condition(EVALUATED, "False", failure.reason, failure.message)
        self._finish("Failed", failure.message, WARNING)

    def _finish(self, phase: RunPhase, message: str, type_: str = NORMAL) -> None:
        self.st.completion_time = self.now
        self.st.eta = None
        self._set_phase(phase, message, type_)

    # -- status helpers -----------------------------------------------------------------------

    def _set_phase(self, phase: RunPhase, message: str | None = None, type_: str = NORMAL) -> None:
        old = self.st.phase
        if old == phase:
            return
        self.st.phase = phase
        self._event(type_, phase, f"{old} -> {phase}" + (f": {message}" if message else ""))

    def _condition(self, type_: str, status: str, reason: str, message: str) -> None:
        """Set a condition; lastTransitionTime changes only with its status (as meta.SetStatusCondition)."""
        conditions = self.st.conditions
        old = self.st.condition(type_)
        since = old.last_transition_time if old is not None and old.status == status else self.now
        new = Condition(
            type=type_,
            status=status,
            observed_generation=self.generation
            if self.generation is not None
            else (old.observed_generation if old else None),
            last_transition_time=since,
            reason=reason,
            message=message[:CONDITION_MESSAGE_LIMIT],
        )
        if old is None:
            conditions.append(new)
        else:
            conditions[conditions.index(old)] = new

    def _event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(RunEvent(type=type_, reason=reason, message=message))

    def _what(self, child: ChildRef) -> str:
        if child.kind is ChildKind.TRAIN:
            phases = len(self.st.curriculum.phases)
            return f"training phase {_index(child) + 1}/{phases} (child {child.suffix()})"
        return f"{_WHAT[child.kind]} (child {child.suffix()})"


_WHAT = {
    ChildKind.WORKSPACE: "the workspace",
    ChildKind.SANDBOX: "the sandbox",
    ChildKind.GENERATION_SERVER: "the vLLM generation server",
    ChildKind.DATA: "the data stage",
    ChildKind.PROBE: "the capability probe",
    ChildKind.EVALUATE_BEFORE: "the evaluation of the base model",
    ChildKind.EVALUATE_AFTER: "the evaluation of the final model",
}
_DEFAULT_FAILURE_REASONS = {
    ChildKind.WORKSPACE: "WorkspaceFailed",
    ChildKind.SANDBOX: "SandboxFailed",
    ChildKind.GENERATION_SERVER: "GenerationServerFailed",
    ChildKind.DATA: "DataFailed",
    ChildKind.PROBE: "ProbeFailed",
    ChildKind.TRAIN: "TrainingFailed",
    ChildKind.EVALUATE_BEFORE: "EvaluationFailed",
    ChildKind.EVALUATE_AFTER: "EvaluationFailed",
}
_RULE_REASONS = {"auto": "SelectedByCapability", "named": "NamedInSpec", "custom": "CustomPhases"}
BAD_INPUT = "BadInput"


def _child_failure(child: ChildRef, seen: ObservedChild, what: str) -> _Failure:
    """The run's failure from a FAILED child: its own CamelCase reason when it gives one."""
    reason, detail = _DEFAULT_FAILURE_REASONS[child.kind], seen.failure or "no reason given"
    head, sep, rest = detail.partition(": ")
    if sep and _REASON.match(head):
        reason, detail = head, rest
    if reason == BAD_INPUT:
        advice = (
            "the input is at fault (retrying cannot help): fix the field named above and start the run again"
        )
    else:
        retried = f" after {seen.retries} retries" if seen.retries else ""
        advice = f"it failed{retried}; see its log for the cause, fix it and start the run again"
    return _Failure(reason, f"{what} failed: {detail.rstrip('.')}; {advice}")


def _parse(model: type[M], result: dict[str, Any] | None, what: str) -> M:
    if result is None:
        raise _Failure("InvalidResult", f"{what} finished without a result")
    try:
        return model.model_validate(result)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'result'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise _Failure("InvalidResult", f"{what} finished with an invalid result: {problems}") from None


def _select(spec: TarotRunSpec, score: float | None) -> Selection:
    return select_policy(spec.curriculum, score, weights_override=spec.reward.weights, tiers=spec.tiers)


def _index(child: ChildRef) -> int:
    assert child.index is not None  # TRAIN refs always carry their phase index
    return child.index


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
