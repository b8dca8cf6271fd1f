"""examples/protocol_suites/app.py, the server the official Socket.IO and Engine.IO
protocol suites expect, under each real server: its handshake settings and the events
the suites exercise."""

from __future__ import annotations

import json

import httpx
import pytest
import servers
from servers import Client, ServerPool, ServerURL

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

pytestmark = [pytest.mark.examples, pytest.mark.usefixtures("anyio_backend", "server_logs_clean")]


@pytest.fixture(scope="module", params=servers.SERVER_PARAMS)
def suites_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    return server_pool.get(request.param, "examples.protocol_suites.app:app")


async def recv(ws: Client) -> str | bytes:
    """The next frame that is not a ping (pings come every 300 ms and are answered)."""
    while True:
        frame = await ws.recv()
        if frame != "2":
            return frame
        await ws.send("3")


async def test_handshake_settings(suites_server: ServerURL) -> None:
    async with httpx.AsyncClient(base_url="http" + suites_server[2:], timeout=5) as client:
        for path in ("/socket.io/", "/engine.io/"):
            r = await client.get(path, params={"EIO": "4", "transport": "polling"})
            opened = json.loads(r.text[1:])
            assert (opened["pingInterval"], opened["pingTimeout"], opened["maxPayload"]) == (
                300,
                200,
                1_000_000,
            )


async def test_socketio_events(suites_server: ServerURL) -> None:
    async with await Client.connect(f"{suites_server}/socket.io/?EIO=4&transport=websocket") as ws:
        assert str(await recv(ws)).startswith("0{")
        await ws.send('40{"token":"123"}')
        assert str(await recv(ws)).startswith('40{"sid":')
        assert await recv(ws) == '42["auth",{"token":"123"}]'
        await ws.send('42["message",1,"2",{"3":[true]}]')
        assert await recv(ws) == '42["message-back",1,"2",{"3":[true]}]'
        await ws.send('42456["message-with-ack",1,"2"]')
        assert await recv(ws) == '43456[1,"2"]'
        await ws.send('42["emit-with-ack",1,"2"]')
        assert await recv(ws) == '421["emit-with-ack",1,"2"]'
        await ws.send('431[3,"4"]')
        assert await recv(ws) == '42["emit-with-ack",3,"4"]'
        await ws.send("40/custom,")
        assert str(await recv(ws)).startswith('40/custom,{"sid":')
        assert await recv(ws) == '42/custom,["auth",{}]'
        await ws.send("40/random")
        assert await recv(ws) == '44/random,{"message":"Invalid namespace"}'


async def test_engineio_echo(suites_server: ServerURL) -> None:
    async with await Client.connect(f"{suites_server}/engine.io/?EIO=4&transport=websocket") as ws:
        assert str(await recv(ws)).startswith("0{")
        await ws.send("4hello")
        await ws.send(b"\x01\x02")
        assert [await recv(ws), await recv(ws)] == ["4hello", b"\x01\x02"]
