"""RedisBroadcastGroup against a real Valkey/Redis server.

Two ``App`` instances in one test, each with its own ``RedisBroadcastGroup``, are two
workers; the hypercorn tests run the chat example with ``--workers 2`` for real. Every
async test runs on trio and on asyncio (see conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from redis_server import RedisServer, free_port

from wsgate import (
    App,
    BroadcastGroup,
    Json,
    Query,
    WebSocket,
    on_connect,
    on_message,
    ws_controller,
)
from wsgate.broadcast.redis import BroadcastUnavailableError, RedisBroadcastGroup
from wsgate.encoding import decode, encode
from wsgate.testing import TestClient, TestWebSocket

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 5.0


# -- fixtures ----------------------------------------------------------------------------


# -- a gateway and two "workers" ---------------------------------------------------------


class Say(msgspec.Struct):
    text: str
    exclude_self: bool = False


@ws_controller("/g/{group}")
class GroupGateway:
    def __init__(self, groups: BroadcastGroup) -> None:
        self.groups = groups

    @on_connect
    async def join(self, ws: WebSocket, group: str, user: Query[str] = "anon") -> None:
        self.user = user
        await self.groups.subscribe(group, ws)

    @on_message("say")
    async def say(self, ws: WebSocket, group: str, body: Json[Say]) -> None:
        await self.counted_say(ws, group, body)

    @on_message("counted_say")
    async def counted_say(self, ws: WebSocket, group: str, body: Json[Say]) -> int:
        message = {"event": "said", "data": {"from": self.user, "text": body.text}}
        return await self.groups.broadcast(
            group, message, exclude=ws if body.exclude_self else None
        )


@contextlib.asynccontextmanager
async def worker(
    url: str, prefix: str, **options: Any
) -> AsyncIterator[tuple[TestClient, RedisBroadcastGroup, App]]:
    options.setdefault("reconnect_max_delay", 0.2)
    group = RedisBroadcastGroup(url, prefix=prefix, **options)
    app = App(gateways=[GroupGateway], providers=[group])
    async with TestClient(app, timeout=TIMEOUT) as client:
        yield client, group, app


async def connect(
    stack: contextlib.AsyncExitStack, client: TestClient, group: str, user: str
) -> TestWebSocket:
    return await stack.enter_async_context(
        client.websocket_connect(f"/g/{group}", query={"user": user})
    )


async def command(server: RedisServer, *args: str) -> Any:
    """A command sent by a plain socket client (not the library under test)."""
    return await anyio.to_thread.run_sync(lambda: server.command(*args))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT) -> None:
    """Poll ``check`` (every 20 ms) until it is true; fail after ``timeout``."""
    with anyio.fail_after(timeout):
        while True:
            if await check():
                return
            await anyio.sleep(0.02)  # Redis state: nothing to wait on but the next poll


async def numsub(server: RedisServer, channel: str) -> int:
    reply = await command(server, "PUBSUB", "NUMSUB", channel)
    return int(reply[1])


async def said(ws: TestWebSocket) -> tuple[str, str]:
    """The next ``said`` event: ``(sender, text)``."""
    frame = await ws.receive_json(timeout=TIMEOUT)
    assert frame["event"] == "said", frame
    return frame["data"]["from"], frame["data"]["text"]


async def said_until(ws: TestWebSocket, marker: str) -> list[tuple[str, str]]:
    """Every ``said`` event up to (without) the one whose text is ``marker``."""
    out: list[tuple[str, str]] = []
    while True:
        item = await said(ws)
        if item[1] == marker:
            return out
        out.append(item)


# -- delivery across workers -----------------------------------------------------------------


async def test_broadcast_reaches_every_worker_exactly_once_in_order(
    redis_server: RedisServer, prefix: str
) -> None:
    async with (
        worker(redis_server.url, prefix) as (ca, ga, _),
        worker(redis_server.url, prefix) as (cb, gb, _),
        contextlib.AsyncExitStack() as stack,
    ):
        a1 = await connect(stack, ca, "room", "a1")
        a2 = await connect(stack, ca, "room", "a2")
        b1 = await connect(stack, cb, "room", "b1")
        b2 = await connect(stack, cb, "room", "b2")
        members = [a1, a2, b1, b2]
        n = 25
        # Two senders on different workers, interleaved.
        for i in range(n):
            await a1.send_event("say", {"text": f"a1-{i}"})
            await b2.send_event("say", {"text": f"b2-{i}"})
        for ws in members:
            got = [await said(ws) for _ in range(2 * n)]
            assert [t for s, t in got if s == "a1"] == [f"a1-{i}" for i in range(n)]
            assert [t for s, t in got if s == "b2"] == [f"b2-{i}" for i in range(n)]
        # No copy is left over: the next frame each member gets is the next message.
        end = {"event": "said", "data": {"from": "-", "text": "end"}}
        assert await gb.broadcast("room", end) == 2  # frames enqueued on this worker
        for ws in members:
            assert await said(ws) == ("-", "end")
        assert ga.redis_stats.received >= n and gb.redis_stats.received >= n


async def test_frames_keep_their_kind_across_workers(
    redis_server: RedisServer, prefix: str
) -> None:
    async with (
        worker(redis_server.url, prefix) as (_, ga, _),
        worker(redis_server.url, prefix) as (cb, gb, _),
        contextlib.AsyncExitStack() as stack,
    ):
        b1 = await connect(stack, cb, "room", "b1")
        assert await ga.broadcast("room", b"\x00\x01binary") == 0  # no member on A
        assert await b1.receive_bytes(timeout=TIMEOUT) == b"\x00\x01binary"
        await ga.broadcast("room", "héllo ✓")
        assert await b1.receive_text(timeout=TIMEOUT) == "héllo ✓"
        await ga.broadcast("room", {"k": [1, 2]}, as_bytes=True)
        assert decode(await b1.receive_bytes(timeout=TIMEOUT)) == {"k": [1, 2]}
        await ga.broadcast("room", {"k": "text"})
        assert decode(await b1.receive_text(timeout=TIMEOUT)) == {"k": "text"}
        # Something else published on the channel is counted and dropped, not delivered.
        await command(redis_server, "PUBLISH", f"{prefix}:g:room", "not ours")
        await ga.broadcast("room", "after")
        assert await b1.receive_text(timeout=TIMEOUT) == "after"
        assert gb.redis_stats.ignored == 1


async def test_exclude_works_across_workers(redis_server: RedisServer, prefix: str) -> None:
    async with (
        worker(redis_server.url, prefix) as (ca, ga, app_a),
        worker(redis_server.url, prefix) as (cb, gb, _),
        contextlib.AsyncExitStack() as stack,
    ):
        a1 = await connect(stack, ca, "room", "a1")
        a2 = await connect(stack, ca, "room", "a2")
        b1 = await connect(stack, cb, "room", "b1")
        await a1.send_event("say", {"text": "not to me", "exclude_self": True})
        for ws in (a2, b1):
            assert await said(ws) == ("a1", "not to me")
        await gb.broadcast("room", {"event": "said", "data": {"from": "-", "text": "all"}})
        for ws in (a1, a2, b1):
            assert await said(ws) == ("-", "all")  # a1's next frame: it got nothing before

        # The excluded id travels on the wire: a connection of worker A that is also a
        # member on worker B is skipped by B when A broadcasts excluding it.
        (server_ws,) = [ws for ws in app_a.connections if ws.query_params.get("user") == "a1"]
        await gb.subscribe("side", server_ws)
        try:
            await ga.broadcast("side", "skip a1", exclude=server_ws)
            await ga.broadcast("side", "to a1")
            assert await a1.receive_text(timeout=TIMEOUT) == "to a1"
        finally:
            await gb.unsubscribe("side", server_ws)


async def test_broadcast_returns_frames_enqueued_in_this_process(
    redis_server: RedisServer, prefix: str
) -> None:
    async with (
        worker(redis_server.url, prefix) as (ca, ga, _),
        worker(redis_server.url, prefix) as (cb, gb, _),
        contextlib.AsyncExitStack() as stack,
    ):
        a1 = await connect(stack, ca, "room", "a1")
        await connect(stack, ca, "room", "a2")
        await connect(stack, cb, "room", "b1")
        reply = await a1.request("counted_say", {"text": "x"}, id=1, timeout=TIMEOUT)
        assert reply["data"] == 2, reply  # a1 and a2; b1 is served by the other worker
        assert await ga.broadcast("room", "y", exclude=None) == 2
        assert await gb.broadcast("room", "z") == 1
        assert await ga.broadcast("empty", "nobody") == 0


# -- subscriptions and counts ------------------------------------------------------------------


async def test_subscribed_to_a_group_only_while_it_has_local_members(
    redis_server: RedisServer, prefix: str
) -> None:
    channel = f"{prefix}:g:room"
    async with (
        worker(redis_server.url, prefix) as (ca, _, _),
        worker(redis_server.url, prefix) as (cb, gb, _),
    ):
        assert await numsub(redis_server, channel) == 0
        async with contextlib.AsyncExitStack() as sa:
            # subscribe() returns once Redis acknowledged the SUBSCRIBE: no polling needed.
            await connect(sa, ca, "room", "a1")
            assert await numsub(redis_server, channel) == 1
            await connect(sa, ca, "room", "a2")
            assert await numsub(redis_server, channel) == 1  # one subscription per worker
            async with contextlib.AsyncExitStack() as sb:
                await connect(sb, cb, "room", "b1")
                assert await numsub(redis_server, channel) == 2
                assert await command(redis_server, "PUBSUB", "CHANNELS", f"{prefix}:*") == [
                    channel.encode()
                ]

            async def b_gone() -> bool:
                return await numsub(redis_server, channel) == 1

            await eventually(b_gone)

        async def all_gone() -> bool:
            return bool(await command(redis_server, "PUBSUB", "CHANNELS", f"{prefix}:*") == [])

        await eventually(all_gone)

        # Members that come and go quickly: the subscription still ends where it should.
        for i in range(15):
            async with ca.websocket_connect("/g/churn", query={"user": f"c{i}"}):
                pass
        async with ca.websocket_connect("/g/churn", query={"user": "stay"}) as stay:
            assert await numsub(redis_server, f"{prefix}:g:churn") == 1
            await gb.broadcast("churn", "after churn")
            assert await stay.receive_text(timeout=TIMEOUT) == "after churn"

        async def churn_gone() -> bool:
            return await numsub(redis_server, f"{prefix}:g:churn") == 0

        await eventually(churn_gone)


async def test_total_member_count_spans_workers(redis_server: RedisServer, prefix: str) -> None:
    key = f"{prefix}:m:room"
    async with worker(redis_server.url, prefix) as (ca, ga, _), contextlib.AsyncExitStack() as sa:
        await connect(sa, ca, "room", "a1")
        await connect(sa, ca, "room", "a2")
        async with worker(redis_server.url, prefix) as (cb, gb, _):
            async with contextlib.AsyncExitStack() as sb:
                await connect(sb, cb, "room", "b1")
                # subscribe() waits for the count to be written: exact right away.
                assert await ga.total_member_count("room") == 3
                assert await gb.total_member_count("room") == 3
                assert (ga.member_count("room"), gb.member_count("room")) == (2, 1)
                assert await ga.total_member_count("nobody") == 0

                # A worker that died without cleaning up: its count is ignored and removed.
                await command(redis_server, "HSET", key, "f" * 32, "40")
                assert await ga.total_member_count("room") == 3
                assert await command(redis_server, "HEXISTS", key, "f" * 32) == 0
                assert await command(redis_server, "HLEN", key) == 2

            async def two() -> bool:
                return await ga.total_member_count("room") == 2

            await eventually(two)  # b1 left; B writes its count in the background
            async with contextlib.AsyncExitStack() as sb:
                await connect(sb, cb, "room", "b2")
                assert await ga.total_member_count("room") == 3
        # Worker B shut down: its count and heartbeat are gone from Redis.
        assert await command(redis_server, "HKEYS", key) == [ga.worker_id.encode()]
        assert await command(redis_server, "EXISTS", f"{prefix}:w:{gb.worker_id}") == 0
        assert await ga.total_member_count("room") == 2
    assert await command(redis_server, "KEYS", f"{prefix}:*") == []  # A cleaned up too


async def test_heartbeat_keeps_counts_alive_and_restores_them(
    redis_server: RedisServer, prefix: str
) -> None:
    async with (
        worker(redis_server.url, prefix, heartbeat_ttl=1.0) as (ca, ga, _),
        worker(redis_server.url, prefix, heartbeat_ttl=1.0) as (_, gb, _),
        contextlib.AsyncExitStack() as stack,
    ):
        await connect(stack, ca, "room", "a1")
        heartbeat = f"{prefix}:w:{ga.worker_id}"
        assert 0 < await command(redis_server, "PTTL", heartbeat) <= 1000

        # Refreshed every third of its TTL: still alive after more than one TTL.
        with anyio.fail_after(TIMEOUT):
            start = anyio.current_time()
            while anyio.current_time() - start < 1.5:
                assert await command(redis_server, "EXISTS", heartbeat) == 1
                await anyio.sleep(0.1)  # sampling the key over 1.5 s
        assert await gb.total_member_count("room") == 1

        # As if A had stalled past its TTL and B had removed its count meanwhile: A sees
        # its heartbeat gone at the next beat and writes its counts again.
        await command(redis_server, "DEL", heartbeat)
        await command(redis_server, "HDEL", f"{prefix}:m:room", ga.worker_id)
        assert await gb.total_member_count("room") == 0

        async def restored() -> bool:
            return await gb.total_member_count("room") == 1

        await eventually(restored)


# -- failures ------------------------------------------------------------------------------------


async def test_broadcast_before_startup_raises() -> None:
    group = RedisBroadcastGroup("redis://127.0.0.1:1")
    with pytest.raises(BroadcastUnavailableError, match="lifespan"):
        await group.broadcast("room", "hello")
    assert group.redis_stats.publish_failures == 1


async def test_startup_fails_when_redis_is_unreachable() -> None:
    group = RedisBroadcastGroup(f"redis://127.0.0.1:{free_port()}", connect_timeout=0.5)
    app = App(gateways=[GroupGateway], providers=[group])
    with pytest.raises(RuntimeError, match="BroadcastUnavailableError"):
        async with TestClient(app, timeout=TIMEOUT):
            pass
    assert not group.available


async def test_redis_outage_is_reported_and_broadcasts_recover(
    own_server: RedisServer, prefix: str
) -> None:
    server = own_server
    async with (
        worker(server.url, prefix) as (ca, ga, _),
        worker(server.url, prefix) as (cb, gb, _),
        contextlib.AsyncExitStack() as stack,
    ):
        a1 = await connect(stack, ca, "room", "a1")
        b1 = await connect(stack, cb, "room", "b1")
        b2 = await connect(stack, cb, "room", "b2")
        await a1.send_event("say", {"text": "before"})
        for ws in (a1, b1, b2):
            assert await said(ws) == ("a1", "before")

        await anyio.to_thread.run_sync(server.kill)

        # Broadcasts now raise, on both workers, instead of vanishing.
        with pytest.raises(BroadcastUnavailableError):
            await ga.broadcast("room", "lost")
        with pytest.raises(BroadcastUnavailableError):
            await gb.broadcast("room", "lost")
        with pytest.raises(BroadcastUnavailableError):
            await ga.total_member_count("room")
        # From a handler: the sender gets an error frame and its connection stays open.
        reply = await a1.request("say", {"text": "lost"}, id=7, timeout=TIMEOUT)
        assert reply["event"] == "error" and reply["data"]["code"] == "broadcast_unavailable"
        assert ga.redis_stats.publish_failures >= 2 and gb.redis_stats.publish_failures >= 1

        async def down() -> bool:
            return not ga.available and not gb.available

        await eventually(down)
        # Joining during the outage works; the subscription is made once Redis is back.
        a3 = await connect(stack, ca, "room", "a3")

        await anyio.to_thread.run_sync(server.start)  # same port, empty: no persistence

        # Recovery: retry a broadcast until it is sent and reaches the other worker.
        probes = 0
        with anyio.fail_after(15):
            while True:
                try:
                    await ga.broadcast(
                        "room", {"event": "said", "data": {"from": "probe", "text": "p"}}
                    )
                except BroadcastUnavailableError:
                    await anyio.sleep(0.05)
                    continue
                probes += 1
                with anyio.move_on_after(0.5):
                    assert await said(b1) == ("probe", "p")
                    break
        await ga.broadcast("room", {"event": "said", "data": {"from": "-", "text": "resumed"}})
        for ws in (a1, a3, b1, b2):
            got = await said_until(ws, "resumed")
            assert all(item == ("probe", "p") for item in got), got
            assert len(got) <= probes

        # Everything flows again, exactly once and in order, both ways.
        n = 10
        for i in range(n):
            await b2.send_event("say", {"text": f"b2-{i}"})
            await a3.send_event("say", {"text": f"a3-{i}"})
        for ws in (a1, a3, b1, b2):
            got = [await said(ws) for _ in range(2 * n)]
            assert [t for s, t in got if s == "b2"] == [f"b2-{i}" for i in range(n)]
            assert [t for s, t in got if s == "a3"] == [f"a3-{i}" for i in range(n)]
        await gb.broadcast("room", {"event": "said", "data": {"from": "-", "text": "end"}})
        for ws in (a1, a3, b1, b2):
            assert await said(ws) == ("-", "end")

        # Subscriptions and counts were restored in the restarted (empty) server.
        assert await numsub(server, f"{prefix}:g:room") == 2

        async def counted() -> bool:
            return await ga.total_member_count("room") == 4

        await eventually(counted)
        for g in (ga, gb):
            assert g.redis_stats.reconnects >= 1 and g.redis_stats.link_failures >= 1


# -- real workers: hypercorn --workers 2 ------------------------------------------------------


class ChatClient:
    """A ``websockets`` sync client of the chat example (driven from worker threads)."""

    def __init__(self, url: str, user: str) -> None:
        from websockets.sync.client import connect as ws_connect

        self.user = user
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            ws_connect(
                f"{url}?user={user}", compression=None, open_timeout=TIMEOUT, close_timeout=1
            )
        )

    def send(self, text: str) -> None:
        self.ws.send(encode({"event": "chat.send", "data": {"text": text}}).decode())

    def collect(self, count: int, timeout: float = 15.0) -> list[tuple[str, str]]:
        """``count`` chat messages ``(user, text)``, skipping joins and leaves."""
        out: list[tuple[str, str]] = []
        while len(out) < count:
            frame = decode(self.ws.recv(timeout=timeout))
            if frame.get("event") == "chat.message":
                out.append((frame["data"]["user"], frame["data"]["text"]))
        return out

    def close(self) -> None:
        self._stack.close()


def _wait_running(proc: subprocess.Popen[bytes], log: Path, workers: int) -> None:
    """Wait (polling its log, with a deadline) until every worker says it is running."""
    deadline = time.monotonic() + 30
    while log.read_text(errors="replace").count("Running on") < workers:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"hypercorn did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def _start_hypercorn(worker_class: str, redis_url: str, port: int, log: Path) -> Any:
    env = {**os.environ, "WSGATE_BROKER_URL": redis_url, "PYTHONUNBUFFERED": "1"}
    args = [
        sys.executable,
        "-m",
        "hypercorn",
        "--workers",
        "2",
        "--worker-class",
        worker_class,
        "--bind",
        f"127.0.0.1:{port}",
        "examples.chat.app:app",
    ]
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.asynccontextmanager
async def hypercorn(worker_class: str, redis_url: str, log: Path) -> AsyncIterator[int]:
    """``hypercorn --workers 2`` serving the chat example with its broker in Redis
    (``WSGATE_BROKER_URL``, as the docs say for hypercorn's and uvicorn's workers); yields its
    port once both workers run."""
    port = free_port()
    proc = await anyio.to_thread.run_sync(_start_hypercorn, worker_class, redis_url, port, log)
    try:
        await anyio.to_thread.run_sync(_wait_running, proc, log, 2)
        yield port
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_stop, proc)


@pytest.mark.parametrize(
    "worker_class", [pytest.param(w, id=f"hypercorn-{w}") for w in ("trio", "asyncio")]
)
async def test_chat_example_on_two_hypercorn_workers(
    anyio_backend: str, redis_server: RedisServer, worker_class: str, tmp_path: Path
) -> None:
    # (Asks for anyio_backend itself: the anyio plugin rebuilds the items of async tests
    # that do not, which would drop the worker_class parameter.)
    room = f"r{uuid.uuid4().hex[:10]}"
    key = f"wsgate:m:{room}"
    log = tmp_path / "hypercorn.log"
    clients: list[ChatClient] = []
    worker_of: dict[str, str] = {}
    start = anyio.to_thread.run_sync
    async with hypercorn(worker_class, redis_server.url, log) as port:
        url = f"ws://127.0.0.1:{port}/chat/{room}"
        try:
            # Connect until each worker holds 2 clients. A worker writes its count of the
            # room before it accepts, so the hash tells which worker took each client.
            counts: dict[bytes, bytes] = {}
            by_worker: dict[str, list[ChatClient]] = {}
            with anyio.fail_after(30):
                while len(by_worker) < 2 or min(map(len, by_worker.values())) < 2:
                    assert len(clients) < 80, f"one worker took every client:\n{log.read_text()}"
                    client = await start(ChatClient, url, f"u{len(clients)}")
                    clients.append(client)
                    reply = await command(redis_server, "HGETALL", key)
                    now = dict(zip(reply[::2], reply[1::2], strict=True))
                    (grew,) = [w for w, n in now.items() if n != counts.get(w)]
                    counts = now
                    worker_of[client.user] = grew.decode()
                    by_worker.setdefault(grew.decode(), []).append(client)
            # Two clients per worker take part; the others leave.
            members = [c for group in by_worker.values() for c in group[:2]]
            for c in clients:
                if c not in members:
                    await start(c.close)

            # Every member sends n messages; every member (the sender too) receives each
            # exactly once, in the order its sender sent them, whichever worker either is on.
            n = 15
            others = len(members)
            results: dict[str, list[tuple[str, str]]] = {}

            async def collect(c: ChatClient) -> None:
                results[c.user] = await start(c.collect, others * n)

            def send_all() -> None:
                for i in range(n):
                    for c in members:
                        c.send(f"{c.user}-{i}")

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for c in members:
                        tg.start_soon(collect, c)
                    await start(send_all)
            for c in members:
                got = results[c.user]
                assert len(got) == others * n
                for sender in members:
                    texts = [t for u, t in got if u == sender.user]
                    expected = [f"{sender.user}-{i}" for i in range(n)]
                    assert texts == expected, (c.user, sender.user, worker_of)
                remote = {s.user for s in members if worker_of[s.user] != worker_of[c.user]}
                assert remote and remote <= {u for u, _ in got}  # from the other worker too

            # The room's size as one worker reports it counts both workers' members.
            def who() -> int:
                ws = members[0].ws
                ws.send(encode({"event": "who", "id": 1}).decode())
                while True:
                    frame = decode(ws.recv(timeout=TIMEOUT))
                    if frame.get("id") == 1:
                        return int(frame["data"]["members"])

            async def everyone_counted() -> bool:  # the leavers' counts are written in
                return await start(who) == len(members)  # the background: poll

            await eventually(everyone_counted)
        finally:
            for c in clients:
                await start(c.close)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "ERROR" not in text, text
