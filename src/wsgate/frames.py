"""The wire envelope, sans I/O: decoding client frames and encoding replies and errors.

Client text frame::

    {"event": "chat.send", "data": {...}, "id": 7}      # data and id are optional

Server frames::

    {"event": "chat.send", "id": 7, "data": ...}        # the reply to a frame with an id
    {"event": "chat.send", "data": ...}                 # a push, or a reply without id
    {"event": "error", "id": 7, "data": {"code": ..., "message": ..., "detail": ...}}

The envelope is decoded once with ``data`` kept as :class:`msgspec.Raw`; the handler's own
decoder then turns the raw bytes into its type, so ``data`` is parsed exactly once.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .encoding import encode
from .errors import WebSocketValidationError

__all__ = [
    "Frame",
    "FrameError",
    "decode_frame",
    "encode_error",
    "encode_push",
    "encode_reply",
    "validation_error",
    "validation_errors",
]

_NULL = msgspec.Raw(b"null")


class Frame(msgspec.Struct, frozen=True):
    """A client frame: ``event``, raw ``data`` (undecoded JSON) and an optional ``id``.

    Declare a ``frame: Frame`` parameter to get it (useful in ``"*"`` handlers).
    """

    event: str
    data: msgspec.Raw = _NULL
    id: int | str | None = None


class FrameError(Exception):
    """A frame that is not a valid envelope; carries the id if one could be read."""

    def __init__(self, message: str, id: int | str | None) -> None:
        super().__init__(message)
        self.message = message
        self.id = id


class _IdOnly(msgspec.Struct):
    id: int | str | None = None


_frame_decoder = msgspec.json.Decoder(Frame)
_id_decoder = msgspec.json.Decoder(_IdOnly)


def decode_frame(text: str | bytes) -> Frame:
    """Decode a client text frame into a :class:`Frame`; raise :class:`FrameError`."""
    try:
        return _frame_decoder.decode(text)
    except msgspec.DecodeError as exc:
        frame_id: int | str | None = None
        try:
            frame_id = _id_decoder.decode(text).id
        except msgspec.DecodeError:
            pass
        if isinstance(exc, msgspec.ValidationError):
            message = str(exc)
            if message.startswith("Expected `object`"):
                message = "a frame must be a JSON object with a string 'event'"
            elif "`$.event`" in message or "`event`" in message:
                message = "a frame needs a string 'event' field: " + message
            else:
                message = "invalid frame: " + message
        else:
            message = f"a frame must be JSON: {exc}"
        raise FrameError(message, frame_id) from None


class _Reply(msgspec.Struct):
    event: str
    id: int | str | None
    data: Any


class _Push(msgspec.Struct):
    event: str
    data: Any


class _ErrorData(msgspec.Struct):
    code: str
    message: str
    detail: Any = None


def encode_reply(event: str, id: int | str | None, data: Any) -> bytes:
    """``{"event", "id", "data"}`` (the answer to a frame with an id)."""
    return encode(_Reply(event, id, data))


def encode_push(event: str, data: Any) -> bytes:
    """``{"event", "data"}`` (a reply without id, a stream item or a server push)."""
    return encode(_Push(event, data))


def encode_error(id: int | str | None, code: str, message: str, detail: Any = None) -> bytes:
    """An error frame: ``{"event": "error", "id", "data": {"code", "message", "detail"}}``."""
    return encode(_Reply("error", id, _ErrorData(code, message, detail)))


_AT = re.compile(r"^(.*?)(?: - at `(\$[^`]*)`)?$", re.S)


def validation_errors(exc: msgspec.ValidationError, root: str) -> list[dict[str, str]]:
    """Turn a msgspec validation error into ``[{"path": ..., "message": ...}]``.

    msgspec reports the first failure; its path (``$.text``) is rebased on ``root``
    (``$.data`` for a frame's data, so the client sees ``$.data.text``).
    """
    m = _AT.match(str(exc))
    assert m is not None
    message, path = m.group(1), m.group(2) or "$"
    return [{"path": root + path[1:], "message": message}]


def validation_error(exc: msgspec.DecodeError, root: str, what: str) -> WebSocketValidationError:
    """The one mapping from a msgspec decode or validation failure to the
    :class:`~wsgate.errors.WebSocketValidationError` clients see: the failing path
    rebased on ``root`` (``"$.data"``, ``"$.query.page"``...), ``what`` naming the value
    in the message (``"data for 'chat.send'"``)."""
    if isinstance(exc, msgspec.ValidationError):
        return WebSocketValidationError(f"invalid {what}: {exc}", validation_errors(exc, root))
    return WebSocketValidationError(
        f"invalid {what}: {exc}", [{"path": root, "message": str(exc)}]
    )
