"""Prometheus metrics of a training Job (`tarot train --metrics-port PORT`).

Each step record (see steplog.py) updates these; on a cluster the pod's
PodMonitor scrapes them. They live in their own registry so a process (or a
test) can hold several trainers' metrics without name clashes.

A phase's last values are not lost when its pod ends: `serve_phase` notes when
each scrape begins, and `MetricsServer.stop(final_scrape=True)` holds /metrics
until a scrape has begun after the last update (bounded by about two scrape
intervals; at once when nothing scrapes this process).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.metrics_core import Metric

from tarot_jobs.problems.model import ALL_TIERS

# The longest a finished phase waits for its final scrape (Prometheus' default interval is 1 min).
FINAL_SCRAPE_MAX_SECONDS = 60.0


class ScrapeClock:
    """A collector that yields nothing and notes when a scrape begins (Prometheus' GET /metrics collects
    the registry; this collector is registered first, so every value read after its note is current)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._scrapes: list[float] = []  # monotonic times of the last two scrapes
        self._updated = time.monotonic()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        with self._changed:
            self._scrapes = [*self._scrapes[-1:], time.monotonic()]
            self._changed.notify_all()
        return []

    def touch(self) -> None:
        """The values changed."""
        with self._changed:
            self._updated = time.monotonic()

    def wait_for_scrape_after_update(self, most: float = FINAL_SCRAPE_MAX_SECONDS) -> bool | None:
        """Block until a scrape began after the latest update. None at once when nothing has scraped
        yet (no scraper to wait for); False when none came within two observed intervals plus a second
        (or `most` seconds, whichever is less); True when the latest values were scraped."""
        with self._changed:
            if not self._scrapes:
                return None
            budget = most
            if len(self._scrapes) == 2:
                budget = min(most, 2 * (self._scrapes[1] - self._scrapes[0]) + 1.0)
            deadline = time.monotonic() + budget
            while self._scrapes[-1] <= self._updated:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True


class MetricsServer:
    """One process's /metrics server; `stop` can hold it for a final scrape."""

    def __init__(self, server: Any, clock: ScrapeClock | None) -> None:
        self._server = server
        self._clock = clock

    def stop(self, final_scrape: bool = False, say: Callable[[str], None] | None = None) -> None:
        if final_scrape and self._clock is not None:
            started = time.monotonic()
            scraped = self._clock.wait_for_scrape_after_update()
            if say is not None and scraped is not None:
                waited = time.monotonic() - started
                outcome = "scraped" if scraped else "not scraped"
                say(f"metrics: final values {outcome} (held /metrics {waited:.1f} s)")
        self._server.shutdown()
        self._server.server_close()


def serving_role(env: Mapping[str, str] = os.environ) -> str | None:
    """What this process serves on --metrics-port: "all" for the process of global rank 0 (the only one
    that records steps), "empty" for local rank 0 of the other nodes of a multi-node phase (so every
    trainer pod answers on its metrics port, without a second copy of the series), else None (the other
    processes of a pod, which share its port). torchrun and accelerate set RANK and LOCAL_RANK."""
    if env.get("RANK", "0") == "0":
        return "all"
    return "empty" if env.get("LOCAL_RANK", "0") == "0" else None


class TrainMetrics:
    """Gauges of the latest logged step, and a counter of sandbox verdicts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.clock = ScrapeClock()
        r.register(self.clock)  # first: a scrape's note precedes its reading of the values
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

    def serve_phase(
        self,
        port: int,
        say: Callable[[str], None],
        address: str = "0.0.0.0",
        env: Mapping[str, str] = os.environ,
    ) -> MetricsServer | None:
        """/metrics of a training phase, by this process's rank (serving_role). A port already taken is
        logged and training goes on without /metrics: metrics observe a run, they never fail it."""
        role = serving_role(env)
        if role is None:
            return None
        registry = self.registry if role == "all" else CollectorRegistry()
        try:
            server, _thread = start_http_server(port, addr=address, registry=registry)
        except OSError as exc:
            say(f"metrics: cannot listen on {address}:{port} ({exc}); training goes on without /metrics")
            return None
        note = "" if role == "all" else " (empty: the process of rank 0 serves the run's values)"
        say(f"metrics on http://{address}:{port}/metrics{note}")
        return MetricsServer(server, self.clock if role == "all" else None)

    def start_phase(self, phase: int, total_steps: int) -> None:
        """Label the phase being trained; `total_steps` is the run's budget (steps are run-wide)."""
        self.phase.set(phase)
        self.total_steps.set(total_steps)
        self.clock.touch()

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
        self.clock.touch()
