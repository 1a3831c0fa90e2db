"""`tarot run SPEC --workdir DIR`: the lifecycle planner driven by stages run on this machine.

The same planner as the operator's (planner.py) decides what runs next; this
executor maps its children to local work:

    WORKSPACE         the workdir
    SANDBOX           the in-process sandbox helpers (or spec.sandbox.url)
    GENERATION_SERVER refused: `tarot run` starts no vLLM server (training.vllmServer.url names one)
    DATA, PROBE       the data and probe stages (the functions of `tarot data prepare`, `tarot probe`)
    TRAIN(i)          training phase i (`tarot train --phase i`), resuming its newest checkpoint
    EVALUATE_*        evaluation of the base and the final model (`tarot evaluate`)

and loops plan -> execute until the status is final. A child is observed from
the workdir's files: a stage whose complete output exists is not run again
("complete output found, skipped"); its result is read back through the same
mapping a Job uses for its termination message (lifecycle/results.py). The
status the planner writes is kept in DIR/status.json (the TarotRun's status
schema), so a rerun after an interruption continues from it; a failed run
is reopened by a rerun and retries the step that failed.

    DIR/spec.json                      the spec this workdir belongs to (spec.suspend aside)
    DIR/status.json                    the run's status (phase, conditions, curriculum progress, ...)
    DIR/data/{train,heldout}.jsonl, check.json
    DIR/probe/capability.json, samples.jsonl
    DIR/policy.json                    the policy the planner selected (read by training and the report)
    DIR/train/phase-<i>/...            (stages/train.py)
    DIR/eval/before/evaluation.json, DIR/eval/after/evaluation.json
    DIR/report.json, report.md, curves.png, timings.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.lifecycle import planner
from tarot_jobs.lifecycle.results import (
    RESULT_FILE_VARIABLE,
    data_result,
    evaluate_result,
    probe_result,
    train_result,
)
from tarot_jobs.lifecycle.types import ChildKind, ChildRef, ChildState, ObservedChild, Plan
from tarot_jobs.pipeline.context import base_model, open_sandbox
from tarot_jobs.pipeline.errors import BAD_INPUT_ERRORS, StageError
from tarot_jobs.pipeline.model.loading import ResolvedModel
from tarot_jobs.pipeline.progress import Reporter, phase_label, step_progress
from tarot_jobs.pipeline.selection import Selection
from tarot_jobs.pipeline.stages.data import RunData, data_complete, prepare_data, read_data, write_data
from tarot_jobs.pipeline.stages.evaluate import (
    EVALUATION_FILE,
    evaluation_complete,
    load_extra_problems,
    run_evaluation,
)
from tarot_jobs.pipeline.stages.probe import CAPABILITY_FILE, probe_complete, run_probe
from tarot_jobs.pipeline.stages.report import REPORT_MD, build_report, write_report
from tarot_jobs.pipeline.stages.select import POLICY_FILE, read_policy, write_policy
from tarot_jobs.pipeline.stages.train import NO_GENERATION_SERVER
from tarot_jobs.pipeline.workspace import Workspace, phase_dir
from tarot_jobs.sandbox.types import SandboxBackend, SandboxUnavailable
from tarot_jobs.spec.model import TarotRunSpec, load_spec
from tarot_jobs.spec.status import FAILED, FINAL_PHASES, TarotRunStatus

SPEC_COPY = "spec.json"
PROCESSES_LOG = "processes.log"  # a multi-process phase's torchrun output, in its phase directory
PROCESSES_LOG_TAIL = 30  # lines of it a failure quotes
STEPS_POLL_S = 1.0
STATUS_FILE = "status.json"
TIMINGS_FILE = "timings.json"
T = TypeVar("T")
Clock = Callable[[], datetime]


class Workdir(Workspace[Path]):
    """The paths of a local run: the workspace layout (pipeline/workspace.py), and the runner's own files."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.status = root / STATUS_FILE
        self.policy = root / POLICY_FILE


