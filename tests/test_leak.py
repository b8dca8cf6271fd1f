"""10,000 connect/disconnect cycles leave no tasks, connections or memory behind."""

import gc
import tracemalloc

import anyio
import msgspec
import sniffio

from wsgate import App, BroadcastGroup, Json, WebSocket, on_connect, on_message, ws_controller
from wsgate.connection import Connection
from wsgate.session import Session
from wsgate.testing import TestClient


class Msg(msgspec.Struct):
    text: str


@ws_controller("/room/{room}")
class Room:
    def __init__(self, groups: BroadcastGroup) -> None:
        self.groups = groups

    @on_connect
    async def join(self, ws: WebSocket, room: str) -> None:
        await self.groups.subscribe(room, ws)

    @on_message("say")
    async def say(self, body: Json[Msg]) -> Msg:
        return body


def settle() -> None:
    """Collect garbage and, on trio, drop the stale entries of trio's deadline heap: it
    keeps up to about a thousand cancel scopes that already exited (a few hundred KiB)
    until it prunes them in one batch, so they would count as growth at random."""
    gc.collect()
    if sniffio.current_async_library() == "trio":
        from trio._core._run import GLOBAL_RUN_CONTEXT

        GLOBAL_RUN_CONTEXT.runner.deadlines._prune()


def live(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


async def test_ten_thousand_cycles_leak_nothing() -> None:
    # Sweeps for idle tasks every 5 ms, so retirement runs throughout the cycles too.
    app = App(gateways=[Room], idle_tasks_after=0.01)
    groups = app.container.get(BroadcastGroup)

    async with TestClient(app) as client:

        async def cycle(i: int) -> None:
            async with client.websocket_connect(f"/room/{i % 50}") as ws:
                reply = await ws.request("say", {"text": "x"}, id=i)
                assert reply["data"] == {"text": "x"}

        for i in range(300):  # warm up caches and allocator pools
            await cycle(i)
        settle()
        tasks_before = len(anyio.get_running_tasks())
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i in range(10_000):
            await cycle(i)
        settle()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        tasks_after = len(anyio.get_running_tasks())

        assert tasks_after == tasks_before
        assert live(WebSocket) == 0
        assert live(Connection) == 0
        assert live(Session) == 0
        assert groups.groups() == []  # empty groups are removed
        assert app.connections == frozenset()
        growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
        # A leak of even one small object per connection would be >= 10,000 * 50 bytes.
        assert growth < 200_000, f"memory grew by {growth} bytes over 10,000 connections"
    assert app.stats.connections_total == 10_300
    assert app.stats.connections_open == 0
