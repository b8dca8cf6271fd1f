"""Broadcast wake-ups passed from writer to writer (``WakeRelay``), seen from outside:
every member gets every frame, in order, whether or not it received anything before;
members whose client stopped reading hold up nobody; nothing runs on after the members
leave. The same runs on the plain path (``WSGATE_PLAIN_WAITS=1``, ``nox -s
tests-plain-waits``), where no relay is used.

The members here are raw ASGI connections whose ``send`` passes a checkpoint, as a real
server's does, or blocks for good, as hypercorn's trio worker does for a client that
stopped reading (tests/test_isolation.py does the same with real servers and clients).
"""

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from wsgate import App, BroadcastGroup, Json, WebSocket, on_connect, on_message, ws_controller
from wsgate.testing import TestClient


@ws_controller("/room")
class Room:
    def __init__(self, groups: BroadcastGroup) -> None:
        self.groups = groups

    @on_connect
    async def join(self, ws: WebSocket) -> None:
        await self.groups.subscribe("room", ws)

    @on_message("go")
    async def go(self, body: Json[int]) -> None:
        for i in range(body):
            await self.groups.broadcast("room", f"tick {i}")


async def test_every_member_gets_every_frame_in_order_as_members_come_and_go() -> None:
    app = App(gateways=[Room])
    async with TestClient(app) as client, AsyncExitStack() as stack:
        stay: list[Any] = []
        leave: list[Any] = []
        for i in range(30):
            ws = await stack.enter_async_context(client.websocket_connect("/room"))
            (stay if i % 3 else leave).append(ws)
        await stay[0].send_event("go", 5)
        for ws in stay + leave:
            assert [await ws.receive_text(timeout=5) for _ in range(5)] == [
                f"tick {i}" for i in range(5)
            ]
        for ws in leave:
            await ws.close()
        await stay[-1].send_event("go", 3)
        for ws in stay:
            assert [await ws.receive_text(timeout=5) for _ in range(3)] == [
                f"tick {i}" for i in range(3)
            ]


class RawMember:
    """A member connected through raw ASGI: ``on_frame(text)`` is its ``send`` of each
    data frame (it may block, as a real send to a full socket does); :meth:`leave` makes
    its ``receive`` report the client gone; ``ended`` is set once the App's call for it
    returned (its task group, and every task in it, is done)."""

    def __init__(self, on_frame: Callable[[str], Awaitable[None]]) -> None:
        self.on_frame = on_frame
        self.accepted = anyio.Event()
        self.left = anyio.Event()
        self.ended = anyio.Event()

    async def run(self, app: App, client: TestClient) -> None:
        connected = False

        async def receive() -> dict[str, Any]:
            nonlocal connected
            if not connected:
                connected = True
                return {"type": "websocket.connect"}
            await self.left.wait()
            return {"type": "websocket.disconnect", "code": 1001}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.accept":
                self.accepted.set()
            elif message["type"] == "websocket.send":
                await self.on_frame(message["text"])

        try:
            await app(client.websocket_scope("/room"), receive, send)
        finally:
            self.ended.set()

    def leave(self) -> None:
        self.left.set()


async def join(app: App, client: TestClient, tg: Any, member: RawMember) -> RawMember:
    tg.start_soon(member.run, app, client)
    with anyio.fail_after(5):
        await member.accepted.wait()
    return member


def reader(frames: list[str], expected: int, done: anyio.Event) -> RawMember:
    """A member whose client reads everything (one checkpoint per send)."""

    async def on_frame(text: str) -> None:
        await anyio.lowlevel.checkpoint()
        frames.append(text)
        if len(frames) == expected:
            done.set()

    return RawMember(on_frame)


def stalled(tried: anyio.Event, after: int) -> RawMember:
    """A member whose client stopped reading: its send blocks for good once ``after``
    frames got through (``tried`` is set when it blocks)."""
    sent = 0

    async def on_frame(text: str) -> None:
        nonlocal sent
        if sent >= after:
            tried.set()
            await anyio.sleep_forever()
        sent += 1

    return RawMember(on_frame)


def ticks(*bursts: int) -> list[str]:
    return [f"tick {i}" for n in bursts for i in range(n)]


