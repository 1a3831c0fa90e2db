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

`decode` also bounds its work, because the checker's deadline (a signal) only
fires between bytecodes, never inside one long C call: every step it takes in
C is short (a big int of at most 2**18 bits, a Fraction's parts of at most
2**16 bits, a Decimal of at most 4096 characters and exponent 10**4, a set or
dict whose elements share at most 256 hashes, so its construction is not
quadratic), and tuples and frozensets nest at most 1000 deep (hashing a
deeper tuple recurses in C without a limit and can overflow the checker's
stack; lists, sets and dicts may nest deeper: they are never hashed, and
comparing them is guarded by the recursion limit).
A value over a limit is a `LimitExceeded` (a `DecodeError`): the program's failure.
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
MAX_DEPTH = 1000  # tuples and frozensets, nested (hashing them recurses in C)
MAX_INT_BITS = 1 << 18  # multiplying two takes ~10 ms; str() of one is refused by Python anyway
MAX_FRACTION_BITS = 1 << 16  # per part: normalising a Fraction is a gcd, quadratic in the size (~7 ms)
MAX_DECIMAL_CHARS = 4096
MAX_DECIMAL_EXPONENT = 10_000  # int() or arithmetic of Decimal('1e999999999') would run for minutes
MAX_HASH_COLLISIONS = 256  # elements of one set or keys of one dict whose hash another element has
_SCALARS = (type(None), bool, int, float, str)
_CONTAINERS: tuple[tuple[type[Any], str], ...] = ((list, "l"), (tuple, "t"), (frozenset, "fs"), (set, "s"))


class DecodeError(ValueError):
    """The data is not in the plain-data form."""


class LimitExceeded(DecodeError):
    """The data is plain but over a limit that keeps the checker's work short (the program's failure)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the program's value is over the checker's limits: {what}")


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
    depths: list[int] = []  # how deep each value on the stack nests
    for index in range(0, len(tokens), 2):
        op, arg = tokens[index], tokens[index + 1]
        if op == "v" and plain_scalar(arg):  # most tokens: no call into _apply
            stack.append(arg)
            depths.append(0)
            continue
        try:
            _apply(op, arg, stack, depths, remote)
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


def _pop(stack: list[Any], depths: list[int], count: Any) -> tuple[list[Any], int]:
    """The top `count` values, and how deep hashing a tuple or frozenset of them would recurse."""
    if type(count) is not int or not 0 <= count <= len(stack):
        raise DecodeError("a container of more values than were given")
    if count == 0:
        return [], 1
    items = stack[-count:]
    depth = 1 + max(depths[-count:])
    del stack[-count:]
    del depths[-count:]
    return items, depth


def _hashable_depth(depth: int) -> int:
    if depth > MAX_DEPTH:
        raise LimitExceeded(f"tuples and frozensets nested more than {MAX_DEPTH} deep")
    return depth


def _few_collisions(hashable: list[Any]) -> list[Any]:
    """`hashable` itself, once it is known that building a set or dict of it takes linear time."""
    collisions = len(hashable) - len(set(map(hash, hashable)))  # a set of ints: no collision is costly
    if collisions > MAX_HASH_COLLISIONS:
        raise LimitExceeded(
            f"{collisions} elements of a set or dict share a hash (at most {MAX_HASH_COLLISIONS})"
        )
    return hashable


def _apply(
    op: Any, arg: Any, stack: list[Any], depths: list[int], remote: Callable[[int], Any] | None
) -> None:
    depth = 0  # how deep hash() of the value recurses; lists, sets and dicts are unhashable: 0
    if op == "v":
        if not plain_scalar(arg):
            raise DecodeError("not a plain scalar")
        value = arg
    elif op == "S":
        if type(arg) is not list:
            raise DecodeError("not a list")
        value = arg
    elif op == "T":
        if type(arg) is not list or not all(type(x) in (list, tuple) for x in arg):
            raise DecodeError("not a list of lists")
        value = list(map(tuple, arg))
    elif op == "l":
        value, _ = _pop(stack, depths, arg)
    elif op == "t":
        items, nested = _pop(stack, depths, arg)
        value, depth = tuple(items), _hashable_depth(nested)
    elif op in ("s", "fs"):
        items, nested = _pop(stack, depths, arg)
        value = (set if op == "s" else frozenset)(_few_collisions(items))
        depth = _hashable_depth(nested) if op == "fs" else 0
    elif op == "d":
        items, _ = _pop(stack, depths, arg * 2 if type(arg) is int else None)
        value = dict(zip(_few_collisions(items[::2]), items[1::2], strict=True))
    elif op in ("c", "q"):
        (first, second), _ = _pop(stack, depths, 2 if arg == 2 else None)
        if op == "c" and all(type(x) in (int, float) for x in (first, second)):
            value = complex(first, second)
        elif op == "q" and type(first) is int and type(second) is int:
            if max(first.bit_length(), second.bit_length()) > MAX_FRACTION_BITS:
                raise LimitExceeded(f"a Fraction's part has more than {MAX_FRACTION_BITS} bits")
            value = Fraction(first, second)
        else:
            raise DecodeError(f"bad parts of a {op!r} value")
    elif op == "r" and type(arg) is int and remote is not None:
        value = remote(arg)
    elif type(arg) is str and op in ("i", "f", "b", "ba", "dec"):
        value = _text_value(op, arg)
    else:
        raise DecodeError(f"unknown operation {str(op)[:10]!r}")
    stack.append(value)
    depths.append(depth)


def _text_value(op: str, text: str) -> Any:
    if op == "i":
        number = int(text, 16) if len(text) <= MAX_INT_BITS // 4 + 3 else None  # digits, sign, "0x"
        if number is None or number.bit_length() > MAX_INT_BITS:
            raise LimitExceeded(f"an int of more than {MAX_INT_BITS} bits")
        return number
    if op == "f" and text in ("inf", "-inf", "nan"):
        return float(text)
    if op == "b":
        return base64.b64decode(text, validate=True)
    if op == "ba":
        return bytearray(base64.b64decode(text, validate=True))
    if op == "dec":
        if len(text) > MAX_DECIMAL_CHARS:
            raise LimitExceeded(f"a Decimal of more than {MAX_DECIMAL_CHARS} characters")
        decimal = Decimal(text)
        if decimal.is_finite() and abs(decimal.adjusted()) > MAX_DECIMAL_EXPONENT:
            raise LimitExceeded(f"a Decimal's exponent is beyond +-{MAX_DECIMAL_EXPONENT}")
        return decimal
    raise DecodeError(f"bad {op!r} value")
