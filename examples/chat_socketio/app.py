"""A Socket.IO chat: rooms, nicknames, acknowledged messages, a page a browser's
socket.io-client can use.

Run it with ``python -m examples.chat_socketio`` (hypercorn on trio), with several
workers, or with any ASGI server::

    wsgate run examples.chat_socketio.app:app --workers 2
    hypercorn --worker-class trio examples.chat_socketio.app:app
    uvicorn examples.chat_socketio.app:app

The page loads the official browser client from ``/socket.io-client.js``: the
``dist/socket.io.min.js`` bundle of the npm package socket.io-client 4.8.4 (MIT, its
license in ``socket.io-client.LICENSE``), kept next to this file, so nothing needs to be
installed with npm.

With several workers, rooms reach every worker through the App's broker, but a
long-polling session lives in the worker that opened it: behind a load balancer, route
a client's requests to one worker (sticky sessions, by the ``sid`` query parameter or
the client's address), or have the page connect with ``transports: ["websocket"]``,
which needs no stickiness (the page does so when the URL ends with ``?websocket``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from wsgate import App, WebSocketError
from wsgate.socketio import (
    SocketIOConnection,
    SocketIOServer,
    on_socketio_event,
    socketio_controller,
)

HERE = Path(__file__).parent
PAGE = (HERE / "index.html").read_bytes()
#: socket.io-client's browser bundle (dist/socket.io.min.js of the npm package, 4.8.4).
CLIENT_JS = (HERE / "socket.io.min.js").read_bytes()


class Say(msgspec.Struct):
    """What a client sends with ``say``."""

    text: str


class Said(msgspec.Struct):
    """What everyone in the room receives."""

    room: str
    user: str
    text: str


@socketio_controller("/socket.io", recovery_ms=120_000)
class Chat:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("connect")
    async def connected(self, conn: SocketIOConnection) -> None:
        auth = conn.auth if isinstance(conn.auth, dict) else {}
        user = str(auth.get("user") or "").strip()
        if not user or len(user) > 32:
            raise WebSocketError("pick a name of 1 to 32 characters")
        if not conn.recovered:
            conn.state.user = user
            conn.state.room = "lobby"
            await conn.join("lobby")
        await conn.emit("joined", conn.state.room, conn.recovered)

    @on_socketio_event("join")
    async def join(self, conn: SocketIOConnection, room: str) -> str:
        room = room.strip()[:32] or "lobby"
        await conn.leave(conn.state.room)
        conn.state.room = room
        await conn.join(room)
        await self.sio.emit("system", f"{conn.state.user} joined", room=room, skip=conn)
        return room

    @on_socketio_event("say")
    async def say(self, conn: SocketIOConnection, msg: Say) -> bool:
        said = Said(conn.state.room, conn.state.user, msg.text[:500])
        await self.sio.emit("said", said, room=conn.state.room)
        return True  # the acknowledgement: the sender knows it went out

    @on_socketio_event("disconnect")
    async def gone(self, conn: SocketIOConnection, reason: str) -> None:
        user = getattr(conn.state, "user", None)
        if user is not None and reason not in ("transport close", "ping timeout"):
            await self.sio.emit("system", f"{user} left", room=conn.state.room)


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The page and the client library; everything else is 404."""
    path = scope["path"]
    if path == "/":
        body, kind, status = PAGE, b"text/html; charset=utf-8", 200
    elif path == "/socket.io-client.js":
        body, kind, status = CLIENT_JS, b"text/javascript", 200
    else:
        body, kind, status = b"Not Found", b"text/plain", 404
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = App(gateways=[Chat], http=http)
