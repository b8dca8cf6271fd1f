"""History with offsets and recovery on reconnect, in the process and across workers
through a real Valkey.

A "worker" is an ``App`` served in-process by ``wsgate.testing``; two of them on one
Valkey are two workers. A client "reconnects" by opening a new connection that presents
the positions it saw in ``wsgate.since``, as wsgate.js and ``wsgate.client`` do.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import pytest
from redis_server import RedisServer
from test_redis import command, eventually

from wsgate import (
    App,
    BroadcastGroup,
    History,
    Json,
    Position,
    Publication,
    WebSocket,
    on_connect,
    on_message,
    ws_controller,
)
from wsgate.broadcast.redis import RedisBroadcastGroup
from wsgate.errors import ConfigurationError
from wsgate.testing import TestClient, TestWebSocket

TIMEOUT = 5.0


class Say(msgspec.Struct):
    text: str


@ws_controller("/room/{room}")
class Room:
    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room: str) -> None:
        await self.rooms.subscribe(room, ws)

    @on_message("say")
    async def say(self, room: str, body: Json[Say]) -> None:
        await self.rooms.broadcast(room, {"event": "said", "data": body.text})


def since(**positions: tuple[int, str]) -> dict[str, str]:
    """The query a reconnecting client presents."""
    return {"wsgate.since": json.dumps({g: [o, e] for g, (o, e) in positions.items()})}


async def frames_until_recovery(ws: TestWebSocket) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The frames a reconnecting client gets before its ``wsgate.recovery``, and that."""
    out = []
    while True:
        frame = await ws.receive_json(timeout=TIMEOUT)
        if frame["event"] == "wsgate.recovery":
            return out, frame["data"]
        out.append(frame)


