"""The payload of a broadcast published through Redis, sans I/O.

One byte ``version << 4 | flags`` (bit 0: binary frame, bit 1: an excluded connection
follows, bit 2: a history offset follows), the 16-byte id of the publishing worker,
then, when a member is excluded, its 16-byte connection id (an 8-byte random process
token and an 8-byte counter), then, for a group with history, the frame's offset in
decimal ASCII and a newline (the publishing script writes it), then the frame's bytes
(UTF-8 text for a text frame).

Connection ids are assigned on first use and kept in weak mappings; a forked child draws
a new process token, so no two processes share ids.
"""

from __future__ import annotations

import itertools
import os
import struct
import weakref
from typing import Any

from ..asgi import Message

__all__ = ["Decoded", "decode", "encode", "header"]


VERSION = 1
_BINARY = 0x01
_EXCLUDE = 0x02
_HISTORY = 0x04
_HEAD = struct.Struct("!B16s")
_HEAD_EXCLUDE = struct.Struct("!B16s8sQ")

_process_token = os.urandom(8)
_counter = itertools.count(1)
_ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_by_id: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def _renew_after_fork() -> None:
    # A forked worker must not share connection ids with its parent or siblings.
    global _process_token, _counter
    _process_token = os.urandom(8)
    _counter = itertools.count(1)
    _ids.clear()
    _by_id.clear()


os.register_at_fork(after_in_child=_renew_after_fork)


def _connection_number(ws: Any) -> int:
    """The number of ``ws`` in this process (assigned on first use)."""
    n = _ids.get(ws)
    if n is None:
        n = next(_counter)
        _ids[ws] = n
        _by_id[n] = ws
    return n


def encode(message: Message, worker_id: bytes, exclude: Any) -> bytes:
    """The payload for an encoded ASGI send ``message`` published by ``worker_id``."""
    text = message.get("text")
    if text is not None:
        flags = VERSION << 4
        body: bytes = text.encode()
    else:
        flags = VERSION << 4 | _BINARY
        body = message["bytes"]
    if exclude is None:
        return _HEAD.pack(flags, worker_id) + body
    number = _connection_number(exclude)
    return _HEAD_EXCLUDE.pack(flags | _EXCLUDE, worker_id, _process_token, number) + body


def header(worker_id: bytes, exclude: Any, *, history: bool) -> bytes:
    """The start of a text frame's payload (for a publishing script to complete)."""
    flags = VERSION << 4 | (_HISTORY if history else 0)
    if exclude is None:
        return _HEAD.pack(flags, worker_id)
    number = _connection_number(exclude)
    return _HEAD_EXCLUDE.pack(flags | _EXCLUDE, worker_id, _process_token, number)


class Decoded:
    """A payload read back: the ASGI message, the local member to skip, the origin, the
    frame's offset in its group's history (0: none)."""

    __slots__ = ("exclude", "message", "offset", "origin")

    def __init__(self, message: Message, exclude: Any, origin: bytes, offset: int = 0) -> None:
        self.message = message
        self.exclude = exclude
        self.origin = origin
        self.offset = offset


def decode(data: bytes) -> Decoded | None:
    """Read a payload; None if it is not one (too short, another version, bad text)."""
    if len(data) < _HEAD.size:
        return None
    flags, origin = _HEAD.unpack_from(data)
    if flags >> 4 != VERSION:
        return None
    exclude: Any = None
    offset = _HEAD.size
    if flags & _EXCLUDE:
        if len(data) < _HEAD_EXCLUDE.size:
            return None
        _, _, token, number = _HEAD_EXCLUDE.unpack_from(data)
        offset = _HEAD_EXCLUDE.size
        if token == _process_token:
            exclude = _by_id.get(number)
    position = 0
    if flags & _HISTORY:
        end = data.find(b"\n", offset, offset + 21)
        if end < 0 or not data[offset:end].isdigit():
            return None
        position = int(data[offset:end])
        offset = end + 1
    body = data[offset:]
    if flags & _BINARY:
        return Decoded({"type": "websocket.send", "bytes": body}, exclude, origin, position)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    return Decoded({"type": "websocket.send", "text": text}, exclude, origin, position)
