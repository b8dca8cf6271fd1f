"""Engine.IO v4 packets and payloads, sans-I/O.

A packet is one of seven types (``0`` open ... ``6`` noop) with optional data. Over
WebSocket each packet is one frame: text packets are their type digit followed by the
data, a binary message is the raw bytes. Over HTTP long-polling several packets travel
in one payload separated by ``\\x1e``, binary messages base64-encoded behind a ``b``.

Everything here is pure: bytes and strings in, packets out (and back), with
:class:`EngineIOProtocolError` for input the reference server rejects as a parse error.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "SEPARATOR",
    "EngineIOPacket",
    "EngineIOPacketType",
    "EngineIOProtocolError",
    "decode_packet",
    "decode_payload",
    "encode_packet",
    "encode_payload",
]

#: The record separator between packets of a long-polling payload.
SEPARATOR = "\x1e"


class EngineIOProtocolError(ValueError):
    """Input that is not a valid Engine.IO v4 packet or payload (the reference server
    closes the session with "parse error")."""


class EngineIOPacketType(enum.IntEnum):
    """The Engine.IO packet types."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True, slots=True)
class EngineIOPacket:
    """One Engine.IO packet; ``data`` is ``str`` for text and ``bytes`` for binary
    messages."""

    type: EngineIOPacketType
    data: str | bytes = ""

    @property
    def binary(self) -> bool:
        """True for a binary message."""
        return isinstance(self.data, bytes)


_TYPES = {str(t.value): t for t in EngineIOPacketType}


def encode_packet(packet: EngineIOPacket) -> str | bytes:
    """One packet as a WebSocket frame: ``str`` (text frame) or ``bytes`` (binary)."""
    if isinstance(packet.data, bytes):
        return packet.data
    return f"{packet.type.value}{packet.data}"


def decode_packet(frame: str | bytes) -> EngineIOPacket:
    """One WebSocket frame as a packet: a binary frame is a binary message.

    Raises :class:`EngineIOProtocolError` for an empty text frame or an unknown type.
    """
    if isinstance(frame, bytes | bytearray | memoryview):
        return EngineIOPacket(EngineIOPacketType.MESSAGE, bytes(frame))
    return _decode_text(frame, allow_base64=False)


def _decode_text(text: str, *, allow_base64: bool) -> EngineIOPacket:
    if not text:
        raise EngineIOProtocolError("empty packet")
    head = text[0]
    if head == "b" and allow_base64:
        try:
            return EngineIOPacket(
                EngineIOPacketType.MESSAGE, base64.b64decode(text[1:], validate=True)
            )
        except (binascii.Error, ValueError) as exc:
            raise EngineIOProtocolError(f"invalid base64 binary packet: {exc}") from exc
    kind = _TYPES.get(head)
    if kind is None:
        raise EngineIOProtocolError(f"unknown packet type {head!r}")
    return EngineIOPacket(kind, text[1:])


def encode_payload(packets: Iterable[EngineIOPacket | str | bytes]) -> str:
    """Packets (or frames already encoded by :func:`encode_packet`) as one long-polling
    payload, binary messages as ``b`` + base64."""
    parts = []
    for p in packets:
        frame = encode_packet(p) if isinstance(p, EngineIOPacket) else p
        if isinstance(frame, bytes):
            parts.append("b" + base64.b64encode(frame).decode("ascii"))
        else:
            parts.append(frame)
    return SEPARATOR.join(parts)


def decode_payload(payload: str) -> list[EngineIOPacket]:
    """A long-polling payload as its packets.

    Raises :class:`EngineIOProtocolError` if any packet is malformed (the reference
    server then closes the session with "parse error").
    """
    return [_decode_text(part, allow_base64=True) for part in payload.split(SEPARATOR)]
