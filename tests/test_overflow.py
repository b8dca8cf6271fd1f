"""Overflow policies: what a broadcast does to a member whose outbox is full."""

import logging

import anyio
import pytest

from wsgate import (
    App,
    BroadcastGroup,
    Json,
    Overflow,
    WebSocket,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)
from wsgate.testing import TestClient

#: In-process only: every wait below is on the virtual clock.
pytestmark = pytest.mark.virtual_time


def gateway(overflow: Overflow | None) -> type:
    @ws_controller("/", outbound_queue=4, overflow=overflow)
    class Burst:
        def __init__(self, groups: BroadcastGroup) -> None:
            self.groups = groups

        @on_connect
        async def join(self, ws: WebSocket) -> None:
            await self.groups.subscribe("g", ws)

        @on_message("burst")
        async def burst(self) -> None:
            # Ten broadcasts without a checkpoint in between: the writer cannot run, so
            # the four-frame outbox overflows.
            for i in range(10):
                await self.groups.broadcast("g", str(i))

    return Burst


async def burst(app: App) -> tuple[list[str], tuple[int, str] | None]:
    received: list[str] = []
    closed = None
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        await ws.send_event("burst")
        while True:
            try:
                received.append(await ws.receive_text(timeout=5))  # then nothing more
            except TimeoutError:
                break
            except Exception:
                closed = (ws.close_code or 0, ws.close_reason)
                break
    return received, closed


async def test_drop_newest_keeps_the_first_frames_and_counts_the_rest() -> None:
    app = App(gateways=[gateway(Overflow.DROP_NEWEST)])
    received, closed = await burst(app)
    assert received == ["0", "1", "2", "3"]
    assert closed is None
    groups = app.container.get(BroadcastGroup)
    assert groups.stats.dropped == 6
    assert groups.stats.delivered == 4
    assert app.stats.dropped_frames == 6


async def test_drop_oldest_keeps_the_last_frames() -> None:
    app = App(gateways=[gateway(Overflow.DROP_OLDEST)])
    received, closed = await burst(app)
    assert received == ["6", "7", "8", "9"]
    assert closed is None
    assert app.stats.dropped_frames == 6
    assert app.container.get(BroadcastGroup).stats.dropped == 6


@pytest.mark.parametrize(
    ("policy", "code"), [(None, 1013), (Overflow.CLOSE, 1013), (Overflow.CLOSE_POLICY, 1008)]
)
async def test_close_policies_close_the_slow_consumer_and_drop_its_queue(
    policy: Overflow | None, code: int
) -> None:
    app = App(gateways=[gateway(policy)])  # None: the App's default, Overflow.CLOSE
    received, closed = await burst(app)
    assert received == []  # what was queued is dropped, the close goes first
    assert closed == (code, "slow consumer")
    groups = app.container.get(BroadcastGroup)
    assert groups.stats.slow_consumer_closes == 1
    assert app.stats.slow_consumer_closes == 1
    assert groups.groups() == []  # removed from its groups at once


async def test_app_wide_policy_applies_where_the_gateway_sets_none() -> None:
    app = App(gateways=[gateway(None)], overflow=Overflow.DROP_NEWEST)
    received, _ = await burst(app)
    assert received == ["0", "1", "2", "3"]


async def test_send_waits_for_room_instead_of_dropping() -> None:
    @ws_controller("/", outbound_queue=2)
    class Sender:
        @on_message("many")
        async def many(self, ws: WebSocket) -> None:
            for i in range(50):
                await ws.send_text(str(i))  # backpressure: waits while the outbox is full

    app = App(gateways=[Sender])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        await ws.send_event("many")
        assert [await ws.receive_text() for _ in range(50)] == [str(i) for i in range(50)]
    assert app.stats.dropped_frames == 0


async def test_on_disconnect_runs_for_a_bounded_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="wsgate")
    cancelled_after: list[float] = []

    @ws_controller("/")
    class Stuck:
        @on_disconnect
        async def gone(self) -> None:
            started = anyio.current_time()
            try:
                await anyio.sleep_forever()
            finally:
                cancelled_after.append(anyio.current_time() - started)

    app = App(gateways=[Stuck])  # disconnect_timeout: 5 s
    async with TestClient(app, timeout=60) as client:
        async with client.websocket_connect("/"):
            pass
        # The app still serves new connections.
        async with client.websocket_connect("/") as ws:
            await ws.send_event("nothing")
    assert cancelled_after == [pytest.approx(5.0), pytest.approx(5.0)]
    assert any("ran past 5.0s and was cancelled" in r.getMessage() for r in caplog.records)


async def test_suspending_handlers_and_quiet_periods_keep_frames_in_order() -> None:
    """Handlers that complete at once and one that waits answer in the order their frames
    came; broadcasts reach the connection before and after long quiet periods (the App
    retires a connection's idle tasks every ``idle_tasks_after / 2`` seconds); once the
    client leaves, the server is as idle as before it came."""
    release = anyio.Event()

    @ws_controller("/")
    class Echo:
        def __init__(self, groups: BroadcastGroup) -> None:
            self.groups = groups

        @on_connect
        async def join(self, ws: WebSocket) -> None:
            await self.groups.subscribe("g", ws)

        @on_message("echo")
        async def echo(self, body: Json[int]) -> int:
            return body

        @on_message("wait")
        async def wait(self) -> str:
            await release.wait()
            return "released"

    app = App(gateways=[Echo], idle_tasks_after=30.0)
    groups = app.container.get(BroadcastGroup)
    async with TestClient(app, timeout=120) as client:
        await anyio.wait_all_tasks_blocked()
        idle_tasks = len(anyio.get_running_tasks())
        async with client.websocket_connect("/") as ws:
            for i in range(3):
                assert (await ws.request("echo", i, id=i))["data"] == i
            # Frames sent while a handler waits are handled after it, in order.
            await ws.send_event("wait", id="w")
            await ws.send_event("echo", 5, id=5)
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=60)  # nothing overtakes the waiting handler
            release.set()
            assert await ws.receive_json() == {"event": "wait", "id": "w", "data": "released"}
            assert (await ws.receive_json())["data"] == 5
            for text in ("hello", "after a quiet minute", "and another"):
                await groups.broadcast("g", text)
                assert await ws.receive_text() == text
                assert (await ws.request("echo", 6, id=6))["data"] == 6
                with pytest.raises(TimeoutError):
                    await ws.receive(timeout=60)  # two idle-task sweeps pass
        await anyio.wait_all_tasks_blocked()
        assert app.stats.connections_open == 0
        assert len(anyio.get_running_tasks()) == idle_tasks
