"""python-socketio's AsyncClient as the clients of a wsgate Socket.IO cluster: two wsgate
servers (tests/apps/socketio_cluster.py under hypercorn on the test's backend) with the
Redis Streams adapter on one real Valkey. A room broadcast from a client of one server
reaches the clients of both; ``emit_with_ack`` gathers their answers; ``disconnect_sockets``
from one server disconnects a client of the other; and a client whose server it can no
longer reach comes back to the other one with a new session (python-socketio sends no
``pid``/``offset``, so it cannot recover; it rejoins its rooms in its connect handler).

The cluster operations of a server are called through its "/ops" namespace. The official
socket.io-client (node) is in tests/test_socketio_cluster_node.py.

python-socketio's client runs on asyncio only: each scenario runs on its own event loop
in a worker thread, so the tests themselves run on trio and on asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
import servers
import socketio
from redis_server import RedisServer

pytestmark = pytest.mark.usefixtures("anyio_backend")

APP = "tests.apps.socketio_cluster:app"
TIMEOUT = 5.0
#: The stream entry id an event carries as its last argument when recovery is on.
OFFSET = re.compile(r"\d+-\d+")


async def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run an asyncio scenario on its own loop in a worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(asyncio.run, scenario()))


@pytest.fixture
def cluster(
    redis_server: RedisServer,
    anyio_backend_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, str]]:
    """Two wsgate servers on one stream of their own: their http:// URLs. Fails if one
    of them logged an error."""
    monkeypatch.setenv("WSGATE_BROKER_URL", redis_server.url)
    monkeypatch.setenv("WSGATE_SIO_STREAM", f"s{uuid.uuid4().hex[:10]}")
    kind = f"hypercorn-{anyio_backend_name}"
    procs = [servers.ServerProcess(kind, APP, tmp_path) for _ in range(2)]
    try:
        one, two = ("http" + p.start()[2:] for p in procs)
        yield one, two
    finally:
        for p in procs:
            p.stop()
    for p in procs:
        assert p.url is not None
        bad = [line for line in p.url.log().splitlines() if servers.UNEXPECTED_LOG.search(line)]
        assert not bad, f"a server logged errors (log: {p.url.log_path}):\n" + "\n".join(bad)


class User:
    """A python-socketio client: every event it receives, awaited with a timeout."""

    def __init__(self, reconnect: bool = False) -> None:
        # A reconnecting client tries again at once (python-socketio's default waits 1 s
        # or more).
        self.client = socketio.AsyncClient(
            reconnection=reconnect,
            reconnection_delay=0.05,
            reconnection_delay_max=0.1,
            randomization_factor=0.0,
        )
        self.events: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        self.disconnects: asyncio.Queue[str] = asyncio.Queue()
        self.client.on("*", self._event)
        self.client.on("disconnect", self.disconnects.put)

    async def _event(self, event: str, *args: Any) -> None:
        await self.events.put((event, args))

    async def connect(self, url: str) -> None:
        await self.client.connect(url, transports=["websocket"], wait_timeout=TIMEOUT)
        # wsgate's connect handler says whether the session was recovered.
        assert await self.next() == ("welcome", (False,))

    async def next(self) -> tuple[str, tuple[Any, ...]]:
        """The next event with its arguments (a broadcast's offset left off)."""
        event, args = await asyncio.wait_for(self.events.get(), TIMEOUT)
        if args and isinstance(args[-1], str) and OFFSET.fullmatch(args[-1]):
            return event, args[:-1]
        return event, args

    async def call(self, event: str, *args: Any) -> Any:
        return await self.client.call(event, args, timeout=TIMEOUT)

    async def close(self) -> None:
        await self.client.disconnect()


async def user(url: str, *rooms: str) -> User:
    u = User()
    await u.connect(url)
    for room in rooms:
        await u.call("join", room)
    return u


class Ops:
    """A client of a server's "/ops" namespace: ``await op(name, **kw)`` runs one of
    that server's cluster operations and returns the result."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)

    async def connect(self, url: str) -> Ops:
        await self.client.connect(
            url, namespaces=["/ops"], transports=["websocket"], wait_timeout=TIMEOUT
        )
        return self

    async def __call__(self, name: str, **kw: Any) -> Any:
        return await self.client.call("op", (name, kw), namespace="/ops", timeout=TIMEOUT)

    async def close(self) -> None:
        await self.client.disconnect()


async def test_room_broadcast_reaches_python_clients_on_both_servers(
    cluster: tuple[str, str],
) -> None:
    one, two = cluster

    async def scenario() -> None:
        a1, a2 = await user(one, "r"), await user(one, "r")
        b1, b2 = await user(two, "r"), await user(two)
        try:
            # From a client's handler on server one (skip=conn) to the room on both.
            await a1.client.emit("shout", ("r", "from a1"))
            for u in (a2, b1):
                assert await u.next() == ("shouted", ("from a1",))
            # And the other way.
            await b1.client.emit("shout", ("r", "from b1"))
            for u in (a1, a2):
                assert await u.next() == ("shouted", ("from b1",))
            # With recovery on, a broadcast carries its offset as a last argument, the
            # same on both servers (python-socketio hands it to the handler, as with Node).
            op = await Ops().connect(one)
            await op("emit", args=["news", 1])
            raw = [await asyncio.wait_for(u.events.get(), TIMEOUT) for u in (a1, a2, b1, b2)]
            # b2 is in no room and a1 was skipped: each one's next event is this one.
            assert raw[0][0] == "news" and raw[0][1][0] == 1
            assert raw[0] == raw[1] == raw[2] == raw[3]
            assert OFFSET.fullmatch(raw[0][1][-1])
            await op.close()
        finally:
            for u in (a1, a2, b1, b2):
                await u.close()

    await run(scenario)


async def test_emit_with_ack_gathers_python_clients_answers(cluster: tuple[str, str]) -> None:
    one, two = cluster

    async def scenario() -> None:
        release = asyncio.Event()
        users = []
        for name, url in (("a1", one), ("b1", two), ("b2", two)):
            u = User()
            u.client.on("question", functools.partial(lambda n, *args: n, name))
            await u.connect(url)
            await u.call("join", "q")
            users.append(u)
        slow = User()

        async def late(*args: Any) -> str:
            await release.wait()
            return "late"

        slow.client.on("question", late)
        await slow.connect(two)
        try:
            op = await Ops().connect(one)
            got = await op("emit_with_ack", room="q", args=["question", 1])
            assert sorted(got["responses"]) == ["a1", "b1", "b2"]
            # A client that does not answer in time: TimeoutError, with the answers that
            # came (slow is in the room now).
            await slow.call("join", "q")
            got = await op("emit_with_ack", room="q", args=["question", 2], timeout=1.0)
            assert sorted(got["timeout"]) == ["a1", "b1", "b2"]
            release.set()
            await op.close()
        finally:
            for u in (*users, slow):
                await u.close()

    await run(scenario)


async def test_disconnect_sockets_from_one_server_disconnects_a_client_of_the_other(
    cluster: tuple[str, str],
) -> None:
    one, two = cluster

    async def scenario() -> None:
        kicked, stays, closed = await user(two, "kick"), await user(two), await user(two, "close")
        try:
            op = await Ops().connect(one)
            await op("disconnect_sockets", room="kick")
            # The client's disconnect handler gets the server's reason; no reconnection.
            assert await asyncio.wait_for(kicked.disconnects.get(), TIMEOUT) == (
                socketio.AsyncClient.reason.SERVER_DISCONNECT
            )
            assert not kicked.client.connected
            # close=True ends the whole connection: the same reason for the client.
            await op("disconnect_sockets", room="close", close=True)
            assert await asyncio.wait_for(closed.disconnects.get(), TIMEOUT) == (
                socketio.AsyncClient.reason.SERVER_DISCONNECT
            )
            # A client in neither room is still served.
            assert stays.client.connected
            await stays.call("join", "still-here")
            sockets = await op("fetch_sockets")
            assert [s["rooms"] for s in sockets if "still-here" in s["rooms"]] == [
                sorted([stays.client.get_sid(), "still-here"])
            ]
            assert stays.disconnects.empty()
            await op.close()
        finally:
            for u in (kicked, stays, closed):
                await u.close()

    await run(scenario)


class Proxy:
    """A TCP proxy in front of one server at a time, as a load balancer: ``cut`` closes
    every connection and refuses new ones until ``send_to`` names a server."""

    def __init__(self) -> None:
        self.target: tuple[str, int] | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self, url: str) -> str:
        self.target = self._address(url)
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def _address(url: str) -> tuple[str, int]:
        host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
        return host, int(port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.target is None:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.target = None
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    def send_to(self, url: str) -> None:
        self.target = self._address(url)

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_python_client_gets_a_new_session_on_the_other_server(
    cluster: tuple[str, str], redis_server: RedisServer
) -> None:
    """python-socketio sends no pid/offset: where a Node client would recover, it gets
    a new session (recovered false) and rejoins its rooms in its connect handler; it
    does not get what was emitted while it was away."""
    one, two = cluster

    def sessions() -> set[Any]:
        return set(redis_server.command("KEYS", "sio:session:*"))  # type: ignore[arg-type]

    async def scenario() -> None:
        proxy = Proxy()
        url = await proxy.start(one)
        u = User(reconnect=True)
        joined: asyncio.Queue[str] = asyncio.Queue()

        @u.client.event
        async def connect() -> None:
            # What a python-socketio user does: join the rooms again on every connect.
            await u.client.emit("join", "r", callback=lambda *_: joined.put_nowait("r"))

        op = await Ops().connect(one)
        try:
            await u.connect(url)
            assert await asyncio.wait_for(joined.get(), TIMEOUT) == "r"
            first_sid = u.client.get_sid()
            first_server = await u.call("pid")
            await op("emit", args=["before"], room="r")
            assert await u.next() == ("before", ())

            kept = sessions()
            proxy.cut()  # server one is out of reach: the transport is cut
            assert await asyncio.wait_for(u.disconnects.get(), TIMEOUT) == (
                socketio.AsyncClient.reason.TRANSPORT_ERROR
            )

            async def session_kept() -> bool:
                return len(sessions() - kept) == 1

            # Server one keeps the session for recovery_ms, as for any client.
            await servers.wait_for(
                session_kept, timeout=TIMEOUT, what="server one keeping the session"
            )
            await op("emit", args=["missed"], room="r")

            # The load balancer now sends it to server two, where the client reconnects
            # by itself: a new session.
            proxy.send_to(two)
            assert await u.next() == ("welcome", (False,))
            assert await asyncio.wait_for(joined.get(), TIMEOUT) == "r"
            assert u.client.get_sid() != first_sid
            assert await u.call("pid") != first_server
            # Its connect handler put it back in "r": room broadcasts from server one
            # reach it again; "missed" never came.
            await op("emit", args=["after"], room="r")
            assert await u.next() == ("after", ())
            sockets = await op("fetch_sockets", room="r")
            assert [s["sid"] for s in sockets] == [u.client.get_sid()]
        finally:
            u.client.reconnection = False
            await u.close()
            await op.close()
            await proxy.close()

    await run(scenario)
