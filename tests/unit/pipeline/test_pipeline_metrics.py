"""Training metrics are served over HTTP in Prometheus' text format."""

from __future__ import annotations

import httpx
from pytest_cluster import free_port

from tarot_jobs.pipeline.training.metrics import TrainMetrics


def test_step_records_are_scraped(tmp_path: object) -> None:
    metrics = TrainMetrics()
    metrics.start_phase(2, 8)
    port = free_port()
    server = metrics.serve(port, address="127.0.0.1")
    try:
        record = {
            "step": 3,
            "reward": 0.4,
            "format_reward": 1.0,
            "kl": 0.02,
            "loss": -0.1,
            "completion_length": 40.0,
            "tokens_per_second": 1234.0,
            "tier_pass_rate": {"basic": 0.75, "complex": 0.25},
            "sandbox_verdicts": {"passed": 5, "wrong_answer": 3},
            "seconds": {"generation": 0.5, "reward": 0.05, "rest": 0.3},
        }
        metrics.update(record)
        metrics.update(
            {
                **record,
                "step": 4,
                "sandbox_verdicts": {"passed": 2},
                "dropped_samples": 3,
                "yardstick": [{"step": 4, "pass_at_1": {"overall": 0.5, "edge": None}}],
            }
        )
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    assert 'tarot_train_pass_rate{tier="basic"} 0.75' in text
    assert 'tarot_train_pass_rate{tier="complex"} 0.25' in text
    assert "tarot_train_reward{" not in text  # the old name held a pass rate, not a reward
    assert "tarot_reward_dropped_samples_total 3.0" in text
    assert 'tarot_train_yardstick_pass_at_1{tier="overall"} 0.5' in text
    assert 'tier="edge"' not in text.split("tarot_train_yardstick_pass_at_1")[-1]
    assert "tarot_train_kl 0.02" in text
    assert "tarot_train_loss -0.1" in text
    assert "tarot_train_tokens_per_second 1234.0" in text
    assert "tarot_train_step 4.0" in text
    assert "tarot_train_phase 2.0" in text
    assert 'tarot_sandbox_verdicts_total{verdict="passed"} 7.0' in text
    assert 'tarot_sandbox_verdicts_total{verdict="wrong_answer"} 3.0' in text
    assert 'tarot_train_step_seconds{part="reward"} 0.05' in text
