"""Socket.IO v5 packets, sans-I/O: encoding with binary attachments and an incremental
decoder that reassembles them.

A packet is ``<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]``. Binary
values anywhere in the data are replaced by ``{"_placeholder": true, "num": n}`` and sent
as the ``n``-th attachment right after the text packet (``BINARY_EVENT`` /
``BINARY_ACK``). :class:`SocketIODecoder` takes the Engine.IO messages one at a time
and returns a packet once it is complete, as the reference parser does; invalid input
raises :class:`SocketIOProtocolError` (the reference server then closes the Engine.IO
connection).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..encoding import _enc_hook

__all__ = [
    "RESERVED_EVENTS",
    "SocketIODecoder",
    "SocketIOPacket",
    "SocketIOPacketType",
    "SocketIOProtocolError",
    "encode_packet",
    "encode_reply",
    "message_frames",
    "to_wire_args",
]

#: Event names a client may not send (the reference parser rejects them).
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
#: Attachments one packet may carry (the reference parser's default).
MAX_ATTACHMENTS = 10


class SocketIOProtocolError(ValueError):
    """Input that is not a valid Socket.IO v5 packet."""


class SocketIOPacketType(enum.IntEnum):
    """The Socket.IO packet types."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(slots=True)
class SocketIOPacket:
    """One Socket.IO packet. ``data`` holds builtin values with ``bytes`` where the
    binary attachments go (decoded packets report EVENT/ACK even if they came as
    BINARY_EVENT/BINARY_ACK)."""

    type: SocketIOPacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = field(default=0, repr=False)


_json_encode = msgspec.json.Encoder(enc_hook=_enc_hook).encode
_json_decode = msgspec.json.Decoder().decode


def to_wire_args(value: Any) -> Any:
    """``value`` as builtin JSON values, keeping ``bytes`` as they are (Structs,
    dataclasses, enums ... converted once here)."""
    return msgspec.to_builtins(
        value, builtin_types=(bytes, bytearray, memoryview), enc_hook=_enc_hook
    )


def _deconstruct(value: Any, buffers: list[bytes]) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        buffers.append(bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(value, list | tuple):
        return [_deconstruct(v, buffers) for v in value]
    if isinstance(value, dict):
        return {k: _deconstruct(v, buffers) for k, v in value.items()}
    return value


#: Types that hold no binary value and need no conversion to be JSON.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _has_binary(value: Any) -> bool:
    t = type(value)
    if t in _SCALARS:
        return False
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, list | tuple):
        for v in value:
            if type(v) not in _SCALARS and _has_binary(v):
                return True
        return False
    if isinstance(value, dict):
        for v in value.values():
            if type(v) not in _SCALARS and _has_binary(v):
                return True
        return False
    return False


def _plain(value: Any) -> bool:
    """True if ``value`` is builtin JSON values only (str keys, no bytes): encoded as
    it is, with no conversion and no attachment."""
    t = type(value)
    if t in _SCALARS:
        return True
    if t is list or t is tuple:
        for v in value:
            if type(v) not in _SCALARS and not _plain(v):
                return False
        return True
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or (type(v) not in _SCALARS and not _plain(v)):
                return False
        return True
    return False


def encode_reply(prefix: str, values: list[Any]) -> list[str | bytes] | None:
    """The Engine.IO frame of a packet without attachments whose head is ``prefix``
    (``"43/nsp,7"``, say) and whose data is ``values``, if they are plain JSON values
    (:func:`_plain`); None otherwise (then :func:`encode_packet` converts them and
    finds their attachments)."""
    if not _plain(values):
        return None
    return [prefix + _json_encode(values).decode()]


def encode_packet(packet: SocketIOPacket) -> list[str | bytes]:
    """The Engine.IO messages of ``packet``: one text message, then one binary message
    per attachment. ``data`` must already be builtin values (see :func:`to_wire_args`);
    ``bytes`` in it become attachments and turn EVENT/ACK into BINARY_EVENT/BINARY_ACK."""
    kind = packet.type
    data = packet.data
    buffers: list[bytes] = []
    if kind in (SocketIOPacketType.EVENT, SocketIOPacketType.ACK) and _has_binary(data):
        data = _deconstruct(data, buffers)
        kind = (
            SocketIOPacketType.BINARY_EVENT
            if kind is SocketIOPacketType.EVENT
            else SocketIOPacketType.BINARY_ACK
        )
    out = [str(kind.value)]
    if buffers:
        out.append(f"{len(buffers)}-")
    if packet.namespace and packet.namespace != "/":
        out.append(packet.namespace + ",")
    if packet.id is not None:
        out.append(str(packet.id))
    if data is not None:
        out.append(_json_encode(data).decode())
    return ["".join(out), *buffers]


def message_frames(packet: SocketIOPacket) -> list[str | bytes]:
    """``packet`` as Engine.IO MESSAGE frames: the text packet behind ``4``, then the
    attachments as binary frames."""
    encoded = encode_packet(packet)
    return ["4" + str(encoded[0]), *encoded[1:]]


def _is_event_payload(payload: Any) -> bool:
    if not isinstance(payload, list) or not payload:
        return False
    head = payload[0]
    if isinstance(head, bool):
        return False
    return isinstance(head, int | float) or (isinstance(head, str) and head not in RESERVED_EVENTS)


