"""bench/learning.py's arithmetic on finished cells: per-problem pass@1 from the evaluation samples, the
gain per arm with its interval, the control arm apart, and the JSON line the goal is judged on."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "learning.py"
KEYS = {
    "gain_pts",
    "gain_ci_low",
    "gain_ci_high",
    "control_gain_pts",
    "control_gain_ci_low",
    "control_gain_ci_high",
    "seeds",
    "heldout_problems",
    "samples_per_problem",
    "minutes",
}


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_learning", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_learning", module)  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _samples(path: Path, solved: dict[str, int], n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"set": "heldout", "problem_id": pid, "sample": i, "solves": i < c}
        for pid, c in solved.items()
        for i in range(n)
    ]
    rows.append({"set": "extra.jsonl", "problem_id": "x", "sample": 0, "solves": True})  # not held out
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _workdir(root: Path, before: dict[str, int], after: dict[str, int], n: int = 4) -> Path:
    (root / "train" / "phase-0").mkdir(parents=True)
    (root / "report.json").write_text(json.dumps({"policy": {"name": "forward"}}))
    _samples(root / "eval" / "before" / "samples.jsonl", before, n)
    _samples(root / "eval" / "after" / "samples.jsonl", after, n)
    steps = [{"step": s, "pass_at_1": {"overall": s / 100}} for s in (20, 0)]
    (root / "train" / "phase-0" / "yardstick.jsonl").write_text("".join(json.dumps(m) + "\n" for m in steps))
    rewards = {(1, "a"): [0.5, 0.5], (1, "b"): [0.0, 1.0], (2, "a"): [1.0, 1.0], (2, "c"): [None, 0.0]}
    completions = [{"step": s, "problem_id": p, "reward": r} for (s, p), rs in rewards.items() for r in rs]
    (root / "train" / "phase-0" / "completions.jsonl").write_text(
        "".join(json.dumps(c) + "\n" for c in completions)
    )
    return root


def test_a_cell_reads_pass_at_1_per_heldout_problem(bench: ModuleType, tmp_path: Path) -> None:
    workdir = _workdir(tmp_path, {"a": 0, "b": 1, "c": 4}, {"a": 2, "b": 1, "c": 4})
    row = bench.read_cell(bench.Cell("auto", "tiered", 0), workdir, 12.5)
    assert row["before"] == {"a": 0.0, "b": 0.25, "c": 1.0} and row["after"]["a"] == 0.5
    assert row["samples"] == 4 and row["picked"] == "forward"
    assert row["before_pass_at_k"] == pytest.approx(2 / 3)  # pass@4: b and c solved in some sample
    assert row["yardstick"] == [(0, 0.0), (20, 0.2)]
    assert row["zero_std_groups"] == 0.5  # (1, a) and (2, a) paid every sample alike


def test_the_grid_reports_both_arms_gains_in_points(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finished cells are reused, not rerun: the tiered arm gains 25 points on every problem and seed,
    the control arm gains on one problem and loses on another."""
    runs = tmp_path / "runs"
    runs.mkdir()
    argv = ["learning.py", "--out", str(tmp_path), "--seeds", "0", "1", "--resamples", "300"]
    monkeypatch.setattr(sys, "argv", argv)
    options = argparse.Namespace(steps=None, heldout=None, samples=None, warmup_steps=None)
    example = bench.ROOT / "examples" / "toy-learning.yaml"
    problems = [f"p{i}" for i in range(8)]
    for seed in (0, 1):
        for arm, after in (("tiered", {p: 0.5 for p in problems}), ("control", {"p0": 0.5, "p1": 0.0})):
            record = {
                "run": f"auto-{arm}-seed{seed}",
                "rc": 0,
                "picked": "forward",
                "arm": arm,
                "seed": seed,
                "seconds": 30.0,
                "samples": 4,
                "before": {p: 0.25 for p in problems},
                "after": {p: after.get(p, 0.25) for p in problems},
                "before_pass_at_k": 0.5,
                "after_pass_at_k": 0.5,
                "yardstick": [(0, 0.0), (20, 0.1)],
                "manifest": bench.cell_manifest(example, bench.Cell("auto", arm, seed), options),
            }
            (runs / f"auto-{arm}-seed{seed}.json").write_text(json.dumps(record))
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: pytest.fail("a finished cell was rerun"))
    bench.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == KEYS
    assert (result["gain_pts"], result["gain_ci_low"], result["gain_ci_high"]) == (25.0, 25.0, 25.0)
    assert result["control_gain_pts"] == 0.0
    assert result["control_gain_ci_low"] < 0 < result["control_gain_ci_high"]
    assert (result["seeds"], result["heldout_problems"], result["samples_per_problem"]) == (2, 8, 4)
    assert result["minutes"] == 2.0
    assert (tmp_path / "learning.png").stat().st_size > 0
    # The same cells under a grid with another spec (fewer steps) are not reused as its results.
    monkeypatch.setattr(sys, "argv", [*argv, "--steps", "40"])
    with pytest.raises(SystemExit, match="another spec"):
        bench.main()


def test_a_cell_spec_replaces_policy_seed_and_the_smoke_grid_options(bench: ModuleType) -> None:
    options = argparse.Namespace(steps=40, heldout=32, samples=4, warmup_steps=None)
    spec = bench.cell_manifest(
        bench.ROOT / "examples" / "toy-learning.yaml", bench.Cell("reverse", "control", 2), options
    )
    assert spec["spec"]["curriculum"]["policy"] == "reverse" and spec["spec"]["training"]["seed"] == 2
    assert spec["spec"]["training"]["maxSteps"] == 40 and spec["spec"]["evaluation"]["samples"] == 4
    assert spec["spec"]["dataset"]["heldoutSource"] == "toy:heldout:32"
