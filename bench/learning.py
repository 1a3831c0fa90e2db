"""Does the loop make a model better? `tarot run` of the toy-learning spec per policy and seed.

    python3 bench/learning.py                                   # forward, seed 0
    python3 bench/learning.py --policy forward reverse static --seeds 0 1 2 --plot docs/learning.png

Each run is `tarot run` of examples/toy-learning.yaml (or --spec) with the curriculum policy and the
training seed replaced, in its own workdir under --out (a rerun resumes and reuses finished runs).
Prints a table (held-out overall pass@1 before -> after, the fixed yardstick's first and last value,
wall time), then one JSON line. The bar of docs/learning.md: held-out overall pass@1 up by >= 10 points
and the yardstick by >= 0.15 with the forward policy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TIERS = ("basic", "intermediate", "complex", "edge")


def run_one(spec_file: Path, policy: str, seed: int, out: Path, model_cache: Path) -> dict[str, Any]:
    name = f"{policy}-seed{seed}"
    workdir = out / name
    manifest = yaml.safe_load(spec_file.read_text())
    manifest["spec"]["curriculum"]["policy"] = policy
    manifest["spec"]["training"]["seed"] = seed
    variant = out / f"{name}.yaml"
    out.mkdir(parents=True, exist_ok=True)
    variant.write_text(yaml.safe_dump(manifest, sort_keys=False))
    started = time.monotonic()
    command = ["tarot", "run", str(variant), "--workdir", str(workdir), "--model-cache", str(model_cache)]
    print(f"[learning] {name}: {' '.join(command)}", file=sys.stderr, flush=True)
    with (out / f"{name}.log").open("a") as log:
        rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    seconds = round(time.monotonic() - started, 1)
    if rc != 0:
        return {"run": name, "policy": policy, "seed": seed, "rc": rc, "seconds": seconds}
    report = json.loads((workdir / "report.json").read_text())
    yardstick = sorted(
        (
            json.loads(line)
            for f in sorted(workdir.glob("train/phase-*/yardstick.jsonl"))
            for line in f.open()
        ),
        key=lambda m: m["step"],
    )
    before, after = report["evaluation"]["before"], report["evaluation"]["after"]
    return {
        "run": name,
        "policy": policy,
        "seed": seed,
        "rc": 0,
        "seconds": seconds,
        "heldout_before": before["overall"],
        "heldout_after": after["overall"],
        "tiers_before": {t: before[t] for t in TIERS},
        "tiers_after": {t: after[t] for t in TIERS},
        "yardstick": [(m["step"], m["pass_at_1"]["overall"]) for m in yardstick],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| run | held-out overall before -> after | yardstick first -> last | wall |")
    print("|---|---|---|---|")
    for row in rows:
        if row["rc"] != 0:
            print(f"| {row['run']} | failed (exit {row['rc']}, see its .log) | | {row['seconds']} s |")
            continue
        yard = row["yardstick"]
        yard_text = f"{yard[0][1]:.2f} -> {yard[-1][1]:.2f}" if yard else "-"
        print(
            f"| {row['run']} | {100 * row['heldout_before']:.1f} -> {100 * row['heldout_after']:.1f} "
            f"| {yard_text} | {row['seconds']} s |"
        )


def plot(rows: list[dict[str, Any]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["rc"] == 0]
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.5))
    for row in done:
        if row["yardstick"]:
            steps, values = zip(*row["yardstick"], strict=True)
            curves.plot(steps, values, marker="o", ms=3, label=row["run"])
    curves.set(
        xlabel="optimizer step (whole run)", ylabel="yardstick: greedy pass@1", title="Fixed yardstick"
    )
    curves.grid(alpha=0.3)
    curves.legend(fontsize=7)
    positions = range(len(done))
    bars.bar([i - 0.2 for i in positions], [r["heldout_before"] for r in done], 0.4, label="before")
    bars.bar([i + 0.2 for i in positions], [r["heldout_after"] for r in done], 0.4, label="after")
    bars.set_xticks(list(positions), [r["run"] for r in done], rotation=30, fontsize=7)
    bars.set(ylabel="held-out overall pass@1", title="Held-out before / after")
    bars.grid(axis="y", alpha=0.3)
    bars.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", type=Path, default=ROOT / "examples" / "toy-learning.yaml")
    parser.add_argument("--policy", nargs="+", default=["forward"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "learning")
    parser.add_argument("--model-cache", type=Path, default=ROOT / "runs" / "learning" / "models")
    parser.add_argument("--plot", type=Path, default=None, help="write the curves and bars as a PNG")
    args = parser.parse_args()

    rows = [
        run_one(args.spec, policy, seed, args.out, args.model_cache)
        for policy in args.policy
        for seed in args.seeds
    ]
    print_table(rows)
    if args.plot:
        plot(rows, args.plot)
    print(json.dumps([{k: v for k, v in r.items() if k != "yardstick"} for r in rows]))


if __name__ == "__main__":
    main()
