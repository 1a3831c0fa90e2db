"""Bad input fails before any training starts, and the message names the field or file."""

from __future__ import annotations

from pathlib import Path

from pipeline_helpers import run_tarot


def _write(tmp_path: Path, text: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    return spec


def test_unknown_spec_field_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    spec = _write(tmp_path, "model: {name: tiny}\ntraining: {maxStep: 3}\n")
    workdir = tmp_path / "run"
    result = run_tarot("run", spec, "--workdir", workdir)
    assert result.returncode == 2
    assert "training.maxStep" in result.stderr
    assert "maxSteps" in result.stderr  # the suggestion
    assert not workdir.exists()


def test_bad_value_is_named_for_train(tmp_path: Path) -> None:
    spec = _write(tmp_path, "training: {numGenerations: 3, perDeviceTrainBatchSize: 8}\n")
    result = run_tarot("train", spec, "--phase", "0", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "training.numGenerations" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_data_fails_before_training(tmp_path: Path) -> None:
    spec = _write(
        tmp_path, f"dataset: {{source: {tmp_path / 'nowhere.jsonl'}}}\ncurriculum: {{policy: static}}\n"
    )
    workdir = tmp_path / "run"
    result = run_tarot("run", spec, "--workdir", workdir)
    assert result.returncode == 2
    assert "dataset.source" in result.stderr and "nowhere.jsonl" in result.stderr
    assert not (workdir / "train").exists()
    assert not (workdir / "probe").exists()


def test_missing_extra_evaluation_file_fails_before_training(tmp_path: Path) -> None:
    spec = _write(tmp_path, "evaluation: {extraFiles: [/no/such/humaneval.jsonl]}\n")
    workdir = tmp_path / "run"
    result = run_tarot("run", spec, "--workdir", workdir)
    assert result.returncode == 2
    assert "evaluation.extraFiles[0]" in result.stderr
    assert not (workdir / "data").exists()


def test_vllm_without_vllm_is_a_clear_error(tmp_path: Path) -> None:
    spec = _write(tmp_path, "training: {generation: vllm-colocate}\ncurriculum: {policy: static}\n")
    result = run_tarot("train", spec, "--phase", "0", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "training.generation: vllm-colocate needs vLLM" in result.stderr
    assert not (tmp_path / "out" / "phase-0").exists()


def test_vllm_server_without_a_server_is_refused_locally(tmp_path: Path) -> None:
    # Only the operator starts a vLLM server; `tarot run` says so before any stage runs.
    spec = _write(
        tmp_path,
        "model: {name: org/coder-0.5b}\ntraining: {generation: vllm-server}\ncurriculum: {policy: static}\n",
    )
    workdir = tmp_path / "run"
    result = run_tarot("run", spec, "--workdir", workdir)
    assert result.returncode == 2
    assert "training.vllmServer.url" in result.stderr and "trl vllm-serve" in result.stderr
    assert not (workdir / "data").exists()


def test_train_without_policy_says_to_select_first(tmp_path: Path) -> None:
    spec = _write(tmp_path, "curriculum: {policy: static}\n")
    result = run_tarot("train", spec, "--phase", "0", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "policy.json" in result.stderr and "tarot select" in result.stderr
