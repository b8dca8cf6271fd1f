"""Broadcast wake-ups passed from writer to writer (``WakeRelay``): every member still
gets every frame, in order, and members whose client stopped reading hold up nobody."""

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio

from wsgate import App, BroadcastGroup, Json, WebSocket, on_connect, on_message, ws_controller
from wsgate.relay import WakeRelay
from wsgate.testing import TestClient


class _Member:
    """Stands for a connection in the relay: ``waiting`` says whether its writer waits."""

    def __init__(self, waiting: bool) -> None:
        self.waiting = waiting
        self.woken = 0

    def relay_wake(self, relay: WakeRelay) -> bool:
        if not self.waiting:
            return False
        self.waiting = False
        self.woken += 1
        return True


def test_at_most_lanes_writers_are_awake_and_each_pass_wakes_the_next_waiting_one() -> None:
    members = [_Member(w) for w in (False, True, False, True, True, True)]
    relay = WakeRelay(lanes=2)
    for m in members:
        relay.add(m)  # type: ignore[arg-type]
    relay.start()  # two writers awake: members 1 and 3 (0 and 2 are busy)
    assert [m.woken for m in members] == [0, 1, 0, 1, 0, 0]
    relay.start()  # a second broadcast: still two awake
    assert [m.woken for m in members] == [0, 1, 0, 1, 0, 0]
    assert relay.pass_on()  # a woken writer passes on: member 4
    assert [m.woken for m in members] == [0, 1, 0, 1, 1, 0]
    assert relay.pass_on()  # member 5
    assert not relay.pass_on()  # nobody left: one lane ends
    assert len(relay) == 0
    later = _Member(True)
    relay.add(later)  # type: ignore[arg-type]
    relay.start()  # one writer is still awake: room for one more
    assert later.woken == 1


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


async def raw_member(
    app: App, client: TestClient, tg: Any, on_frame: Callable[[str], Awaitable[None]]
) -> None:
    """Connect a member through raw ASGI whose ``send`` of each data frame is
    ``on_frame(text)`` (which may block, as a real send to a full socket does); returns
    once it is accepted."""
    accepted = anyio.Event()
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            accepted.set()
        else:
            await on_frame(message["text"])

    tg.start_soon(app, client.websocket_scope("/room"), receive, send)
    with anyio.fail_after(5):
        await accepted.wait()


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


@pytest.mark.parametrize("stalled", [1, 2 * max(WakeRelay.LANES.values())])
async def test_members_whose_client_stopped_reading_hold_up_nobody(stalled: int) -> None:
    """The stalled members subscribe first, so the first writers woken for a broadcast
    are theirs: each must pass the wake-up on before its send blocks (with more of
    them than the relay has lanes, no chain would reach the others otherwise)."""
    app = App(gateways=[Room])
    async with TestClient(app) as client, AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        blocked: list[anyio.Event] = []

        async def stalled_member() -> None:
            sending = anyio.Event()
            blocked.append(sending)
            frames = 0

            async def on_frame(text: str) -> None:
                nonlocal frames
                frames += 1
                if frames > 1:  # the client's buffer is now full: blocks for good
                    sending.set()
                    await anyio.sleep_forever()

            await raw_member(app, client, tg, on_frame)

        for _ in range(stalled):
            await stalled_member()
        members = [
            await stack.enter_async_context(client.websocket_connect("/room")) for _ in range(20)
        ]
        # A first frame gets through to everyone, so every writer is running and then
        # waits for the next broadcast: that one is relayed.
        await members[0].send_event("go", 1)
        for ws in members:
            assert await ws.receive_text(timeout=5) == "tick 0"
        # One broadcast, so that no later one wakes the writers this one's relay would.
        await members[0].send_event("go", 1)
        for ws in members:
            assert await ws.receive_text(timeout=5) == "tick 0"
        with anyio.fail_after(5):
            for sending in blocked:
                await sending.wait()  # their writers did try to send
        tg.cancel_scope.cancel()


async def test_on_trio_a_broadcast_keeps_only_a_few_sends_in_flight() -> None:
    """Every member's send passes a checkpoint (as a real server's does); on trio the
    relay keeps a few of them in flight at a time, on asyncio all forty are."""
    app = App(gateways=[Room])
    in_flight = 0
    most = 0
    delivered = 0
    expected = 0
    done = anyio.Event()
    got: list[list[str]] = []

    async with TestClient(app) as client, AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())

        async def member() -> None:
            frames: list[str] = []
            got.append(frames)

            async def on_frame(text: str) -> None:
                nonlocal in_flight, most, delivered
                in_flight += 1
                most = max(most, in_flight)
                await anyio.lowlevel.checkpoint()
                in_flight -= 1
                frames.append(text)
                delivered += 1
                if delivered == expected:
                    done.set()

            await raw_member(app, client, tg, on_frame)

        for _ in range(40):
            await member()
        publisher = await stack.enter_async_context(client.websocket_connect("/room"))
        # The first broadcast starts the writers; they wait for the second.
        for n in (1, 2):
            most = 0
            expected += 40 * n
            done = anyio.Event()
            await publisher.send_event("go", n)
            with anyio.fail_after(5):
                await done.wait()
                await anyio.wait_all_tasks_blocked()  # every writer waits again
        assert all(frames == ["tick 0", "tick 0", "tick 1"] for frames in got)
        if sniffio.current_async_library() == "trio":
            # Each lane's writer wakes the next before its own two sends (a checkpoint
            # each): a few writers per lane overlap, never the forty.
            assert most <= 3 * WakeRelay.LANES["trio"] < 40
        else:
            assert most == 40  # everyone at once
        tg.cancel_scope.cancel()
