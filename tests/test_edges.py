"""Edge cases: answers after a close, wrapped handlers, unencodable results, refusals."""

import functools
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from wsgate import (
    App,
    BroadcastGroup,
    Json,
    WebSocket,
    WebSocketDisconnect,
    WebSocketError,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)
from wsgate.testing import TestClient, WebSocketDenied


def logged(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A sync decorator around an async function, as logging/auth decorators often are."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


async def test_a_handler_that_closes_the_connection_while_answering_an_id() -> None:
    ends: list[int | None] = []

    @ws_controller("/")
    class G:
        @on_message("bye")
        async def bye(self, ws: WebSocket) -> str:
            await ws.close(4000, "logged out")
            return "unsent"

        @on_disconnect
        async def gone(self, ws: WebSocket) -> None:
            ends.append(ws.close_code)

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        await ws.send_event("bye", id=1)
        assert await ws.wait_closed() == (4000, "logged out")
    # Leaving the block re-raises anything the app raised: nothing did.
    assert ends == [4000]


async def test_frames_answered_after_the_peer_left_do_not_stop_the_others() -> None:
    handled: list[int] = []
    release = anyio.Event()

    @ws_controller("/")
    class G:
        @on_message("slow")
        async def slow(self, body: Json[int]) -> int:
            await release.wait()
            handled.append(body)
            return body

    async with TestClient(App(gateways=[G])) as client:
        async with client.websocket_connect("/") as ws:
            await ws.send_event("slow", 1, id=1)
            await ws.send_event("slow", 2, id=2)
            await ws.close()
            release.set()
    assert handled == [1, 2]  # both ran within the grace period; their answers had nowhere to go


@pytest.mark.virtual_time
async def test_handlers_run_for_the_grace_period_after_the_peer_left_then_are_cancelled() -> None:
    # disconnect_grace is 1 s by default; here 5 s. Two frames are being handled when the
    # client leaves: the one that needs 4.9 s more finishes, the one that would need a
    # minute is cancelled when the grace ends, and then @on_disconnect runs.
    seen: list[tuple[str, float]] = []
    left = 0.0
    both_started = anyio.Event()
    started: list[float] = []

    @ws_controller("/", concurrency=2)
    class G:
        @on_message("work")
        async def work(self, body: Json[float]) -> float:
            started.append(body)
            if len(started) == 2:
                both_started.set()
            try:
                await anyio.sleep(body)
            except anyio.get_cancelled_exc_class():
                seen.append((f"cancelled {body}", anyio.current_time() - left))
                raise
            seen.append((f"done {body}", anyio.current_time() - left))
            return body

        @on_disconnect
        async def gone(self) -> None:
            seen.append(("disconnect", anyio.current_time() - left))

    async with TestClient(App(gateways=[G], disconnect_grace=5.0), timeout=60) as client:
        async with client.websocket_connect("/") as ws:
            await ws.send_event("work", 4.9, id=1)
            await ws.send_event("work", 60.0, id=2)
            await both_started.wait()
            left = anyio.current_time()
            await ws.close()
    assert seen == [
        ("done 4.9", pytest.approx(4.9)),
        ("cancelled 60.0", pytest.approx(5.0)),
        ("disconnect", pytest.approx(5.0)),
    ]


async def test_sync_wrapped_async_hooks_and_handlers_are_awaited() -> None:
    @ws_controller("/")
    class G:
        @on_connect
        @logged
        async def connect(self, ws: WebSocket) -> None:
            if ws.query_params.get("token") != "ok":
                raise WebSocketError("no token", close_code=4003)

        @on_message("echo")
        @logged
        async def echo(self, body: Json[int]) -> int:
            return body

    app = App(gateways=[G])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/"):
                pass
        assert denied.value.status == 403
        async with client.websocket_connect("/?token=ok") as ws:
            assert (await ws.request("echo", 5, id=1))["data"] == 5


async def test_an_unencodable_result_is_an_internal_error_frame() -> None:
    @ws_controller("/")
    class G:
        @on_message("bad")
        async def bad(self) -> object:
            return object()

        @on_message("ok")
        async def ok(self) -> str:
            return "fine"

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        frame = await ws.request("bad", id=1)
        assert frame["data"]["code"] == "internal_error"
        assert (await ws.request("ok", id=2))["data"] == "fine"


async def test_websocket_disconnect_raised_by_on_connect() -> None:
    @ws_controller("/after")
    class After:
        @on_connect
        async def connect(self, ws: WebSocket) -> None:
            await ws.accept()
            await ws.send_text("hello")
            raise WebSocketDisconnect(4001, "partner left")

        @on_message("x")
        async def x(self) -> None: ...

    @ws_controller("/before")
    class Before:
        @on_connect
        async def connect(self) -> None:
            raise WebSocketDisconnect(4002, "not now")

    app = App(gateways=[After, Before])
    async with TestClient(app) as client:
        async with client.websocket_connect("/after") as ws:
            assert await ws.receive_text() == "hello"
            assert await ws.wait_closed() == (4001, "partner left")
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/before"):
                pass
        assert denied.value.status == 403


async def test_an_overflow_before_accept_drops_instead_of_refusing() -> None:
    @ws_controller("/", outbound_queue=2)
    class G:
        def __init__(self, groups: BroadcastGroup) -> None:
            self.groups = groups

        @on_connect
        async def connect(self, ws: WebSocket) -> None:
            await self.groups.subscribe("g", ws)
            for i in range(3):  # more than the outbox holds, before accept
                await self.groups.broadcast("g", str(i))

    app = App(gateways=[G])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        assert [await ws.receive_text(), await ws.receive_text()] == ["0", "1"]
        assert app.stats.dropped_frames == 1
        assert app.stats.slow_consumer_closes == 0


async def test_streams_per_connection_are_capped() -> None:
    @ws_controller("/")
    class G:
        @on_message("feed")
        async def feed(self) -> Any:
            yield 1
            await anyio.sleep_forever()

    app = App(gateways=[G], max_streams=2)
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        for i in (1, 2):
            assert (await ws.request("feed", id=i))["data"] is None
        frame = await ws.request("feed", id=3)
        assert frame["data"]["code"] == "too_many_streams"


async def test_request_keeps_the_frames_it_reads_past() -> None:
    @ws_controller("/")
    class G:
        @on_message("both")
        async def both(self, ws: WebSocket) -> str:
            await ws.send_json({"event": "note", "data": "first"})
            return "answer"

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        assert (await ws.request("both", id=1))["data"] == "answer"
        assert await ws.receive_json() == {"event": "note", "data": "first"}
