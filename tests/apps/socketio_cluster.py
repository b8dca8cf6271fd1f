"""A wsgate Socket.IO server in a cluster (tests/test_socketio_cluster_node.py): the
Redis Streams adapter on the broker of ``WSGATE_BROKER_URL``, the stream named by
``WSGATE_SIO_STREAM``. The namespace "/" behaves as tests/js/cluster_node.mjs's Node
server does; the namespace "/ops" lets the test call the cluster operations of this
server (``["op", name, {...}]``, answered with the result). Binary values travel as
``{"$bin": "<hex>"}``."""

from __future__ import annotations

import os
from typing import Any

from wsgate import App
from wsgate.socketio import (
    RedisStreamsAdapter,
    SocketIOConnection,
    SocketIOServer,
    on_server_side_event,
    on_socketio_event,
    socketio_controller,
)

ADAPTER = RedisStreamsAdapter(stream=os.environ.get("WSGATE_SIO_STREAM", "socket.io"))
NOTES: list[Any] = []


def from_wire(value: Any) -> Any:
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        if isinstance(value.get("$bin"), str):
            return bytes.fromhex(value["$bin"])
        return {k: from_wire(v) for k, v in value.items()}
    return value


def to_wire(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


@socketio_controller("/socket.io", recovery_ms=60_000, adapter=ADAPTER)
class Main:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("connect")
    async def connect(self, conn: SocketIOConnection) -> None:
        await conn.emit("welcome", conn.recovered)

    @on_socketio_event("join")
    async def join(self, conn: SocketIOConnection, room: str) -> None:
        await conn.join(room)

    @on_socketio_event("pid")
    async def pid(self, conn: SocketIOConnection) -> int:
        return os.getpid()  # which worker of ``wsgate run --workers N`` serves it

    @on_socketio_event("data")
    async def data(self, conn: SocketIOConnection, value: Any) -> None:
        conn.data = value

    @on_socketio_event("shout")
    async def shout(self, conn: SocketIOConnection, room: str, text: str) -> None:
        await self.sio.emit("shouted", text, room=room, skip=conn)

    @on_server_side_event("hello")
    def hello(self, who: str) -> str:
        return f"wsgate greets {who}"

    @on_server_side_event("note")
    def note(self, *args: Any) -> None:
        NOTES.append(to_wire(list(args)))


@socketio_controller("/socket.io", namespace="/custom", recovery_ms=60_000, adapter=ADAPTER)
class Custom:
    """Another namespace, served by the Node server too."""


@socketio_controller("/socket.io", namespace="/ops", recovery_ms=60_000, adapter=ADAPTER)
class Ops:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("op")
    async def op(self, conn: SocketIOConnection, name: str, kw: dict[str, Any]) -> Any:
        sio = self.sio
        args = from_wire(kw.get("args", []))
        room = kw.get("room")
        if name == "emit":
            await sio.emit(*args, room=room, namespace=kw.get("namespace", "/"))
        elif name == "emit_with_ack":
            try:
                return {
                    "responses": to_wire(
                        await sio.emit_with_ack(*args, room=room, timeout=kw.get("timeout", 5.0))
                    )
                }
            except TimeoutError as exc:
                return {"timeout": to_wire(getattr(exc, "responses", None))}
        elif name == "fetch_sockets":
            return [
                {
                    "sid": s.sid,
                    "rooms": sorted(s.rooms),
                    "data": to_wire(s.data),
                    "auth": s.handshake.get("auth"),
                }
                for s in await sio.fetch_sockets(room=room)
            ]
        elif name == "remote":
            (target,) = [s for s in await sio.fetch_sockets() if s.sid == kw["sid"]]
            action = kw["action"]
            if action == "emit":
                await target.emit(*args)
            elif action == "join":
                await target.join(args)
            elif action == "leave":
                await target.leave(args)
            else:
                await target.disconnect(bool(args))
        elif name == "sockets_join":
            await sio.sockets_join(kw["rooms"], room=room)
        elif name == "sockets_leave":
            await sio.sockets_leave(kw["rooms"], room=room)
        elif name == "disconnect_sockets":
            await sio.disconnect_sockets(room=room, close=bool(kw.get("close")))
        elif name == "server_side_emit":
            await sio.server_side_emit(*args)
        elif name == "server_side_emit_with_ack":
            return to_wire(
                await sio.server_side_emit_with_ack(*args, timeout=kw.get("timeout", 5.0))
            )
        elif name == "notes":
            taken = NOTES[:]
            NOTES.clear()
            return taken
        return None


app = App(gateways=[Main, Custom, Ops])
