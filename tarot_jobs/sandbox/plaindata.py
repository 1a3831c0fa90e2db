"""Plain data between a program's function and the checker that tests it.

Loaded by `helper.py` (stdlib only). The checker calls the program's function
across a socket; arguments go one way and return values the other, as a flat
JSON array of (operation, argument) pairs in postfix order, so that no depth
of nesting needs recursion on either side:

    "v", scalar         push null, true, false, a string, an int within +-2**53, a finite float
    "S", [...]          push a JSON array as the list it is (the fast path for big lists of
                        scalars or of lists of scalars; json.loads makes only builtin values)
    "T", [[...], ...]   push a list of tuples (the fast path for big lists of tuples of scalars)
    "i", hex            push a big int          "f", "inf" | "-inf" | "nan"   a non-finite float
    "b", base64         push bytes              "ba", base64   a bytearray
    "dec", text         push a Decimal
    "l" | "t" | "s" | "fs", n    pop n values: list, tuple, set, frozenset
    "d", n              pop 2n values (key, value, key, value, ...): a dict
    "c", 2 / "q", 2     pop re, im: a complex / pop numerator, denominator: a Fraction
    "r", id             push a handle: a value of another type, which stays in the program

`decode` is the checker's side of the trust boundary: whatever the program
sends, it builds only builtin values (and the handles its caller makes), so no
`__eq__`, `__hash__` or `__del__` the program wrote ever runs in the checker.
Anything else is a `DecodeError`. `encode` runs in the program's process too
and need not be trusted.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

_SAFE_INT = 1 << 53
MAX_TOKENS = 1 << 24  # bounds the work for one value (and stops at a self-containing list)
_SCALARS = (type(None), bool, int, float, str)
_CONTAINERS: tuple[tuple[type[Any], str], ...] = ((list, "l"), (tuple, "t"), (frozenset, "fs"), (set, "s"))


class DecodeError(ValueError):
    """The data is not in the plain-data form."""


class Unencodable(TypeError):
    """A value that cannot be sent (a checker-side object the program could not use)."""


def plain_scalar(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return -_SAFE_INT < value < _SAFE_INT
    if kind is float:
        return math.isfinite(value)
    return kind is str or kind is bool or value is None


def _scalars(items: Any) -> bool:
    return all(map(plain_scalar, items))


def fast_form(value: Any) -> str | None:
    """How a big list can go as one JSON array: "S" (plain scalars), "N" (lists of them, sent as "S"),
    "T" (tuples of them); None when it cannot."""
    if type(value) is not list:
        return None
    if _scalars(value):
        return "S"
    if all(type(x) is list and _scalars(x) for x in value):
        return "N"
    if all(type(x) is tuple and _scalars(x) for x in value):
        return "T"
    return None


def _leaf(value: Any) -> list[Any] | None:
    """The tokens of a non-container value, or None for a container or a foreign object."""
    if plain_scalar(value):
        return ["v", value]
    if isinstance(value, bool):
        return ["v", bool(value)]
    if isinstance(value, int):
        value = int(value)
        return ["v", value] if -_SAFE_INT < value < _SAFE_INT else ["i", hex(value)]
    if isinstance(value, float):
        value = float(value)
        return ["v", value] if math.isfinite(value) else ["f", repr(value)]
    if isinstance(value, str):
        return ["v", str.__str__(value)]
    if isinstance(value, bytes | bytearray):
        return ["ba" if isinstance(value, bytearray) else "b", base64.b64encode(bytes(value)).decode()]
    if isinstance(value, Decimal):
        return ["dec", str(value)]
    return None


def encode(value: Any, handle: Callable[[Any], int] | None = None) -> list[Any]:
    """The token list of `value`; values of other types become handles (or Unencodable)."""
    out: list[Any] = []
    stack: list[tuple[bool, Any]] = [(False, value)]  # (is a pending container op, value or (op, n))
    while stack:
        pending, item = stack.pop()
        if pending:
            out += item
            continue
        if len(out) > MAX_TOKENS:
            raise Unencodable("the value is too large (or contains itself)")
        leaf = _leaf(item)
        if leaf is not None:
            out += leaf
            continue
        fast = fast_form(item)
        if fast is not None:
            out += ["T" if fast == "T" else "S", item]  # one JSON array: C speed on both sides
            continue
        children: list[Any] | None = None
        for kind, tag in _CONTAINERS:
            if isinstance(item, kind):
                children = list(item)  # a list, tuple, set or frozenset
                op = [tag, len(children)]
                break
        else:
            if isinstance(item, dict):
                children = [x for pair in dict.items(item) for x in pair]
                op = ["d", len(children) // 2]
            elif isinstance(item, complex):
                children, op = [item.real, item.imag], ["c", 2]
            elif isinstance(item, Fraction):
                children, op = [item.numerator, item.denominator], ["q", 2]
        if children is None:
            if handle is None:
                raise Unencodable(f"a {type(item).__name__} cannot be sent to the program")
            out += ["r", handle(item)]
            continue
        stack.append((True, op))
        stack.extend((False, child) for child in reversed(children))
    return out


def decode(tokens: Any, remote: Callable[[int], Any] | None = None) -> Any:
    """The one value the token list `tokens` builds; `remote(id)` makes the value of a handle."""
    if type(tokens) is not list or len(tokens) % 2 or len(tokens) > 2 * MAX_TOKENS:
        raise DecodeError("not a token list")
    stack: list[Any] = []
    for index in range(0, len(tokens), 2):
        op, arg = tokens[index], tokens[index + 1]
        try:
            _apply(op, arg, stack, remote)
        except DecodeError:
            raise
        except (
            ValueError,
            TypeError,
            OverflowError,
            binascii.Error,
            InvalidOperation,
            ZeroDivisionError,
        ) as exc:
            raise DecodeError(f"bad {str(op)[:10]!r} token: {type(exc).__name__}") from None
    if len(stack) != 1:
        raise DecodeError("a token list must build exactly one value")
    return stack[0]


def _pop(stack: list[Any], count: Any) -> list[Any]:
    if type(count) is not int or not 0 <= count <= len(stack):
        raise DecodeError("a container of more values than were given")
    if count == 0:
        return []
    items = stack[-count:]
    del stack[-count:]
    return items


def _apply(op: Any, arg: Any, stack: list[Any], remote: Callable[[int], Any] | None) -> None:
    if op == "v":
        if not plain_scalar(arg):
            raise DecodeError("not a plain scalar")
        stack.append(arg)
    elif op == "S":
        if type(arg) is not list:
            raise DecodeError("not a list")
        stack.append(arg)
    elif op == "T":
        if type(arg) is not list or not all(type(x) in (list, tuple) for x in arg):
            raise DecodeError("not a list of lists")
        stack.append(list(map(tuple, arg)))
    elif op in ("l", "t", "s", "fs"):
        items = _pop(stack, arg)
        stack.append({"l": list, "t": tuple, "s": set, "fs": frozenset}[op](items))
    elif op == "d":
        items = _pop(stack, arg * 2 if type(arg) is int else None)
        stack.append(dict(zip(items[::2], items[1::2], strict=True)))
    elif op in ("c", "q"):
        first, second = _pop(stack, 2 if arg == 2 else None)
        if op == "c" and all(type(x) in (int, float) for x in (first, second)):
            stack.append(complex(first, second))
        elif op == "q" and type(first) is int and type(second) is int:
            stack.append(Fraction(first, second))
        else:
            raise DecodeError(f"bad parts of a {op!r} value")
    elif op == "r" and type(arg) is int and remote is not None:
        stack.append(remote(arg))
    elif type(arg) is str and op in ("i", "f", "b", "ba", "dec"):
        stack.append(_text_value(op, arg))
    else:
        raise DecodeError(f"unknown operation {str(op)[:10]!r}")


def _text_value(op: str, text: str) -> Any:
    if op == "i" and len(text) < 1 << 22:
        return int(text, 16)
    if op == "f" and text in ("inf", "-inf", "nan"):
        return float(text)
    if op == "b":
        return base64.b64decode(text, validate=True)
    if op == "ba":
        return bytearray(base64.b64decode(text, validate=True))
    if op == "dec" and len(text) < 1 << 16:
        return Decimal(text)
    raise DecodeError(f"bad {op!r} value")
