"""Every spec.training field reaches trl's GRPOConfig (stages/train.py's grpo_config_arguments), or is
named below as read elsewhere: a new training field that is neither fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tarot_jobs.pipeline.stages.train import grpo_config_arguments
from tarot_jobs.spec.model import TarotRunSpec, TrainingSpec, VllmServerSpec

# spec.training field → (a value other than its default, the GRPOConfig field it becomes, its value there).
REACHES_GRPO_CONFIG: dict[str, tuple[Any, str, Any]] = {
    "learning_rate": (3e-5, "learning_rate", 3e-5),
    "beta": (0.07, "beta", 0.07),
    "num_generations": (4, "num_generations", 4),
    "per_device_train_batch_size": (12, "per_device_train_batch_size", 12),
    "gradient_accumulation_steps": (3, "gradient_accumulation_steps", 3),
    "max_completion_length": (333, "max_completion_length", 333),
    "temperature": (0.7, "temperature", 0.7),
    "gradient_checkpointing": (True, "gradient_checkpointing", True),
    "seed": (7, "seed", 7),
    "save_steps": (9, "save_steps", 9),
    "logging_steps": (2, "logging_steps", 2),
    "loss_type": ("bnpo", "loss_type", "bnpo"),
    "lr_scheduler_type": ("cosine", "lr_scheduler_type", "cosine"),
    "warmup_ratio": (0.25, "warmup_steps", 0.25),  # transformers reads a float < 1 as a share
    "generation": ("vllm-server", "vllm_mode", "server"),
    "vllm_server": (
        {"url": "http://vllm:8000", "timeout_seconds": 123.0},
        "vllm_server_base_url",
        "http://vllm:8000",
    ),
}
# spec.training.vllmServer field → the GRPOConfig field it becomes (the value set in the row above).
SERVER_REACHES_GRPO_CONFIG = {"url": "vllm_server_base_url", "timeout_seconds": "vllm_server_timeout"}

# Read elsewhere, and why.
NOT_GRPO_CONFIG_FIELDS = {
    "max_steps": "the run's step budget: the phase plans' last step is GRPOConfig's max_steps (phases.py)",
    "epochs": "the run's step budget, as max_steps",
    "max_prompt_length": "prompts are truncated as they are rendered (model/prompts.py); not trl's",
    "eval_every_steps": "the yardstick callback (training/yardstick.py)",
    "eval_problems": "the yardstick callback (training/yardstick.py)",
    "max_retries": "the executors: retries of a failed phase Job",
}
SERVER_NOT_GRPO_CONFIG_FIELDS = {
    "gpus": "the server's pod (operator/tarot_operator/generation.py)",
    "tensor_parallel_size": "the server's command line (operator/tarot_operator/generation.py)",
    "port": "the server's pod and Service (operator/tarot_operator/generation.py)",
}


def _arguments(tmp_path: Path) -> dict[str, Any]:
    training = {name: value for name, (value, _, _) in REACHES_GRPO_CONFIG.items()}
    spec = TarotRunSpec.model_validate({"model": {"name": "org/coder"}, "training": training})
    return grpo_config_arguments(spec, tmp_path, 40, cuda=False, bf16=False, fp16=False)


def test_every_training_field_is_mapped_or_named_as_read_elsewhere() -> None:
    assert set(REACHES_GRPO_CONFIG).isdisjoint(NOT_GRPO_CONFIG_FIELDS)
    assert set(TrainingSpec.model_fields) == set(REACHES_GRPO_CONFIG) | set(NOT_GRPO_CONFIG_FIELDS)
    assert set(VllmServerSpec.model_fields) == set(SERVER_REACHES_GRPO_CONFIG) | set(
        SERVER_NOT_GRPO_CONFIG_FIELDS
    )


def test_every_mapped_field_reaches_its_grpo_config_field(tmp_path: Path) -> None:
    arguments = _arguments(tmp_path)
    for name, (value, grpo_name, expected) in REACHES_GRPO_CONFIG.items():
        assert value != TrainingSpec.model_fields[name].default, f"{name}: test with a non-default value"
        assert arguments[grpo_name] == expected, name
    assert arguments["vllm_server_timeout"] == 123.0
    assert arguments["max_steps"] == 40


# trl's config still spells activation checkpointing the old way (as in stages/train.py).
@pytest.mark.filterwarnings("ignore:.*deprecated and will be removed in v6:FutureWarning")
def test_the_arguments_are_grpo_config_fields(tmp_path: Path) -> None:
    from trl import GRPOConfig

    arguments = _arguments(tmp_path)
    config = GRPOConfig(**arguments)
    for name in ("learning_rate", "beta", "num_generations", "loss_type", "vllm_server_timeout"):
        assert getattr(config, name) == arguments[name], name
