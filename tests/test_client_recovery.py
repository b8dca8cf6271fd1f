"""History recovery in the Python client (wsgate.client) against real servers serving
tests/apps/recovery.py (a group with history, in the process): positions from the
frames' ``pos``, ``wsgate.since`` on every reconnect, ``on_recover``; on trio and on
asyncio."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
from servers import SERVER_PARAMS, ServerPool, ServerProcess, ServerURL

from wsgate.client import ClientConnection, ClientState, Push, ReconnectPolicy, Recovery, connect
from wsgate.client.recovery import SINCE_PARAM, with_since
from wsgate.history import Position

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean
server_kind = servers.server_kind

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

APP = "apps.recovery:app"
#: Reconnect quickly in tests (the default starts at 0.5 s).
FAST = ReconnectPolicy(initial_delay=0.05, max_delay=0.3)
#: Seconds any wait in these tests may take before it fails.
WAIT = 10.0


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/recovery.py under each server kind."""
    return server_pool.get(request.param, APP)


def _room() -> str:
    return uuid.uuid4().hex[:12]


async def _receive(sub: Any, n: int) -> list[Push[Any]]:
    with anyio.fail_after(WAIT):
        return [await sub.receive() for _ in range(n)]


def _texts(pushes: list[Push[Any]]) -> list[str]:
    return [p.data["text"] for p in pushes if p.event == "chat.message"]


async def _drop_while_held(
    conn: ClientConnection, other: ClientConnection, room: str, texts: list[str]
) -> None:
    """Close ``conn``'s connection (1012: it reconnects), broadcast ``texts`` through
    ``other`` while ``conn`` cannot get back in, then let it in."""
    await other.request("hold", room)
    await conn.send_event("drop")
    await conn.wait_for_state(ClientState.RECONNECTING, timeout=WAIT)
    assert await other.request("say", texts) == len(texts)
    await other.request("release", room)


# ------------------------------------------------------------------ without I/O


def test_with_since_keeps_the_other_parameters_and_replaces_a_previous_one() -> None:
    positions = {"room:1": Position("a1b2", 12), "b": Position("e", 0)}
    since = "%7B%22room%3A1%22%3A%5B12%2C%22a1b2%22%5D%2C%22b%22%3A%5B0%2C%22e%22%5D%7D"
    assert with_since("http://h/r/1?user=a%20b&wsgate.since=old&x=1#f", positions) == (
        f"http://h/r/1?user=a%20b&x=1&{SINCE_PARAM}={since}#f"
    )
    assert with_since("http://h/r", positions) == f"http://h/r?{SINCE_PARAM}={since}"
    assert with_since("http://h/r?a=1", {}) == "http://h/r?a=1"


def test_connect_checks_the_positions_it_is_given() -> None:
    with pytest.raises(TypeError, match=r"positions=\.\.\.\): expected \{group: wsgate"):
        connect("ws://h/", positions={"g": (1, "e")})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="expected a mapping"):
        connect("ws://h/", positions=[("g", Position("e", 1))])  # type: ignore[arg-type]
    seeded = connect("ws://h/", positions={"g": Position("e", 3)})
    assert seeded.positions() == {"g": Position("e", 3)}
    with pytest.raises(TypeError, match="expected a callable"):
        seeded.on_recover(1)  # type: ignore[arg-type]


# ------------------------------------------------------------------ against real servers


async def test_a_dropped_client_gets_exactly_what_it_missed_then_the_live_frames(
    server: str,
) -> None:
    room = _room()
    group = f"room:{room}"
    recoveries: list[Recovery] = []
    later: list[Recovery] = []
    removed: list[Recovery] = []
    done = anyio.Event()

    async def async_callback(recovery: Recovery) -> None:
        later.append(recovery)
        done.set()

    async with (
        connect(f"{server}/rooms/{room}?user=ann", reconnect=FAST) as conn,
        connect(f"{server}/rooms/{room}") as other,
    ):
        conn.on_recover(recoveries.append)
        conn.on_recover(async_callback)
        conn.on_recover(removed.append)()  # removed at once: never called
        pushes = conn.events("chat.message", "wsgate.recovery")
        await other.request("say", ["m1", "m2"])
        first = await _receive(pushes, 2)
        # The handlers get the data only; the position is the client's.
        assert [p.data for p in first] == [{"text": "m1"}, {"text": "m2"}]
        epoch = conn.positions()[group].epoch
        assert conn.positions() == {group: Position(epoch, 2)}

        await _drop_while_held(conn, other, room, ["m3", "m4", "m5"])
        after = await _receive(pushes, 4)
        assert [p.event for p in after] == ["chat.message"] * 3 + ["wsgate.recovery"]
        assert _texts(after) == ["m3", "m4", "m5"]
        assert after[-1].data == {
            "group": group,
            "recovered": True,
            "missed": 3,
            "offset": 5,
            "epoch": epoch,
        }
        assert recoveries == [Recovery(group, True, 3)]
        with anyio.fail_after(WAIT):
            await done.wait()
        assert later == recoveries and removed == []
        assert conn.positions() == {group: Position(epoch, 5)}
        # Live again, and nothing replayed twice: the next frame is the next broadcast.
        await other.request("say", ["m6"])
        assert _texts(await _receive(pushes, 1)) == ["m6"]
        assert conn.positions() == {group: Position(epoch, 6)}
        assert conn.statistics().connects == 2
        # The other client never reconnected: it was told nothing.
        assert other.positions() == {group: Position(epoch, 6)}