def texts(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"] for f in frames]


def offsets(frames: list[dict[str, Any]]) -> list[int]:
    return [f["pos"]["offset"] for f in frames]


# -- in the process --------------------------------------------------------------------------


async def test_every_frame_carries_its_position_and_history_reads_it_back() -> None:
    rooms = BroadcastGroup(history=History(size=10, ttl=60))
    app = App(gateways=[Room], providers=[rooms])
    async with TestClient(app, timeout=TIMEOUT) as client:
        async with client.websocket_connect("/room/r1") as ws:
            for i in range(3):
                await rooms.broadcast("r1", {"event": "said", "data": f"m{i}"})
            got = [await ws.receive_json(timeout=TIMEOUT) for _ in range(3)]
        position = await rooms.position("r1")
        assert [f["pos"] for f in got] == [
            {"group": "r1", "offset": i, "epoch": position.epoch} for i in (1, 2, 3)
        ]
        assert [f["data"] for f in got] == ["m0", "m1", "m2"]
        assert position == Position(position.epoch, 3)
        assert await rooms.history("r1", limit=2) == [
            Publication(2, {"event": "said", "data": "m1"}),
            Publication(3, {"event": "said", "data": "m2"}),
        ]
        # Another group has its own offsets and epoch.
        await rooms.broadcast("r2", {"n": 1})
        other = await rooms.position("r2")
        assert other.offset == 1 and other.epoch != position.epoch


async def test_history_keeps_size_frames_and_broadcasts_only_json_objects() -> None:
    rooms = BroadcastGroup(history=History(size=3, ttl=60))
    for i in range(5):
        await rooms.broadcast("g", {"i": i})
    assert [p.offset for p in await rooms.history("g", limit=50)] == [3, 4, 5]
    assert [p.message for p in await rooms.history("g", limit=1)] == [{"i": 4}]
    await rooms.broadcast("g", '{"as": "text"}')  # a str holding an object is fine
    await rooms.broadcast("g", "{}")
    assert (await rooms.history("g", limit=1))[0].message == {}
    for bad in ("plain text", "[1, 2]", "{not json}"):
        with pytest.raises(ValueError, match="JSON objects|not valid JSON"):
            await rooms.broadcast("g", bad)
    with pytest.raises(ValueError, match="binary frames"):
        await rooms.broadcast("g", b"\x00")
    with pytest.raises(ValueError, match="binary frames"):
        await rooms.broadcast("g", {"a": 1}, as_bytes=True)
    assert (await rooms.position("g")).offset == 7  # refused broadcasts took no offset
    with pytest.raises(RuntimeError, match=r"history=History"):
        await BroadcastGroup().history("g")
    with pytest.raises(ValueError, match="size"):
        History(size=0)
    with pytest.raises(ValueError, match="ttl"):
        History(ttl=0)


@pytest.mark.virtual_time
async def test_history_expires_ttl_after_the_last_publish_and_the_epoch_changes() -> None:
    rooms = BroadcastGroup(history=History(size=10, ttl=30))
    await rooms.broadcast("g", {"i": 1})
    first = await rooms.position("g")
    await anyio.sleep(20)  # virtual time
    await rooms.broadcast("g", {"i": 2})
    await anyio.sleep(20)
    assert await rooms.position("g") == Position(first.epoch, 2)  # 20 s since the last
    await anyio.sleep(11)
    lost = await rooms.position("g")
    assert lost.epoch != first.epoch and lost.offset == 0
    assert await rooms.history("g") == []


async def test_a_reconnecting_client_gets_what_it_missed_then_live_frames() -> None:
    rooms = BroadcastGroup(history=History(size=100, ttl=60))
    app = App(gateways=[Room], providers=[rooms], history=None)
    async with TestClient(app, timeout=TIMEOUT) as client:
        async with client.websocket_connect("/room/r") as ws:
            await rooms.broadcast("r", {"event": "said", "data": "seen"})
            seen = await ws.receive_json(timeout=TIMEOUT)
        pos = seen["pos"]
        for i in range(5):
            await rooms.broadcast("r", {"event": "said", "data": f"missed{i}"})
        query = since(r=(pos["offset"], pos["epoch"]))
        async with client.websocket_connect("/room/r", query=query) as ws:
            replayed, recovery = await frames_until_recovery(ws)
            assert texts(replayed) == [f"missed{i}" for i in range(5)]
            assert offsets(replayed) == [2, 3, 4, 5, 6]
            assert recovery == {
                "group": "r",
                "recovered": True,
                "missed": 5,
                "offset": 6,
                "epoch": pos["epoch"],
            }
            await ws.send_event("say", {"text": "live"})
            live = await ws.receive_json(timeout=TIMEOUT)
            assert (live["data"], live["pos"]["offset"]) == ("live", 7)
        # Up to date: nothing to replay, still told it recovered.
        async with client.websocket_connect("/room/r", query=since(r=(7, pos["epoch"]))) as ws:
            assert await frames_until_recovery(ws) == (
                [],
                {"group": "r", "recovered": True, "missed": 0, "offset": 7, "epoch": pos["epoch"]},
            )


async def test_a_position_outside_the_history_does_not_recover() -> None:
    rooms = BroadcastGroup(history=History(size=3, ttl=60))
    app = App(gateways=[Room], providers=[rooms])
    async with TestClient(app, timeout=TIMEOUT) as client:
        for i in range(6):
            await rooms.broadcast("r", {"event": "said", "data": f"m{i}"})
        epoch = (await rooms.position("r")).epoch
        cases = {
            "too old": since(r=(1, epoch)),  # frames 2 and 3 are gone
            "another epoch": since(r=(5, "0123456789abcdef")),
            "in the future": since(r=(99, epoch)),
        }
        for name, query in cases.items():
            now = (await rooms.position("r")).offset
            async with client.websocket_connect("/room/r", query=query) as ws:
                replayed, recovery = await frames_until_recovery(ws)
                assert replayed == [], name
                assert recovery == {
                    "group": "r",
                    "recovered": False,
                    "missed": 0,
                    "offset": now,
                    "epoch": epoch,
                }, name
                await rooms.broadcast("r", {"event": "said", "data": "after"})
                after = await ws.receive_json(timeout=TIMEOUT)
                assert after["data"] == "after", name
        # An unreadable wsgate.since is ignored: a plain live member.
        bad = {"wsgate.since": "{not json"}
        async with client.websocket_connect("/room/r", query=bad) as ws:
            await rooms.broadcast("r", {"event": "said", "data": "plain"})
            assert (await ws.receive_json(timeout=TIMEOUT))["data"] == "plain"


async def test_replay_racing_live_frames_has_no_gap_and_no_duplicate() -> None:
    # A small outbox makes the replay wait for the client while broadcasts go on.
    rooms = BroadcastGroup(history=History(size=1000, ttl=60))
    app = App(gateways=[Room], providers=[rooms], outbound_queue=4)
    async with TestClient(app, timeout=TIMEOUT) as client:
        for i in range(300):
            await rooms.broadcast("r", {"event": "said", "data": i})
        epoch = (await rooms.position("r")).epoch
        total = 600
        async with client.websocket_connect("/room/r", query=since(r=(100, epoch))) as ws:

            async def publish_more() -> None:
                for i in range(300, total):
                    await rooms.broadcast("r", {"event": "said", "data": i})
                    if i % 10 == 0:
                        await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as tg:
                tg.start_soon(publish_more)
                seen: list[int] = []
                recovery: dict[str, Any] | None = None
                # The recovery frame follows the replay and the frames held meanwhile.
                while recovery is None or not seen or seen[-1] < total:
                    frame = await ws.receive_json(timeout=TIMEOUT)
                    if frame["event"] == "wsgate.recovery":
                        recovery = frame["data"]
                        continue
                    seen.append(frame["pos"]["offset"])
        assert seen == list(range(101, total + 1))
        assert recovery is not None and recovery["recovered"] is True
        assert recovery["missed"] == recovery["offset"] - 100


async def test_groups_without_history_ignore_positions_and_frames_are_unchanged() -> None:
    rooms = BroadcastGroup()
    app = App(gateways=[Room], providers=[rooms])
    async with TestClient(app, timeout=TIMEOUT) as client:
        async with client.websocket_connect("/room/r", query=since(r=(1, "e"))) as ws:
            await rooms.broadcast("r", {"event": "said", "data": "x"})
            assert await ws.receive_json(timeout=TIMEOUT) == {"event": "said", "data": "x"}


def test_app_history_option_configures_the_default_group() -> None:
    app = App(gateways=[Room], history=History(size=7, ttl=9))
    (group,) = app.broadcasters
    assert group.history_config == History(size=7, ttl=9)
    with pytest.raises(TypeError, match="wsgate.History"):
        BroadcastGroup(history={"size": 3})  # type: ignore[arg-type]


# -- the broker --------------------------------------------------------------------------------


def test_broker_urls_are_checked_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WSGATE_BROKER_URL", raising=False)
    assert App(gateways=[Room]).broker == "memory://"
    monkeypatch.setenv("WSGATE_BROKER_URL", "redis://127.0.0.1:1/0")
    app = App(gateways=[Room])
    assert app.broker == "redis://127.0.0.1:1/0"
    (group,) = app.broadcasters
    assert group.broker_url == "redis://127.0.0.1:1/0"
    assert App(gateways=[Room], broker="memory://").broadcasters[0].broker_url is None
    for bad in ("http://x", "localhost:6379", "unix://"):
        with pytest.raises(ConfigurationError, match="broker"):
            App(gateways=[Room], broker=bad)
    monkeypatch.setenv("WSGATE_BROKER_URL", "nats://x")
    with pytest.raises(ConfigurationError, match="WSGATE_BROKER_URL"):
        App(gateways=[Room])


# -- across workers, through a real Valkey ------------------------------------------------------


class Rooms(BroadcastGroup):
    """A user's own group registered as a provider without a URL."""


@ws_controller("/mine/{room}")
class MyRoom:
    def __init__(self, rooms: Rooms) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room: str) -> None:
        await self.rooms.subscribe(room, ws)


