"""Socket.IO as a cluster: two Apps on one real Valkey, each with the Redis Streams
adapter (the App's broker, no adapter given), talked to over the Engine.IO WebSocket
transport through the in-process TestClient. Broadcasts with ``skip``, acknowledgements
from every client, each cluster operation, server-to-server events and connection state
recovery on the other server; and the same operations without an adapter, in one
process."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from redis_server import RedisServer, free_port, require_binary
from servers import wait_for

from wsgate import App
from wsgate.broadcast.redis import RedisBroadcastGroup
from wsgate.errors import ConfigurationError
from wsgate.socketio import (
    RedisStreamsAdapter,
    SocketIOConnection,
    SocketIOServer,
    on_server_side_event,
    on_socketio_event,
    socketio_controller,
)
from wsgate.testing import TestClient, TestWebSocket

pytestmark = pytest.mark.usefixtures("anyio_backend")
TIMEOUT = 5.0


#: (server, sid, reason) of every disconnect handler run.
DISCONNECTS: list[tuple[str, str, str]] = []


def controller(adapter: RedisStreamsAdapter | None, name: str = "one") -> type:
    """A fresh controller class (its own adapter: tests keep apart by stream)."""

    @socketio_controller("/socket.io", recovery_ms=60_000, adapter=adapter)
    class Cluster:
        def __init__(self, sio: SocketIOServer) -> None:
            self.sio = sio

        @on_socketio_event("join")
        async def join(self, conn: SocketIOConnection, room: str) -> None:
            await conn.join(room)

        @on_socketio_event("data")
        async def data(self, conn: SocketIOConnection, value: Any) -> None:
            conn.data = value

        @on_socketio_event("shout")
        async def shout(self, conn: SocketIOConnection, room: str, text: str) -> None:
            await self.sio.emit("shouted", text, room=room, skip=conn)

        @on_socketio_event("disconnect")
        async def gone(self, conn: SocketIOConnection, reason: str) -> None:
            DISCONNECTS.append((name, conn.sid, reason))

        @on_server_side_event("hello")
        async def hello(self, who: str) -> str:
            return f"{name} greets {who}"

    return Cluster


@contextlib.asynccontextmanager
async def worker(
    url: str | None, adapter: RedisStreamsAdapter | None, name: str
) -> AsyncIterator[TestClient]:
    app = App(gateways=[controller(adapter, name)], broker=url)
    async with TestClient(app, timeout=TIMEOUT) as client:
        yield client


def sio(client: TestClient) -> SocketIOServer:
    server: SocketIOServer = client.app.container.get(SocketIOServer)
    return server


async def sio_connect(
    stack: contextlib.AsyncExitStack, client: TestClient, auth: dict[str, Any] | None = None
) -> tuple[TestWebSocket, dict[str, Any]]:
    ws = await stack.enter_async_context(
        client.websocket_connect("/socket.io/", query={"EIO": "4", "transport": "websocket"})
    )
    assert (await ws.receive_text()).startswith("0{")
    await ws.send_text("40" + (json.dumps(auth) if auth else ""))
    frame = await ws.receive_text()
    assert frame.startswith("40{"), frame
    return ws, json.loads(frame[2:])


async def call(ws: TestWebSocket, ack_id: int, packet: str) -> None:
    """Send ``42<id>[...]`` and wait for its ack."""
    await ws.send_text(f"42{ack_id}{packet}")
    assert await next_event(ws) == f"43{ack_id}[null]"


async def next_event(ws: TestWebSocket) -> str:
    while True:
        frame = await ws.receive_text()
        if frame == "2":
            await ws.send_text("3")
            continue
        return frame


def event(frame: str) -> list[Any]:
    """The arguments array of an EVENT frame (``42[...]`` or ``42<ack id>[...]``)."""
    match = re.fullmatch(r"42(\d*)(\[.*\])", frame)
    assert match, frame
    return list(json.loads(match.group(2)))


@contextlib.asynccontextmanager
async def two_workers(redis_server: RedisServer) -> AsyncIterator[tuple[TestClient, TestClient]]:
    adapter = RedisStreamsAdapter(stream=f"s{uuid.uuid4().hex[:10]}")
    async with contextlib.AsyncExitStack() as stack:
        one = await stack.enter_async_context(worker(redis_server.url, adapter, "one"))
        two = await stack.enter_async_context(worker(redis_server.url, adapter, "two"))
        yield one, two


async def test_room_broadcast_with_skip_crosses_servers(redis_server: RedisServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one, two = await stack.enter_async_context(two_workers(redis_server))
        a, hello_a = await sio_connect(stack, one)
        b, _ = await sio_connect(stack, two)
        c, _ = await sio_connect(stack, two)
        for i, ws in enumerate((a, b, c)):
            await call(ws, i, '["join","r"]')
        await call(b, 10, '["shout","r","from b"]')
        assert event(await next_event(a))[:2] == ["shouted", "from b"]
        assert event(await next_event(c))[:2] == ["shouted", "from b"]
        await call(a, 11, '["shout","r","from a"]')
        # b's next event is a's: it never got its own shout.
        assert event(await next_event(b))[:2] == ["shouted", "from a"]
        assert event(await next_event(c))[:2] == ["shouted", "from a"]
        # skip takes rooms and several connections on every server (Node's except).
        await call(c, 12, '["join","muted"]')
        await sio(one).emit("quiet", room="r", skip="muted")
        assert event(await next_event(a))[0] == "quiet"
        assert event(await next_event(b))[0] == "quiet"
        await sio(two).emit("quieter", skip=["muted", hello_a["sid"]])
        assert event(await next_event(b))[0] == "quieter"
        # With recovery on, each frame carries its stream offset (the same everywhere).
        await sio(one).emit("news", 1)
        frames = [event(await next_event(ws)) for ws in (a, b, c)]
        assert frames[0] == frames[1] == frames[2]
        assert re.fullmatch(r"\d+-\d+", frames[0][2])


async def test_emit_with_ack_gathers_every_client(redis_server: RedisServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one, two = await stack.enter_async_context(two_workers(redis_server))
        a, _ = await sio_connect(stack, one)
        b, _ = await sio_connect(stack, two)
        c, _ = await sio_connect(stack, two)

        async def answer(ws: TestWebSocket, value: str) -> None:
            frame = await next_event(ws)
            ack_id = re.match(r"42(\d+)", frame)
            assert ack_id and event(frame) == ["question", 42]
            await ws.send_text(f"43{ack_id.group(1)}[{json.dumps(value)}]")

        async with anyio.create_task_group() as tg:
            for ws, value in ((a, "a"), (b, "b"), (c, "c")):
                tg.start_soon(answer, ws, value)
            responses = await sio(one).emit_with_ack("question", 42, timeout=TIMEOUT)
        assert sorted(responses) == ["a", "b", "c"]

        # One client does not answer: TimeoutError, with the answers that came.
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer, a, "a")
            tg.start_soon(answer, b, "b")
            with pytest.raises(TimeoutError) as caught:
                await sio(two).emit_with_ack("question", 42, timeout=0.5)
            assert sorted(caught.value.responses) == ["a", "b"]  # type: ignore[attr-defined]
            assert event(await next_event(c)) == ["question", 42]


async def test_emit_with_ack_waits_for_local_clients_when_others_have_none(
    redis_server: RedisServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one, _ = await stack.enter_async_context(two_workers(redis_server))
        a, _ = await sio_connect(stack, one)
        for _ in range(3):
            async with anyio.create_task_group() as tg:

                async def answer() -> None:
                    frame = await next_event(a)
                    ack_id = re.match(r"42(\d+)", frame)
                    assert ack_id
                    await a.send_text(f'43{ack_id.group(1)}["late"]')

                tg.start_soon(answer)
                assert await sio(one).emit_with_ack("q", timeout=TIMEOUT) == ["late"]


async def test_fetch_sockets_and_remote_socket_operations(redis_server: RedisServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one, two = await stack.enter_async_context(two_workers(redis_server))
        a, _ = await sio_connect(stack, one)
        b, hello_b = await sio_connect(stack, two, auth={"token": "tb"})
        await call(b, 1, '["join","blue"]')
        await call(b, 2, '["data",{"name":"bob"}]')
        found = {s.sid: s for s in await sio(one).fetch_sockets()}
        assert len(found) == 2
        remote = found[hello_b["sid"]]
        assert remote.rooms == {hello_b["sid"], "blue"}
        assert remote.data == {"name": "bob"}
        assert remote.handshake["auth"] == {"token": "tb"}
        assert remote.handshake["query"]["EIO"] == "4"
        assert [s.sid for s in await sio(one).fetch_sockets(room="blue")] == [hello_b["sid"]]

        await remote.emit("direct", "hi")
        assert event(await next_event(b))[:2] == ["direct", "hi"]
        await remote.join(["green", "red"])
        (again,) = await sio(one).fetch_sockets(room="green")
        assert again.rooms == {hello_b["sid"], "blue", "green", "red"}
        await remote.leave("red")
        await sio(one).sockets_join("all", room=None)
        await sio(two).sockets_leave("blue", room="blue")
        rooms = {s.sid: s.rooms for s in await sio(two).fetch_sockets()}
        assert rooms[hello_b["sid"]] == {hello_b["sid"], "green", "all"}
        assert "all" in next(r for sid, r in rooms.items() if sid != hello_b["sid"])

        await remote.disconnect()
        assert await next_event(b) == "41"
        assert [s.sid for s in await sio(one).fetch_sockets()] != [hello_b["sid"]]
        assert len(await sio(one).fetch_sockets()) == 1
        await sio(two).disconnect_sockets(close=True)
        assert await next_event(a) == "41"


async def test_remote_socket_emit_with_ack_returns_its_answer(
    redis_server: RedisServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one, two = await stack.enter_async_context(two_workers(redis_server))
        await sio_connect(stack, one)
        b, hello_b = await sio_connect(stack, two)
        (remote,) = [s for s in await sio(one).fetch_sockets() if s.sid == hello_b["sid"]]

        async def answer(value: str) -> None:
            frame = await next_event(b)
            ack_id = re.match(r"42(\d+)", frame)
            assert ack_id and event(frame) == ["q", 1]
            await b.send_text(f"43{ack_id.group(1)}[{json.dumps(value)}]")

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer, "from b")
            # One answer, not a list: Node's remoteSocket.timeout(ms).emitWithAck().
            assert await remote.emit_with_ack("q", 1, timeout=TIMEOUT) == "from b"
        with pytest.raises(TimeoutError):
            await remote.emit_with_ack("q", 1, timeout=0.5)
        assert event(await next_event(b)) == ["q", 1]  # asked, never answered
        # Without an acknowledgement, emit is a broadcast to its room (it has an offset).
        await remote.emit("plain", 2)
        assert event(await next_event(b))[:2] == ["plain", 2]


async def test_local_emit_stays_on_this_server(redis_server: RedisServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one, two = await stack.enter_async_context(two_workers(redis_server))
        a, _ = await sio_connect(stack, one)
        b, _ = await sio_connect(stack, two)
        await call(a, 1, '["join","r"]')
        await call(b, 2, '["join","r"]')
        assert await sio(one).emit("here", 1, room="r", local=True) == 1
        # Not in the stream: no offset (a client recovering elsewhere cannot miss it).
        assert event(await next_event(a)) == ["here", 1]
        await sio(one).emit("everywhere", 2, room="r")
        # b's next event is the normal emit: the local one never reached it.
        assert event(await next_event(b))[:2] == ["everywhere", 2]
        assert event(await next_event(a))[:2] == ["everywhere", 2]

        # emit_with_ack(local=True) asks this server's clients only.
        async with anyio.create_task_group() as tg:

            async def answer() -> None:
                frame = await next_event(a)
                ack_id = re.match(r"42(\d+)", frame)
                assert ack_id and event(frame) == ["q"]
                await a.send_text(f'43{ack_id.group(1)}["a"]')

            tg.start_soon(answer)
            got = await sio(one).emit_with_ack("q", room="r", local=True, timeout=TIMEOUT)
            assert got == ["a"]
        await sio(two).emit("last", room="r")
        assert event(await next_event(b))[0] == "last"
        assert event(await next_event(a))[0] == "last"


async def test_local_emit_with_a_redis_broadcast_group(redis_server: RedisServer) -> None:
    """Without the adapter, rooms span workers through a RedisBroadcastGroup: a local
    emit stays in this process, and may skip rooms (resolved here)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    async with contextlib.AsyncExitStack() as stack:
        one, two = [
            await stack.enter_async_context(
                TestClient(
                    App(
                        gateways=[controller(None)],
                        providers=[RedisBroadcastGroup(redis_server.url, prefix=prefix)],
                    ),
                    timeout=TIMEOUT,
                )
            )
            for _ in range(2)
        ]
        a, _ = await sio_connect(stack, one)
        muted, _ = await sio_connect(stack, one)
        b, _ = await sio_connect(stack, two)
        for i, ws in enumerate((a, muted, b)):
            await call(ws, i, '["join","r"]')
        await call(muted, 9, '["join","muted"]')
        with pytest.raises(ValueError, match="local=True"):
            await sio(one).emit("nope", room="r", skip="muted")
        assert await sio(one).emit("here", room="r", skip="muted", local=True) == 1
        assert event(await next_event(a))[0] == "here"
        await sio(one).emit("everywhere", room="r")
        for ws in (b, muted, a):
            assert event(await next_event(ws))[0] == "everywhere"


