"""wsgate's Socket.IO server, the same app as ``socketio_app.py`` (python-socketio): an
``echo`` event whose return value is the ack; subscribers (``?role=sub``) join
``"room"`` in their connect handler; ``publish`` emits ``tick`` to the room (encoded
once, offered to each member's outbox).

Pings every 2 minutes instead of 25 s: opening 5,000 connections for the memory figure
can take longer than a ping interval plus timeout on a loaded machine, and the load
client answers pings only once a batch is open. No measured window sees a ping either way.
"""

from __future__ import annotations

from typing import Any

from wsgate import App
from wsgate.socketio import (
    SocketIOConnection,
    SocketIOServer,
    on_socketio_event,
    socketio_controller,
)

__all__ = ["app"]


@socketio_controller("/socket.io", ping_interval_ms=120_000)
class Bench:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("connect")
    async def connected(self, conn: SocketIOConnection) -> None:
        if conn.query_params.get("role") == "sub":
            await conn.join("room")

    @on_socketio_event("echo")
    async def echo(self, conn: SocketIOConnection, data: Any) -> Any:
        return data

    @on_socketio_event("publish")
    async def publish(self, conn: SocketIOConnection, data: Any) -> None:
        await self.sio.emit("tick", data, room="room")


app = App(gateways=[Bench])