def run_pipeline(
    spec_file: Path, workdir: Path, reporter: Reporter, model_cache: Path | None = None
) -> dict[str, Any]:
    """Run (or finish) the whole run; returns report.json's content. A failed stage's error propagates."""
    from tarot_jobs.pipeline.stages.train import check_training_options

    spec = load_spec(spec_file)  # SpecError names every bad field, before anything runs
    wd = Workdir(workdir)
    claim_workdir(wd, spec)
    check_training_options(spec)
    load_extra_problems(spec)
    timings = _read_timings(wd)
    with open_sandbox(spec) as sandbox:
        stages = LocalStages(spec_file, spec, wd, reporter, sandbox, timings, model_cache or wd.models)
        LocalExecutor(spec, wd, reporter, stages).run()
    return _report(spec_file, spec, wd, reporter, timings, tiny=spec.model.name == "tiny")


class Stages(Protocol):
    """The work behind each child, each returning its result (results.py's shapes, camelCase)."""

    def data(self) -> dict[str, Any]: ...

    def probe(self) -> dict[str, Any]: ...

    def train(
        self, index: int, selection: Selection, on_step: Callable[[Mapping[str, Any]], None]
    ) -> dict[str, Any]: ...

    def evaluate(self, *, final: bool) -> dict[str, Any]: ...


