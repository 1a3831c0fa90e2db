"""The capability probe (`tarot probe SPEC --out DIR`): how good is the base model before training?

Samples `probe.samples` completions for the first `probe.problems` held-out
problems with the base model and runs every tier's tests. capability.json
holds pass@1 per tier and overall, the test pass rate per tier, the counts,
and `score`, the overall pass@1 that curriculum selection compares with its
threshold. samples.jsonl keeps every completion with its verdicts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.pipeline.model.loading import ResolvedModel, load_for_inference
from tarot_jobs.pipeline.model.runtime import prepare_runtime
from tarot_jobs.pipeline.progress import Reporter
from tarot_jobs.pipeline.scoring import OVERALL, summarize
from tarot_jobs.pipeline.stages.evaluate import SAMPLES_FILE, measure, write_samples
from tarot_jobs.problems.model import Problem
from tarot_jobs.sandbox.types import SandboxBackend
from tarot_jobs.spec.model import TarotRunSpec

CAPABILITY_FILE = "capability.json"


def probe_complete(out_dir: Path) -> bool:
    return (out_dir / CAPABILITY_FILE).is_file()


def run_probe(
    spec: TarotRunSpec,
    heldout: list[Problem],
    base: ResolvedModel,
    sandbox: SandboxBackend,
    out_dir: Path,
    reporter: Reporter,
) -> dict[str, Any]:
    """Probe the base model and write capability.json (last) and samples.jsonl."""
    probe = spec.probe
    problems = heldout[: probe.problems]
    started = time.monotonic()
    prepare_runtime(base.is_tiny)
    reporter.log(f"probe: loading {base.path}")
    model, tokenizer = load_for_inference(base.path, spec.model, tiny=base.is_tiny)
    scores = measure(
        model,
        tokenizer,
        spec,
        problems,
        sandbox,
        reporter,
        label="probe",
        samples=probe.samples,
        temperature=probe.temperature,
        max_new_tokens=probe.max_new_tokens,
    )
    summary = summarize(scores, ks=(1,))
    pass_at_1 = summary["pass@1"]
    capability = {
        "model": base.path,
        "score": pass_at_1[OVERALL] or 0.0,
        "pass_at_1": pass_at_1,
        "test_pass_rate": summary["test_pass_rate"],
        "counts": {**summary["counts"], "samples_per_problem": probe.samples},
        "verdicts": summary["verdicts"],
        "settings": {"temperature": probe.temperature, "max_new_tokens": probe.max_new_tokens},
        "seconds": round(time.monotonic() - started, 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_samples(out_dir / SAMPLES_FILE, scores)
    write_json_atomically(out_dir / CAPABILITY_FILE, capability)
    return capability
