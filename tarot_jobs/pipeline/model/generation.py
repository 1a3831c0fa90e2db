"""Sampling completions with plain `generate` (probe and evaluation; training samples inside trl)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def sample_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    samples: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> list[list[str]]:
    """`samples` completions for each prompt (greedy when temperature is 0), as decoded text.

    Prompts are already chat-formatted text, so no special tokens are added.
    `progress(n)` is called with the number of prompts finished after each batch.
    """
    import torch

    torch.manual_seed(seed)
    device = next(model.parameters()).device
    greedy = temperature <= 0
    per_prompt = 1 if greedy else samples
    results: list[list[str]] = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        encoded = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        sampling: dict[str, Any] = (
            {"do_sample": False}
            if greedy
            else {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        )
        with torch.no_grad():
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                num_return_sequences=per_prompt,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for i in range(len(chunk)):
            group = texts[i * per_prompt : (i + 1) * per_prompt]
            # Greedy decoding is deterministic: every "sample" is the same completion.
            results.append(group * samples if greedy else group)
        if progress is not None:
            progress(len(chunk))
    return results
