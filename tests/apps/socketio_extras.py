"""Socket.IO features a client observes through other clients: ``skip`` of several
connections and rooms, the catch-all handler ``@on_socketio_event("*")``, the Engine.IO
connect and disconnect hooks (recorded in ``HOOKS``, read with the "hook-log" event).
Served by tests/test_socketio_extras.py."""

from __future__ import annotations

from typing import Any

from wsgate import App
from wsgate.socketio import (
    EngineIOConnection,
    SocketIOConnection,
    SocketIOServer,
    engineio_controller,
    on_engineio_connect,
    on_engineio_disconnect,
    on_engineio_message,
    on_socketio_event,
    socketio_controller,
)

#: What the Engine.IO hooks saw, by session id.
HOOKS: dict[str, list[list[str]]] = {}


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

    @on_engineio_connect
    async def engine_connected(self, conn: EngineIOConnection) -> None:
        HOOKS.setdefault(conn.sid, []).append(["connect", conn.transport])

    @on_engineio_disconnect
    async def engine_disconnected(self, conn: EngineIOConnection, reason: str) -> None:
        HOOKS.setdefault(conn.sid, []).append(["disconnect", conn.transport, reason])

    @on_socketio_event("hook-log")
    async def hook_log(self, conn: SocketIOConnection, sid: str) -> list[list[str]]:
        return HOOKS.get(sid, [])

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


@engineio_controller("/engine.io", ping_interval_ms=300, ping_timeout_ms=300)
class Engine:
    def __init__(self) -> None:
        self.opened: str | None = None

    @on_engineio_connect
    def connected(self, conn: EngineIOConnection) -> None:
        self.opened = conn.sid  # the instance the messages go to
        HOOKS.setdefault(conn.sid, []).append(["connect", conn.transport])

    @on_engineio_message
    async def message(self, conn: EngineIOConnection, data: str | bytes) -> None:
        await conn.send(f"opened {self.opened}")

    @on_engineio_disconnect
    def disconnected(self, conn: EngineIOConnection, reason: str) -> None:
        HOOKS.setdefault(conn.sid, []).append(["disconnect", conn.transport, reason])


app = App(gateways=[Extras, Recover, Engine])
