"""Draws the dashboard's main panels from a real Prometheus's data with matplotlib (docs/monitoring.png)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from live_stack import Prometheus

MAIN_PANELS = (
    "Mean reward",
    "Pass rate per tier",
    "KL and loss",
    "Tokens per second",
    "Sandbox throughput by verdict",
    "Sandbox latency",
    "GPU utilisation",
    "Curriculum phase and step",
)


def _legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: {{label}} replaced by the series' label value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def render_panels(
    server: Prometheus, dashboard: Path, concrete: Callable[[str], str], start: float, end: float, out: Path
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[str, Any] = {p["title"]: p for p in json.loads(dashboard.read_text())["panels"]}
    fig, axes = plt.subplots(2, 4, figsize=(18, 7.5), constrained_layout=True)
    for ax, title in zip(axes.flat, MAIN_PANELS, strict=True):
        panel = panels[title]
        for target in panel["targets"]:
            for series in server.query_range(concrete(target["expr"]), start, end, 1)["data"]["result"]:
                seconds = [float(t) - start for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                ax.plot(
                    seconds, values, label=_legend(target["legendFormat"], series["metric"]), linewidth=1.5
                )
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        ax.set_title(f"{title}" + (f"  [{unit}]" if unit else ""), fontsize=10)
        ax.set_xlabel("seconds since the trainer started", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="best")
    fig.suptitle(
        "TAROT runs dashboard, main panels: one tiny-model GRPO phase (4 steps) scraped every second by a "
        "real Prometheus; GPU series from a DCGM stand-in"
    )
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