async def test_one_encode_per_server_and_disconnect_hooks_once(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wsgate.socketio.cluster as cluster_module

    encoded: list[Any] = []
    real = cluster_module.message_frames

    def counting(packet: Any) -> Any:
        encoded.append(packet.data[0])
        return real(packet)

    monkeypatch.setattr(cluster_module, "message_frames", counting)
    async with contextlib.AsyncExitStack() as stack:
        one, two = await stack.enter_async_context(two_workers(redis_server))
        clients = [await sio_connect(stack, c) for c in (one, two, two, two)]
        for i, (ws, _) in enumerate(clients):
            await call(ws, i, '["join","r"]')
        await call(clients[1][0], 9, '["shout","r","x"]')  # skip: another path
        await sio(one).emit("all", room="r")
        for i, (ws, _) in enumerate(clients):
            if i != 1:
                assert event(await next_event(ws))[:2] == ["shouted", "x"]
            assert event(await next_event(ws))[0] == "all"
        # Each event encoded once per server, whatever the number of its members.
        assert sorted(encoded) == ["all", "all", "shouted", "shouted"]

        sids = {hello["sid"] for _, hello in clients}
        await sio(one).disconnect_sockets(close=True)
        for ws, _ in clients:
            assert await next_event(ws) == "41"

        async def all_gone() -> bool:
            return {sid for _, sid, _ in DISCONNECTS} >= sids

        await wait_for(all_gone, timeout=TIMEOUT, what="the disconnect handlers")
        assert await sio(two).fetch_sockets() == []
        mine = [(server, reason) for server, sid, reason in DISCONNECTS if sid in sids]
        assert (
            sorted(mine)
            == [("one", "server namespace disconnect")]
            + [("two", "server namespace disconnect")] * 3
        )


async def test_server_side_emit_reaches_the_other_servers(redis_server: RedisServer) -> None:
    async with two_workers(redis_server) as (one, two):
        assert await sio(one).server_side_emit_with_ack("hello", "one") == ["two greets one"]
        assert await sio(two).server_side_emit_with_ack("hello", "two") == ["one greets two"]
        await sio(one).server_side_emit("hello", "nobody waits")


async def test_recovery_on_the_other_server(redis_server: RedisServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        one, two = await stack.enter_async_context(two_workers(redis_server))
        async with contextlib.AsyncExitStack() as first:
            a, hello = await sio_connect(first, one)
            await call(a, 1, '["join","r"]')
            await call(a, 2, '["data",7]')
            await sio(two).emit("before", 1, room="r")
            offset = event(await next_event(a))[-1]
        # a's transport closed: its session is kept in Valkey; what it misses is in the
        # stream.
        await sio(one).emit("missed", 2, room="r")
        await sio(two).emit("elsewhere", 3, room="other")
        await sio(two).emit("missed", 4)
        b, again = await sio_connect(stack, two, auth={"pid": hello["pid"], "offset": offset})
        assert again["sid"] == hello["sid"]
        assert event(await next_event(b))[:2] == ["missed", 2]
        assert event(await next_event(b))[:2] == ["missed", 4]
        (socket,) = await sio(one).fetch_sockets(room="r")
        assert socket.sid == hello["sid"] and socket.data == 7

        # The session is taken: the same pid and offset again start a new one.
        _, fresh = await sio_connect(stack, one, auth={"pid": hello["pid"], "offset": offset})
        assert fresh["sid"] != hello["sid"]
        # An offset the stream no longer has: a new session too.
        _, other = await sio_connect(stack, two, auth={"pid": fresh["pid"], "offset": "1-0"})
        assert other["sid"] != fresh["sid"]


async def test_cluster_operations_in_one_process_without_an_adapter() -> None:
    app = App(gateways=[controller(None)])
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(TestClient(app, timeout=TIMEOUT))
        a, hello = await sio_connect(stack, client)
        await call(a, 1, '["join","r"]')
        (remote,) = await sio(client).fetch_sockets(room="r")
        assert remote.sid == hello["sid"] and remote.rooms == {hello["sid"], "r"}
        # Without an adapter, local is this process too.
        assert await sio(client).emit("here", room="r", local=True) == 1
        assert event(await next_event(a))[0] == "here"
        await sio(client).sockets_join("s", room="r")
        assert [s.sid for s in await sio(client).fetch_sockets(room="s")] == [hello["sid"]]
        assert await sio(client).server_side_emit_with_ack("hello", "x") == []
        async with anyio.create_task_group() as tg:

            async def answer() -> None:
                frame = await next_event(a)
                ack_id = re.match(r"42(\d+)", frame)
                assert ack_id
                await a.send_text(f"43{ack_id.group(1)}[1,2]")

            tg.start_soon(answer)
            assert await sio(client).emit_with_ack("q", room="s") == [1]
        await sio(client).disconnect_sockets(room="s")
        assert await next_event(a) == "41"


def test_adapter_without_url_needs_a_broker() -> None:
    with pytest.raises(ConfigurationError, match="App's broker"):
        App(gateways=[controller(RedisStreamsAdapter())])


def test_one_adapter_serves_a_namespace_once() -> None:
    adapter = RedisStreamsAdapter("redis://localhost:1")

    @socketio_controller("/a", adapter=adapter)
    class A:
        pass

    @socketio_controller("/b", adapter=adapter)
    class B:
        pass

    with pytest.raises(ConfigurationError, match="stream"):
        App(gateways=[A, B])


def test_controllers_sharing_a_path_agree_on_the_adapter() -> None:
    @socketio_controller("/socket.io", namespace="/a", adapter=RedisStreamsAdapter("redis://x"))
    class A:
        pass

    @socketio_controller("/socket.io", namespace="/b")
    class B:
        pass

    with pytest.raises(ConfigurationError, match="adapter"):
        App(gateways=[A, B])


async def test_startup_says_when_redis_cannot_be_reached() -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    app = App(gateways=[controller(RedisStreamsAdapter(url))])
    with pytest.raises(RuntimeError, match="could not reach Redis at redis://127.0.0.1"):
        async with TestClient(app, timeout=TIMEOUT):
            pass


async def test_broadcasts_cross_again_after_redis_restarts() -> None:
    """Valkey killed and started again (empty): meanwhile an emit still reaches this
    server's members; then the servers meet again by themselves."""
    with RedisServer(require_binary()) as valkey:
        adapter = RedisStreamsAdapter(stream="restart")
        async with contextlib.AsyncExitStack() as stack:
            one = await stack.enter_async_context(worker(valkey.url, adapter, "one"))
            two = await stack.enter_async_context(worker(valkey.url, adapter, "two"))
            a, _ = await sio_connect(stack, one)
            b, _ = await sio_connect(stack, two)
            await sio(one).emit("before")
            assert event(await next_event(b))[0] == "before"
            assert event(await next_event(a))[0] == "before"
            valkey.kill()
            await sio(one).emit("during")
            assert event(await next_event(a))[0] == "during"
            valkey.start()
            n = 0

            async def crossed() -> bool:
                nonlocal n
                n += 1
                await sio(one).emit("after", n)
                with anyio.move_on_after(0.5):
                    frame = event(await next_event(b))
                    assert frame[0] == "after"
                    return True
                return False

            await wait_for(crossed, timeout=15, what="an emit crossing the servers again")
