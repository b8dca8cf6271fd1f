"""Bare ASGI apps: the floors the frameworks are measured against.

``echo`` sends every text frame back unchanged (the server's own cost: the floor of every
echo figure). ``json_echo`` decodes each frame with msgspec (untyped, into a dict) and
encodes the reply ``{"event", "id", "data"}``: the floor plus the JSON work any
framework must do. Neither validates anything. ``socketio_echo`` is the floor of the
Socket.IO figures: just enough Engine.IO/Socket.IO over WebSocket for the load client's
acked echo (the open packet, the main namespace's CONNECT, each ``echo`` EVENT answered
by its ACK with the arguments cut out of the frame, no JSON decoded; pings never sent).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

__all__ = ["echo", "json_echo", "socketio_echo"]

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _not_found(send: Send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _accept(scope: Message, receive: Receive, send: Send) -> bool:
    """Serve the lifespan or a 404, or accept the WebSocket (then True)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return False
    if scope["type"] != "websocket":
        await _not_found(send)
        return False
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    return True


async def echo(scope: Message, receive: Receive, send: Send) -> None:
    """Every text (or binary) frame back, unchanged."""
    if not await _accept(scope, receive, send):
        return
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes")})


_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


async def json_echo(scope: Message, receive: Receive, send: Send) -> None:
    """Decode the envelope, answer ``{"event", "id", "data"}``."""
    if not await _accept(scope, receive, send):
        return
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        frame = _decode(message.get("text") or message.get("bytes") or b"null")
        reply = {"event": frame["event"], "id": frame.get("id"), "data": frame.get("data")}
        await send({"type": "websocket.send", "text": _encode(reply).decode()})


_OPEN = (
    '0{"sid":"bare","upgrades":[],"pingInterval":120000,"pingTimeout":20000,"maxPayload":1000000}'
)


async def socketio_echo(scope: Message, receive: Receive, send: Send) -> None:
    """Socket.IO's acked ``echo`` with the least work a server can do: ``42<id>["echo",
    <args>]`` is answered ``43<id>[<args>]``."""
    if not await _accept(scope, receive, send):
        return
    await send({"type": "websocket.send", "text": _OPEN})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        text = message.get("text") or ""
        if text.startswith("42"):
            bracket = text.index("[")
            comma = text.index(",", bracket)
            reply = "43" + text[2:bracket] + "[" + text[comma + 1 :]
            await send({"type": "websocket.send", "text": reply})
        elif text == "40":
            await send({"type": "websocket.send", "text": '40{"sid":"bare"}'})
