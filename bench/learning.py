"""Does GRPO with the tiered reward make a model better on problems it did not train on? (docs/learning.md)

    python3 bench/learning.py            # the judged grid: the probe's policy x 3 seeds x {tiered, control}
    python3 bench/learning.py --seeds 0 --steps 40 --heldout 32 --samples 4   # a smoke grid

Every cell of the grid (policy x arm x seed) is `tarot run` of examples/toy-learning.yaml (or --spec)
with the curriculum policy (default `auto`: the probe picks) and the training seed replaced, in its own
workdir under --out; a rerun reuses finished cells and resumes unfinished ones. The two arms have the same
budget: `tiered` trains on the tiered test reward, `control` on a reward drawn at random, independent of
the program (tarot_jobs/rewards/control.py), so a gain in the control arm is what training alone does.

Held-out pass@1 is the unbiased estimate from the spec's `evaluation.samples` samples per problem
(temperature `evaluation.temperature`), before and after training, per problem. The gain per arm is the
mean over seeds and problems of after - before, in points, with a 95% bootstrap interval that resamples
seeds and problems (tarot_jobs/pipeline/confidence.py). Prints a table per cell, writes a plot
(held-out pass@1 per arm with intervals, the yardstick per run) and, last, one JSON line. The goal of
issue 19: gain_ci_low >= 10 points with the control's interval containing 0, in <= 60 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tarot_jobs.pipeline.confidence import Interval, bootstrap_mean, gain_matrix, pass_at_k_by_problem

ROOT = Path(__file__).resolve().parent.parent
ARMS = ("tiered", "control")
# The control arm's `tarot run`: the same command in a process whose train stage pays random rewards.
CONTROL_RUN = (
    "import sys; from tarot_jobs.rewards.control import install; install(int(sys.argv[1])); "
    "from tarot_jobs.cli import main; sys.argv = ['tarot', *sys.argv[2:]]; main()"
)


@dataclass(frozen=True)
class Cell:
    policy: str
    arm: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.policy}-{self.arm}-seed{self.seed}"


def cell_manifest(spec_file: Path, cell: Cell, args: argparse.Namespace) -> dict[str, Any]:
    manifest = yaml.safe_load(spec_file.read_text())
    spec = manifest["spec"]
    spec["curriculum"]["policy"] = cell.policy
    spec["training"]["seed"] = cell.seed
    if args.steps is not None:
        spec["training"]["maxSteps"] = args.steps
    if args.heldout is not None:
        spec["dataset"]["heldoutSource"] = f"toy:heldout:{args.heldout}"
    if args.samples is not None:
        spec["evaluation"]["samples"] = args.samples
    if args.warmup_steps is not None:
        spec["model"]["tiny"]["warmupSteps"] = args.warmup_steps
    return dict(manifest)


def run_cell(cell: Cell, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or reuse) one cell; its figures are kept in OUT/runs/NAME.json, with the spec they came from
    (a grid whose spec changed stops rather than mixing cells of two experiments)."""
    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    record = runs / f"{cell.name}.json"
    manifest = cell_manifest(args.spec, cell, args)
    if record.is_file():
        kept = dict(json.loads(record.read_text()))
        if kept.get("manifest") != manifest:
            raise SystemExit(f"{record} was made from another spec than this grid's: use another --out")
        return kept
    variant = runs / f"{cell.name}.yaml"
    variant.write_text(yaml.safe_dump(manifest, sort_keys=False))
    workdir = runs / cell.name
    tarot = ["run", str(variant), "--workdir", str(workdir), "--model-cache", str(args.model_cache)]
    if cell.arm == "control":
        command = [sys.executable, "-c", CONTROL_RUN, str(cell.seed), *tarot]
    else:
        command = [sys.executable, "-m", "tarot_jobs.cli", *tarot]
    started = time.monotonic()
    with (runs / f"{cell.name}.log").open("a") as log:
        rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    seconds = round(time.monotonic() - started, 1)
    if rc != 0:
        return {"run": cell.name, "rc": rc, "seconds": seconds}
    result = {**read_cell(cell, workdir, seconds), "manifest": manifest}
    record.write_text(json.dumps(result))
    return result


