"""The wire envelope, sans I/O: decoding client frames and encoding replies and errors.

Client text frame::

    {"event": "chat.send", "data": {...}, "id": 7}      # data and id are optional

Server frames::

    {"event": "chat.send", "id": 7, "data": ...}        # the reply to a frame with an id
    {"event": "chat.send", "data": ...}                 # a push, or a reply without id
    {"event": "error", "id": 7, "data": {"code": ..., "message": ..., "detail": ...}}

The envelope is decoded once with ``data`` kept as :class:`msgspec.Raw`; the handler's own
decoder then turns the raw bytes into its type, so ``data`` is parsed exactly once.

Hostile input: :func:`decode_frame` and :func:`decode_data` raise only their documented
errors (:class:`FrameError`, :class:`~wsgate.errors.WebSocketValidationError`), whatever
the input. JSON nested deeper than ``max_depth`` arrays/objects is refused before msgspec
sees it (:func:`json_depth_exceeds`, a linear pre-scan), so a 100,000-level frame costs a
scan, not a recursion.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any, TypeVar

import msgspec

from .encoding import encode
from .errors import WebSocketValidationError

__all__ = [
    "DEFAULT_MAX_JSON_DEPTH",
    "Frame",
    "FrameError",
    "decode_as",
    "decode_data",
    "decode_frame",
    "encode_error",
    "encode_push",
    "encode_reply",
    "json_depth_exceeds",
    "validation_error",
    "validation_errors",
]

T = TypeVar("T")

#: How deeply a client frame's JSON may nest arrays and objects (the envelope object counts
#: as one level, so ``data`` gets one less). ``App(max_json_depth=...)`` changes it.
DEFAULT_MAX_JSON_DEPTH = 64

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

# --------------------------------------------------------------------- nesting depth

#: Every byte but the four brackets (and the quote) is deleted; openers become 1 and closers -1 (as signed
#: bytes), so the nesting depth is the largest running sum.
_NOT_BRACKET_OR_QUOTE = bytes(c for c in range(256) if c not in b'[]{}"')
_SIGNED = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_PAIR = b"\x01\xff"


def _utf8(text: str | bytes) -> bytes:
    # surrogatepass: a lone surrogate must not stop the scan (decoding refuses it later).
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text


def _max_depth(brackets: bytes, limit: int) -> int:
    """The largest running sum of ``brackets`` (signed bytes), or the first one past
    ``limit``: chunks of growing size, so a deep input stops after a few hundred."""
    signed = memoryview(brackets).cast("b")
    depth = best = start = 0
    size = 4 * limit + 4
    n = len(signed)
    while start < n:
        running = list(accumulate(signed[start : start + size], initial=depth))
        best = max(best, max(running))
        if best > limit:
            return best
        depth = running[-1]
        start += size
        size *= 4
    return best


#: Up to this length ``count`` is the quickest way to see how many brackets a text opens;
#: beyond it, ``find`` (which uses memchr) from one opener to the next.
_COUNT_BELOW = 2048


def _few_openers(data: bytes, limit: int) -> bool:
    """True if ``data`` holds at most ``limit`` opening brackets."""
    n = 0
    for opener in (b"[", b"{"):
        i = data.find(opener)
        while i >= 0:
            n += 1
            if n > limit:
                return False
            i = data.find(opener, i + 1)
    return True


def json_depth_exceeds(text: str | bytes, max_depth: int) -> bool:
    """True if the JSON ``text`` nests arrays and objects deeper than ``max_depth``.

    Sans I/O, linear in the size of ``text``, no recursion, every step a C loop; brackets
    inside strings do not count. Input that is not JSON is scanned as if it were (what
    matters is that msgspec, which stops at the first malformed byte, never goes deeper
    than the scan says). A frame with at most ``max_depth`` opening brackets is answered
    without looking further; a deep one stops after the first few hundred brackets.
    """
    if len(text) <= _COUNT_BELOW:
        if isinstance(text, str):
            if text.count("[") + text.count("{") <= max_depth:
                return False
        elif text.count(b"[") + text.count(b"{") <= max_depth:
            return False
    data = _utf8(text)
    if len(text) > _COUNT_BELOW and _few_openers(data, max_depth):
        return False
    if b"\\" in data:
        # Escaped backslashes, then escaped quotes: left to right, as JSON pairs them.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Keep the brackets and the quotes only. What lies between an odd quote and the next
    # one is a string (an unterminated one runs to the end): when no string holds a
    # bracket, the quotes pair up as adjacent '""' and go in one replace.
    kept = data.translate(_SIGNED, _NOT_BRACKET_OR_QUOTE)
    brackets = kept.replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(kept.split(b'"')[::2])
    # Removing every empty pair "[]" / "{}" keeps every other running sum and lowers the
    # maximum by at most one: a few passes shrink typical (wide, shallow) data to little.
    rest, passes = brackets, 0
    while passes < 4:
        shorter = rest.replace(_PAIR, b"")
        if len(shorter) == len(rest):
            break
        rest, passes = shorter, passes + 1
        if rest.count(b"\x01") + passes <= max_depth:
            return False
    depth = _max_depth(rest, max_depth)
    if depth > max_depth:
        return True
    if depth + passes <= max_depth:
        return False
    return _max_depth(brackets, max_depth) > max_depth


def _outside_strings(segment: bytes) -> tuple[int, bool]:
    """For a piece of JSON that starts outside any string: the nesting it adds (openers
    minus closers outside strings) and whether it ends inside a string."""
    if b"\\" in segment:
        segment = segment.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = segment.translate(_SIGNED, _NOT_BRACKET_OR_QUOTE)
    if kept.count(b'"') % 2:
        return 0, True
    brackets = kept.replace(b'""', b"")
    if b'"' in brackets:
        brackets = b"".join(kept.split(b'"')[::2])
    return brackets.count(b"\x01") - brackets.count(b"\xff"), False


_ID_KEY = re.compile(rb'"id"\s*:\s*')
_SCALAR = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|-?[0-9][0-9.eE+-]*|true|false|null')
#: How many ``"id":`` candidates the search looks at (each costs a scan of the text
#: between it and the last one found outside a string).
_ID_CANDIDATES = 32


def _top_level_id(data: bytes) -> bytes | None:
    """The JSON text of the value of the top-level ``"id"`` member of a frame too deep to
    parse (the last one, as msgspec would take), if it is a scalar; found without parsing
    the rest: each ``"id":`` key outside strings at nesting level 1 is a candidate."""
    value = None
    base = depth = 0  # a position outside any string, and the nesting there
    for n, key in enumerate(_ID_KEY.finditer(data)):
        if n == _ID_CANDIDATES:
            break
        pos = key.start()
        added, in_string = _outside_strings(data[base:pos])
        if in_string:
            continue
        base, depth = pos, depth + added
        if depth == 1:
            scalar = _SCALAR.match(data, key.end())
            value = scalar.group() if scalar is not None else None
    return value


def _read_id(text: str | bytes, max_depth: int) -> int | str | None:
    """The frame's ``id`` if it can be read without trusting the rest of the frame."""
    try:
        data = _utf8(text)
        if json_depth_exceeds(data, max_depth):
            value = _top_level_id(data)
            if value is None:
                return None
            data = b'{"id":' + value + b"}"
        return _id_decoder.decode(data).id
    except (msgspec.DecodeError, ValueError, RecursionError, OverflowError):
        return None


