"""Socket.IO rooms across workers: two Apps, each with its own RedisBroadcastGroup on
one real Valkey/Redis server, talked to over the Engine.IO WebSocket transport through
the in-process TestClient. An emit to a room reaches the members on both workers, and
``skip`` holds across them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from redis_server import RedisServer

from wsgate import App
from wsgate.broadcast.redis import RedisBroadcastGroup
from wsgate.socketio import (
    SocketIOConnection,
    SocketIOServer,
    on_socketio_event,
    socketio_controller,
)
from wsgate.testing import TestClient, TestWebSocket

pytestmark = pytest.mark.usefixtures("anyio_backend")
TIMEOUT = 5.0


@socketio_controller("/socket.io")
class Rooms:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("join")
    async def join(self, conn: SocketIOConnection, room: str) -> None:
        await conn.join(room)

    @on_socketio_event("shout")
    async def shout(self, conn: SocketIOConnection, room: str, text: str) -> None:
        await self.sio.emit("shouted", text, room=room, skip=conn)


@contextlib.asynccontextmanager
async def worker(url: str, prefix: str) -> AsyncIterator[TestClient]:
    group = RedisBroadcastGroup(url, prefix=prefix, reconnect_max_delay=0.2)
    async with TestClient(App(gateways=[Rooms], providers=[group]), timeout=TIMEOUT) as client:
        yield client


async def sio_connect(stack: contextlib.AsyncExitStack, client: TestClient) -> TestWebSocket:
    ws = await stack.enter_async_context(
        client.websocket_connect("/socket.io/", query={"EIO": "4", "transport": "websocket"})
    )
    assert (await ws.receive_text()).startswith("0{")
    await ws.send_text("40")
    assert (await ws.receive_text()).startswith("40{")
    return ws


async def call(ws: TestWebSocket, ack_id: int, packet: str) -> None:
    """Send ``42<id>[...]`` and wait for its ack (answering pings meanwhile)."""
    await ws.send_text(f"42{ack_id}{packet}")
    assert await next_event(ws) == f"43{ack_id}[null]"


async def next_event(ws: TestWebSocket) -> str:
    while True:
        frame = await ws.receive_text()
        if frame == "2":
            await ws.send_text("3")
            continue
        return frame


async def test_room_emit_crosses_workers_with_skip(redis_server: RedisServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    async with contextlib.AsyncExitStack() as stack:
        one = await stack.enter_async_context(worker(redis_server.url, prefix))
        two = await stack.enter_async_context(worker(redis_server.url, prefix))
        a = await sio_connect(stack, one)
        b = await sio_connect(stack, two)
        c = await sio_connect(stack, two)
        for i, ws in enumerate((a, b, c)):
            await call(ws, i, '["join","r"]')
        await call(b, 10, '["shout","r","from b"]')
        assert await next_event(a) == '42["shouted","from b"]'
        assert await next_event(c) == '42["shouted","from b"]'
        await call(a, 11, '["shout","r","from a"]')
        # b's next event is a's: it never got its own shout, though a (on the other
        # worker) and c (on its own) did.
        assert await next_event(b) == '42["shouted","from a"]'
        assert await next_event(c) == '42["shouted","from a"]'
