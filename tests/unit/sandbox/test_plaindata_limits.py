"""plaindata.decode's limits: values up to each limit decode, values over it are LimitExceeded."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from tarot_jobs.sandbox import plaindata
from tarot_jobs.sandbox.plaindata import LimitExceeded, decode, encode

P = (1 << 61) - 1  # ints that differ by a multiple of it share a hash


def nested(depth: int, op: str = "t") -> list[Any]:
    return ["v", 0] + [op, 1] * depth


@pytest.mark.parametrize(
    "value",
    [
        {-1, -2, 3},  # -1 and -2 share a hash: a few collisions are normal
        {k * P + 1 for k in range(1, plaindata.MAX_HASH_COLLISIONS + 2)},
        {(i, str(i)): [i] for i in range(1000)},
        frozenset({(1, 2), (3, (4, 5))}),
        (1 << plaindata.MAX_INT_BITS) - 1,
        -((1 << plaindata.MAX_INT_BITS) - 1),
        Fraction((1 << plaindata.MAX_FRACTION_BITS) - 1, 3),
        Decimal("1.5e10000"),
        Decimal("-Infinity"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_values_within_the_limits_come_back_equal(value: Any) -> None:
    assert decode(encode(value)) == value


def test_nesting_up_to_the_limit_decodes() -> None:
    value = decode([*nested(plaindata.MAX_DEPTH - 1), "fs", 1])
    assert isinstance(value, frozenset) and hash(value) is not None


def test_lists_sets_and_dicts_may_nest_deeper() -> None:
    """They are never hashed (a bundled test passes a list nested 5000 deep)."""
    deep = decode(nested(10**4, "l"))
    for _ in range(10**4):
        deep = deep[0]
    assert deep == 0


@pytest.mark.parametrize(
    ("tokens", "what"),
    [
        (nested(plaindata.MAX_DEPTH + 1), "tuples and frozensets nested more than 1000 deep"),
        (nested(plaindata.MAX_DEPTH + 1, "fs"), "tuples and frozensets nested more than 1000 deep"),
        ([*nested(10**5, "l"), *["t", 1] * (plaindata.MAX_DEPTH + 1)], "tuples and frozensets nested more"),
        (
            [t for k in range(1, 2000) for t in ("i", hex(k * P + 1))] + ["s", 1999],
            "1998 elements of a set or dict share a hash",
        ),
        (
            [t for k in range(1, 2000) for t in ("i", hex(k * P + 1), "v", k)] + ["d", 1999],
            "1998 elements of a set or dict share a hash",
        ),
        (["i", hex(1 << plaindata.MAX_INT_BITS)], "an int of more than 262144 bits"),
        (["i", "0x" + "0" * (1 << 20) + "1"], "an int of more than 262144 bits"),
        (["i", hex(1 << plaindata.MAX_FRACTION_BITS), "v", 3, "q", 2], "a Fraction's part has more than"),
        (["dec", "1e10001"], "a Decimal's exponent is beyond"),
        (["dec", "1." + "1" * plaindata.MAX_DECIMAL_CHARS], "a Decimal of more than 4096 characters"),
    ],
)
def test_values_over_a_limit_are_refused_with_the_limit_named(tokens: list[Any], what: str) -> None:
    with pytest.raises(LimitExceeded, match="the program's value is over the checker's limits: " + what):
        decode(tokens)
    assert issubclass(LimitExceeded, plaindata.DecodeError)  # the channel treats it as the program's fault
