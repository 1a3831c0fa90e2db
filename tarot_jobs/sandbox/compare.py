"""Judging a program's stdout against the expected output.

The rule (this module is its one place, docs/architecture.md): exact line-for-line after trimming the
trailing whitespace of every line. Blank lines before the first and after the last
line of text are dropped too: real data sets (TAROT's among them) store
expected outputs with a leading newline that no correct program prints. A
missing or extra line in between fails (no `zip` truncation). With `float_tolerance`, two lines also match
when they have the same tokens except numbers that are close.
"""

from __future__ import annotations

import math


def _normalised_lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    first_text = next((i for i, line in enumerate(lines) if line), len(lines))
    return lines[first_text:]


def _tokens_close(actual: str, expected: str, tolerance: float) -> bool:
    if actual == expected:
        return True
    try:
        a, e = float(actual), float(expected)
    except ValueError:
        return False
    if math.isnan(a) or math.isnan(e):
        return math.isnan(a) and math.isnan(e)
    return math.isclose(a, e, rel_tol=tolerance, abs_tol=tolerance)


def _lines_close(actual: str, expected: str, tolerance: float) -> bool:
    actual_tokens, expected_tokens = actual.split(), expected.split()
    return len(actual_tokens) == len(expected_tokens) and all(
        _tokens_close(a, e, tolerance) for a, e in zip(actual_tokens, expected_tokens, strict=True)
    )


def outputs_match(
    actual: str, expected: str, float_tolerance: float | None = None, *, strip_lines: bool = False
) -> bool:
    """True when `actual` stdout matches `expected` under tarot's comparison rule.

    `strip_lines` is the TAROT reference's rule (for reproductions): each line is
    compared after `strip()`, so leading spaces are ignored too."""
    actual_lines, expected_lines = _normalised_lines(actual), _normalised_lines(expected)
    if strip_lines:
        actual_lines = [line.strip() for line in actual_lines]
        expected_lines = [line.strip() for line in expected_lines]
    if len(actual_lines) != len(expected_lines):
        return False
    if float_tolerance is None:
        return actual_lines == expected_lines
    return all(
        a == e or _lines_close(a, e, float_tolerance)
        for a, e in zip(actual_lines, expected_lines, strict=True)
    )
