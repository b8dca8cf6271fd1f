"""Presence across workers through a real Valkey/Redis server.

Two ``App`` instances in one test process are two workers; a worker killed with SIGKILL
runs in a subprocess. Every async test runs on trio and on asyncio (see conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from apps.presence_app import make_app
from redis_server import RedisServer
from servers import wait_for

from wsgate import Presence
from wsgate.testing import TestClient, TestWebSocket

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 5.0


@contextlib.asynccontextmanager
async def worker(
    url: str, prefix: str, **options: Any
) -> AsyncIterator[tuple[TestClient, Presence]]:
    """One worker: an App whose Presence meets the others through the App's broker."""
    options.setdefault("diff_interval", 0.05)
    presence = Presence(prefix=prefix, **options)
    app = make_app(presence, broker=url)
    async with TestClient(app, timeout=TIMEOUT) as client:
        assert presence.broker_url == url
        yield client, presence


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


async def command(server: RedisServer, *args: str) -> Any:
    """A command sent by a plain socket client (not the library under test)."""
    return await anyio.to_thread.run_sync(lambda: server.command(*args))


def canon(entries: dict[str, list[Any]]) -> dict[str, list[str]]:
    return {k: sorted(repr(m) for m in metas) for k, metas in entries.items()}


async def test_list_count_and_diffs_span_workers(redis_server: RedisServer, prefix: str) -> None:
    url = redis_server.url
    async with (
        worker(url, prefix) as (ca, pa),
        worker(url, prefix) as (cb, pb),
        contextlib.AsyncExitStack() as stack,
    ):
        watcher = await connect(stack, cb, "room", "watcher", track=False)
        assert await event(watcher, "presence.state") == {"group": "room", "entries": {}}
        ann = await connect(stack, ca, "room", "ann", watch=False)
        assert await event(watcher, "presence.diff") == {
            "group": "room",
            "joins": {"ann": [{"user": "ann"}]},
            "leaves": {},
        }
        async with cb.websocket_connect("/presence/room", query={"user": "ann", "watch": "0"}):
            await connect(stack, cb, "room", "bob", watch=False)
            for p in (pa, pb):
                assert await p.count("room") == 2
                assert canon(await p.list("room")) == canon(
                    {"ann": [{"user": "ann"}, {"user": "ann"}], "bob": [{"user": "bob"}]}
                )
            joined: dict[str, list[Any]] = {}
            while joined != {"ann": [{"user": "ann"}], "bob": [{"user": "bob"}]}:
                diff = await event(watcher, "presence.diff")
                assert diff["leaves"] == {}
                for k, metas in diff["joins"].items():
                    joined.setdefault(k, []).extend(metas)
            # A subscriber on the other worker gets the state of both.
            late = await connect(stack, ca, "room", "late", track=False)
            assert canon((await event(late, "presence.state"))["entries"]) == canon(
                {"ann": [{"user": "ann"}, {"user": "ann"}], "bob": [{"user": "bob"}]}
            )
            await ann.send_event("status", {"user": "ann", "away": True})
            expected = {
                "group": "room",
                "joins": {"ann": [{"user": "ann", "away": True}]},
                "leaves": {"ann": [{"user": "ann"}]},
            }
            assert await event(watcher, "presence.diff") == expected
            assert await event(late, "presence.diff") == expected
        # ann's second tab closed on worker B: one entry of "ann" leaves.
        leave = {"group": "room", "joins": {}, "leaves": {"ann": [{"user": "ann"}]}}
        assert await event(watcher, "presence.diff") == leave
        assert await event(late, "presence.diff") == leave
        assert await pa.count("room") == 2
        assert canon(await pa.list("room")) == canon(
            {"ann": [{"user": "ann", "away": True}], "bob": [{"user": "bob"}]}
        )