async def test_a_client_away_longer_than_the_history_keeps_is_told_it_did_not_recover(
    server: str,
) -> None:
    """/small keeps 2 frames: 3 missed ones cannot be replayed."""
    room = _room()
    group = f"room:{room}"
    recoveries: list[Recovery] = []
    async with (
        connect(f"{server}/small/{room}", reconnect=FAST) as conn,
        connect(f"{server}/small/{room}") as other,
    ):
        conn.on_recover(recoveries.append)
        pushes = conn.events("chat.message", "wsgate.recovery")
        await other.request("say", ["m1"])
        assert _texts(await _receive(pushes, 1)) == ["m1"]
        epoch = conn.positions()[group].epoch

        await _drop_while_held(conn, other, room, ["m2", "m3", "m4"])
        [recovery] = await _receive(pushes, 1)
        assert recovery.event == "wsgate.recovery"
        assert recovery.data == {
            "group": group,
            "recovered": False,
            "missed": 0,
            "offset": 4,
            "epoch": epoch,
        }
        assert recoveries == [Recovery(group, False, 0)]
        assert conn.positions() == {group: Position(epoch, 4)}
        await other.request("say", ["m5"])
        assert _texts(await _receive(pushes, 1)) == ["m5"]


async def test_positions_given_to_connect_recover_across_client_objects(server: str) -> None:
    """What a program saved from ``conn.positions()`` recovers in its next run."""
    room = _room()
    group = f"room:{room}"
    async with connect(f"{server}/rooms/{room}") as other:
        async with connect(f"{server}/rooms/{room}") as first:
            pushes = first.events("chat.message")
            await other.request("say", ["m1"])
            await _receive(pushes, 1)
            saved = first.positions()
        await other.request("say", ["m2", "m3"])
        second = connect(f"{server}/rooms/{room}", positions=saved)
        # Registered before the block: the replay comes right after the handshake.
        recoveries: list[Recovery] = []
        second.on_recover(recoveries.append)
        pushes = second.events()
        async with second:
            got = await _receive(pushes, 3)
            assert _texts(got) == ["m2", "m3"]
            assert got[-1].event == "wsgate.recovery"
            assert recoveries == [Recovery(group, True, 2)]
            assert second.positions() == {group: Position(saved[group].epoch, 3)}


async def test_after_a_server_restart_the_client_is_told_it_did_not_recover(
    server_kind: str, tmp_path: Path
) -> None:
    """In-process history is lost with the process: the group has a new epoch. The
    client stores the position the recovery frame gives, so the next reconnect
    recovers."""
    server = ServerProcess(server_kind, APP, tmp_path, graceful_timeout=1)
    url = await anyio.to_thread.run_sync(server.start)
    room = _room()
    group = f"room:{room}"
    try:
        recoveries: list[Recovery] = []
        async with connect(f"{url}/rooms/{room}", reconnect=FAST) as conn:
            conn.on_recover(recoveries.append)
            pushes = conn.events("chat.message", "wsgate.recovery")
            await conn.request("say", ["m1", "m2"])
            await _receive(pushes, 2)
            old = conn.positions()[group]
            assert old.offset == 2

            await anyio.to_thread.run_sync(server.stop)
            await conn.wait_for_state(ClientState.RECONNECTING, timeout=WAIT)
            await anyio.to_thread.run_sync(lambda: server.start(port=url.port))
            [lost] = await _receive(pushes, 1)
            assert lost.event == "wsgate.recovery"
            assert lost.data["recovered"] is False and lost.data["missed"] == 0
            new = Position(lost.data["epoch"], 0)
            assert new.epoch != old.epoch and lost.data["offset"] == 0
            assert recoveries == [Recovery(group, False, 0)]
            assert conn.positions() == {group: new}

            # The stored position is presented on the next reconnect: nothing was missed.
            await conn.send_event("drop")
            [again] = await _receive(pushes, 1)
            assert again.data == {**lost.data, "recovered": True}
            assert recoveries[-1] == Recovery(group, True, 0)
            await conn.request("say", ["m3"])
            assert _texts(await _receive(pushes, 1)) == ["m3"]
            assert conn.positions() == {group: Position(new.epoch, 1)}
    finally:
        await anyio.to_thread.run_sync(server.stop)