@contextlib.asynccontextmanager
async def worker(url: str, **options: Any) -> AsyncIterator[tuple[TestClient, App]]:
    app = App(gateways=[Room], broker=url, **options)
    async with TestClient(app, timeout=TIMEOUT) as client:
        yield client, app


def group_of(app: App) -> BroadcastGroup:
    (group,) = app.broadcasters
    return group


def unique() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


async def test_the_default_group_spans_workers_through_the_apps_broker(redis_server: RedisServer) -> None:
    room = unique()
    async with (
        worker(redis_server.url) as (ca, app_a),
        worker(redis_server.url) as (cb, app_b),
        ca.websocket_connect(f"/room/{room}") as a,
        cb.websocket_connect(f"/room/{room}") as b,
    ):
        await a.send_event("say", {"text": "from a"})
        for ws in (a, b):
            assert (await ws.receive_json(timeout=TIMEOUT))["data"] == "from a"
        assert await group_of(app_b).total_member_count(room) == 2
        assert group_of(app_a).redis_stats is not None
    # A user's subclass without a URL takes the broker; a RedisBroadcastGroup keeps its own.
    mine = App(gateways=[MyRoom], providers=[Rooms], broker=redis_server.url)
    assert mine.container.get(Rooms).broker_url == redis_server.url
    own = RedisBroadcastGroup("redis://127.0.0.1:1")
    App(gateways=[Room], providers=[own], broker=redis_server.url)
    assert own.url == "redis://127.0.0.1:1"


