"""Presence in one process: entries, removal on close, state and diffs, batching.

The Redis/Valkey backend is tested in test_presence_redis.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from apps.presence_app import make_app

from wsgate import App, Presence
from wsgate.testing import TestClient, TestWebSocket

TIMEOUT = 5.0


@contextlib.asynccontextmanager
async def serving(
    presence: Presence | None = None,
) -> AsyncIterator[tuple[TestClient, Presence]]:
    app = make_app(presence)
    async with TestClient(app, timeout=TIMEOUT) as client:
        yield client, app.container.get(Presence)


async def connect(
    stack: contextlib.AsyncExitStack,
    client: TestClient,
    room: str,
    user: str,
    *,
    watch: bool = True,
    track: bool = True,
) -> TestWebSocket:
    query = {"user": user, "watch": str(int(watch)), "track": str(int(track))}
    return await stack.enter_async_context(
        client.websocket_connect(f"/presence/{room}", query=query)
    )


async def event(ws: TestWebSocket, name: str) -> dict[str, Any]:
    frame = await ws.receive_json(timeout=TIMEOUT)
    assert frame["event"] == name, frame
    data: dict[str, Any] = frame["data"]
    return data


def canon(entries: dict[str, list[Any]]) -> dict[str, list[str]]:
    """Entries with their metas in a comparable order."""
    return {k: sorted(repr(m) for m in metas) for k, metas in entries.items()}


async def test_the_app_provides_a_presence() -> None:
    app = App()
    assert isinstance(app.container.get(Presence), Presence)
    assert app.container.get(Presence).broker_url is None


async def test_track_list_count_update_untrack() -> None:
    async with Presence() as presence:
        a, b, c = object(), object(), object()
        await presence.track(a, "room", "ann", {"tab": 1})
        await presence.track(b, "room", "ann", {"tab": 2})
        await presence.track(c, "room", "bob")
        assert canon(await presence.list("room")) == canon(
            {"ann": [{"tab": 1}, {"tab": 2}], "bob": [{}]}
        )
        assert await presence.count("room") == 2
        await presence.update(c, "room", {"away": True})
        assert (await presence.list("room"))["bob"] == [{"away": True}]
        # Tracking the same (connection, group) again replaces its key and meta.
        await presence.track(b, "room", "cat", {"tab": 3})
        assert canon(await presence.list("room")) == canon(
            {"ann": [{"tab": 1}], "bob": [{"away": True}], "cat": [{"tab": 3}]}
        )
        assert await presence.count("room") == 3
        await presence.untrack(a, "room")
        await presence.untrack(a, "room")  # nothing left: no error
        assert await presence.count("room") == 2
        assert await presence.list("other") == {}
        assert await presence.count("other") == 0
        with pytest.raises(LookupError, match="track"):
            await presence.update(a, "room", {})
        with pytest.raises(ValueError, match="non-empty"):
            await presence.track(a, "", "ann")


async def test_entries_are_removed_when_the_connection_closes() -> None:
    async with serving() as (client, presence), contextlib.AsyncExitStack() as stack:
        watcher = await connect(stack, client, "room", "watcher", track=False)
        assert await event(watcher, "presence.state") == {"group": "room", "entries": {}}
        async with client.websocket_connect(
            "/presence/room", query={"user": "ann", "watch": "0"}
        ) as ann:
            assert (await ann.request("count"))["data"] == 1
            assert await event(watcher, "presence.diff") == {
                "group": "room",
                "joins": {"ann": [{"user": "ann"}]},
                "leaves": {},
            }
        assert await event(watcher, "presence.diff") == {
            "group": "room",
            "joins": {},
            "leaves": {"ann": [{"user": "ann"}]},
        }
        assert await presence.list("room") == {}
        assert await presence.count("room") == 0


async def test_subscribe_gets_state_then_diffs_of_entries() -> None:
    async with serving() as (client, _), contextlib.AsyncExitStack() as stack:
        ann = await connect(stack, client, "room", "ann", watch=False)
        ann2 = await connect(stack, client, "room", "ann", watch=False)
        assert (await ann2.request("count"))["data"] == 1
        bob = await connect(stack, client, "room", "bob")
        state = await event(bob, "presence.state")
        assert state["group"] == "room"
        # bob subscribes, then is tracked: its own join comes as a diff.
        assert state["entries"] == {"ann": [{"user": "ann"}, {"user": "ann"}]}
        assert await event(bob, "presence.diff") == {
            "group": "room",
            "joins": {"bob": [{"user": "bob"}]},
            "leaves": {},
        }
        # A key with two entries losing one: a leave of that one entry.
        await ann2.send_event("status", {"user": "ann", "away": True})
        assert await event(bob, "presence.diff") == {
            "group": "room",
            "joins": {"ann": [{"user": "ann", "away": True}]},
            "leaves": {"ann": [{"user": "ann"}]},
        }
        await ann.send_event("leave")
        assert await event(bob, "presence.diff") == {
            "group": "room",
            "joins": {},
            "leaves": {"ann": [{"user": "ann"}]},
        }
        assert canon((await bob.request("list"))["data"]) == canon(
            {"ann": [{"user": "ann", "away": True}], "bob": [{"user": "bob"}]}
        )


async def test_unsubscribed_connections_get_no_more_diffs() -> None:
    async with serving() as (client, presence), contextlib.AsyncExitStack() as stack:
        bob = await connect(stack, client, "room", "bob", track=False)
        await event(bob, "presence.state")
        assert (await bob.request("unwatch"))["id"] == 1
        assert presence.subscribers("room") == []
        await connect(stack, client, "room", "ann", watch=False)
        # bob's next frame is the answer to its request, not a diff.
        assert (await bob.request("count", id=2))["data"] == 1
        with pytest.raises(TimeoutError):
            await bob.receive_json(timeout=0.3)


@pytest.mark.virtual_time
async def test_changes_within_one_interval_are_one_diff() -> None:
    presence = Presence(diff_interval=1.0)
    async with serving(presence) as (client, _), contextlib.AsyncExitStack() as stack:
        watcher = await connect(stack, client, "room", "watcher", track=False)
        await event(watcher, "presence.state")
        t0 = anyio.current_time()
        members = [object() for _ in range(50)]
        for i, m in enumerate(members):
            await presence.track(m, "room", f"u{i}")
        # One entry joins and leaves within the interval: it cancels out.
        ghost = object()
        await presence.track(ghost, "room", "ghost")
        await presence.untrack(ghost, "room")
        diff = await event(watcher, "presence.diff")
        assert diff["joins"] == {f"u{i}": [{}] for i in range(50)}
        assert diff["leaves"] == {}
        # A batch gathers one whole interval from its first change.
        assert anyio.current_time() - t0 == pytest.approx(1.0, abs=0.05)
        t1 = anyio.current_time()
        await presence.untrack(members[0], "room")
        await presence.untrack(members[1], "room")
        diff = await event(watcher, "presence.diff")
        assert diff["leaves"] == {"u0": [{}], "u1": [{}]}
        assert anyio.current_time() - t1 == pytest.approx(1.0, abs=0.05)
        assert presence.stats.diffs == 2


@pytest.mark.virtual_time
async def test_one_diff_is_encoded_once_for_every_subscriber() -> None:
    presence = Presence(diff_interval=0.5)
    async with serving(presence) as (client, _), contextlib.AsyncExitStack() as stack:
        watchers = [await connect(stack, client, "room", f"w{i}", track=False) for i in range(5)]
        for w in watchers:
            await event(w, "presence.state")
        await presence.track(object(), "room", "ann")
        for w in watchers:
            assert (await event(w, "presence.diff"))["joins"] == {"ann": [{}]}
        assert presence.stats.diffs == 1


async def test_subscribe_needs_a_started_presence() -> None:
    presence = Presence()
    with pytest.raises(RuntimeError, match="async with Presence"):
        await presence.subscribe(object(), "room")  # type: ignore[arg-type]
