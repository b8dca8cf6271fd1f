"""Positions on the wire, sans I/O: how a frame of a group with history carries its
position, how a reconnecting client presents the positions it saw, and the frame that
tells it whether it recovered.

- A frame from a group with history is a JSON object with one more member, last:
  ``"pos": {"group": <group>, "offset": <int>, "epoch": <str>}``.
- A client presents positions in the handshake, in the query parameter
  ``wsgate.since``: a JSON object ``{<group>: [<offset>, <epoch>], ...}``.
- After replaying what a client missed in a group it is subscribed to again, the server
  sends ``{"event": "wsgate.recovery", "data": {"group", "recovered", "missed",
  "offset", "epoch"}}``; ``offset``/``epoch`` are the client's position from then on.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from ..asgi import Message
from ..websocket import WebSocket

__all__ = [
    "RECOVERY_EVENT",
    "SINCE_PARAM",
    "json_object_text",
    "message_of",
    "position_prefix",
    "presented",
    "recovery_frame",
    "with_position",
]

logger = logging.getLogger("wsgate.broadcast")

#: The query parameter a reconnecting client presents its positions in.
SINCE_PARAM = "wsgate.since"
#: The event of the frame that tells a client whether it recovered.
RECOVERY_EVENT = "wsgate.recovery"

_since_decoder = msgspec.json.Decoder(dict[str, tuple[int, str]])
_encode_str = msgspec.json.encode


def json_object_text(message: Message, who: str, validate: bool) -> str:
    """The text of an encoded frame that must be a JSON object (groups with history);
    ``validate``: the text came from the user (a ``str``), check that it is JSON."""
    text: str | None = message.get("text")
    if text is None:
        raise ValueError(
            f"{who} has history: broadcast JSON objects (a dict, a msgspec Struct or a "
            "str holding one); binary frames and as_bytes=True cannot carry a position"
        )
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ValueError(
            f"{who} has history: broadcast JSON objects (a dict, a msgspec Struct or a "
            f"str holding one), not {body[:40]!r}"
        )
    if validate:
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise ValueError(f"{who} has history: {body[:40]!r}... is not valid JSON") from None
    return body


def position_prefix(text: str, group: str) -> str:
    """The frame up to its offset: ``text`` (a JSON object) with the ``pos`` member
    opened, ending in ``"offset":``."""
    head = text[:-1].rstrip()
    sep = "" if head.endswith("{") else ","
    return f'{head}{sep}"pos":{{"group":{_encode_str(group).decode()},"offset":'


def with_position(prefix: str, offset: int, epoch: str) -> str:
    """The whole frame: :func:`position_prefix`'s result completed with the position."""
    return f'{prefix}{offset},"epoch":"{epoch}"}}}}'


def message_of(text: str) -> Any:
    """The message as broadcast: the frame decoded, without its ``pos``."""
    value = msgspec.json.decode(text)
    if isinstance(value, dict):
        value.pop("pos", None)
    return value


def recovery_frame(group: str, recovered: bool, missed: int, offset: int, epoch: str) -> Message:
    """The ``wsgate.recovery`` frame for ``group``."""
    data = {
        "group": group,
        "recovered": recovered,
        "missed": missed,
        "offset": offset,
        "epoch": epoch,
    }
    text = _encode_str({"event": RECOVERY_EVENT, "data": data}).decode()
    return {"type": "websocket.send", "text": text}


def presented(ws: WebSocket) -> dict[str, tuple[int, str]]:
    """The positions ``ws`` presented (``wsgate.since``); empty if none or unreadable."""
    raw = ws.query_params.get(SINCE_PARAM)
    if not raw:
        return {}
    try:
        return dict(_since_decoder.decode(raw))
    except msgspec.DecodeError as exc:
        logger.debug("ignored an unreadable %s: %s", SINCE_PARAM, exc)
        return {}
