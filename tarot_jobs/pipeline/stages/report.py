"""The run's report: report.json (for machines), report.md (for people), curves.png.

Everything is read back from the stages' files in the workdir, so a report can
be rebuilt at any time from a finished (or interrupted) run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tarot_jobs.atomic import write_json_atomically
from tarot_jobs.problems.model import ALL_TIERS

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CURVES_PNG = "curves.png"

TIER_NAMES = [t.value for t in ALL_TIERS]
TIER_COLOURS = {"basic": "#2a9d8f", "intermediate": "#e9c46a", "complex": "#f4a261", "edge": "#e76f51"}
TINY_NOTE = (
    "The model is tarot's built-in `tiny` preset: a 2-layer, 64-wide model warmed up on the training "
    "problems' gold answers. It exists to exercise the pipeline; it learns little, and its held-out pass "
    "rates say nothing about what a real model would gain."
)


def tier_pass_at_1(evaluation: dict[str, Any] | None) -> dict[str, float | None] | None:
    """{basic, intermediate, complex, edge, overall} pass@1 on the held-out set of an evaluation.json."""
    if evaluation is None:
        return None
    table: dict[str, float | None] = evaluation["heldout"]["pass@1"]
    return {name: table.get(name) for name in [*TIER_NAMES, "overall"]}


def build_report(
    *,
    spec_file: str,
    model: str,
    data_summary: dict[str, Any],
    capability: dict[str, Any],
    selection: dict[str, Any],
    phases: Sequence[dict[str, Any]],
    before: dict[str, Any] | None,
    after: dict[str, Any],
    stage_seconds: dict[str, float],
) -> dict[str, Any]:
    return {
        "spec": spec_file,
        "model": model,
        "data": data_summary.get("usable", {}),
        "capability": {
            "score": capability["score"],
            "pass_at_1": capability["pass_at_1"],
            "test_pass_rate": capability["test_pass_rate"],
            "counts": capability["counts"],
        },
        "policy": {
            "name": selection["policy"]["name"],
            "reason": selection["reason"],
            "rule": selection["rule"],
            "score": selection.get("score"),
            "threshold": selection.get("threshold"),
        },
        "phases": [
            {
                "index": p["index"],
                "tiers": p["tiers"],
                "weights": p["weights"],
                "steps": p["steps"],  # the phase's own; global_step is run-wide
                "last_step": p["global_step"],
                "mean_reward": p["mean_reward"],
                "mean_tier_pass_rate": p.get("mean_tier_pass_rate", {}),
                "sandbox": p.get("sandbox"),  # which sandbox scored the phase, and how many tests
                "world_size": p.get("world_size"),  # processes that trained it (all nodes)
            }
            for p in phases
        ],
        "evaluation": {"before": tier_pass_at_1(before), "after": tier_pass_at_1(after)},
        "evaluation_extra": {
            "before": before.get("extra", {}) if before else {},
            "after": after.get("extra", {}),
        },
        "stage_seconds": stage_seconds,
        "stage_seconds_total": round(sum(stage_seconds.values()), 2),
    }


def yardstick_series(steps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fixed yardstick's measurements carried by the step records, by step (training.evalEverySteps)."""
    found = {m["step"]: m for s in steps for m in s.get("yardstick", [])}
    return [found[step] for step in sorted(found)]