class LocalExecutor:
    """Loops plan -> execute: runs each child the planner lists that this machine has not observed yet."""

    def __init__(
        self,
        spec: TarotRunSpec,
        wd: Workdir,
        reporter: Reporter,
        stages: Stages,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.spec, self.wd, self.reporter, self.stages, self.clock = spec, wd, reporter, stages, clock
        self.observed: dict[ChildRef, ObservedChild] = {}
        self.status = self._load_status()
        self.selection: Selection | None = None  # the planner's, from its last plan

    def run(self) -> dict[str, Any]:
        """Drive the run to Succeeded (status in DIR/status.json); raises the error that failed it."""
        if self.status.get("phase") in FINAL_PHASES:
            self.reporter.log(f"{self.wd.status}: the run {self.status['phase'].lower()}; nothing left to do")
        while True:
            result = self.plan()
            if result.status["phase"] == "Failed":  # failed by the planner itself, e.g. an invalid result
                failed = TarotRunStatus.model_validate(result.status).condition(FAILED)
                raise StageError(failed.message if failed else f"the run failed; see {self.wd.status}")
            if result.status["phase"] in FINAL_PHASES:
                return result.status
            todo = [child for child in result.children if child not in self.observed]
            if not todo:
                raise StageError(self._stuck_message(result))
            error = self.execute(todo[0])
            if error is not None:
                self.plan()  # records the failure in status.json (phase Failed, the reason, an event)
                raise error

    def plan(self) -> Plan:
        result = planner.plan(self.spec, self.status, self.observed, self.clock())
        self.status, self.selection = result.status, result.selection
        write_json_atomically(self.wd.status, result.status)
        for event in result.events:
            self.reporter.log(f"{event.reason}: {event.message}")
        return result

    def execute(self, child: ChildRef) -> Exception | None:
        """Run (or find done) one child; it is then observed. Returns the error that failed it, if one did."""
        try:
            result = self._perform(child)
        except Exception as exc:  # every stage error fails the run; interruptions (KeyboardInterrupt) resume
            self.observed[child] = ObservedChild(child, ChildState.FAILED, failure=_failure(exc))
            return exc
        state = (
            ChildState.RUNNING
            if child.kind in (ChildKind.WORKSPACE, ChildKind.SANDBOX)
            else ChildState.SUCCEEDED
        )
        self.observed[child] = ObservedChild(child, state, result=result)
        return None

    def _perform(self, child: ChildRef) -> dict[str, Any] | None:
        kind = child.kind
        if kind is ChildKind.WORKSPACE:
            self.wd.root.mkdir(parents=True, exist_ok=True)
            return None
        if kind is ChildKind.SANDBOX:
            return None  # opened around the whole run (run_pipeline); it serves from the start
        if kind is ChildKind.GENERATION_SERVER:
            # run_pipeline refuses such a spec before anything runs (check_training_options); this
            # executor never pretends to have started a server.
            raise StageError(NO_GENERATION_SERVER)
        if kind is ChildKind.DATA:
            return self.stages.data()
        if kind is ChildKind.PROBE:
            return self.stages.probe()
        if kind is ChildKind.TRAIN:
            assert child.index is not None
            assert self.selection is not None  # a train step is planned only once the policy is selected
            return self.stages.train(child.index, self.selection, self._on_step)
        return self.stages.evaluate(final=kind is ChildKind.EVALUATE_AFTER)

    def _on_step(self, record: Mapping[str, Any]) -> None:
        """Each logged training step: its live report into status.json, folded by the planner."""
        from tarot_jobs.lifecycle.progress_report import live_progress

        live = live_progress(record, self.clock())
        curriculum = {
            **self.status.get("curriculum", {}),
            "live": live.model_dump(mode="json", exclude_none=True),
        }
        self.status = {**self.status, "curriculum": curriculum}
        self.plan()

    def _load_status(self) -> dict[str, Any]:
        """DIR/status.json of an earlier invocation (a failed run reopened), or a new run's empty status."""
        if not self.wd.status.is_file():
            return {}
        try:
            status = TarotRunStatus.model_validate_json(self.wd.status.read_text()).to_object()
        except (OSError, ValidationError) as exc:
            # Every stage's output is observed from its files again, so nothing is lost.
            self.reporter.log(
                f"{self.wd.status}: unreadable ({str(exc).splitlines()[0]}); starting a new status"
            )
            return {}
        if status.get("phase") == "Failed":
            self.reporter.log("the last attempt failed; retrying from the step that failed")
            return planner.reopen(status)
        return status

    def _stuck_message(self, result: Plan) -> str:
        status = TarotRunStatus.model_validate(result.status)
        if status.phase == "Suspended":
            return "spec.suspend is true: nothing runs; set it to false (or remove it) to continue this run"
        waiting = [c.suffix() for c in result.children]
        return f"the run is {status.phase} and waits for {', '.join(waiting)}, which cannot change locally"


class LocalStages:
    """Each stage's work on this machine (skipped when its complete output exists); returns its result."""

    def __init__(
        self,
        spec_file: Path,
        spec: TarotRunSpec,
        wd: Workdir,
        reporter: Reporter,
        sandbox: SandboxBackend,
        timings: dict[str, float],
        model_cache: Path,
    ) -> None:
        self.spec_file = spec_file  # claim_workdir made sure it still holds `spec`
        self.spec, self.wd, self.reporter, self.sandbox = spec, wd, reporter, sandbox
        self.timings, self.model_cache = timings, model_cache
        self._data: RunData | None = None
        self._base: ResolvedModel | None = None

    def data(self) -> dict[str, Any]:

        self._stage(
            "data",
            data_complete(self.wd.data),
            lambda: write_data(prepare_data(self.spec, self.sandbox, self.reporter.log), self.wd.data),
        )
        return _dump(data_result(self.loaded_data().summary))

    def probe(self) -> dict[str, Any]:

        self._stage(
            "probe",
            probe_complete(self.wd.probe),
            lambda: run_probe(
                self.spec, self.loaded_data().heldout, self.base(), self.sandbox, self.wd.probe, self.reporter
            ),
            model=True,
        )
        return _dump(probe_result(_read_json(self.wd.probe / CAPABILITY_FILE)))

    def train(
        self, index: int, selection: Selection, on_step: Callable[[Mapping[str, Any]], None]
    ) -> dict[str, Any]:
        from tarot_jobs.pipeline.stages.train import phase_complete, read_phase_summary

        self._write_policy(selection)
        done = phase_complete(self.wd.train, index)
        self._stage(f"train-{index}", done, lambda: self._train(index, selection, on_step), model=True)
        return _dump(train_result(read_phase_summary(self.wd.train, index)))

    def evaluate(self, *, final: bool) -> dict[str, Any]:

        out = self.wd.after if final else self.wd.before

        def evaluate() -> None:
            if final:  # the last phase's weights
                last = len(read_policy(self.wd.policy).policy.phases) - 1
                model = str(self.wd.final_weights(last))
            else:
                model = self.base().path
            label = "evaluate final" if final else "evaluate base"
            heldout = self.loaded_data().heldout
            run_evaluation(self.spec, heldout, model, self.sandbox, out, self.reporter, label=label)

        name = "evaluate-after" if final else "evaluate-before"
        self._stage(name, evaluation_complete(out), evaluate, model=not final)
        return _dump(evaluate_result(_read_json(out / EVALUATION_FILE)))

    def loaded_data(self) -> RunData:
        if self._data is None:
            self._data = read_data(self.wd.data)
        return self._data

    def base(self) -> ResolvedModel:
        """The base model, resolved once per invocation (the tiny preset is built from the problems)."""
        if self._base is None:
            self._base = self._timed(
                "model", lambda: base_model(self.spec, self.loaded_data(), self.model_cache, self.reporter)
            )
        return self._base

    def _train(self, index: int, selection: Selection, on_step: Callable[[Mapping[str, Any]], None]) -> None:
        from tarot_jobs.pipeline.stages.train import PhaseRequest, plan_for, train_phase

        request = PhaseRequest(
            self.spec, selection, self.loaded_data(), self.base(), self.wd.train, index, resume=True
        )
        plans = plan_for(request)
        label = phase_label(index, len(plans), plans[index].tiers)
        with step_progress(self.reporter, label, plans[index].steps, on_step) as advance:
            if self.spec.training_processes() > 1:
                self._train_processes(index, advance)
            else:
                train_phase(request, self.sandbox, on_step=advance, say=self.reporter.log)

    def _train_processes(self, index: int, advance: Callable[[dict[str, Any]], None]) -> None:
        """Phase `index` as the spec's world size of `tarot train` processes under torchrun, all on this
        machine (gloo on CPU, NCCL on GPUs: accelerate picks). Their log goes to a file; the steps the
        main process records (steps.jsonl) drive the progress display and status.json meanwhile."""
        from tarot_jobs.pipeline.training.steplog import STEPS_FILE, read_jsonl

        world = self.spec.training_processes()
        run_dir = phase_dir(self.wd.train, index)
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path, steps_path = run_dir / PROCESSES_LOG, run_dir / STEPS_FILE
        # python -m tarot_jobs.cli: the same install as this process, whatever PATH says.
        command = [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}"),
            *("-m", "tarot_jobs.cli", "train", str(self.spec_file), "--phase", str(index), "--resume"),
            *("--out", str(self.wd.train), "--policy", str(self.wd.policy), "--data", str(self.wd.data)),
            *("--model-cache", str(self.model_cache)),
        ]
        env = {name: value for name, value in os.environ.items() if name != RESULT_FILE_VARIABLE}
        self.reporter.log(f"train-{index}: {world} processes (torchrun), their log in {log_path}")
        shown = max((r["step"] for r in read_jsonl(steps_path)), default=0)
        with (
            log_path.open("ab") as log,
            subprocess.Popen(command, stdout=log, stderr=log, env=env) as workers,
        ):
            while True:
                finished = workers.poll() is not None  # read the steps once more after the end
                for record in read_jsonl(steps_path):
                    if record["step"] > shown:
                        shown = record["step"]
                        advance(record)
                if finished:
                    break
                time.sleep(STEPS_POLL_S)
        if workers.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-PROCESSES_LOG_TAIL:])
            raise StageError(
                f"train phase {index}: the {world} training processes failed (torchrun exit "
                f"{workers.returncode}); the end of {log_path}:\n{tail}"
            )

    def _write_policy(self, selection: Selection) -> None:
        """policy.json, the planner's selection as the train stage and the report read it."""
        if self.wd.policy.is_file() and read_policy(self.wd.policy) == selection:
            return
        self._timed("select", lambda: write_policy(selection, self.wd.root))

    def _stage(self, name: str, complete: bool, action: Callable[[], object], *, model: bool = False) -> None:
        """Run `action` unless the output is complete; with `model`, the base model is resolved first,
        outside the stage's timing (timings.json keeps building the tiny model apart, as `model`)."""
        if complete:
            self.reporter.log(f"{name}: complete output found, skipped")
            return
        if model:
            self.base()
        self.reporter.log(f"{name}: started")
        started = time.monotonic()
        action()
        self._record(name, time.monotonic() - started)
        self.reporter.log(f"{name}: done in {self.timings[name]:.1f} s")

    def _timed(self, name: str, action: Callable[[], T]) -> T:
        """A step that runs every time (loading the model); its first, costliest run is the one recorded."""
        started = time.monotonic()
        result = action()
        if name not in self.timings:
            self._record(name, time.monotonic() - started)
        return result

    def _record(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 2)
        write_json_atomically(self.wd.root / TIMINGS_FILE, self.timings)


