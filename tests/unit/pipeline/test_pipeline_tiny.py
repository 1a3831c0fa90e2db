"""The tiny preset: built offline, deterministic, loadable from its directory like any HF model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tarot_jobs.pipeline.model.loading import is_adapter, load_for_inference, resolve_base_model
from tarot_jobs.pipeline.model.prompts import render_prompt
from tarot_jobs.pipeline.model.tiny import EOS_TOKEN, TinyModelConfig, build_tiny_model, tiny_model_dir
from tarot_jobs.problems.bundled import load_bundled
from tarot_jobs.spec.model import ModelSpec

pytestmark = pytest.mark.slow

SMALL = TinyModelConfig(hidden_size=32, intermediate_size=64, warmup_steps=3, warmup_batch_size=2)


def test_build_is_deterministic_and_loads_back(tmp_path: Path) -> None:
    problems = load_bundled("train")[:3]
    build_tiny_model(tmp_path / "a", problems, SMALL)
    build_tiny_model(tmp_path / "b", problems, SMALL)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    model, tokenizer = load_for_inference(str(tmp_path / "a"), ModelSpec(name=str(tmp_path / "a")), tiny=True)
    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.pad_token != tokenizer.eos_token
    assert tokenizer.padding_side == "left"
    prompt = render_prompt(tokenizer, problems[0])
    assert prompt.startswith("<|user|>\n") and prompt.endswith("<|assistant|>\n")
    assert problems[0].statement.strip()[:40] in prompt
    # Byte-level BPE: any text survives a round trip, even characters the corpus never had.
    text = "print('héllo ☃')\n\tx = 1"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32


def test_cache_is_keyed_by_problems_and_config(tmp_path: Path) -> None:
    problems = load_bundled("train")[:2]
    first = tiny_model_dir(tmp_path, problems, SMALL)
    assert tiny_model_dir(tmp_path, problems, SMALL) == first  # reused, not rebuilt
    assert tiny_model_dir(tmp_path, problems[:1], SMALL) != first
    assert not list(tmp_path.glob(".tiny-*"))  # no staging left behind
    resolved = resolve_base_model(ModelSpec(name=str(first)), tmp_path, problems)
    assert resolved.is_tiny and resolved.path == str(first)
    assert not is_adapter(first)
