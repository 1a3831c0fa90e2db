"""bench/sandbox.py on a tiny workload: it measures when the three approaches agree on every verdict, and
fails (exit status 1, no speed-up reported) when they do not: a fast sandbox that judges wrongly is no win."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tarot_jobs.sandbox.types import Verdict

BENCH = Path(__file__).resolve().parents[3] / "bench" / "sandbox.py"
TINY = ["sandbox.py", "--programs", "6", "--tests", "1", "--workers", "2", "--trivial-runs", "3"]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sandbox", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", TINY)
    return module


def _json_line(out: str) -> dict[str, object]:
    return json.loads(next(line for line in out.splitlines() if line.startswith("{")))


def test_the_bench_reports_speed_ups_when_every_verdict_agrees(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.main()
    result = _json_line(capsys.readouterr().out)
    assert result["verdicts_agree"] is True and result["tests"] == 6, result
    assert isinstance(result["vs_serial_subprocess"], float), result


def test_the_bench_fails_when_a_verdict_differs(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = bench.reference_verdict
    calls: list[int] = []

    def one_wrong(request: object, test: object) -> Verdict:
        calls.append(1)
        verdict = reference(request, test)
        if len(calls) == 1:  # the first test of the serial reference run only
            return Verdict.TIMEOUT if verdict is not Verdict.TIMEOUT else Verdict.PASSED
        return verdict

    monkeypatch.setattr(bench, "reference_verdict", one_wrong)
    with pytest.raises(SystemExit) as stopped:
        bench.main()
    assert stopped.value.code == 1
    captured = capsys.readouterr()
    result = _json_line(captured.out)
    assert result["verdicts_agree"] is False, result
    assert result["vs_serial_subprocess"] is None and result["vs_parallel_subprocess"] is None, result
    assert "verdicts disagree on 1 of 6 tests" in captured.err, captured.err
