"""Prometheus metrics of a training Job (`tarot train --metrics-port PORT`).

Each step record (see steplog.py) updates these; on a cluster the pod's
PodMonitor scrapes them. They live in their own registry so a process (or a
test) can hold several trainers' metrics without name clashes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from tarot_jobs.problems.model import ALL_TIERS


class TrainMetrics:
    """Gauges of the latest logged step, and a counter of sandbox verdicts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.tier_pass_rate = Gauge(
            "tarot_train_pass_rate",
            "Pass rate of the tests of each allowed tier in the latest logged step (0..1).",
            ["tier"],
            registry=r,
        )
        self.reward = Gauge(
            "tarot_train_reward_mean", "Mean total reward of the latest logged step.", registry=r
        )
        self.format_reward = Gauge("tarot_train_format_reward", "Mean format reward.", registry=r)
        self.kl = Gauge("tarot_train_kl", "Mean KL divergence to the reference model.", registry=r)
        self.loss = Gauge("tarot_train_loss", "Training loss.", registry=r)
        self.completion_length = Gauge(
            "tarot_train_completion_length", "Mean completion length in tokens.", registry=r
        )
        self.tokens_per_second = Gauge(
            "tarot_train_tokens_per_second", "Prompt and completion tokens processed per second.", registry=r
        )
        self.step = Gauge("tarot_train_step", "Optimizer steps done in the run (all phases).", registry=r)
        self.total_steps = Gauge(
            "tarot_train_total_steps", "Optimizer steps planned for the run (all phases).", registry=r
        )
        self.yardstick = Gauge(
            "tarot_train_yardstick_pass_at_1",
            "Greedy pass@1 on the fixed yardstick set of training problems, all tiers "
            "(training.evalEverySteps); tier is a test tier or overall.",
            ["tier"],
            registry=r,
        )
        self.dropped = Counter(
            "tarot_reward_dropped_samples",
            "Completions dropped from a step because the sandbox failed on them after its retries.",
            registry=r,
        )
        self.phase = Gauge("tarot_train_phase", "Index of the curriculum phase being trained.", registry=r)
        self.step_seconds = Gauge(
            "tarot_train_step_seconds",
            "Seconds of the latest step by part: generation, reward, "
            "rest (log-probs, loss, backward, optimizer), and step (the whole).",
            ["part"],
            registry=r,
        )
        self.verdicts = Counter(
            "tarot_sandbox_verdicts",
            "Sandbox verdicts of the tests run for rewards.",
            ["verdict"],
            registry=r,
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> Any:
        """Expose /metrics on `port` from a daemon thread; returns the server (shutdown() stops it)."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server

    def start_phase(self, phase: int, total_steps: int) -> None:
        """Label the phase being trained; `total_steps` is the run's budget (steps are run-wide)."""
        self.phase.set(phase)
        self.total_steps.set(total_steps)

    def update(self, record: Mapping[str, Any]) -> None:
        """Apply one step record."""
        self.step.set(record["step"])
        for tier in ALL_TIERS:
            rate = record["tier_pass_rate"].get(tier.value)
            if rate is not None:
                self.tier_pass_rate.labels(tier=tier.value).set(rate)
        for gauge, key in (
            (self.reward, "reward"),
            (self.format_reward, "format_reward"),
            (self.kl, "kl"),
            (self.loss, "loss"),
            (self.completion_length, "completion_length"),
            (self.tokens_per_second, "tokens_per_second"),
        ):
            value = record.get(key)
            if value is not None:
                gauge.set(value)
        for part, seconds in record.get("seconds", {}).items():
            self.step_seconds.labels(part=part).set(seconds)
        for verdict, count in record.get("sandbox_verdicts", {}).items():
            self.verdicts.labels(verdict=verdict).inc(count)
        self.dropped.inc(record.get("dropped_samples", 0))
        for measurement in record.get("yardstick", []):
            for tier, rate in measurement["pass_at_1"].items():
                if rate is not None:
                    self.yardstick.labels(tier=tier).set(rate)