def _valid(kind: SocketIOPacketType, payload: Any, present: bool) -> bool:
    if kind is SocketIOPacketType.CONNECT:
        return not present or isinstance(payload, dict)
    if kind is SocketIOPacketType.DISCONNECT:
        return not present
    if kind is SocketIOPacketType.CONNECT_ERROR:
        return isinstance(payload, str | dict)
    if kind in (SocketIOPacketType.EVENT, SocketIOPacketType.BINARY_EVENT):
        return _is_event_payload(payload)
    return isinstance(payload, list)


_KINDS = tuple(SocketIOPacketType)
#: After an EVENT's or an ACK's type: the namespace and the ack id.
_EVENT_HEAD = re.compile(r"(?:/([^,]*),)?([0-9]*)")


def decode_text(text: str) -> SocketIOPacket:
    """Parse one text packet (attachments not yet filled in)."""
    head = text[:1]
    if head == "2" or head == "3":
        # The packets that carry the traffic, parsed in one regular-expression match.
        kind = _KINDS[2] if head == "2" else _KINDS[3]
        m = _EVENT_HEAD.match(text, 1)
        assert m is not None  # every part of the pattern may be empty
        nsp, digits = m.group(1, 2)
        end = m.end()
        if end == len(text):
            raise SocketIOProtocolError("invalid payload")
        try:
            body = _json_decode(text[end:])
        except msgspec.DecodeError:
            raise SocketIOProtocolError("invalid payload") from None
        if not (_is_event_payload(body) if head == "2" else type(body) is list):
            raise SocketIOProtocolError("invalid payload")
        return SocketIOPacket(
            kind,
            "/" if nsp is None else "/" + nsp,
            body,
            int(digits) if digits else None,
        )
    if not text or not text[0].isdigit():
        raise SocketIOProtocolError(f"unknown packet type {text[:1]!r}")
    digit = int(text[0])
    if digit >= len(_KINDS):
        raise SocketIOProtocolError(f"unknown packet type {text[0]!r}")
    kind = _KINDS[digit]
    i = 1
    n = len(text)
    attachments = 0
    if kind in (SocketIOPacketType.BINARY_EVENT, SocketIOPacketType.BINARY_ACK):
        dash = text.find("-", 1)
        count = text[1:dash] if dash > 0 else ""
        if not count.isdigit() or int(count) < 1:
            raise SocketIOProtocolError("illegal attachments")
        attachments = int(count)
        if attachments > MAX_ATTACHMENTS:
            raise SocketIOProtocolError("too many attachments")
        i = dash + 1
    namespace = "/"
    if i < n and text[i] == "/":
        comma = text.find(",", i)
        end = comma if comma >= 0 else n
        namespace = text[i:end]
        i = end + 1 if comma >= 0 else n
    start = i
    while i < n and text[i].isdigit():
        i += 1
    ack_id = int(text[start:i]) if i > start else None
    present = i < n
    payload: Any = None
    if present:
        try:
            payload = _json_decode(text[i:])
        except msgspec.DecodeError:
            raise SocketIOProtocolError("invalid payload") from None
    if not _valid(kind, payload, present):
        raise SocketIOProtocolError("invalid payload")
    if kind is SocketIOPacketType.CONNECT_ERROR and ack_id is not None:
        raise SocketIOProtocolError("invalid payload")
    return SocketIOPacket(kind, namespace, payload, ack_id, attachments)


def _reconstruct(value: Any, buffers: list[bytes]) -> Any:
    if isinstance(value, dict):
        if value.get("_placeholder") is True and "num" in value:
            num = value["num"]
            if isinstance(num, int) and not isinstance(num, bool) and 0 <= num < len(buffers):
                return buffers[num]
            raise SocketIOProtocolError("illegal attachments")
        return {k: _reconstruct(v, buffers) for k, v in value.items()}
    if isinstance(value, list):
        return [_reconstruct(v, buffers) for v in value]
    return value


class SocketIODecoder:
    """Feeds Engine.IO messages in, returns complete Socket.IO packets.

    ``feed(message)`` returns the packet a message completes, or None while a binary
    packet still waits for attachments. Raises :class:`SocketIOProtocolError` for a
    malformed packet, for text while attachments are expected, and for binary data
    nobody expects.
    """

    __slots__ = ("_buffers", "_pending")

    def __init__(self) -> None:
        self._pending: SocketIOPacket | None = None
        self._buffers: list[bytes] = []

    @property
    def waiting(self) -> bool:
        """True while a binary packet waits for its attachments."""
        return self._pending is not None

    def feed(self, message: str | bytes) -> SocketIOPacket | None:
        """Take one Engine.IO message; the packet it completes, if any."""
        if isinstance(message, str):
            if self._pending is not None:
                raise SocketIOProtocolError("got plaintext data when reconstructing a packet")
            packet = decode_text(message)
            if packet.attachments:
                self._pending = packet
                self._buffers = []
                return None
            return packet
        pending = self._pending
        if pending is None:
            raise SocketIOProtocolError("got binary data when not reconstructing a packet")
        self._buffers.append(bytes(message))
        if len(self._buffers) < pending.attachments:
            return None
        buffers, self._buffers, self._pending = self._buffers, [], None
        pending.data = _reconstruct(pending.data, buffers)
        pending.type = (
            SocketIOPacketType.EVENT
            if pending.type is SocketIOPacketType.BINARY_EVENT
            else SocketIOPacketType.ACK
        )
        return pending
