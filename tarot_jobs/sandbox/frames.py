"""Frames on a Unix stream socket: a 4-byte big-endian length, a JSON object, optionally descriptors.

Stdlib only: the helper loads it (see `helper.py`). Descriptors ride on the
frame's first bytes (SCM_RIGHTS), so a reader always takes the header with
recvmsg. A reader gives a size cap: a longer frame is refused before anything
is allocated for it.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

_HEADER = struct.Struct(">I")


class FrameError(ValueError):
    """The peer broke the framing: too long, not JSON, or not an object."""


def encode_frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, allow_nan=False, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def send_frame(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = encode_frame(message)
    if fds:
        data = data[socket.send_fds(sock, [data], fds) :]
    sock.sendall(data)


def recv_frame(sock: socket.socket, max_bytes: int) -> tuple[dict[str, Any], list[int]] | None:
    """The next frame and the descriptors that came with it; None at a clean end of stream."""
    header, fds = b"", []
    while len(header) < _HEADER.size:
        chunk, more, _, _ = socket.recv_fds(sock, _HEADER.size - len(header), 4)
        fds += more
        if not chunk:
            for fd in fds:
                socket.close(fd)
            if header:
                raise FrameError("the stream ended inside a frame header")
            return None
        header += chunk
    (size,) = _HEADER.unpack(header)
    try:
        if size > max_bytes:
            raise FrameError(f"a frame of {size} bytes is over the limit of {max_bytes}")
        body = _recv_exactly(sock, size)
        try:
            message = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise FrameError(f"not JSON: {type(exc).__name__}") from None
        if not isinstance(message, dict):
            raise FrameError("a frame must hold a JSON object")
    except BaseException:
        for fd in fds:
            socket.close(fd)
        raise
    return message, fds


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    while view:
        count = sock.recv_into(view)
        if not count:
            raise FrameError("the stream ended inside a frame")
        view = view[count:]
    return bytes(buffer)
