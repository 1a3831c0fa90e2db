"""The evaluation stage (`tarot evaluate SPEC --model PATH --out DIR`), and sampling shared with the probe.

pass@1 (and pass@k when evaluation.samples = k > 1) per tier and overall on
the run's held-out problems, and on every `evaluation.extraFiles` problem set
(HumanEval shape or any format the loaders read). Writes samples.jsonl and,
last, evaluation.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.pipeline.model.generation import sample_completions
from tarot_jobs.pipeline.model.loading import load_for_inference
from tarot_jobs.pipeline.model.prompts import render_prompt
from tarot_jobs.pipeline.model.runtime import prepare_runtime
from tarot_jobs.pipeline.progress import Reporter
from tarot_jobs.pipeline.scoring import SampleScore, score_samples, summarize
from tarot_jobs.problems.model import Problem
from tarot_jobs.sandbox.types import SandboxBackend
from tarot_jobs.spec.model import TarotRunSpec

EVALUATION_FILE = "evaluation.json"
SAMPLES_FILE = "samples.jsonl"


def evaluation_complete(out_dir: Path) -> bool:
    return (out_dir / EVALUATION_FILE).is_file()


def load_extra_problems(spec: TarotRunSpec) -> dict[str, list[Problem]]:
    """Each `evaluation.extraFiles` entry's problems, keyed by the file as written in the spec."""
    from tarot_jobs.problems.errors import ProblemDataError
    from tarot_jobs.problems.loaders import load_problems

    extra: dict[str, list[Problem]] = {}
    for i, source in enumerate(spec.evaluation.extra_files):
        try:
            extra[source] = load_problems(source).problems
        except ProblemDataError as exc:
            raise StageError(f"evaluation.extraFiles[{i}]: {exc}") from exc
    return extra


def measure(
    model: Any,
    tokenizer: Any,
    spec: TarotRunSpec,
    problems: Sequence[Problem],
    sandbox: SandboxBackend,
    reporter: Reporter,
    *,
    label: str,
    samples: int,
    temperature: float,
    max_new_tokens: int,
) -> list[list[SampleScore]]:
    """Sample `samples` completions per problem and run each on all of the problem's tests."""
    prompts = [render_prompt(tokenizer, p, spec.training.max_prompt_length) for p in problems]
    with reporter.task(f"{label}: sampling", len(prompts)) as task:
        completions = sample_completions(
            model,
            tokenizer,
            prompts,
            samples=samples,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=spec.training.seed,
            progress=task.advance,
        )
    with reporter.task(f"{label}: running tests", len(problems) * samples) as task:
        return score_samples(
            problems,
            completions,
            sandbox,
            time_limit_s=spec.sandbox.time_limit_s,
            memory_limit_mb=spec.sandbox.memory_limit_mb,
            float_tolerance=spec.reward.float_tolerance,
            progress=task.advance,
        )


def write_samples(
    path: Path, scores: Sequence[Sequence[SampleScore]], extra: dict[str, Any] | None = None
) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for group in scores:
            for i, score in enumerate(group):
                out.write(json.dumps({**(extra or {}), **score.record(i)}) + "\n")
    tmp.replace(path)


def run_evaluation(
    spec: TarotRunSpec,
    heldout: Sequence[Problem],
    model_path: str,
    sandbox: SandboxBackend,
    out_dir: Path,
    reporter: Reporter,
    *,
    label: str = "evaluate",
) -> dict[str, Any]:
    """Evaluate `model_path` (full weights or a LoRA adapter) and write evaluation.json."""
    ev = spec.evaluation
    extra_sets = load_extra_problems(spec)  # fail on a bad extra file before loading any model
    problems = list(heldout[: ev.problems] if ev.problems is not None else heldout)
    started = time.monotonic()
    tiny = spec.model.name == "tiny"
    prepare_runtime(tiny)
    reporter.log(f"{label}: loading {model_path}")
    model, tokenizer = load_for_inference(model_path, spec.model, tiny=tiny)
    ks = sorted({1, ev.samples})
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = measure(
        model, tokenizer, spec, problems, sandbox, reporter, label=f"{label} held-out", **_sampling(spec)
    )
    result: dict[str, Any] = {
        "model": model_path,
        "settings": _sampling(spec),
        "heldout": summarize(scores, ks),
        "extra": {},
    }
    write_samples(out_dir / SAMPLES_FILE, scores, {"set": "heldout"})
    for source, extra_problems in extra_sets.items():
        extra_scores = measure(
            model,
            tokenizer,
            spec,
            extra_problems,
            sandbox,
            reporter,
            label=f"{label} {Path(source).name}",
            **_sampling(spec),
        )
        result["extra"][source] = summarize(extra_scores, ks)
        with (out_dir / SAMPLES_FILE).open("a", encoding="utf-8") as out:
            for group in extra_scores:
                for i, score in enumerate(group):
                    out.write(json.dumps({"set": source, **score.record(i)}) + "\n")
    result["seconds"] = round(time.monotonic() - started, 2)
    write_json_atomically(out_dir / EVALUATION_FILE, result)
    return result


def _sampling(spec: TarotRunSpec) -> dict[str, Any]:
    ev = spec.evaluation
    return {"samples": ev.samples, "temperature": ev.temperature, "max_new_tokens": ev.max_new_tokens}
