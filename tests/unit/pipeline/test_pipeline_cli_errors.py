"""Bad input fails before any training starts, and the message names the field or file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import run_tarot

# Each row: the spec ({tmp} stands for the test's folder), the command (`run` writes to DIR/run,
# `train` to DIR/out), what stderr must name, and what must not exist under that output folder after
# ("" is the folder itself).
CASES = [
    pytest.param(
        "model: {name: tiny}\ntraining: {maxStep: 3}\n",
        "run",
        ["training.maxStep", "maxSteps"],  # the field, and the suggestion
        [""],
        id="unknown spec field is named and nothing is written",
    ),
    pytest.param(
        "training: {numGenerations: 3, perDeviceTrainBatchSize: 8}\n",
        "train",
        ["training.numGenerations"],
        [""],
        id="bad value is named for train",
    ),
    pytest.param(
        "dataset: {source: {tmp}/nowhere.jsonl}\ncurriculum: {policy: static}\n",
        "run",
        ["dataset.source", "nowhere.jsonl"],
        ["train", "probe"],
        id="missing data fails before training",
    ),
    pytest.param(
        "evaluation: {extraFiles: [/no/such/humaneval.jsonl]}\n",
        "run",
        ["evaluation.extraFiles[0]"],
        ["data"],
        id="missing extra evaluation file fails before training",
    ),
    pytest.param(
        "training: {generation: vllm-colocate}\ncurriculum: {policy: static}\n",
        "train",
        ["training.generation: vllm-colocate needs vLLM"],
        ["phase-0"],
        id="vllm without vllm is a clear error",
    ),
    # Only the operator starts a vLLM server; `tarot run` says so before any stage runs.
    pytest.param(
        "model: {name: org/coder-0.5b}\ntraining: {generation: vllm-server}\ncurriculum: {policy: static}\n",
        "run",
        ["training.vllmServer.url", "trl vllm-serve"],
        ["data"],
        id="vllm server without a server is refused locally",
    ),
    pytest.param(
        "curriculum: {policy: static}\n",
        "train",
        ["policy.json", "tarot select"],
        [],
        id="train without policy says to select first",
    ),
]


@pytest.mark.parametrize(("text", "command", "named", "not_written"), CASES)
def test_bad_input_is_named_before_training(
    tmp_path: Path, text: str, command: str, named: list[str], not_written: list[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text.replace("{tmp}", str(tmp_path)))
    if command == "run":
        out = tmp_path / "run"
        result = run_tarot("run", spec, "--workdir", out)
    else:
        out = tmp_path / "out"
        result = run_tarot("train", spec, "--phase", "0", "--out", out)
    assert result.returncode == 2
    for name in named:
        assert name in result.stderr
    for path in not_written:
        assert not (out / path).exists(), path
