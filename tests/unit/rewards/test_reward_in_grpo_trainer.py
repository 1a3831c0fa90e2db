"""The rewards inside a real trl GRPOTrainer: names, call convention, phases by progress, logged metrics,
and the samples the sandbox failed on, dropped from a real step of TarotGRPOTrainer.

The model is a randomly initialised one-layer Llama with a character-level
tokenizer, built here (no model hub). It never writes a program, so the
reward substitutes a known-correct program into every other completion:
trl's logged mean reward then has a known value. The dropped-sample proof
gives the same model one token per program instead, and lets it generate
nothing else, so that every completion goes to the (failing) sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from trl import GRPOTrainer

from tarot_jobs.curriculum.portfolio import get_policy
from tarot_jobs.pipeline.training.trainer import TarotGRPOTrainer
from tarot_jobs.problems.model import Problem, TestCase, Tier
from tarot_jobs.rewards import TieredReward, format_reward
from tarot_jobs.sandbox.local import LocalSandbox
from tarot_jobs.sandbox.types import (
    ExecutionRequest,
    ExecutionResult,
    SandboxUnavailable,
    TestResult,
    Verdict,
)

pytestmark = pytest.mark.slow


def basic_and_edge(
    id: str, statement: str, gold: str, basic: tuple[str, str], edge: tuple[str, str]
) -> Problem:
    """A stdin problem with one basic and one edge test, each (input, output)."""
    tests = [
        TestCase(input=basic[0], output=basic[1], tier=Tier.BASIC),
        TestCase(input=edge[0], output=edge[1], tier=Tier.EDGE),
    ]
    return Problem(id=id, statement=statement, gold_solution=gold, tests=tests)


PRINT_ONE = basic_and_edge("p1", "Print 1.", "print(1)", ("", "1\n"), ("", "1\n"))
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


def _tiny_model_and_tokenizer(tokens: Sequence[str] = ()) -> tuple[Any, Any, dict[str, int]]:
    """A one-layer Llama over printable characters (and `tokens`, one id each), its tokenizer and vocab."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {chr(i): i - 32 for i in range(32, 127)}
    for special in ("\n", "<eos>", "<pad>", *tokens):
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
    return LlamaForCausalLM(config), hf_tokenizer, vocab


def test_tiered_and_format_rewards_train_in_grpo_trainer(tmp_path: Path) -> None:
    import datasets
    import trl

    model, tokenizer, _ = _tiny_model_and_tokenizer()
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


# The dropped-sample proof's model can say nothing but one of these programs (every other token is
# suppressed in generation), so every completion holds code and goes to the sandbox: a random model
# otherwise writes no program, earns 0 without one, and is never dropped.
PASSES = "```python\nprint(input())\n```"  # both tests: tiered reward 1.0
HALF = "```python\nprint('a')\n```"  # the basic test only: 0.5
FAILS = "```python\nprint(0)\n```"  # 0.0
FLAKY = "```python\nprint(input())  # flaky\n```"  # would pass; the sandbox always fails on it
PROGRAMS = [PASSES, HALF, FAILS, FLAKY]
ECHO = basic_and_edge("echo", "Print the line you read.", "print(input())", ("a\n", "a\n"), ("b\n", "b\n"))
UNLUCKY_INPUT = "unlucky\n"
# Every request for it fails in the sandbox: its whole group is dropped.
UNLUCKY = basic_and_edge(
    "unlucky",
    "Print the line you read (the sandbox always fails on this one).",
    "print(input())",
    (UNLUCKY_INPUT, UNLUCKY_INPUT),
    (UNLUCKY_INPUT, UNLUCKY_INPUT),
)
FORMAT_WEIGHT = 0.1
SEED = 2  # its sampling gives the echo group a FLAKY sample and scored samples that differ


class FailingSandbox:
    """A SandboxBackend with faults: the real LocalSandbox runs what it is sent, except that
    - its first call raises SandboxUnavailable (an outage: the reward retries the whole batch);
    - every request for UNLUCKY (recognised by its tests' input) and every run of FLAKY comes back with
      `sandbox_error` verdicts, on every attempt, so the reward retries them and then gives them None.
    """

    def __init__(self, inner: LocalSandbox) -> None:
        self.inner = inner
        self.calls: list[int] = []  # requests per call

    @staticmethod
    def _fails(request: ExecutionRequest) -> bool:
        return "# flaky" in request.code or any(t.input == UNLUCKY_INPUT for t in request.tests)

    def run_batch(self, requests: Sequence[ExecutionRequest]) -> list[ExecutionResult]:
        self.calls.append(len(requests))
        if len(self.calls) == 1:
            raise SandboxUnavailable("connection refused (injected)")
        healthy = [r for r in requests if not self._fails(r)]
        ran = iter(self.inner.run_batch(healthy) if healthy else [])
        return [
            ExecutionResult(
                results=[TestResult(status=Verdict.SANDBOX_ERROR, detail="injected") for _ in r.tests],
                path="injected",
            )
            if self._fails(r)
            else next(ran)
            for r in requests
        ]