async def test_history_and_recovery_across_workers(redis_server: RedisServer) -> None:
    room = unique()
    history = History(size=50, ttl=60)
    async with (
        worker(redis_server.url, history=history) as (ca, app_a),
        worker(redis_server.url, history=history) as (cb, app_b),
    ):
        ga, gb = group_of(app_a), group_of(app_b)
        async with ca.websocket_connect(f"/room/{room}") as a:
            await a.send_event("say", {"text": "first"})
            first = await a.receive_json(timeout=TIMEOUT)
        assert first["pos"]["offset"] == 1
        for i in range(4):
            await ga.broadcast(room, {"event": "said", "data": f"missed{i}"})
        # Read on the other worker: one history for the service.
        assert [p.message["data"] for p in await gb.history(room, limit=3)] == [
            "missed1",
            "missed2",
            "missed3",
        ]
        assert await gb.position(room) == Position(first["pos"]["epoch"], 5)
        # The client comes back on worker B.
        query = since(**{room: (1, first["pos"]["epoch"])})
        async with cb.websocket_connect(f"/room/{room}", query=query) as b:
            replayed, recovery = await frames_until_recovery(b)
            assert texts(replayed) == [f"missed{i}" for i in range(4)]
            assert offsets(replayed) == [2, 3, 4, 5]
            assert recovery["recovered"] is True and recovery["missed"] == 4
            await ga.broadcast(room, {"event": "said", "data": "live"})
            live = await b.receive_json(timeout=TIMEOUT)
            assert (live["data"], live["pos"]["offset"]) == ("live", 6)
        # The stream is trimmed near `size` and expires with the group.
        meta, log = f"wsgate:{{{room}}}:meta", f"wsgate:{{{room}}}:log"
        assert int(await command(redis_server, "XLEN", log)) == 6
        assert 0 < int(await command(redis_server, "PTTL", meta)) <= 60_000


async def test_replay_racing_live_frames_across_workers(redis_server: RedisServer) -> None:
    room = unique()
    history = History(size=2000, ttl=60)
    async with (
        worker(redis_server.url, history=history) as (_, app_a),
        worker(redis_server.url, history=history, outbound_queue=8) as (cb, _),
    ):
        ga = group_of(app_a)
        for i in range(200):
            await ga.broadcast(room, {"event": "said", "data": i})
        epoch = (await ga.position(room)).epoch
        total = 500
        query = since(**{room: (50, epoch)})
        async with cb.websocket_connect(f"/room/{room}", query=query) as b:

            async def publish_more() -> None:
                for i in range(200, total):
                    await ga.broadcast(room, {"event": "said", "data": i})

            async with anyio.create_task_group() as tg:
                tg.start_soon(publish_more)
                seen: list[int] = []
                recovered = None
                while recovered is None or not seen or seen[-1] < total:
                    frame = await b.receive_json(timeout=TIMEOUT)
                    if frame["event"] == "wsgate.recovery":
                        recovered = frame["data"]["recovered"]
                    else:
                        seen.append(frame["pos"]["offset"])
        assert seen == list(range(51, total + 1))
        assert recovered is True


async def test_a_broker_restart_changes_the_epoch_and_live_traffic_resumes(
    own_server: RedisServer,
) -> None:
    room = unique()
    history = History(size=50, ttl=60)
    group = RedisBroadcastGroup(own_server.url, history=history, reconnect_max_delay=0.2)
    app = App(gateways=[Room], providers=[group])
    async with TestClient(app, timeout=TIMEOUT) as client:
        async with client.websocket_connect(f"/room/{room}") as ws:
            await group.broadcast(room, {"event": "said", "data": "before"})
            before = await ws.receive_json(timeout=TIMEOUT)
        own_server.kill()
        own_server.start()

        async def back() -> bool:
            return group.available and group.redis_stats.reconnects >= 1

        await eventually(back)
        query = since(**{room: (before["pos"]["offset"], before["pos"]["epoch"])})
        async with client.websocket_connect(f"/room/{room}", query=query) as ws:
            replayed, recovery = await frames_until_recovery(ws)
            assert replayed == []
            assert recovery["recovered"] is False
            assert recovery["epoch"] != before["pos"]["epoch"] and recovery["offset"] == 0
            await group.broadcast(room, {"event": "said", "data": "after"})
            after = await ws.receive_json(timeout=TIMEOUT)
            assert after["data"] == "after"
            assert after["pos"] == {"group": room, "offset": 1, "epoch": recovery["epoch"]}


def test_the_asyncapi_document_describes_positions_and_recovery() -> None:
    plain = App(gateways=[Room]).asyncapi()
    doc = App(gateways=[Room], history=History()).asyncapi()
    channel = doc["channels"]["Room"]
    assert "wsgate.since" in channel["bindings"]["ws"]["query"]["properties"]
    assert "wsgate.recovery" in channel["messages"]
    recovery = doc["components"]["messages"]["wsgate.recovery"]["payload"]
    assert recovery["properties"]["data"]["required"] == [
        "group",
        "recovered",
        "missed",
        "offset",
        "epoch",
    ]
    assert "`pos`" in doc["info"]["description"]
    assert "wsgate.recovery" not in plain["channels"]["Room"]["messages"]
    assert "bindings" not in plain["channels"]["Room"]
