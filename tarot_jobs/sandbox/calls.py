"""Calling a program's function from the checker, across a socket, with plain data only.

Stdlib only (loaded by `helper.py`). Two sides:

* `serve_calls` runs in the program's (jailed) process after the program: it
  answers each call frame by calling into the program's namespace and sending
  back the plain-data result, or the name of the exception raised. It holds
  no test code and no expected value.
* `Channel` and `RemoteObject` run in the checker: test code calls
  `RemoteObject`s (the entry point, other names the test does not define) as
  if they were the functions; arguments are encoded, results decoded by
  `plaindata.decode`, so the checker compares builtin values only. A value of
  another type stays in the program and comes back as a `RemoteObject` whose
  equality is identity: its own `__eq__` never runs in the checker.

Whatever the program writes on the socket (forged replies, garbage, nothing)
can only give the checker a builtin value, a `ProgramFault`, or a name of an
exception from a fixed list; the checker never parses a verdict from it.
"""

from __future__ import annotations

import builtins
import socket
import sys
from typing import Any

from tarot_jobs.sandbox import frames, plaindata

# Exceptions a program's function may raise into the test (the test may catch them).
# StopIteration and friends are left out on purpose: raised inside a test's `map`
# or generator they would end the iteration early and make `all(...)` true.
_RAISABLE: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        ArithmeticError,
        AssertionError,
        AttributeError,
        EOFError,
        IndexError,
        KeyError,
        LookupError,
        MemoryError,
        NameError,
        NotImplementedError,
        OSError,
        OverflowError,
        RecursionError,
        RuntimeError,
        TypeError,
        UnboundLocalError,
        UnicodeError,
        ValueError,
        ZeroDivisionError,
    )
}
_KEEP_AT = 1000  # lists at least this long are sent once per test and then referred to


class ProgramRaised(Exception):
    """The program's function raised an exception that is not one of the builtin ones above."""


class ProgramFault(BaseException):
    """The program ended, or broke the call protocol, while the checker waited for it."""


# --- the program's side ---------------------------------------------------------------------------


def serve_calls(fd: int, namespace: dict[str, Any], max_frame_bytes: int) -> None:
    """Answer calls on `fd` until the checker closes it."""
    sock = socket.socket(fileno=fd)
    handles: dict[int, Any] = {}
    kept: dict[int, list[Any]] = {}

    def handle(value: Any) -> int:
        handles[len(handles) + 1] = value
        return len(handles)

    def resolve(ident: int) -> Any:
        return handles[ident]

    while True:
        received = frames.recv_frame(sock, max_frame_bytes)
        if received is None:
            return
        request, _ = received
        reply: dict[str, Any] = {"id": request.get("id")}
        try:
            value = _perform(request, namespace, handles, resolve, kept)
            reply["value"] = plaindata.encode(value, handle)
        except StopIteration:
            reply["stop"] = True
        except BaseException as exc:  # the function's failure is the answer
            reply["raised"] = type(exc).__name__
            reply["message"] = _safe_str(exc)
        frames.send_frame(sock, reply)


def _argument(sent: Any, resolve: Any, kept: dict[int, list[Any]]) -> Any:
    """An argument: tokens, or a big list the checker sent before and kept unchanged since. Each
    call gets its own copy, as if each had been sent afresh (a function may change its argument)."""
    if isinstance(sent, dict):
        if "keep" in sent:
            kept[sent["keep"]] = plaindata.decode(sent["value"], resolve)
        return list(kept[sent["slot"] if "slot" in sent else sent["keep"]])
    return plaindata.decode(sent, resolve)


def _perform(
    request: dict[str, Any],
    namespace: dict[str, Any],
    handles: dict[int, Any],
    resolve: Any,
    kept: dict[int, list[Any]],
) -> Any:
    kind, ident = request["target"]
    if kind == "g":
        if ident not in namespace:
            raise NameError(f"name {ident!r} is not defined")
        target = namespace[ident]
    else:
        target = handles[ident]
    args = [_argument(a, resolve, kept) for a in request.get("args", [])]
    kwargs = {k: _argument(v, resolve, kept) for k, v in request.get("kwargs", {}).items()}
    op = request["op"]
    if op == "call":
        return target(*args, **kwargs)
    if op == "getattr":
        return getattr(target, args[0])
    if op == "iter":
        return iter(target)
    if op == "next":
        return next(target)
    if op == "len":
        return len(target)
    if op == "bool":
        return bool(target)
    if op == "getitem":
        return target[args[0]]
    if op == "contains":
        return args[0] in target
    if op == "repr":
        return repr(target)
    raise ValueError(f"unknown operation {op!r}")


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:300]
    except BaseException:
        return ""


# --- the checker's side ---------------------------------------------------------------------------


