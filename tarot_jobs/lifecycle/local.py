"""`tarot run SPEC --workdir DIR`: the whole pipeline on this machine, stage after stage.

    data → probe → select → train phase 0..n-1 → evaluate base → evaluate final → report

Each stage calls the same function as its own subcommand and writes the same
files, so the workdir looks like a cluster run's volume:

    DIR/spec.json                      the spec this workdir belongs to
    DIR/data/{train,heldout}.jsonl, check.json
    DIR/probe/capability.json, samples.jsonl
    DIR/policy.json
    DIR/train/phase-<i>/...            (train.py)
    DIR/eval/before/evaluation.json, DIR/eval/after/evaluation.json
    DIR/report.json, report.md, curves.png

A stage whose complete output exists is skipped (a training phase resumes
from its newest complete checkpoint), so rerunning after an interruption
continues where it stopped. A workdir is tied to its spec: rerunning it with
a changed spec is refused rather than mixing two runs' outputs.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.pipeline.context import base_model, open_sandbox
from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.pipeline.progress import Reporter
from tarot_jobs.pipeline.stages.data import data_complete, prepare_data, read_data, write_data
from tarot_jobs.pipeline.stages.evaluate import (
    EVALUATION_FILE,
    evaluation_complete,
    load_extra_problems,
    run_evaluation,
)
from tarot_jobs.pipeline.stages.probe import CAPABILITY_FILE, probe_complete, run_probe
from tarot_jobs.pipeline.stages.report import REPORT_MD, build_report, write_report
from tarot_jobs.pipeline.stages.select import POLICY_FILE, read_policy, select, write_policy
from tarot_jobs.sandbox.types import SandboxBackend
from tarot_jobs.spec.model import TarotRunSpec, load_spec

if TYPE_CHECKING:
    from tarot_jobs.pipeline.stages.train import PhaseRequest

SPEC_COPY = "spec.json"
TIMINGS_FILE = "timings.json"
T = TypeVar("T")


class Workdir:
    """The paths of a local run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.probe = root / "probe"
        self.policy = root / POLICY_FILE
        self.train = root / "train"
        self.before = root / "eval" / "before"
        self.after = root / "eval" / "after"
        self.models = root / "models"


