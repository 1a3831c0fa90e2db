"""A trainer's /metrics: who serves it in a multi-process phase, a taken port, and the final scrape a
finished phase waits for so that its pod's end loses no value."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from pytest_cluster import free_port

from tarot_jobs.pipeline.training.metrics import MetricsServer, TrainMetrics, serving_role


def _serve(metrics: TrainMetrics, said: list[str], **env: str) -> tuple[MetricsServer, int]:
    port = free_port()
    server = metrics.serve_phase(port, said.append, address="127.0.0.1", env=env)
    assert server is not None
    return server, port


def _scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


@pytest.mark.parametrize(
    ("env", "role"),
    [
        ({}, "all"),  # one process
        ({"RANK": "0", "LOCAL_RANK": "0"}, "all"),
        ({"RANK": "8", "LOCAL_RANK": "0"}, "empty"),  # node 1 of a multi-node phase
        ({"RANK": "3", "LOCAL_RANK": "3"}, None),  # shares its pod's port with local rank 0
    ],
)
def test_one_process_per_pod_serves(env: dict[str, str], role: str | None) -> None:
    assert serving_role(env) == role


def test_other_nodes_answer_without_a_second_copy_of_the_series() -> None:
    said: list[str] = []
    server, port = _serve(TrainMetrics(), said, RANK="8", LOCAL_RANK="0")
    try:
        assert "tarot_train_" not in _scrape(port)
    finally:
        server.stop(final_scrape=True)
    assert TrainMetrics().serve_phase(free_port(), said.append, env={"RANK": "9", "LOCAL_RANK": "1"}) is None


def test_a_taken_port_is_logged_and_training_goes_on() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        said: list[str] = []
        server = TrainMetrics().serve_phase(taken.getsockname()[1], said.append, address="127.0.0.1", env={})
    assert server is None
    assert "training goes on without /metrics" in said[0]


def test_a_finished_phase_holds_metrics_until_its_last_step_is_scraped() -> None:
    metrics = TrainMetrics()
    metrics.start_phase(0, 8)
    said: list[str] = []
    server, port = _serve(metrics, said)
    scrapes: list[str] = []
    _scrape(port)  # a scraper every ~0.3 s
    time.sleep(0.3)
    _scrape(port)
    metrics.update({"step": 5, "tier_pass_rate": {"basic": 0.5}, "reward": 0.25})

    def scraper() -> None:
        time.sleep(0.5)
        scrapes.append(_scrape(port))

    thread = threading.Thread(target=scraper)
    thread.start()
    started = time.monotonic()
    server.stop(final_scrape=True, say=said.append)
    held = time.monotonic() - started
    thread.join()
    assert "tarot_train_step 5.0" in scrapes[0]  # the final values reached the scraper
    assert 0.3 < held < 2.0, held  # waited for that scrape (+ up to 0.5 s of shutdown), not the whole bound
    assert said[-1].startswith("metrics: final values scraped")


def test_nobody_scraping_means_no_wait_and_a_gone_scraper_a_bounded_one() -> None:
    metrics = TrainMetrics()
    server, _ = _serve(metrics, [])
    started = time.monotonic()
    assert metrics.clock.wait_for_scrape_after_update() is None  # never scraped: nobody to wait for
    assert time.monotonic() - started < 0.1
    server.stop(final_scrape=True)

    said: list[str] = []
    server, port = _serve(metrics, said)
    _scrape(port)
    time.sleep(0.2)
    _scrape(port)
    metrics.update({"step": 6, "tier_pass_rate": {}})
    started = time.monotonic()
    server.stop(final_scrape=True, say=said.append)  # the scraper went away
    assert 1.0 < time.monotonic() - started < 4.0  # ~2 intervals + 1 s, and the shutdown
    assert said[-1].startswith("metrics: final values not scraped")


def test_a_failed_phase_does_not_wait() -> None:
    metrics = TrainMetrics()
    server, port = _serve(metrics, [])
    _scrape(port)
    time.sleep(0.2)
    _scrape(port)
    metrics.update({"step": 1, "tier_pass_rate": {}})
    started = time.monotonic()
    server.stop(final_scrape=False)
    assert time.monotonic() - started < 1.0  # the server's shutdown only (it polls every 0.5 s)
    with pytest.raises(httpx.TransportError):
        _scrape(port)