async def test_shutdown_removes_a_workers_entries(redis_server: RedisServer, prefix: str) -> None:
    url = redis_server.url
    async with worker(url, prefix) as (cb, pb), contextlib.AsyncExitStack() as stack:
        watcher = await connect(stack, cb, "room", "watcher", track=False)
        await event(watcher, "presence.state")
        async with worker(url, prefix) as (_, pa):
            # Entries of no connection: only the worker's shutdown removes them.
            await pa.track(object(), "room", "ann")
            await pa.track(object(), "other", "ann")
            assert await event(watcher, "presence.diff") == {
                "group": "room",
                "joins": {"ann": [{}]},
                "leaves": {},
            }
            a_id = pa.worker_id
        assert await event(watcher, "presence.diff") == {
            "group": "room",
            "joins": {},
            "leaves": {"ann": [{}]},
        }
        assert await pb.count("room") == 0
        assert await pb.count("other") == 0
        keys = await command(redis_server, "KEYS", f"{prefix}:presence:*")
        assert not [k for k in keys if a_id.encode() in k], keys


async def test_count_is_one_round_trip_whatever_the_size(
    redis_server: RedisServer, prefix: str
) -> None:
    url = redis_server.url
    async with Presence(url, prefix=prefix) as presence:
        members = [object() for _ in range(10_000)]
        start = presence.stats.commands
        async with anyio.create_task_group() as tg:
            for start in range(0, len(members), 1000):

                async def track_some(batch: list[object], offset: int) -> None:
                    for i, m in enumerate(batch):
                        await presence.track(m, "big", f"user{offset + i}", {"n": offset + i})

                tg.start_soon(track_some, members[start : start + 1000], start)
        # Concurrent changes of one group share a script: far fewer round trips than
        # entries.
        assert presence.stats.commands - start < 10_000 // 4
        hlen_before = await _calls(redis_server, "hlen")
        commands_before = presence.stats.commands
        assert await presence.count("big") == 10_000
        assert presence.stats.commands - commands_before == 1
        # One HLEN on the server, and no command that transfers the entries.
        assert await _calls(redis_server, "hlen") - hlen_before == 1
        listed = await presence.list("big")
        assert len(listed) == 10_000 and listed["user42"] == [{"n": 42}]


