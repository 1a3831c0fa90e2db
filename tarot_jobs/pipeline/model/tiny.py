"""The built-in `tiny` model: a small causal LM made entirely offline.

It exists to exercise the pipeline (tests, the quickstart, CI) on a CPU with
no model hub. It is not a code model and learns little: a two-layer Llama with
a 64-wide residual stream and a byte-level BPE tokenizer trained on the
training problems' own text.

`model.tiny` in the spec sizes it and can warm it up on another problem set
(`warmupSource`, e.g. `toy:warmup`): SFT on the RL problems themselves
memorises them and leaves RL no failures to learn from.

A randomly initialised model only emits noise, every reward would be zero and
GRPO would have no signal at all (equal rewards give zero advantages). So the
preset ends with a short supervised warm-up on the *training* split's gold
answers, formatted exactly as the rewards expect (a ```python block). The model
then half-remembers those programs: rewards on training prompts vary, which is
what the pipeline needs to be exercised for real, while held-out pass rates
stay near zero. Nothing here says anything about how a real model would learn.

Everything is deterministic given the config and the problems, and the result
is cached under a content hash, so every stage of a run loads the same weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tarot_jobs.pipeline.model.prompts import reference_answer, render_prompt, user_message
from tarot_jobs.problems.model import Problem
from tarot_jobs.spec.model import TinyModelSpec

SPECIAL_TOKENS = ("<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|end|>"

# Each turn is `<|role|>` newline, content, `<|end|>`; the generation prompt opens
# the assistant turn, so the model's answer ends when it emits `<|end|>` (eos).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# A little general Python so common tokens exist even for a handful of problems.
_SEED_CORPUS = (
    "import sys\nfrom collections import Counter, defaultdict, deque\n",
    "def main():\n    data = sys.stdin.read().split()\n    n = int(data[0])\n    print(n)\n",
    "n = int(input())\nvalues = list(map(int, input().split()))\nprint(sum(values))\n",
    "for i in range(n):\n    if i % 2 == 0:\n        total += i\n    else:\n        total -= 1\n",
    "while left < right:\n    mid = (left + right) // 2\nreturn max(a, b) if a > b else min(a, b)\n",
    "s = input().strip()\nprint(s[::-1])\nprint(' '.join(str(x) for x in sorted(values)))\n",
    "if __name__ == '__main__':\n    main()\n",
)


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the tiny model and of its warm-up. Changing any field changes the cache key."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 192
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 2048
    warmup_steps: int = 240
    warmup_learning_rate: float = 6e-3
    warmup_batch_size: int = 8
    warmup_max_tokens: int = 384
    seed: int = 0


def tiny_config(spec: TinyModelSpec) -> TinyModelConfig:
    """The build the spec's `model.tiny` asks for (the defaults are the quickstart's model)."""
    return TinyModelConfig(
        hidden_size=spec.hidden_size,
        intermediate_size=3 * spec.hidden_size,
        num_layers=spec.layers,
        warmup_steps=spec.warmup_steps,
        warmup_learning_rate=spec.warmup_learning_rate,
        seed=spec.seed,
    )


def warmup_problems(spec: TinyModelSpec, train_problems: Sequence[Problem]) -> list[Problem]:
    """The warm-up set: `model.tiny.warmupSource` (e.g. toy:warmup, disjoint from the RL problems),
    or else the training problems themselves."""
    if spec.warmup_source is None:
        return list(train_problems)
    from tarot_jobs.problems.loaders import load_problems

    return load_problems(spec.warmup_source).problems


def tiny_model_dir(
    cache_dir: Path,
    train_problems: Sequence[Problem],
    config: TinyModelConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The directory of the tiny model for these problems, building it on first use."""
    config = config or TinyModelConfig()
    key = _cache_key(config, train_problems)
    target = cache_dir / f"tiny-{key}"
    if (target / "tiny.json").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A private staging directory per builder, renamed into place when complete:
    # concurrent builders never see (or clobber) each other's half-written files.
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".tiny-{key}-"))
    try:
        build_tiny_model(staging, train_problems, config, progress)
        if not (target / "tiny.json").is_file():  # else another process finished first
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_tiny_model(
    out_dir: Path,
    train_problems: Sequence[Problem],
    config: TinyModelConfig,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Train the tokenizer, initialise the model, warm it up, and save both to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tarot_jobs.pipeline.model.runtime import prepare_runtime

    say = progress or (lambda _msg: None)
    started = time.monotonic()
    prepare_runtime(tiny=True)
    tokenizer = build_tokenizer(train_problems, config)
    torch.manual_seed(config.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(model_config)
    losses = _warm_up(model, tokenizer, train_problems, config, say) if train_problems else []
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # Written last: its presence marks a complete build.
    (out_dir / "tiny.json").write_text(
        json.dumps(
            {
                "config": asdict(config),
                "parameters": sum(p.numel() for p in model.parameters()),
                "warmup_problems": len(train_problems),
                "warmup_loss_first": losses[0] if losses else None,
                "warmup_loss_last": losses[-1] if losses else None,
                "build_seconds": round(time.monotonic() - started, 2),
            },
            indent=2,
        )
    )


def build_tokenizer(train_problems: Sequence[Problem], config: TinyModelConfig) -> Any:
    """A byte-level BPE tokenizer trained on the problems' own text, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(_SEED_CORPUS)
    for problem in train_problems:
        corpus.append(user_message(problem))
        corpus.append(reference_answer(problem))
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD_TOKEN, EOS_TOKEN)],
        padding_side="left",
        model_max_length=config.max_positions,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _warm_up(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    config: TinyModelConfig,
    say: Callable[[str], None],
) -> list[float]:
    """Next-token training on (prompt, gold answer) pairs, with the loss on the answer only."""
    import torch

    examples: list[tuple[list[int], list[int]]] = []
    for problem in problems:
        prompt_ids = tokenizer(render_prompt(tokenizer, problem), add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(reference_answer(problem) + EOS_TOKEN, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[-config.warmup_max_tokens :]
        labels = ([-100] * len(prompt_ids) + answer_ids)[-config.warmup_max_tokens :]
        examples.append((ids, labels))

    rng = random.Random(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.warmup_learning_rate)
    # Short linear ramp, then cosine decay to a tenth: a high rate early, fine steps late.
    ramp = max(config.warmup_steps // 20, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / ramp
            if step < ramp
            else 0.1 + 0.45 * (1 + math.cos(math.pi * (step - ramp) / max(config.warmup_steps - ramp, 1)))
        ),
    )
    model.train()
    losses: list[float] = []
    for step in range(config.warmup_steps):
        batch = [examples[rng.randrange(len(examples))] for _ in range(config.warmup_batch_size)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, labs) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(labs)] = torch.tensor(labs)
            attention[row, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(round(float(loss.item()), 4))
        if (step + 1) % 20 == 0 or step + 1 == config.warmup_steps:
            say(f"tiny model warm-up {step + 1}/{config.warmup_steps}: loss {losses[-1]:.3f}")
    model.eval()
    return losses


def _cache_key(config: TinyModelConfig, problems: Sequence[Problem]) -> str:
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    for problem in problems:
        digest.update(problem.model_dump_json().encode())
    return digest.hexdigest()[:12]
