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
    import datasets
    import trl

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


class FlakyTieredReward:
    """A tiered-reward stand-in: distinct rewards per completion, None for the ones the sandbox 'failed'.

    The None stands for what TieredReward returns when the sandbox fails on a
    completion after its retries; what is under test is what the trainer does with it.
    """

    __name__ = "tiered_reward"

    def __init__(self, failed: set[int]) -> None:
        self.failed = failed

    def __call__(self, prompts: Any, completions: Any, **kwargs: Any) -> list[float | None]:
        return [None if i in self.failed else (i % 4) / 3 for i in range(len(completions))]


def always_formatted(prompts: Any, completions: Any, **kwargs: Any) -> list[float]:
    """A second reward that returns a number for every completion (trl would sum a None beside it as 0)."""
    return [1.0] * len(completions)


def _drop_trainer(tmp_path: Path, failed: set[int]) -> Any:
    import datasets
    import trl
    from transformers import AutoModelForCausalLM, set_seed

    from tarot_jobs.pipeline.training.steplog import StepTally
    from tarot_jobs.pipeline.training.trainer import TarotGRPOTrainer

    set_seed(0)
    model, tokenizer = _tiny_model_and_tokenizer()
    # From a directory, so trl can load the same weights again as the KL reference.
    model.save_pretrained(tmp_path / "base")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    dataset = datasets.Dataset.from_list([{"prompt": f"Write code {i}:"} for i in range(2)])
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        beta=0.1,  # the KL term would give a dropped completion a gradient of its own
        seed=0,
    )
    return TarotGRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[FlakyTieredReward(failed), always_formatted],
        args=args,
        train_dataset=dataset,
        tally=StepTally(),
    )


def test_a_sample_the_sandbox_failed_on_is_dropped_from_the_step(tmp_path: Path) -> None:
    """A real TarotGRPOTrainer step: the dropped completion gets no gradient and its group's other
    completions get the advantages they would have had if it had never been generated."""
    import torch

    dropped = 1  # second completion of the first prompt's group (rows 0..3)
    trainer = _drop_trainer(tmp_path, {dropped})
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    torch.manual_seed(0)
    scored = trainer._generate_and_score_completions(batch)

    rows = len(scored["advantages"])
    assert rows == 8 and trainer.tally.dropped_samples == 1
    assert scored["completion_mask"][dropped].sum() == 0
    assert scored["completion_mask"][[r for r in range(rows) if r != dropped]].sum(dim=1).min() > 0
    # The expected advantages: each group normalised over the completions that have a reward,
    # the format reward (1.0 everywhere, weight 1) included; the dropped one gets none.
    totals = [(r % 4) / 3 + 1.0 for r in range(rows)]
    expected = []
    for group in (range(0, 4), range(4, 8)):
        kept = [totals[r] for r in group if r != dropped]
        mean = sum(kept) / len(kept)
        std = (sum((x - mean) ** 2 for x in kept) / (len(kept) - 1)) ** 0.5
        expected += [0.0 if r == dropped else (totals[r] - mean) / (std + 1e-4) for r in group]
    assert scored["advantages"].tolist() == pytest.approx(expected, abs=1e-4)
    assert scored["num_items_in_batch"] == scored["completion_mask"].sum()

    def gradient(inputs: dict[str, Any]) -> list[Any]:
        trainer.model.zero_grad()
        trainer.compute_loss(trainer.model, inputs).backward()
        return [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]

    trainer.current_gradient_accumulation_steps = 1  # what transformers' loop sets before each step
    reference = gradient(scored)
    # Change what the dropped completion says: if it entered the loss (policy term or KL), the gradient moves.
    altered = dict(scored)
    altered["completion_ids"] = scored["completion_ids"].clone()
    altered["completion_ids"][dropped] = (scored["completion_ids"][dropped] + 7) % 90
    for ref, other in zip(reference, gradient(altered), strict=True):
        torch.testing.assert_close(ref, other)
    # The oracle can see a change: altering a kept completion does move the gradient.
    kept = dict(scored)
    kept["completion_ids"] = scored["completion_ids"].clone()
    kept["completion_ids"][0] = (scored["completion_ids"][0] + 7) % 90
    assert any(not torch.allclose(a, b) for a, b in zip(reference, gradient(kept), strict=True))
