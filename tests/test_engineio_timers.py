"""Engine.IO and Socket.IO timers over HTTP long-polling, in-process on the virtual clock
with the reference defaults (ping interval 25 s, ping timeout 20 s, connect timeout
45 s): a ping comes when it is due and not before, a missing pong closes the session
ping timeout after the ping, and a session that never sends the Socket.IO CONNECT is
closed after the connect timeout although it answers every ping. (tests/
test_engineio_wire.py checks the same on the wire against real servers, with short
timers and generous limits; the WebSocket transport's heartbeats are timed in tests/
test_socketio_inline.py.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from wsgate import App
from wsgate.socketio import SocketIOConnection, on_socketio_event, socketio_controller
from wsgate.testing import TestClient

pytestmark = pytest.mark.virtual_time

PING_INTERVAL, PING_TIMEOUT, CONNECT_TIMEOUT = 25.0, 20.0, 45.0
#: The App's heartbeat sweep looks once a second with these timers.
SWEEP = 1.0
PATH = "/socket.io/"


@socketio_controller("/socket.io")  # the defaults: 25 s, 20 s, 45 s
class Chat:
    @on_socketio_event("echo")
    async def echo(self, conn: SocketIOConnection, text: str) -> str:
        return text


@asynccontextmanager
async def polling() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the App, in-process; the TestClient runs the App's lifespan
    (where the heartbeat sweep runs)."""
    app = App(gateways=[Chat])
    async with TestClient(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as http:
        yield http


async def open_session(http: httpx.AsyncClient) -> str:
    r = await http.get(PATH, params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 200 and r.text[0] == "0", r.text
    opened = json.loads(r.text[1:])
    assert (opened["pingInterval"], opened["pingTimeout"]) == (25_000, 20_000)
    return str(opened["sid"])


async def poll(http: httpx.AsyncClient, sid: str) -> tuple[list[str], float]:
    """One long poll: the packets it returned and how long it was held (the session's
    end answers 400 or a close packet, ``["1"]``)."""
    started = anyio.current_time()
    with anyio.fail_after(2 * CONNECT_TIMEOUT):
        r = await http.get(PATH, params={"EIO": "4", "transport": "polling", "sid": sid})
    held = anyio.current_time() - started
    if r.status_code == 400:
        return ["1"], held
    assert r.status_code == 200, r.text
    return r.text.split("\x1e"), held


async def post(http: httpx.AsyncClient, sid: str, body: str) -> None:
    r = await http.post(
        PATH, params={"EIO": "4", "transport": "polling", "sid": sid}, content=body
    )
    assert r.status_code == 200 and r.text == "ok", r.text


async def test_pings_come_when_due_and_a_missing_pong_closes_the_session() -> None:
    async with polling() as http:
        sid = await open_session(http)
        await post(http, sid, "40")
        packets, _ = await poll(http, sid)
        assert packets[0].startswith("40{")
        for _ in range(2):
            packets, held = await poll(http, sid)  # held until the ping is due
            assert packets == ["2"]
            assert PING_INTERVAL - 0.1 <= held <= PING_INTERVAL + SWEEP
            await post(http, sid, "3")
        await post(http, sid, '421["echo","still here"]')
        assert await poll(http, sid) == (['431["still here"]'], pytest.approx(0.0))
        # The next ping is not answered: the session ends ping timeout after it.
        packets, _ = await poll(http, sid)
        assert packets == ["2"]
        pinged = anyio.current_time()
        packets, _ = await poll(http, sid)
        assert packets == ["1"]
        assert PING_TIMEOUT - SWEEP <= anyio.current_time() - pinged <= PING_TIMEOUT + SWEEP


async def test_a_session_without_a_socketio_connect_is_closed_after_the_connect_timeout() -> None:
    async with polling() as http:
        sid = await open_session(http)
        opened = anyio.current_time()
        # Every ping is answered: the Engine.IO session would live on, but the Socket.IO
        # CONNECT never comes.
        while True:
            packets, _ = await poll(http, sid)
            if packets != ["2"]:
                break
            assert anyio.current_time() - opened < CONNECT_TIMEOUT
            await post(http, sid, "3")
        assert packets[-1] == "1"
        assert CONNECT_TIMEOUT <= anyio.current_time() - opened <= CONNECT_TIMEOUT + SWEEP