async def _calls(server: RedisServer, name: str) -> int:
    info = await command(server, "INFO", "commandstats")
    for line in info.decode().splitlines():
        if line.startswith(f"cmdstat_{name}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


DEAD_WORKER = """
import sys, anyio
from wsgate import Presence

async def main(url, prefix):
    async with Presence(url, prefix=prefix, heartbeat_interval=0.2) as presence:
        for i in range(3):
            await presence.track(object(), "room", f"ghost{i}", {"i": i})
        print("ready", flush=True)
        await anyio.sleep_forever()

anyio.run(main, sys.argv[1], sys.argv[2])
"""


@contextlib.contextmanager
def dead_worker_process(url: str, prefix: str) -> Iterator[subprocess.Popen[str]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-c", DEAD_WORKER, url, prefix],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


async def test_a_killed_workers_entries_are_removed_within_three_heartbeats(
    redis_server: RedisServer, prefix: str
) -> None:
    url = redis_server.url
    interval = 0.2
    async with (
        worker(url, prefix, heartbeat_interval=interval) as (cb, pb),
        contextlib.AsyncExitStack() as stack,
    ):
        watcher = await connect(stack, cb, "room", "watcher", track=False)
        await event(watcher, "presence.state")
        with dead_worker_process(url, prefix) as proc:
            assert proc.stdout is not None
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
            assert line.strip() == "ready"
            assert await pb.count("room") == 3
            joined: dict[str, Any] = {}
            while len(joined) < 3:
                joined.update((await event(watcher, "presence.diff"))["joins"])
            proc.kill()  # SIGKILL: no shutdown, the entries stay in Redis
            await anyio.to_thread.run_sync(proc.wait)
            killed_at = time.monotonic()

            async def gone() -> bool:
                return await pb.count("room") == 0

            await wait_for(gone, timeout=TIMEOUT, what="the dead worker's entries removed")
            elapsed = time.monotonic() - killed_at
        # Its heartbeat expires three intervals after its last beat, at most one interval
        # before the kill; a survivor notices at its next beat (plus slack for a busy CI).
        assert elapsed < 4 * interval + 1.0, elapsed
        left: dict[str, Any] = {}
        while len(left) < 3:
            diff = await event(watcher, "presence.diff")
            assert diff["joins"] == {}
            left.update(diff["leaves"])
        assert left == {f"ghost{i}": [{"i": i}] for i in range(3)}
        assert pb.stats.workers_cleaned == 1
        assert pb.stats.entries_cleaned == 3


def apply(entries: dict[str, list[Any]], diff: dict[str, Any]) -> None:
    """What a client does with a presence.diff."""
    for k, metas in diff["joins"].items():
        entries.setdefault(k, []).extend(metas)
    for k, metas in diff["leaves"].items():
        for m in metas:
            entries[k].remove(m)
        if not entries[k]:
            del entries[k]


async def test_entries_are_written_again_after_a_broker_restart(
    own_server: RedisServer, prefix: str
) -> None:
    url = own_server.url
    async with (
        worker(url, prefix, heartbeat_interval=0.2) as (ca, pa),
        worker(url, prefix, heartbeat_interval=0.2) as (cb, pb),
        contextlib.AsyncExitStack() as stack,
    ):
        watcher = await connect(stack, cb, "room", "watcher", track=False)
        seen = (await event(watcher, "presence.state"))["entries"]
        await connect(stack, ca, "room", "ann", watch=False)
        await connect(stack, cb, "room", "bob", watch=False)
        while len(seen) < 2:
            apply(seen, await event(watcher, "presence.diff"))
        await anyio.to_thread.run_sync(own_server.kill)
        await anyio.to_thread.run_sync(own_server.start)

        async def back() -> Any:
            with contextlib.suppress(Exception):
                return await pa.count("room") == 2 and await pb.list("room")
            return False

        # Each worker wrote its entries again into the empty server.
        listed = await wait_for(back, timeout=10.0, what="the entries written again")
        assert canon(listed) == canon({"ann": [{"user": "ann"}], "bob": [{"user": "bob"}]})
        # The subscriber's view follows (entries of another worker may have left and
        # come back while the workers reconnected) and goes on with new changes.
        await connect(stack, ca, "room", "cat", watch=False)
        while "cat" not in seen:
            apply(seen, await event(watcher, "presence.diff"))
        assert canon(seen) == canon(
            {"ann": [{"user": "ann"}], "bob": [{"user": "bob"}], "cat": [{"user": "cat"}]}
        )


async def test_subscribers_joining_during_changes_miss_none_and_repeat_none(
    redis_server: RedisServer, prefix: str
) -> None:
    """The state a new subscriber gets and the diffs that follow add up to the entries,
    however the changes of another worker interleave with its read of the state."""
    url = redis_server.url
    async with (
        worker(url, prefix) as (_, pa),
        worker(url, prefix) as (cb, pb),
        contextlib.AsyncExitStack() as stack,
    ):
        churned = anyio.Event()
        # Set as the churn goes: each subscriber joins at a different point of it.
        progress = [anyio.Event() for _ in range(6)]

        async def churn() -> None:
            present: list[object] = []
            for i in range(300):
                if present and i % 3 == 2:
                    await pa.untrack(present.pop(i % len(present)), "room")
                else:
                    ws = object()
                    present.append(ws)
                    await pa.track(ws, "room", f"u{i % 40}", {"i": i})
                if i % 50 == 10:
                    await pa.update(present[0], "room", {"i": i, "updated": True})
                    progress[i // 50].set()
            churned.set()

        views: list[tuple[TestWebSocket, dict[str, list[Any]]]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(churn)
            for n in range(6):
                await progress[n].wait()
                watcher = await connect(stack, cb, "room", f"w{n}", track=False)
                views.append((watcher, dict((await event(watcher, "presence.state"))["entries"])))
        assert churned.is_set()
        final = canon(await pb.list("room"))
        for watcher, seen in views:
            with anyio.fail_after(TIMEOUT):
                while canon(seen) != final:
                    apply(seen, await event(watcher, "presence.diff"))