def _heldout_outcomes(samples_file: Path) -> list[tuple[str, bool]]:
    rows = (json.loads(line) for line in samples_file.open())
    return [(r["problem_id"], bool(r["solves"])) for r in rows if r.get("set") == "heldout"]


def zero_std_share(workdir: Path) -> float | None:
    """The share of training groups (step, prompt) whose rewards were all equal: they teach nothing
    (trl's frac_reward_zero_std, from the run's completions.jsonl)."""
    groups: dict[tuple[int, str], set[float | None]] = {}
    for f in sorted(workdir.glob("train/phase-*/completions.jsonl")):
        for line in f.open():
            row = json.loads(line)
            groups.setdefault((row["step"], row["problem_id"]), set()).add(row["reward"])
    return sum(len(r) == 1 for r in groups.values()) / len(groups) if groups else None


def read_cell(cell: Cell, workdir: Path, seconds: float) -> dict[str, Any]:
    report = json.loads((workdir / "report.json").read_text())
    before = _heldout_outcomes(workdir / "eval" / "before" / "samples.jsonl")
    after = _heldout_outcomes(workdir / "eval" / "after" / "samples.jsonl")
    samples = len(before) // len({pid for pid, _ in before})
    yardstick = sorted(
        (
            json.loads(line)
            for f in sorted(workdir.glob("train/phase-*/yardstick.jsonl"))
            for line in f.open()
        ),
        key=lambda m: m["step"],
    )
    return {
        "run": cell.name,
        "rc": 0,
        "policy": cell.policy,
        "picked": report["policy"]["name"],
        "arm": cell.arm,
        "seed": cell.seed,
        "seconds": seconds,
        "samples": samples,
        "before": pass_at_k_by_problem(before, 1),
        "after": pass_at_k_by_problem(after, 1),
        "before_pass_at_k": float(np.mean(list(pass_at_k_by_problem(before, samples).values()))),
        "after_pass_at_k": float(np.mean(list(pass_at_k_by_problem(after, samples).values()))),
        "yardstick": [(m["step"], m["pass_at_1"]["overall"]) for m in yardstick],
        "zero_std_groups": zero_std_share(workdir),
    }


def _mean(per_problem: dict[str, float]) -> float:
    return 100 * float(np.mean(list(per_problem.values())))


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def arm_gain(rows: list[dict[str, Any]], resamples: int) -> Interval | None:
    if not rows:
        return None
    matrix = gain_matrix([r["before"] for r in rows], [r["after"] for r in rows])
    return bootstrap_mean(matrix, resamples=resamples).scaled(100)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| run | picked | held-out pass@1 before -> after | pass@n before -> after | yardstick "
        "| zero-std groups | wall |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if row["rc"] != 0:
            print(f"| {row['run']} | failed (exit {row['rc']}, see its .log) | | | | | {row['seconds']} s |")
            continue
        yard = row["yardstick"]
        yard_text = f"{yard[0][1]:.2f} -> {yard[-1][1]:.2f}" if yard else "-"
        print(
            f"| {row['run']} | {row['picked']} | {_mean(row['before']):.1f} -> {_mean(row['after']):.1f} "
            f"| {100 * row['before_pass_at_k']:.1f} -> {100 * row['after_pass_at_k']:.1f} "
            f"(n={row['samples']}) "
            f"| {yard_text} | {_share(row.get('zero_std_groups'))} | {row['seconds']} s |"
        )


