"""The rewards inside a real trl GRPOTrainer: names, call convention, phases by progress, logged metrics.

The model is a randomly initialised one-layer Llama with a character-level
tokenizer, built here (no model hub). It never writes a program, so the
reward substitutes a known-correct program into every other completion:
trl's logged mean reward then has a known value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.rewards import TieredReward, format_reward
from tarot_jobs.sandbox.local import LocalSandbox

pytestmark = pytest.mark.slow

PRINT_ONE = Problem(
    id="p1",
    statement="Print 1.",
    gold_solution="print(1)",
    tests=[
        TestCase(input="", output="1\n", tier=Tier.BASIC),
        TestCase(input="", output="1\n", tier=Tier.EDGE),
    ],
)
CORRECT = "```python\nprint(1)\n```"


class HalfCorrectReward(TieredReward):
    """Replaces every other completion with a correct program and records the phase of each call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[int, int, list[str]]] = []

    def __call__(
        self, prompts: Any, completions: Any, problem_id: Any, trainer_state: Any = None, **kw: Any
    ) -> Any:
        completions = [CORRECT if i % 2 else c for i, c in enumerate(completions)]
        rewards = super().__call__(prompts, completions, problem_id, trainer_state, **kw)
        self.calls.append((trainer_state.global_step, self.current_phase_index(trainer_state), sorted(kw)))
        return rewards


def _tiny_model_and_tokenizer() -> tuple[Any, Any]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {chr(i): i - 32 for i in range(32, 127)}
    for special in ("\n", "<eos>", "<pad>"):
        vocab[special] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer.decoder = decoders.Fuse()
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>")
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=vocab["<eos>"],
        pad_token_id=vocab["<pad>"],
    )
    return LlamaForCausalLM(config), hf_tokenizer


def test_tiered_and_format_rewards_train_in_grpo_trainer(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    model, tokenizer = _tiny_model_and_tokenizer()
    dataset = datasets.Dataset.from_list([{"prompt": "Write code:", "problem_id": "p1"}] * 8)
    with LocalSandbox(workers=2) as sandbox:
        reward = HalfCorrectReward({"p1": PRINT_ONE}, get_policy("reverse"), sandbox)
        args = trl.GRPOConfig(
            output_dir=str(tmp_path),
            max_steps=5,
            per_device_train_batch_size=4,
            num_generations=4,
            max_completion_length=12,
            logging_steps=1,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            beta=0.0,
        )
        trainer = trl.GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[reward, format_reward],
            args=args,
            train_dataset=dataset,
        )
        assert trainer.reward_func_names == ["tiered_reward", "format_reward"]
        trainer.train()
    # Progress = global_step / max_steps picks reverse's phases: 0/5, 1/5=0.2, 2/5=0.4, 3/5=0.6, 4/5.
    assert [(step, phase) for step, phase, _ in reward.calls] == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 3)]
    assert reward.calls[0][2] == ["completion_ids", "log_extra", "log_metric"]
    logged = [entry for entry in trainer.state.log_history if "rewards/tiered_reward/mean" in entry]
    assert len(logged) == 5
    # Phase 0 of reverse allows complex tests only and this problem has none: nothing to earn.
    assert [entry["rewards/tiered_reward/mean"] for entry in logged] == [0.0] + [pytest.approx(0.5)] * 4
    assert "tiers/complex/pass_rate" not in logged[0]
    assert logged[1]["tiers/edge/pass_rate"] == pytest.approx(0.5)
    assert logged[4]["tiers/basic/pass_rate"] == pytest.approx(0.5)
