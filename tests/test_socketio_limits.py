"""Engine.IO long-polling sessions count against the App's connection limits like
WebSockets (tests/apps/socketio_limits.py: ``max_connections=3``,
``max_connections_per_client=2``): a handshake over a limit is refused with 503 and the
Engine.IO error body, a session gives its slot back once when it ends (closed, ping
timeout), and a session upgraded to WebSocket is counted once, as that WebSocket.

Clients are told apart by their source address (127.0.0.2, 127.0.0.3, ... are the
loopback interface too)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import servers
from servers import Client, ServerPool, ServerURL

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

TIMEOUT = 5.0
PATH = "/socket.io/"
SERVER_FULL = {"code": 4, "message": "the server has too many connections; try again later"}
CLIENT_FULL = {"code": 4, "message": "this client has too many connections; try again later"}


@pytest.fixture(scope="module", params=servers.SERVER_PARAMS)
def limited_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    return server_pool.get(request.param, "apps.socketio_limits:app")


@asynccontextmanager
async def client_at(url: str, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests come from ``address``."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(
        base_url="http" + url[2:], transport=transport, timeout=TIMEOUT
    ) as client:
        yield client


async def open_session(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get(PATH, params={"EIO": "4", "transport": "polling"})


async def opened(client: httpx.AsyncClient) -> str:
    r = await open_session(client)
    assert r.status_code == 200, r.text
    sid: str = json.loads(r.text[1:])["sid"]
    return sid


async def close(client: httpx.AsyncClient, sid: str) -> None:
    r = await client.post(
        PATH, params={"EIO": "4", "transport": "polling", "sid": sid}, content="1"
    )
    assert (r.status_code, r.text) == (200, "ok")


def refused_with(r: httpx.Response, body: dict[str, Any]) -> bool:
    return (
        r.status_code == 503
        and r.headers["content-type"] == "application/json"
        and r.json() == body
    )


async def test_polling_handshakes_over_the_limits_are_refused(limited_server: ServerURL) -> None:
    url = limited_server
    async with (
        client_at(url, "127.0.0.2") as a,
        client_at(url, "127.0.0.3") as b,
        client_at(url, "127.0.0.4") as c,
    ):
        a1, a2 = await opened(a), await opened(a)
        # A third session of the same client: over max_connections_per_client.
        assert refused_with(await open_session(a), CLIENT_FULL)
        b1 = await opened(b)
        # Three sessions in all: over max_connections, whoever asks.
        assert refused_with(await open_session(c), SERVER_FULL)
        assert refused_with(await open_session(b), SERVER_FULL)
        # A session that ends gives its slot back at once.
        await close(a, a1)
        c1 = await opened(c)
        assert refused_with(await open_session(a), SERVER_FULL)
        for client, sid in ((a, a2), (b, b1), (c, c1)):
            await close(client, sid)
        # Released exactly once each: the limits are what they were.
        sids = [await opened(a), await opened(a)]
        assert refused_with(await open_session(a), CLIENT_FULL)
        sids.append(await opened(b))
        assert refused_with(await open_session(c), SERVER_FULL)
        for client, sid in zip((a, a, b), sids, strict=True):
            await close(client, sid)


async def test_a_session_that_times_out_gives_its_slot_back(limited_server: ServerURL) -> None:
    async with client_at(limited_server, "127.0.0.5") as client:
        # Two sessions nobody polls: their ping goes unanswered (2.5 s + 0.5 s).
        await opened(client)
        await opened(client)
        assert refused_with(await open_session(client), CLIENT_FULL)

        async def slot_free() -> str | None:
            r = await open_session(client)
            return json.loads(r.text[1:])["sid"] if r.status_code == 200 else None

        sid = await servers.wait_for(slot_free, timeout=10.0, interval=0.1, what="a free slot")
        await close(client, sid)


async def test_an_upgraded_session_is_counted_once(limited_server: ServerURL) -> None:
    url = limited_server
    async with client_at(url, "127.0.0.1") as client:
        sid = await opened(client)
        ws_url = f"{url}{PATH}?EIO=4&transport=websocket&sid={sid}"
        # The WebSocket is admitted by the App on its own: while it upgrades, the client
        # holds its two slots.
        async with await Client.connect(ws_url) as ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            await ws.send("5")
            await ws.send("40")
            assert str(await ws.recv()).startswith("40{")
            await ws.send('421["transport"]')
            assert await ws.recv() == '431["websocket"]'
            # Upgraded: the polling session's slot was handed over to the WebSocket,
            # so the client has one slot left.
            other = await opened(client)
            assert refused_with(await open_session(client), CLIENT_FULL)
            await close(client, other)
        # The WebSocket ended: the session gave its one slot back.

        async def both_free() -> list[str] | None:
            got = [await open_session(client) for _ in range(2)]
            sids = [json.loads(r.text[1:])["sid"] for r in got if r.status_code == 200]
            if len(sids) == 2:
                return sids
            for s in sids:
                await close(client, s)
            return None

        sids = await servers.wait_for(both_free, timeout=TIMEOUT, what="two free slots")
        assert refused_with(await open_session(client), CLIENT_FULL)
        for s in sids:
            await close(client, s)


async def test_websockets_and_polling_share_the_limits(limited_server: ServerURL) -> None:
    url = limited_server
    async with client_at(url, "127.0.0.1") as client:
        sid = await opened(client)
        async with await Client.connect(f"{url}{PATH}?EIO=4&transport=websocket") as ws:
            assert str(await ws.recv()).startswith("0{")
            # One polling session and one WebSocket: the client's two slots.
            assert refused_with(await open_session(client), CLIENT_FULL)
        await close(client, sid)