@pytest.mark.parametrize("primed", [False, True], ids=["unprimed", "primed"])
@pytest.mark.parametrize("n_stalled", [1, 9])
async def test_members_whose_client_stopped_reading_hold_up_nobody(
    primed: bool, n_stalled: int
) -> None:
    """The stalled members join first, so the first writers a broadcast reaches are
    theirs. Unprimed: nobody received a frame before the burst (no writer is running
    yet, and the stalled members block on their very first frame); primed: one frame
    reached everyone first, so every writer is running and waits for the burst."""
    app = App(gateways=[Room])
    bursts = (20, 15, 25)
    expected = ticks(*(((1,) if primed else ()) + bursts))
    async with TestClient(app) as client, AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        tried = [anyio.Event() for _ in range(n_stalled)]
        for t in tried:
            await join(app, client, tg, stalled(t, after=1 if primed else 0))
        got: list[list[str]] = []
        done: list[anyio.Event] = []
        members: list[RawMember] = []
        for _ in range(30):
            got.append([])
            done.append(anyio.Event())
            members.append(await join(app, client, tg, reader(got[-1], len(expected), done[-1])))
        publisher = await stack.enter_async_context(client.websocket_connect("/room"))
        if primed:
            await publisher.send_event("go", 1)
            assert await publisher.receive_text(timeout=5) == "tick 0"
        # Bursts back to back: later ones arrive while the writers send earlier ones.
        for n in bursts:
            await publisher.send_event("go", n)
        assert [await publisher.receive_text(timeout=5) for _ in range(sum(bursts))] == ticks(
            *bursts
        )
        with anyio.fail_after(10):
            for ev in done + tried:
                await ev.wait()  # every reader got everything; every stalled one tried
        assert all(frames == expected for frames in got)
        tg.cancel_scope.cancel()


async def test_members_that_retired_their_writer_still_get_every_frame() -> None:
    """Writers of connections that went quiet are retired, and come back for the next
    broadcast: a burst after a quiet spell reaches everyone, in order, past a stalled
    member."""
    app = App(gateways=[Room], idle_tasks_after=None)
    expected = ticks(1, 30)
    async with TestClient(app) as client, AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        tried = anyio.Event()
        await join(app, client, tg, stalled(tried, after=1))
        got: list[list[str]] = []
        done: list[anyio.Event] = []
        first: list[anyio.Event] = []
        for _ in range(20):
            got.append([])
            done.append(anyio.Event())
            first.append(anyio.Event())
            m = reader(got[-1], len(expected), done[-1])
            on_frame = m.on_frame

            async def first_then_rest(
                text: str, on_frame: Any = on_frame, ev: anyio.Event = first[-1]
            ) -> None:
                await on_frame(text)
                ev.set()

            m.on_frame = first_then_rest
            await join(app, client, tg, m)
        publisher = await stack.enter_async_context(client.websocket_connect("/room"))
        await publisher.send_event("go", 1)
        with anyio.fail_after(5):
            for ev in first:
                await ev.wait()
        # Quiet: two of the App's idle sweeps (run here by hand rather than on its
        # clock) retire every writer that waited through both.
        await anyio.wait_all_tasks_blocked()
        app._retire_idle_tasks_once()
        app._retire_idle_tasks_once()
        await anyio.wait_all_tasks_blocked()
        await publisher.send_event("go", 30)
        with anyio.fail_after(10):
            for ev in done:
                await ev.wait()
            await tried.wait()
        assert all(frames == expected for frames in got)
        tg.cancel_scope.cancel()


async def test_no_task_is_left_once_every_member_left() -> None:
    """A burst to members that never received a frame, one of them stalled; then every
    member leaves: the App's call for each of them returns (its task group ended), the
    stalled one's too once its grace period is over."""
    app = App(gateways=[Room], disconnect_grace=0.05)
    async with TestClient(app) as client, AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        tried = anyio.Event()
        members = [await join(app, client, tg, stalled(tried, after=0))]
        got: list[list[str]] = []
        done: list[anyio.Event] = []
        for _ in range(20):
            got.append([])
            done.append(anyio.Event())
            members.append(await join(app, client, tg, reader(got[-1], 40, done[-1])))
        async with client.websocket_connect("/room") as publisher:
            await publisher.send_event("go", 40)
            with anyio.fail_after(10):
                for ev in [*done, tried]:
                    await ev.wait()
        for m in members:
            m.leave()
        with anyio.fail_after(10):
            for m in members:
                await m.ended.wait()
        assert all(frames == ticks(40) for frames in got)
