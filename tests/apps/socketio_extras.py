"""Socket.IO features a client observes through other clients: ``skip`` of several
connections and rooms, the catch-all handler ``@on_socketio_event("*")``. Served by
tests/test_socketio_extras.py."""

from __future__ import annotations

from typing import Any

from wsgate import App
from wsgate.socketio import (
    SocketIOConnection,
    SocketIOServer,
    on_socketio_event,
    socketio_controller,
)


@socketio_controller("/socket.io")
class Extras:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("join")
    async def join(self, conn: SocketIOConnection, room: str) -> str:
        await conn.join(room)
        return conn.sid

    @on_socketio_event("news-skipping")
    async def news_skipping(self, conn: SocketIOConnection, skip: Any, me: bool) -> int:
        """Emit "news" to everyone but ``skip`` (a room name or a list of them) and, with
        ``me``, the sender; then "marker" to everyone (what follows any news)."""
        spec: Any = skip
        if me:
            spec = [conn, *skip] if isinstance(skip, list) else [conn, skip]
        sent = await self.sio.emit("news", "extra!", skip=spec)
        await self.sio.emit("marker")
        return sent

    @on_socketio_event("own")
    async def own(self, conn: SocketIOConnection, value: int) -> str:
        return f"own handler {value}"

    @on_socketio_event("*")
    async def any_event(self, conn: SocketIOConnection, event: str, *args: Any) -> Any:
        await conn.emit("caught", event, list(args))
        return {"event": event, "args": list(args)}


@socketio_controller("/recover", recovery_ms=60_000)
class Recover:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("join")
    async def join(self, conn: SocketIOConnection, room: str) -> str:
        await conn.join(room)
        return conn.sid

    @on_socketio_event("publish")
    async def publish(self, conn: SocketIOConnection, text: str, skip: Any) -> int:
        return await self.sio.emit("news", text, skip=skip, path="/recover")

    @on_socketio_event("hello")
    async def hello(self, conn: SocketIOConnection) -> list[Any]:
        return [conn.sid, conn.recovered]


app = App(gateways=[Extras, Recover])
