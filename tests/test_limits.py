"""Limits on what one client may send: frame size, rate, silence. Each is hit by one
client while another, on the same app, sees nothing of it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import servers
from servers import Client, ServerURL

from wsgate import App, Json, WebSocket, on_disconnect, on_message, ws_controller
from wsgate.errors import ConfigurationError
from wsgate.testing import TestClient

server = servers.server
server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean


def echo_app(**options: Any) -> tuple[App, list[int | None]]:
    closes: list[int | None] = []

    @ws_controller("/")
    class Echo:
        @on_message("echo")
        async def echo(self, body: Json[Any]) -> Any:
            return body

        @on_message("__binary__")
        async def raw(self, data: bytes) -> int:
            return len(data)

        @on_disconnect
        async def gone(self, ws: WebSocket) -> None:
            closes.append(ws.close_code)

    return App(gateways=[Echo], **options), closes


async def test_a_frame_over_max_frame_bytes_closes_with_1009_before_it_is_decoded() -> None:
    app, closes = echo_app(max_frame_bytes=100)
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as other, client.websocket_connect("/") as ws:
            # 60 characters of two UTF-8 bytes each: under 100 characters, over 100 bytes.
            frame = '{"event":"echo","data":"' + "é" * 60 + '"}'
            assert len(frame) < 100 < len(frame.encode())
            await ws.send_text(frame)
            assert await ws.wait_closed() == (1009, "frame too large")
            assert (await other.request("echo", "still here"))["data"] == "still here"
        async with client.websocket_connect("/") as ws:
            await ws.send_bytes(b"x" * 100)  # exactly the limit: fine
            assert (await ws.receive_json())["data"] == 100
            await ws.send_bytes(b"x" * 101)
            assert (await ws.wait_closed())[0] == 1009
    assert closes.count(1009) == 2
    assert app.stats.frames_too_large == 2


async def test_over_the_rate_limit_an_error_frame_then_a_close_if_it_goes_on() -> None:
    # A bucket of 5 frames refilled over an hour: nothing refills during the test.
    app, closes = echo_app(rate_limit=(5, 3600.0))
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as other, client.websocket_connect("/") as ws:
            for i in range(5):
                assert (await ws.request("echo", i, id=i))["data"] == i
            await ws.send_event("echo", "dropped", id="x")
            limited = await ws.receive_json()
            assert limited["event"] == "error" and limited["id"] is None
            assert limited["data"]["code"] == "rate_limited"
            assert "5 frames per 3600 s" in limited["data"]["message"]
            # The other connection has its own bucket.
            assert (await other.request("echo", "fine", id=1))["data"] == "fine"
            # Going on: one error frame only, then a close after a bucket's worth more.
            for i in range(5):
                await ws.send_event("echo", i)
            assert await ws.wait_closed() == (1008, "rate limit exceeded")
            for i in range(5):  # a flood after the close is not counted again
                await ws.send_event("echo", i)
    assert closes == [1008, 1000]
    assert 6 <= app.stats.rate_limited_frames <= 11  # the flood after the close may be read
    assert app.stats.rate_limit_closes == 1


@pytest.mark.virtual_time
async def test_idle_timeout_closes_a_silent_connection_with_1001() -> None:
    # Detected within a quarter more than the timeout (the App's sweep looks 4 times per
    # period); on the virtual clock a minute passes at once.
    app, closes = echo_app(idle_timeout=60.0)
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        opened = anyio.current_time()
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=59.9)  # still open just before the deadline
        assert await ws.wait_closed(timeout=20) == (1001, "idle")
        assert 60.0 <= anyio.current_time() - opened <= 75.0
    assert closes == [1001]
    assert app.stats.idle_closes == 1


@pytest.mark.virtual_time
async def test_a_connection_that_keeps_sending_is_not_idle() -> None:
    app, closes = echo_app(idle_timeout=60.0)
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        # A frame every 50 s for ten minutes, ten timeouts: never closed.
        for i in range(12):
            assert (await ws.request("echo", i, id=i))["data"] == i
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=50.0)  # nothing comes: not closed either
        assert app.stats.idle_closes == 0
        # Then silence: closed a timeout (and at most a sweep period) after the last frame.
        quiet = anyio.current_time() - 50.0
        assert await ws.wait_closed(timeout=60) == (1001, "idle")
        assert 60.0 <= anyio.current_time() - quiet <= 75.0
    assert closes == [1001]


@pytest.mark.virtual_time
async def test_the_rate_limit_bucket_refills_over_its_period() -> None:
    # 5 frames per 10 s: one token comes back every 2 s.
    app, closes = echo_app(rate_limit=(5, 10.0))
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        for i in range(5):
            assert (await ws.request("echo", i, id=i))["data"] == i
        await ws.send_event("echo", "over", id="over")
        assert (await ws.receive_json())["data"]["code"] == "rate_limited"
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=2.5)  # a token refills meanwhile
        assert (await ws.request("echo", "refilled", id=6))["data"] == "refilled"
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=10.0)  # a whole period: the bucket is full again
        for i in range(5):
            assert (await ws.request("echo", i, id=10 + i))["data"] == i
        await ws.send_event("echo", "over", id="again")
        assert (await ws.receive_json())["data"]["code"] == "rate_limited"
    assert closes == [1000]
    assert app.stats.rate_limit_closes == 0


@pytest.mark.parametrize(
    "options",
    [
        {"max_frame_bytes": 0},
        {"rate_limit": (0, 1.0)},
        {"rate_limit": (10, 0)},
        {"idle_timeout": 0},
        {"max_frames": 3},
    ],
)
def test_limit_options_are_checked_at_startup(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        App(**options)


# ------------------------------------------------------------------ real servers

pytestmark_servers = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")


@pytestmark_servers
async def test_an_oversized_frame_is_closed_with_1009_under_real_servers(
    server: ServerURL,
) -> None:
    # tests/apps/gateways.py keeps the default max_frame_bytes, 1 MiB.
    async with await Client.connect(f"{server}/echo") as c, await Client.connect(
        f"{server}/echo"
    ) as other:
        await c.send("x" * ((1 << 20) + 1))
        code, _, seen = await c.wait_closed()
        assert (code, seen) == (1009, [])
        assert (await other.request("echo", "ok", id=1))["data"] == "ok"
