"""The Socket.IO / Engine.IO test app: every feature a client can observe.

Served by tests/test_socketio_servers.py (python-socketio's client) and
tests/test_socketio_node.py (the JavaScript socket.io-client under node).
"""

from __future__ import annotations

import os
from typing import Any

import anyio
import msgspec

from wsgate import App, BroadcastGroup, WebSocketError
from wsgate.socketio import (
    EngineIOConnection,
    SocketIOConnection,
    SocketIOServer,
    engineio_controller,
    on_engineio_message,
    on_socketio_event,
    socketio_controller,
)

#: Short heartbeats so that timeouts are observable quickly in tests.
PING_INTERVAL_MS = int(os.environ.get("WSGATE_SIO_PING_INTERVAL_MS", "500"))
PING_TIMEOUT_MS = int(os.environ.get("WSGATE_SIO_PING_TIMEOUT_MS", "1000"))
CONNECT_TIMEOUT_MS = 1000

ENGINE = {
    "ping_interval_ms": PING_INTERVAL_MS,
    "ping_timeout_ms": PING_TIMEOUT_MS,
    "max_payload_bytes": 100_000,
    "connect_timeout_ms": CONNECT_TIMEOUT_MS,
    "cors_allowed_origins": ["http://allowed.example"],
}


class ChatMessage(msgspec.Struct):
    text: str
    room: str | None = None


class Receipt(msgspec.Struct):
    ok: bool
    length: int


#: Disconnect reasons seen by the server, by the client's "tag" auth value.
DISCONNECTS: dict[str, list[str]] = {}


@socketio_controller("/socket.io", namespace="/", **ENGINE)  # type: ignore[arg-type]
class Chat:
    def __init__(self, rooms: BroadcastGroup, sio: SocketIOServer) -> None:
        self.rooms = rooms
        self.sio = sio

    @on_socketio_event("connect")
    async def connected(self, conn: SocketIOConnection) -> None:
        if isinstance(conn.auth, dict) and conn.auth.get("refuse"):
            raise WebSocketError("not welcome", detail={"why": "refuse"})
        conn.state.tag = conn.auth.get("tag") if isinstance(conn.auth, dict) else None
        await conn.emit("auth", conn.auth)

    @on_socketio_event("message")
    async def message(self, conn: SocketIOConnection, *args: Any) -> None:
        await conn.emit("message-back", *args)

    @on_socketio_event("chat")
    async def chat(self, conn: SocketIOConnection, msg: ChatMessage) -> Receipt:
        return Receipt(ok=True, length=len(msg.text))

    @on_socketio_event("pair")
    async def pair(self, conn: SocketIOConnection, a: int, b: int) -> tuple[int, int]:
        return b, a

    @on_socketio_event("nothing")
    async def nothing(self, conn: SocketIOConnection) -> None:
        return None

    @on_socketio_event("join")
    async def join(self, conn: SocketIOConnection, room: str) -> list[str]:
        await conn.join(room)
        return sorted(conn.rooms - {conn.sid})

    @on_socketio_event("leave")
    async def leave(self, conn: SocketIOConnection, room: str) -> list[str]:
        await conn.leave(room)
        return sorted(conn.rooms - {conn.sid})

    @on_socketio_event("shout")
    async def shout(self, conn: SocketIOConnection, room: str, text: str) -> int:
        return await self.sio.emit("shouted", text, room=room, skip=conn)

    @on_socketio_event("shout-all")
    async def shout_all(self, conn: SocketIOConnection, text: str) -> int:
        return await self.sio.emit("shouted", text)

    @on_socketio_event("ask")
    async def ask(self, conn: SocketIOConnection, question: str, timeout: float) -> Any:
        try:
            answer = await conn.call("question", question, timeout=timeout)
        except TimeoutError:
            return "timeout"
        return ["answer", answer]

    @on_socketio_event("binary")
    async def binary(self, conn: SocketIOConnection, data: bytes, extra: Any) -> Any:
        await conn.emit("binary-back", {"nested": [data, data[::-1]]}, extra)
        return data

    @on_socketio_event("kick-me")
    async def kick_me(self, conn: SocketIOConnection) -> None:
        await conn.disconnect()

    @on_socketio_event("info")
    async def info(self, conn: SocketIOConnection) -> dict[str, Any]:
        return {
            "sid": conn.sid,
            "namespace": conn.namespace,
            "transport": conn.transport,
            "recovered": conn.recovered,
            "rooms": sorted(conn.rooms),
            "query": dict(conn.query_params),
        }

    @on_socketio_event("disconnects")
    async def disconnects(self, conn: SocketIOConnection, tag: str) -> list[str]:
        return DISCONNECTS.get(tag, [])

    @on_socketio_event("disconnect")
    async def gone(self, conn: SocketIOConnection, reason: str) -> None:
        tag = getattr(conn.state, "tag", None)
        if tag:
            DISCONNECTS.setdefault(tag, []).append(reason)
        if isinstance(tag, str) and tag.startswith("slow-"):
            await anyio.sleep(2)  # a disconnect handler that takes its time


@socketio_controller("/socket.io", namespace="/admin", **ENGINE)  # type: ignore[arg-type]
class Admin:
    @on_socketio_event("connect")
    async def connected(self, conn: SocketIOConnection) -> None:
        if not isinstance(conn.auth, dict) or conn.auth.get("token") != "secret":
            raise WebSocketError("bad token")

    @on_socketio_event("whoami")
    async def whoami(self, conn: SocketIOConnection) -> str:
        return f"admin {conn.sid}"


@socketio_controller(
    "/recover",
    recovery_ms=60_000,
    ping_interval_ms=PING_INTERVAL_MS,
    ping_timeout_ms=PING_TIMEOUT_MS,
)
class Recover:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("connect")
    async def connected(self, conn: SocketIOConnection) -> None:
        if not conn.recovered:
            conn.state.count = 0
            await conn.join("news")

    @on_socketio_event("info")
    async def info(self, conn: SocketIOConnection) -> dict[str, Any]:
        conn.state.count += 1
        return {
            "sid": conn.sid,
            "recovered": conn.recovered,
            "count": conn.state.count,
            "rooms": sorted(conn.rooms - {conn.sid}),
        }

    @on_socketio_event("publish")
    async def publish(self, conn: SocketIOConnection, text: str) -> int:
        return await self.sio.emit("news", text, room="news", path="/recover")


@engineio_controller(
    "/engine.io",
    ping_interval_ms=PING_INTERVAL_MS,
    ping_timeout_ms=PING_TIMEOUT_MS,
    max_payload_bytes=100_000,
    cors_allowed_origins="*",
)
class Echo:
    @on_engineio_message
    async def echo(self, conn: EngineIOConnection, data: str | bytes) -> None:
        await conn.send(data)


app = App(gateways=[Chat, Admin, Recover, Echo])
