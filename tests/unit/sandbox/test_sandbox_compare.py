"""The output comparison rule shared by every backend."""

from __future__ import annotations

import pytest

from tarot_jobs.sandbox.compare import outputs_match


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ("1 2\n3\n", "1 2\n3"),
        ("1 2   \n3\t\n\n\n", "1 2\n3\n"),
        ("1\r\n2\r\n", "1\n2"),
        ("", ""),
        ("\n\n", ""),
        ("1 0\n0\n", "\n1 0\n0\n"),  # a leading blank line in the expected output (TAROT data has them)
    ],
)
def test_trailing_whitespace_and_blank_lines_are_ignored(actual: str, expected: str) -> None:
    assert outputs_match(actual, expected)


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ("1\n2\n", "1\n2\n3\n"),  # a missing line fails (no zip truncation)
        ("1\n2\n3\n", "1\n2\n"),  # so does an extra one
        (" 1\n", "1\n"),  # leading whitespace matters
        ("1\n\n2\n", "1\n2\n"),  # an inner blank line matters
        ("1 2\n", "1  2\n"),
        ("", "0"),
    ],
)
def test_anything_else_must_match_exactly(actual: str, expected: str) -> None:
    assert not outputs_match(actual, expected)


def test_float_tolerance_is_opt_in_and_token_wise() -> None:
    assert not outputs_match("0.3333333\n", "0.333333")
    assert outputs_match("0.3333333\n", "0.333333", float_tolerance=1e-5)
    assert outputs_match("x 1.0000001 2\n", "x 1.0 2", float_tolerance=1e-6)
    assert not outputs_match("x 1.1 2\n", "x 1.0 2", float_tolerance=1e-6)
    assert not outputs_match("y 1.0\n", "x 1.0", float_tolerance=1e-6)  # words still exact
    assert not outputs_match("1.0 2.0\n", "1.0", float_tolerance=1e-6)  # token counts must agree
    assert not outputs_match("1.0\n2.0\n", "1.0", float_tolerance=1.0)  # and line counts
    assert outputs_match("nan\n", "nan", float_tolerance=1e-9)
    assert outputs_match("1000000.5\n", "1000000", float_tolerance=1e-6)  # relative for large values
