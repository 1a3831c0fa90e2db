"""Helpers for the pipeline tests: run the real `tarot` CLI in a subprocess, share one tiny model.

(Not named conftest.py: tests import these functions, and tests/conftest.py already owns that module name.)
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from tarot_jobs.pipeline.training.steplog import COMPLETIONS_FILE, read_jsonl

# The tests in tests/unit/pipeline and tests/e2e build the tiny model from the same bundled problems;
# the cache is content-addressed, so they share one build per machine.
SHARED_MODEL_CACHE = Path(tempfile.gettempdir()) / "tarot-test-model-cache"


# The smallest run that still passes every stage on a cluster: one phase of two steps, two probe and
# evaluation problems, on the tiny model (a TarotRun's spec).
TINY_RUN_SPEC: dict[str, Any] = {
    "model": {"name": "tiny", "dtype": "float32"},
    "dataset": {"source": "bundled"},
    "probe": {"problems": 2, "samples": 1, "temperature": 0.7, "maxNewTokens": 32},
    "curriculum": {"policy": "custom", "phases": [{"start": 0.0, "end": 1.0, "tiers": ["basic", "complex"]}]},
    "training": {
        "maxSteps": 2,
        "learningRate": 1.0e-4,
        "numGenerations": 4,
        "perDeviceTrainBatchSize": 4,
        "maxCompletionLength": 32,
        "temperature": 0.6,
        "saveSteps": 2,
    },
    "sandbox": {"workers": 1, "timeLimitSeconds": 2, "memoryLimitMb": 256},
    "evaluation": {"problems": 2, "samples": 1, "temperature": 0.0, "maxNewTokens": 32},
    "resources": {"cpu": "500m", "memory": "1Gi"},
    "storage": {"size": "1Gi"},
}


def tarot_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-c", "from tarot_jobs.cli import main; main()", *map(str, args)]


def run_tarot(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tarot_command(*args), capture_output=True, text=True, timeout=timeout, env=tarot_env()
    )


def tarot_env() -> dict[str, str]:
    return {**os.environ, "TAROT_MODEL_CACHE": str(SHARED_MODEL_CACHE), "COLUMNS": "200"}


def prompts_by_step(train_dir: Path, phases: int) -> dict[int, Counter[str]]:
    """The problems each step trained on (with their repeats), from the phases' completions.jsonl."""
    drawn: dict[int, Counter[str]] = {}
    for index in range(phases):
        for completion in read_jsonl(train_dir / f"phase-{index}" / COMPLETIONS_FILE):
            drawn.setdefault(completion["step"], Counter())[completion["problem_id"]] += 1
    return drawn


def agree_within_sampling_noise(one: list[float], two: list[float], what: str) -> None:
    """Two runs that share their data order and starting weights and differ only in the random streams
    that sample completions (one process vs several): their per-step values are two samples of one
    process, so their means must agree within 3 standard errors of the difference, plus 0.01 for the
    series that are (near) constant.

    This catches a gross difference (a run that diverges, or learns from other data); it is not
    sensitive to a subtle one: on the tiny model a run with twice the learning rate stays within it
    (KL 2.44 vs 2.49). The exact proofs of one training are elsewhere: the same prompts per step, and
    the same weights in every process."""
    difference = abs(statistics.fmean(one) - statistics.fmean(two))
    error = math.sqrt(statistics.variance(one) / len(one) + statistics.variance(two) / len(two))
    assert difference <= 3 * error + 0.01, f"{what}: mean {statistics.fmean(one)} vs {statistics.fmean(two)}"