def run_pipeline(
    spec_file: Path, workdir: Path, reporter: Reporter, model_cache: Path | None = None
) -> dict[str, Any]:
    """Run (or finish) every stage; returns report.json's content."""
    from tarot_jobs.pipeline.stages.train import (
        PhaseRequest,
        check_training_options,
        final_weights,
        phase_complete,
        plan_phases,
        read_phase_summary,
    )

    spec = load_spec(spec_file)  # SpecError names every bad field, before anything runs
    wd = Workdir(workdir)
    _claim_workdir(wd, spec)
    check_training_options(spec)
    load_extra_problems(spec)
    timings = _read_timings(wd)
    cache = model_cache or wd.models

    stages = _Stages(timings, wd, reporter)
    with open_sandbox(spec) as sandbox:
        stages.run(
            "data",
            data_complete(wd.data),
            lambda: write_data(prepare_data(spec, sandbox, reporter.log), wd.data),
        )
        data = read_data(wd.data)
        reporter.log(f"data: {len(data.train)} training and {len(data.heldout)} held-out problems")
        base = stages.timed("model", lambda: base_model(spec, data, cache, reporter))

        stages.run(
            "probe",
            probe_complete(wd.probe),
            lambda: run_probe(spec, data.heldout, base, sandbox, wd.probe, reporter),
        )
        capability = json.loads((wd.probe / CAPABILITY_FILE).read_text())
        reporter.log(f"probe: capability score {capability['score']:.3f}")

        stages.run(
            "select",
            wd.policy.is_file(),
            lambda: write_policy(select(spec, wd.probe / CAPABILITY_FILE), wd.root),
        )
        selection = read_policy(wd.policy)
        reporter.log(f"select: {selection.policy.name}: {selection.reason}")

        plans = plan_phases(spec, selection.policy, len(data.train))
        for plan in plans:
            request = PhaseRequest(spec, selection, data, base, wd.train, plan.index, resume=True)
            label = (
                f"train phase {plan.index + 1}/{len(plans)} [{'+'.join(t[0].upper() for t in plan.tiers)}]"
            )
            stages.run(
                f"train-{plan.index}",
                phase_complete(wd.train, plan.index),
                functools.partial(_train_with_progress, request, sandbox, reporter, label, plan.steps),
            )
        phases = [read_phase_summary(wd.train, plan.index) for plan in plans]
        final = final_weights(wd.train, len(plans) - 1)

        before = None
        if spec.evaluation.baseline:
            stages.run(
                "evaluate-before",
                evaluation_complete(wd.before),
                lambda: run_evaluation(
                    spec, data.heldout, base.path, sandbox, wd.before, reporter, label="evaluate base"
                ),
            )
            before = json.loads((wd.before / EVALUATION_FILE).read_text())
        stages.run(
            "evaluate-after",
            evaluation_complete(wd.after),
            lambda: run_evaluation(
                spec, data.heldout, str(final), sandbox, wd.after, reporter, label="evaluate final"
            ),
        )
        after = json.loads((wd.after / EVALUATION_FILE).read_text())

    from tarot_jobs.pipeline.stages.train import phase_dir
    from tarot_jobs.pipeline.training.steplog import STEPS_FILE, read_jsonl

    steps = [record for plan in plans for record in read_jsonl(phase_dir(wd.train, plan.index) / STEPS_FILE)]
    report = build_report(
        spec_file=str(spec_file),
        model=spec.model.name,
        data_summary=data.summary,
        capability=capability,
        selection=selection.model_dump(mode="json"),
        phases=phases,
        before=before,
        after=after,
        stage_seconds=timings,
    )
    write_report(wd.root, report, steps, tiny=base.is_tiny)
    reporter.log(f"report: {wd.root / REPORT_MD}")
    return report


def _train_with_progress(
    request: PhaseRequest, sandbox: SandboxBackend, reporter: Reporter, label: str, steps: int
) -> None:
    """Train one phase with a progress task advanced by each logged step (reward shown)."""
    from tarot_jobs.pipeline.stages.train import train_phase

    with reporter.task(label, steps) as task:
        done = 0

        def on_step(record: dict[str, Any]) -> None:
            nonlocal done
            reward = record.get("reward")
            task.advance(record["step"] - done, info="" if reward is None else f"reward {reward:.3f}")
            done = record["step"]

        train_phase(request, sandbox, on_step=on_step, say=reporter.log)


class _Stages:
    """Runs a stage unless its complete output exists, and records its wall time in timings.json."""

    def __init__(self, timings: dict[str, float], wd: Workdir, reporter: Reporter) -> None:
        self.timings, self.wd, self.reporter = timings, wd, reporter

    def run(self, name: str, complete: bool, action: Callable[[], object]) -> None:
        if complete:
            self.reporter.log(f"{name}: complete output found, skipped")
            return
        self.reporter.log(f"{name}: started")
        started = time.monotonic()
        action()
        self._record(name, time.monotonic() - started)
        self.reporter.log(f"{name}: done in {self.timings[name]:.1f} s")

    def timed(self, name: str, action: Callable[[], T]) -> T:
        """A step that runs every time (loading the model); its first, costliest run is the one recorded."""
        started = time.monotonic()
        result = action()
        if name not in self.timings:
            self._record(name, time.monotonic() - started)
        return result

    def _record(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 2)
        write_json_atomically(self.wd.root / TIMINGS_FILE, self.timings)


def _claim_workdir(wd: Workdir, spec: TarotRunSpec) -> None:
    current = spec.model_dump(mode="json")
    copy = wd.root / SPEC_COPY
    if copy.is_file():
        if json.loads(copy.read_text()) != current:
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
