"""The percentile every bench reports: the nearest-rank value of the sorted sample (NaN for none)."""

from __future__ import annotations


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")
