"""The capability probe (`tarot probe SPEC --out DIR`): how good is the base model before training?

Samples `probe.samples` completions for the first `probe.problems` held-out
problems with the base model and runs every tier's tests. capability.json
holds pass@1 per tier and overall, the test pass rate per tier, the counts,
and `score`, the overall pass@1 that curriculum selection compares with its
threshold. samples.jsonl keeps every completion with its verdicts.

A probe never turns missing results into a capability: the reward runs a
completion the sandbox failed on again (a bounded number of times), and if
any still has no verdict the probe fails with SandboxUnavailable (exit 3)
instead of scoring it as a failure; a capability lowered that way would
silently pick the weak policy. The estimator is the sampled one (docs/pipeline.md, "Probe and
evaluation").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.pipeline.errors import StageError
from tarot_jobs.pipeline.model.loading import ResolvedModel, load_for_inference
from tarot_jobs.pipeline.model.runtime import prepare_runtime
from tarot_jobs.pipeline.progress import Reporter
from tarot_jobs.pipeline.scoring import OVERALL, SampleScore, summarize
from tarot_jobs.pipeline.stages.evaluate import SAMPLES_FILE, measure, write_samples
from tarot_jobs.problems.model import Problem
from tarot_jobs.sandbox.types import SandboxBackend, SandboxUnavailable
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
    require_verdicts(scores)
    summary = summarize(scores, ks=(1,))
    pass_at_1 = summary["pass@1"]
    if pass_at_1[OVERALL] is None:
        raise StageError(f"probe: no completion of the {len(problems)} probe problems could be scored")
    capability = {
        "model": base.path,
        "score": pass_at_1[OVERALL],
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


def require_verdicts(scores: list[list[SampleScore]]) -> None:
    """Fail unless every completion got a verdict (the reward already retried each failed run).

    Evaluation counts such a completion as failed; the probe cannot: a capability
    lowered by infrastructure failures would silently pick the weak policy.
    """
    failed = sum(1 for group in scores for s in group if s.execution_failed)
    if failed:
        total = sum(len(group) for group in scores)
        raise SandboxUnavailable(
            f"probe: the sandbox failed on {failed} of {total} completions even after retrying them; "
            "a capability measured without them would be wrong (counting them as failures would pick "
            "the weak policy). Check the sandbox and run the probe again."
        )
