"""The wire protocol as the client sees it, without I/O: encoding a frame, reading one,
decoding ``data`` into a type, and the pending-request table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from .errors import ConnectionClosed, ConnectionLost, DataValidationError, RequestError

NULL = msgspec.Raw(b"null")
#: A frame without ``pos`` (empty: nothing to decode).
NO_POS = msgspec.Raw(b"")


class OutFrame(msgspec.Struct, omit_defaults=True):
    """``{"event", "data", "id"}`` as the client sends it."""

    event: str
    data: Any = None
    id: int | None = None


class InFrame(msgspec.Struct):
    """A frame from the server; ``data`` stays raw until someone decodes it; ``pos``, the
    position of a frame from a group with history, is raw too (empty when absent)."""

    event: str
    data: msgspec.Raw = NULL
    id: int | str | None = None
    pos: msgspec.Raw = NO_POS


class ErrorData(msgspec.Struct):
    """The ``data`` of an error frame."""

    code: str = "error"
    message: str = ""
    detail: Any = None


_encoder = msgspec.json.Encoder()
_frame_decoder = msgspec.json.Decoder(InFrame)
_error_decoder = msgspec.json.Decoder(ErrorData)


def encode(event: str, data: Any = None, id: int | None = None) -> str:
    """The text of a frame. Raises :class:`TypeError` for data msgspec cannot encode."""
    try:
        return _encoder.encode(OutFrame(event, data, id)).decode()
    except TypeError as exc:
        raise TypeError(f"cannot encode the data of {event!r} as JSON: {exc}") from exc


def decode_frame(text: str | bytes) -> InFrame:
    """Read a frame; raises :class:`msgspec.DecodeError` / :class:`msgspec.ValidationError`
    when it is not an envelope."""
    return _frame_decoder.decode(text)


def decode_data(event: str, raw: msgspec.Raw, type: Any = None) -> Any:
    """``raw`` decoded into ``type`` (plain JSON values when ``type`` is None); raises
    :class:`DataValidationError` when it does not match."""
    if type is None:
        return msgspec.json.decode(raw)
    try:
        return msgspec.json.decode(raw, type=type)
    except msgspec.ValidationError as exc:
        raise DataValidationError(event, type, bytes(raw), str(exc)) from exc


def error_from(event: str, raw: msgspec.Raw) -> RequestError:
    """The :class:`RequestError` an error frame's ``data`` describes."""
    try:
        body = _error_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        body = ErrorData(message=bytes(raw).decode(errors="replace"))
    return RequestError(event, body.code, body.message, body.detail)


@dataclass(slots=True)
class Pending:
    """A request waiting for its reply."""

    event: str
    done: anyio.Event
    reply: InFrame | None = None
    error: ConnectionLost | ConnectionClosed | None = None

    def resolve(self, frame: InFrame) -> None:
        self.reply = frame
        self.done.set()

    def fail(self, error: ConnectionLost | ConnectionClosed) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    def result(self, type: Any) -> Any:
        """The reply's data decoded into ``type``; raises what the reply or the
        connection's end says."""
        if self.error is not None:
            raise self.error
        assert self.reply is not None
        if self.reply.event == "error":
            raise error_from(self.event, self.reply.data)
        return decode_data(self.event, self.reply.data, type)