def write_report(workdir: Path, report: dict[str, Any], steps: Sequence[dict[str, Any]], tiny: bool) -> None:
    """report.json, curves.png, then report.md (which shows the picture)."""
    report = {**report, "yardstick": yardstick_series(steps)}
    write_json_atomically(workdir / REPORT_JSON, report)
    draw_curves(workdir / CURVES_PNG, steps, report)
    text = render_markdown(report, tiny)
    tmp = workdir / f".{REPORT_MD}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(workdir / REPORT_MD)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_markdown(report: dict[str, Any], tiny: bool) -> str:
    cap, policy, data = report["capability"], report["policy"], report["data"]
    lines = [
        "# tarot run report",
        "",
        f"- spec: `{report['spec']}`",
        f"- model: `{report['model']}`",
        f"- problems: {data.get('train', '?')} training, {data.get('heldout', '?')} held-out",
        f"- time in stages: {report['stage_seconds_total']:.0f} s "
        + "("
        + ", ".join(f"{k} {v:.0f} s" for k, v in report["stage_seconds"].items())
        + ")",
        "",
        "## Capability probe",
        "",
        f"Capability score (overall pass@1 on held-out problems): **{cap['score']:.3f}** "
        f"({cap['counts']['completions']} completions of {cap['counts']['problems']} problems).",
        "",
        "| tier | pass@1 | tests passed |",
        "|---|---|---|",
    ]
    for tier in TIER_NAMES:
        lines.append(
            f"| {tier} | {_pct(cap['pass_at_1'].get(tier))} | {_pct(cap['test_pass_rate'].get(tier))} |"
        )
    lines += [
        "",
        "## Curriculum",
        "",
        f"Policy **{policy['name']}** ({policy['rule']}): {policy['reason']}.",
        "",
        "| phase | tiers | weights | steps | processes | mean reward | sandbox (tests) |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in report["phases"]:
        weights = ", ".join(f"{t[0].upper()} {w:g}" for t, w in p["weights"].items())
        reward = "-" if p["mean_reward"] is None else f"{p['mean_reward']:.3f}"
        tiers = "+".join(t[0].upper() for t in p["tiers"])
        sandbox = p.get("sandbox")
        scored = "-" if sandbox is None else f"{sandbox['backend']} ({sandbox['scoredTests']})"
        processes = p.get("world_size") or "-"
        lines.append(
            f"| {p['index']} | {tiers} | {weights} | {p['steps']} | {processes} | {reward} | {scored} |"
        )
    before, after = report["evaluation"]["before"], report["evaluation"]["after"]
    lines += ["", "## Held-out evaluation (pass@1)", "", "| tier | before | after |", "|---|---|---|"]
    for name in [*TIER_NAMES, "overall"]:
        lines.append(f"| {name} | {_pct(before.get(name)) if before else '-'} | {_pct(after.get(name))} |")
    for source, result in report["evaluation_extra"]["after"].items():
        earlier = report["evaluation_extra"]["before"].get(source)
        was = _pct(earlier["pass@1"]["overall"]) if earlier else "-"
        lines.append(
            f"\nExtra set `{source}`: overall pass@1 {was} before, {_pct(result['pass@1']['overall'])} after."
        )
    yardstick = report.get("yardstick") or []
    if yardstick:
        first, last = yardstick[0], yardstick[-1]
        lines += [
            "",
            f"Fixed yardstick (greedy pass@1, all tiers, {first['problems']} training problems): "
            f"{_pct(first['pass_at_1'].get('overall'))} at step {first['step']}, "
            f"{_pct(last['pass_at_1'].get('overall'))} at step {last['step']}.",
        ]
    lines += ["", f"![reward per tier and pass rates]({CURVES_PNG})", ""]
    if tiny:
        lines += [f"> {TINY_NOTE}", ""]
    return "\n".join(lines)


def draw_curves(path: Path, steps: Sequence[dict[str, Any]], report: dict[str, Any]) -> None:
    """Reward per tier over training steps with the phases shaded; pass@1 per tier before and after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, bars) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [2, 1]})
    offset = 0
    for i, phase in enumerate(report["phases"]):
        start, end = offset, offset + phase["steps"]
        curves.axvspan(start + 0.5, end + 0.5, color="#000000", alpha=0.04 if i % 2 == 0 else 0.10, lw=0)
        label = "+".join(t[0].upper() for t in phase["tiers"])
        curves.text(
            (start + end) / 2 + 0.5, 1.04, f"phase {i}\n{label}", ha="center", va="bottom", fontsize=8
        )
        offset = end
    x = [s["run_step"] for s in steps]
    for tier in TIER_NAMES:
        points = [(s["run_step"], s["tier_pass_rate"][tier]) for s in steps if tier in s["tier_pass_rate"]]
        if points:
            xs, ys = zip(*points, strict=True)
            curves.plot(
                xs, ys, marker="o", ms=3, lw=1.4, color=TIER_COLOURS[tier], label=f"{tier} tests passed"
            )
    rewards = [(s["run_step"], s["reward"]) for s in steps if s.get("reward") is not None]
    if rewards:
        xs, ys = zip(*rewards, strict=True)
        curves.plot(xs, ys, color="black", lw=1.8, ls="--", label="total reward")
    # The phase reward changes meaning at each boundary; the yardstick is one measure for the whole run.
    yardstick = [(m["step"], m["pass_at_1"].get("overall")) for m in report.get("yardstick", [])]
    yardstick = [(step, value) for step, value in yardstick if value is not None]
    if yardstick:
        xs, ys = zip(*yardstick, strict=True)
        curves.plot(
            xs, ys, color="#6a4c93", lw=2.2, marker="s", ms=5, label="yardstick pass@1 (fixed set, all tiers)"
        )
    curves.set_xlim(-0.5 if yardstick else 0.5, max([offset, *x, 1]) + 0.5)
    curves.set_ylim(-0.02, 1.18)
    curves.set_xlabel("optimizer step (whole run)")
    curves.set_ylabel("reward / pass rate")
    curves.set_title(f"Training ({report['policy']['name']})", pad=28)
    curves.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=5, fontsize=8, frameon=False)
    curves.grid(alpha=0.3)

    names = [*TIER_NAMES, "overall"]
    before, after = report["evaluation"]["before"], report["evaluation"]["after"]
    width = 0.38
    positions = range(len(names))
    if before:
        drawn = bars.bar(
            [p - width / 2 for p in positions],
            [before.get(n) or 0 for n in names],
            width,
            label="before",
            color="#9aa5b1",
        )
        bars.bar_label(drawn, labels=[_pct(before.get(n)) for n in names], fontsize=7, rotation=90, padding=2)
    drawn = bars.bar(
        [p + width / 2 for p in positions],
        [after.get(n) or 0 for n in names],
        width,
        label="after",
        color="#264653",
    )
    bars.bar_label(drawn, labels=[_pct(after.get(n)) for n in names], fontsize=7, rotation=90, padding=2)
    bars.set_xticks(list(positions), names, rotation=20)
    bars.set_ylim(0, 1.15)
    bars.set_ylabel("held-out pass@1")
    bars.set_title("Held-out pass@1 per tier")
    bars.legend(fontsize=8)
    bars.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