def decode_frame(text: str | bytes, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Frame:
    """Decode a client text frame into a :class:`Frame`.

    Raises :class:`FrameError` (with the frame's ``id`` when it could be read) for any
    input that is not an envelope: not JSON, not valid UTF-8 (a ``str`` with a lone
    surrogate), not an object with a string ``event``, an ``id`` that is not an integer
    (of at most 4,300 digits), a string or null, or JSON nested deeper than ``max_depth``
    levels. Never raises anything else.
    """
    message: str
    try:
        if max_depth and len(text) > max_depth and json_depth_exceeds(text, max_depth):
            message = f"a frame may nest arrays and objects at most {max_depth} levels deep"
        else:
            return _frame_decoder.decode(text)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if message.startswith("Expected `object`"):
            message = "a frame must be a JSON object with a string 'event'"
        elif "`$.event`" in message or "`event`" in message:
            message = "a frame needs a string 'event' field: " + message
        else:
            message = "invalid frame: " + message
    except msgspec.DecodeError as exc:
        message = f"a frame must be JSON: {exc}"
    except UnicodeError:
        message = "a frame must be valid UTF-8 text (it holds a lone surrogate)"
    except RecursionError:
        message = "a frame's JSON is nested too deeply"
    except (ValueError, OverflowError) as exc:
        message = f"a frame must be JSON: {type(exc).__name__}"
    raise FrameError(message, _read_id(text, max_depth or DEFAULT_MAX_JSON_DEPTH))


def decode_data(
    decoder: msgspec.json.Decoder[Any], raw: Any, event: str, max_depth: int | None = None
) -> Any:
    """Decode a frame's ``data`` (``raw``: JSON bytes, or a ``msgspec.Raw``) with the
    handler's ``decoder``.

    Raises :class:`~wsgate.errors.WebSocketValidationError` (with the failing paths) for
    any input the type does not accept: invalid JSON or UTF-8, a value of the wrong type or
    out of range, or, when ``max_depth`` is given (binary frames, which no envelope decode
    has scanned), JSON nested deeper than ``max_depth`` levels.
    """
    if max_depth and json_depth_exceeds(raw if isinstance(raw, bytes) else bytes(raw), max_depth):
        message = f"data may nest arrays and objects at most {max_depth} levels deep"
        raise WebSocketValidationError(
            f"invalid data for {event!r}: {message}", [{"path": "$.data", "message": message}]
        )
    try:
        return decoder.decode(raw)
    except _DECODE_ERRORS as exc:
        raise validation_error(exc, "$.data", f"data for {event!r}") from None


def decode_as(text: str | bytes, type: type[T], max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> T:
    """Decode a whole frame into ``type`` (what ``ws.receive_as(type)`` does).

    Raises :class:`~wsgate.errors.WebSocketValidationError` (with the failing paths) for
    any input ``type`` does not accept, including JSON nested deeper than ``max_depth``
    levels and a ``str`` with a lone surrogate.
    """
    if json_depth_exceeds(text, max_depth):
        message = f"JSON may nest arrays and objects at most {max_depth} levels deep"
        raise WebSocketValidationError(message, [{"path": "$", "message": message}])
    try:
        return msgspec.json.decode(text, type=type)
    except _DECODE_ERRORS as exc:
        raise validation_error(exc, "$", "frame") from exc


#: What decoding hostile input can raise besides msgspec's own errors.
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeError, RecursionError, OverflowError)


def validation_error(exc: BaseException, root: str, what: str) -> WebSocketValidationError:
    """The one mapping from a failed decode or validation (msgspec's errors, and the
    UnicodeError, RecursionError or OverflowError hostile input can cause) to the
    :class:`~wsgate.errors.WebSocketValidationError` clients see: the failing path
    rebased on ``root`` (``"$.data"``, ``"$.query.page"``...), ``what`` naming the value
    in the message (``"data for 'chat.send'"``)."""
    if isinstance(exc, msgspec.ValidationError):
        return WebSocketValidationError(f"invalid {what}: {exc}", validation_errors(exc, root))
    message = str(exc) if isinstance(exc, msgspec.DecodeError) else type(exc).__name__
    return WebSocketValidationError(f"invalid {what}: {message}", [{"path": root, "message": message}])


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