class Channel:
    """The checker's end of the call socket; remembers whether the program ever misbehaved."""

    def __init__(self, sock: socket.socket, max_reply_bytes: int) -> None:
        self.sock = sock
        self.max_reply_bytes = max_reply_bytes
        self.fault: str | None = None
        self.calls = 0
        # Big lists of immutable values already sent, by identity: (the list, a copy as sent, its slot).
        # A test that passes the same million-element list to every call sends it once.
        self._sent: dict[int, tuple[list[Any], list[Any], int]] = {}

    def _encode_argument(self, value: Any) -> Any:
        if type(value) is not list or len(value) < _KEEP_AT:
            return plaindata.encode(value, _handle_of)
        known = self._sent.get(id(value))
        if known is not None and known[0] is value and known[1] == value:
            return {"slot": known[2]}  # unchanged: its copy holds only immutable values
        form = plaindata.fast_form(value)
        if form not in ("S", "T"):  # inner lists could change unseen: no keeping
            return ["S", value] if form == "N" else plaindata.encode(value, _handle_of)
        slot = len(self._sent) + 1
        self._sent[id(value)] = (value, list(value), slot)
        return {"keep": slot, "value": [form, value]}

    def request(self, op: str, target: tuple[str, Any], *args: Any, **kwargs: Any) -> Any:
        if self.fault is not None:
            raise ProgramFault(self.fault)
        self.calls += 1
        message = {
            "id": self.calls,
            "op": op,
            "target": list(target),
            "args": [self._encode_argument(a) for a in args],
            "kwargs": {k: self._encode_argument(v) for k, v in kwargs.items()},
        }
        try:
            frames.send_frame(self.sock, message)
            received = frames.recv_frame(self.sock, self.max_reply_bytes)
            if received is None:
                raise frames.FrameError("the program's process ended")
            reply, fds = received
            for fd in fds:
                socket.close(fd)
            return self._answer(op, reply)
        except (OSError, frames.FrameError, plaindata.DecodeError, RecursionError) as exc:
            self.fault = self.fault or f"{exc}"
            raise ProgramFault(self.fault) from None

    def _answer(self, op: str, reply: dict[str, Any]) -> Any:
        if reply.get("id") != self.calls:
            raise frames.FrameError("a reply to another call")
        if "value" in reply:
            return plaindata.decode(reply["value"], lambda ident: RemoteObject(self, ("h", ident)))
        if reply.get("stop") is True and op == "next":
            raise StopIteration  # only ever the end of an iterator the test is walking
        name = reply.get("raised")
        if type(name) is not str:
            raise frames.FrameError("a reply with neither a value nor an exception")
        message = reply.get("message")
        text = message[:300] if type(message) is str else ""
        cls = _RAISABLE.get(name)
        if cls is None:
            raise ProgramRaised(f"{name[:60]}: {text}")
        raise cls(text)


def _handle_of(value: Any) -> int:
    if isinstance(value, RemoteObject):
        kind, ident = value._target
        if kind == "h":
            return int(ident)
    raise plaindata.Unencodable(f"a {type(value).__name__} cannot be passed to the program")


class RemoteObject:
    """A value that lives in the program's process. Equality is identity (the same handle)."""

    __slots__ = ("_channel", "_target")

    def __init__(self, channel: Channel, target: tuple[str, Any]) -> None:
        self._channel = channel
        self._target = target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.request("call", self._target, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._channel.request("getattr", self._target, name)

    def __iter__(self) -> Any:
        return self._channel.request("iter", self._target)

    def __next__(self) -> Any:
        return self._channel.request("next", self._target)

    def __len__(self) -> int:
        value = self._channel.request("len", self._target)
        if type(value) is not int:
            raise TypeError("len() of the program's object is not an int")
        return value

    def __bool__(self) -> bool:
        return self._channel.request("bool", self._target) is True

    def __getitem__(self, key: Any) -> Any:
        return self._channel.request("getitem", self._target, key)

    def __contains__(self, item: Any) -> bool:
        return self._channel.request("contains", self._target, item) is True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteObject) and other._target == self._target

    def __hash__(self) -> int:
        return hash(("remote", *self._target))

    def __repr__(self) -> str:
        return f"<the program's {self._target[1]!r}>" if self._target[0] == "g" else "<a program object>"


class TestNamespace(dict[str, Any]):
    """Globals for test code: a name the test does not define is the program's (as when they share a
    module, as in HumanEval's harness), looked up only when used; builtins stay the checker's."""

    __test__ = False

    def __init__(self, channel: Channel) -> None:
        super().__init__(__name__="__main__", __builtins__=builtins)
        self._channel = channel

    def __missing__(self, name: str) -> Any:
        if hasattr(builtins, name):
            raise KeyError(name)
        return RemoteObject(self._channel, ("g", name))


def reset_interpreter_state(recursion_limit: int) -> None:
    """Undo what one test may have changed that would bias the next."""
    sys.setrecursionlimit(recursion_limit)