def plot(rows: list[dict[str, Any]], gains: dict[str, Interval | None], target: Path, resamples: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (levels, curves) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, arm in enumerate(ARMS):
        arm_rows = [r for r in rows if r["rc"] == 0 and r["arm"] == arm]
        if not arm_rows:
            continue
        for j, side in enumerate(("before", "after")):
            matrix = np.array([[r[side][p] for p in sorted(r[side])] for r in arm_rows])
            value = bootstrap_mean(matrix, resamples=resamples).scaled(100)
            levels.bar(
                i + (j - 0.5) * 0.4,
                value.estimate,
                0.4,
                yerr=[[value.estimate - value.low], [value.high - value.estimate]],
                capsize=4,
                color=("tab:gray", "tab:blue" if arm == "tiered" else "tab:orange")[j],
            )
    labels = []
    for arm in ARMS:
        gain = gains[arm]
        interval = "" if gain is None else f"\ngain {gain.estimate:+.1f} [{gain.low:+.1f}, {gain.high:+.1f}]"
        labels.append(f"{arm} (before | after){interval}")
    levels.set_xticks(range(len(ARMS)), labels)
    levels.set(ylabel="held-out pass@1 (points), 95% CI", title="Held-out pass@1 per arm")
    levels.grid(axis="y", alpha=0.3)
    for row in rows:
        if row["rc"] == 0 and row["yardstick"]:
            steps, values = zip(*row["yardstick"], strict=True)
            curves.plot(
                steps, values, marker="o", ms=3, ls="-" if row["arm"] == "tiered" else "--", label=row["run"]
            )
    curves.set(xlabel="optimizer step", ylabel="yardstick: greedy pass@1", title="Fixed yardstick per run")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", type=Path, default=ROOT / "examples" / "toy-learning.yaml")
    parser.add_argument("--policy", nargs="+", default=["auto"], help="auto: the curriculum the probe picks")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--steps", type=int, default=None, help="training.maxSteps (default: the spec's)")
    parser.add_argument(
        "--heldout", type=int, default=None, help="held-out toy problems (default: the spec's)"
    )
    parser.add_argument("--samples", type=int, default=None, help="evaluation samples per problem")
    parser.add_argument("--warmup-steps", type=int, default=None, help="model.tiny.warmupSteps")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "learning")
    parser.add_argument("--model-cache", type=Path, default=ROOT / "runs" / "learning" / "models")
    parser.add_argument("--plot", type=Path, default=None, help="default: OUT/learning.png")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    args = parser.parse_args()

    cells = [Cell(p, arm, seed) for p in args.policy for seed in args.seeds for arm in args.arms]
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    for i, cell in enumerate(cells, 1):
        elapsed = time.monotonic() - started
        print(
            f"[learning] {i}/{len(cells)} {cell.name} (grid {elapsed / 60:.1f} min so far)",
            file=sys.stderr,
            flush=True,
        )
        row = run_cell(cell, args)
        rows.append(row)
        status = "done" if row["rc"] == 0 else f"FAILED (exit {row['rc']})"
        print(
            f"[learning] {i}/{len(cells)} {cell.name}: {status} in {row['seconds']} s",
            file=sys.stderr,
            flush=True,
        )
    print_table(rows)
    done = [r for r in rows if r["rc"] == 0]
    gains = {arm: arm_gain([r for r in done if r["arm"] == arm], args.resamples) for arm in ARMS}
    plot(rows, gains, args.plot or args.out / "learning.png", args.resamples)
    tiered, control = gains["tiered"], gains["control"]
    problems = {len(r["before"]) for r in done}
    samples = {r["samples"] for r in done}
    print(
        json.dumps(
            {
                "gain_pts": round(tiered.estimate, 2) if tiered else None,
                "gain_ci_low": round(tiered.low, 2) if tiered else None,
                "gain_ci_high": round(tiered.high, 2) if tiered else None,
                "control_gain_pts": round(control.estimate, 2) if control else None,
                "control_gain_ci_low": round(control.low, 2) if control else None,
                "control_gain_ci_high": round(control.high, 2) if control else None,
                "seeds": len({r["seed"] for r in done}),
                "heldout_problems": problems.pop() if len(problems) == 1 else sorted(problems),
                "samples_per_problem": samples.pop() if len(samples) == 1 else sorted(samples),
                "minutes": round(sum(r["seconds"] for r in rows) / 60, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