def _program_model(tmp_path: Path) -> tuple[str, Any, list[int]]:
    """The one-layer Llama of this module with one token per program; saved, so that trl loads the same
    weights again as the KL reference. Returns its directory, its tokenizer and the token ids to suppress."""
    from transformers import set_seed

    set_seed(0)  # the same weights every run (the tokenizer draws no random numbers)
    model, hf_tokenizer, vocab = _tiny_model_and_tokenizer(PROGRAMS)
    model.save_pretrained(tmp_path / "base")
    return str(tmp_path / "base"), hf_tokenizer, [i for t, i in vocab.items() if t not in PROGRAMS]


def _one_step(tmp_path: Path, name: str, trainer_class: type) -> dict[str, Any]:
    """One real optimizer step (trainer.train(), AdamW) of `trainer_class` on the two problems' groups,
    scored by the real TieredReward on a FailingSandbox; returns what the step saw and the weights after."""
    import datasets
    import torch
    import trl
    from transformers import AutoModelForCausalLM

    from tarot_jobs.pipeline.training.steplog import StepTally

    base, tokenizer, suppressed = _program_model(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(base)
    # The policy starts a little off its KL reference (the saved weights), as after any earlier step:
    # the KL term would then give a dropped completion a gradient of its own.
    noise = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=noise))
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    dataset = datasets.Dataset.from_list(
        [{"prompt": "Echo:", "problem_id": ECHO.id}, {"prompt": "Unlucky:", "problem_id": UNLUCKY.id}]
    )
    with LocalSandbox(workers=2) as local:
        sandbox = FailingSandbox(local)
        reward = TieredReward(
            {p.id: p for p in (ECHO, UNLUCKY)}, get_policy("static"), sandbox, phase_index=0
        )
        args = trl.GRPOConfig(
            output_dir=str(tmp_path / name),
            max_steps=1,
            learning_rate=1e-2,
            per_device_train_batch_size=8,  # both prompts' groups in one step
            num_generations=4,
            max_completion_length=2,  # two program tokens: the last block (the second) is the program
            generation_kwargs={"suppress_tokens": suppressed},
            reward_weights=[1.0, FORMAT_WEIGHT],
            beta=0.1,
            logging_steps=1,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            seed=SEED,
        )
        trainer = trainer_class(
            model=model,
            processing_class=tokenizer,
            reward_funcs=[reward, format_reward],
            args=args,
            train_dataset=dataset,
            tally=StepTally(),
        )
        trainer.train()
    completion_ids = trainer.scored["completion_ids"]
    return {
        "trainer": trainer,
        "scored": trainer.scored,
        "completions": tokenizer.batch_decode(completion_ids),
        "programs": [tokenizer.decode(ids[-1:]) for ids in completion_ids],
        "details": reward.last_details,
        "calls": sandbox.calls,
        "logged": trainer.state.log_history[0],
        "start": start,
        "end": {n: p.detach().clone() for n, p in trainer.model.named_parameters()},
    }


class RecordingTrainer(TarotGRPOTrainer):
    """TarotGRPOTrainer as trained, keeping what its step was given (after the drop)."""

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        self.scored: dict[str, Any] = super()._generate_and_score_completions(inputs)
        return self.scored


class WithoutDroppedRows(RecordingTrainer):
    """The same step with the dropped rows removed from the batch after scoring: as if never generated."""

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        import torch

        scored = super()._generate_and_score_completions(inputs)
        # The rows the reward gave None, from the reward itself (not from the mask under test).
        keep = torch.tensor([not d.sandbox_failed for d in self.reward_funcs[0].last_details])
        rows = len(keep)
        self.scored = {
            key: value[keep]
            if hasattr(value, "shape") and value.dim() > 0 and value.shape[0] == rows
            else [v for v, k in zip(value, keep.tolist(), strict=True) if k]
            if isinstance(value, list) and len(value) == rows
            else value
            for key, value in scored.items()
        }
        # The token count a batch of these rows alone has (trl's own formula), whatever the mask under test.
        self.scored["num_items_in_batch"] = self.scored["completion_mask"].sum()
        return self.scored


