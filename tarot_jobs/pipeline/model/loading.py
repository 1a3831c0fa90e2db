"""Loading the model a stage works on: a Hugging Face causal LM, the tiny preset, or a phase's output.

`model.name` in the run spec is "tiny", "smollm2-135m" (gguf.py), a `.gguf`
file, a hub id or a local path. Every stage
turns it into a local directory first (`resolve_base_model`), so the tiny model
is built once and the same weights are probed, trained and evaluated. A
phase's output is either full weights or a LoRA adapter (adapter_config.json
beside it); `load_for_inference` and `load_for_training` handle both.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tarot_jobs.problems.model import Problem
from tarot_jobs.spec.model import LoraSpec, ModelSpec

log = logging.getLogger(__name__)

TINY = "tiny"
SMOLLM2 = "smollm2-135m"
ADAPTER_CONFIG = "adapter_config.json"
CACHE_ENV = "TAROT_MODEL_CACHE"


def default_model_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tarot" / "models")


@dataclass(frozen=True)
class ResolvedModel:
    """Where the base model's files are, and whether it is the tiny preset."""

    path: str  # a local directory or a hub id
    is_tiny: bool


def resolve_base_model(
    spec: ModelSpec,
    cache_dir: Path,
    train_problems: Sequence[Problem],
    progress: Callable[[str], None] | None = None,
) -> ResolvedModel:
    """The base model of a run, building the tiny preset (from the training problems) when asked."""
    if spec.name == TINY:
        from tarot_jobs.pipeline.model.tiny import tiny_config, tiny_model_dir, warmup_problems

        config = tiny_config(spec.tiny)
        warmup = warmup_problems(spec.tiny, train_problems)
        return ResolvedModel(str(tiny_model_dir(cache_dir, warmup, config, progress=progress)), True)
    if spec.name == SMOLLM2 or spec.name.endswith(".gguf"):
        from tarot_jobs.pipeline.model.gguf import gguf_model_dir

        return ResolvedModel(str(gguf_model_dir(spec.name, cache_dir, progress=progress)), False)
    return ResolvedModel(spec.name, _is_tiny_dir(spec.name))


def _is_tiny_dir(path: str) -> bool:
    return (Path(path) / "tiny.json").is_file()


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def torch_dtype(name: str, tiny: bool) -> Any:
    """The dtype to load weights in; `auto` is bf16 on a GPU that supports it, else fp32."""
    import torch

    if name == "auto":
        if not tiny and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def load_tokenizer(path: str, spec: ModelSpec) -> Any:
    """The model's tokenizer, padded on the left (generation) with a pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        path, revision=_revision(path, spec), trust_remote_code=spec.trust_remote_code
    )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_for_inference(path: str, spec: ModelSpec, *, tiny: bool) -> tuple[Any, Any]:
    """(model, tokenizer) ready to generate, on the GPU when there is one; adapters are merged."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch_dtype(spec.dtype, tiny)
    if is_adapter(path):
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(
            adapter_base(path), dtype=dtype, trust_remote_code=spec.trust_remote_code
        )
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(
            path, revision=_revision(path, spec), dtype=dtype, trust_remote_code=spec.trust_remote_code
        )
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    return model, load_tokenizer(path, spec)


def load_for_training(path: str, spec: ModelSpec, *, tiny: bool) -> Any:
    """The model to hand to GRPOTrainer: full weights, or a trainable LoRA adapter.

    With LoRA on, a fresh adapter wraps the base model in the first phase and
    a later phase continues the previous phase's adapter (`path` holds it).
    """
    from transformers import AutoModelForCausalLM

    dtype = torch_dtype(spec.dtype, tiny)
    if is_adapter(path):
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(
            adapter_base(path), dtype=dtype, trust_remote_code=spec.trust_remote_code
        )
        return PeftModel.from_pretrained(base, path, is_trainable=True)
    model = AutoModelForCausalLM.from_pretrained(
        path, revision=_revision(path, spec), dtype=dtype, trust_remote_code=spec.trust_remote_code
    )
    lora = lora_config(spec.lora)
    if lora is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, lora)


def lora_config(spec: LoraSpec) -> Any | None:
    """peft's LoraConfig for the spec, or None when LoRA is off."""
    if not spec.enabled:
        return None
    from peft import LoraConfig

    targets: str | list[str] = (
        "all-linear" if spec.target_modules == ["all-linear"] else list(spec.target_modules)
    )
    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def adapter_base(path: str | Path) -> str:
    """The base model an adapter directory was trained on (as peft recorded it)."""
    config = json.loads((Path(path) / ADAPTER_CONFIG).read_text())
    return str(config["base_model_name_or_path"])


def _revision(path: str, spec: ModelSpec) -> str | None:
    # A revision names a commit of the hub model; it means nothing for a local directory.
    return None if Path(path).exists() else spec.revision