def _report(
    spec_file: Path,
    spec: TarotRunSpec,
    wd: Workdir,
    reporter: Reporter,
    timings: dict[str, float],
    tiny: bool,
) -> dict[str, Any]:
    """report.json, report.md and curves.png from the stages' files."""
    from tarot_jobs.pipeline.stages.train import read_phase_summary
    from tarot_jobs.pipeline.training.steplog import STEPS_FILE, read_jsonl

    data = read_data(wd.data)
    selection = read_policy(wd.policy)
    count = len(selection.policy.phases)
    phases = [read_phase_summary(wd.train, i) for i in range(count)]
    before = _read_json(wd.before / EVALUATION_FILE) if spec.evaluation.baseline else None
    steps = [record for i in range(count) for record in read_jsonl(phase_dir(wd.train, i) / STEPS_FILE)]
    report = build_report(
        spec_file=str(spec_file),
        model=spec.model.name,
        data_summary=data.summary,
        capability=_read_json(wd.probe / CAPABILITY_FILE),
        selection=selection.model_dump(mode="json"),
        phases=phases,
        before=before,
        after=_read_json(wd.after / EVALUATION_FILE),
        stage_seconds=timings,
    )
    write_report(wd.root, report, steps, tiny=tiny)
    reporter.log(f"report: {wd.root / REPORT_MD}")
    return report


def _failure(exc: Exception) -> str:
    """ObservedChild.failure for a stage's error: "Reason: message", BadInput when retrying cannot help."""
    if isinstance(exc, BAD_INPUT_ERRORS):
        reason = planner.BAD_INPUT
    elif isinstance(exc, SandboxUnavailable):
        reason = "SandboxUnavailable"
    else:
        reason = type(exc).__name__
    return f"{reason}: {exc}"


def _dump(result: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def claim_workdir(wd: Workdir, spec: TarotRunSpec) -> None:
    """Tie the workdir to its spec; spec.suspend may change between invocations (it is how a run pauses)."""
    current = spec.model_dump(mode="json", exclude={"suspend"})
    copy = wd.root / SPEC_COPY
    if copy.is_file():
        claimed = json.loads(copy.read_text())
        claimed.pop("suspend", None)
        if claimed != current:
            raise StageError(
                f"{wd.root}: this workdir holds a run of a different spec ({copy}); "
                "use a new --workdir (or remove this one) to run the changed spec"
            )
        return
    wd.root.mkdir(parents=True, exist_ok=True)
    write_json_atomically(copy, current)


def _read_timings(wd: Workdir) -> dict[str, float]:
    path = wd.root / TIMINGS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