class TrlAlone(RecordingTrainer):
    """The oracle: trl's own handling of the None rewards, without tarot's mask (their tokens stay in the
    loss, the KL term and the token count); the proof must tell it apart from the real step."""

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        self.scored = GRPOTrainer._generate_and_score_completions(self, inputs)
        self._dropped_rows = None
        return self.scored


def test_samples_the_sandbox_failed_on_are_dropped_from_a_real_step(tmp_path: Path) -> None:
    """The real TieredReward on a sandbox that fails: a whole group (UNLUCKY) and the FLAKY samples of the
    other one are dropped. After one real optimizer step of TarotGRPOTrainer:
    - they are counted (tally.dropped_samples) and their tokens are out of the loss;
    - trl's group statistics (advantages, logged reward and its std) are those of the scored rows alone,
      and the dropped group's advantages are 0, not NaN;
    - the weights after the step are those of a step on the same batch without the dropped rows, and
      differ from trl's own handling (which leaves them in the loss and the KL term)."""
    import torch

    run = _one_step(tmp_path / "full", "full", RecordingTrainer)
    scored, details = run["scored"], run["details"]
    rows = len(details)
    assert rows == 8 and all(p in PROGRAMS for p in run["programs"])
    # The outage was retried through, then the failing requests twice more; the healthy ones ran once.
    failing = [d.sandbox_failed for d in details]
    assert run["calls"] == [8, 8, sum(failing)]
    unlucky = [r for r in range(rows) if details[r].problem_id == UNLUCKY.id]
    echo = [r for r in range(rows) if details[r].problem_id == ECHO.id]
    assert len(unlucky) == len(echo) == 4
    assert all(failing[r] for r in unlucky)  # a group in which every sample is dropped
    flaky = [r for r in echo if failing[r]]
    kept = [r for r in echo if not failing[r]]
    assert flaky and all(run["programs"][r] == FLAKY for r in flaky)
    # This seed's group has scored samples that differ (else its advantages would be 0 anyway).
    assert len({details[r].reward for r in kept}) > 1, [run["programs"][r] for r in echo]

    dropped = unlucky + flaky
    assert run["trainer"].tally.dropped_samples == len(dropped)
    assert all(details[r].reward is None for r in dropped)
    assert scored["completion_mask"][dropped].sum() == 0
    assert scored["completion_mask"][kept].sum(dim=1).min() > 0
    assert scored["num_items_in_batch"] == scored["completion_mask"].sum()

    # trl's group statistics over the scored rows only (format reward: 1.0 for every program).
    totals = {r: details[r].reward + FORMAT_WEIGHT * format_reward([run["completions"][r]])[0] for r in kept}
    values = list(totals.values())
    mean = sum(values) / len(values)
    std = (sum((x - mean) ** 2 for x in values) / (len(values) - 1)) ** 0.5
    expected = [(totals[r] - mean) / (std + 1e-4) if r in totals else 0.0 for r in range(rows)]
    assert scored["advantages"].tolist() == pytest.approx(expected, abs=1e-4)
    logged = run["logged"]
    assert logged["reward"] == pytest.approx(mean, abs=1e-6)
    assert logged["reward_std"] == pytest.approx(std, abs=1e-6)
    assert logged["rewards/tiered_reward/mean"] == pytest.approx(
        sum(details[r].reward for r in kept) / len(kept), abs=1e-6
    )

    # The step itself: the same weights as a step without the dropped rows.
    absent = _one_step(tmp_path / "absent", "absent", WithoutDroppedRows)
    assert absent["completions"] == [run["completions"][r] for r in kept]  # the same generation
    # trl's logged step statistics ignore the dropped rows too: loss, KL and entropy as without them.
    for key in ("loss", "kl", "entropy", "reward", "reward_std"):
        assert run["logged"][key] == pytest.approx(absent["logged"][key], rel=1e-5), key
    assert any(not torch.equal(run["start"][n], run["end"][n]) for n in run["end"]), (
        "the step changed nothing"
    )
    for name, weights in run["end"].items():
        torch.testing.assert_close(weights, absent["end"][name], rtol=1e-5, atol=1e-6)
    # The oracle: with the dropped rows left in the loss (trl alone) the weights come out otherwise.
    alone = _one_step(tmp_path / "alone", "alone", TrlAlone)
    assert alone["completions"] == run["completions"]
    assert alone["scored"]["completion_mask"][dropped].sum() > 0
    difference = max(float((alone["end"][n] - run["end"][n]).abs().max()) for n in run["end"])
    assert difference > 1e-4, difference
