"""Socket.IO over a real server (tests/apps/socketio_extras.py), spoken frame by frame
on a WebSocket and with raw long-polling requests: ``skip`` of several connections and
rooms, the catch-all handler, the Engine.IO connect and disconnect hooks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
import servers
from servers import Client, ServerPool, ServerURL

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

PATH = "/socket.io/"


@pytest.fixture(scope="module", params=servers.SERVER_PARAMS)
def extras_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    return server_pool.get(request.param, "apps.socketio_extras:app")


class Sio:
    """A Socket.IO client on one WebSocket, namespace "/" (no pings come: the app keeps
    the default 25 s interval)."""

    def __init__(self, ws: Client) -> None:
        self.ws = ws
        self.sid = ""
        self._ack = 0
        #: Events that arrived while waiting for an ack.
        self.early: list[list[Any]] = []

    async def connect(self, auth: Any = None) -> dict[str, Any]:
        assert str(await self.ws.recv()).startswith("0{")
        await self.ws.send("40" + ("" if auth is None else json.dumps(auth)))
        frame = str(await self.ws.recv())
        assert frame.startswith("40{"), frame
        payload: dict[str, Any] = json.loads(frame[2:])
        self.sid = payload["sid"]
        return payload

    async def call(self, event: str, *args: Any) -> list[Any]:
        """Emit with an ack; the ack's arguments."""
        self._ack += 1
        await self.ws.send(f"42{self._ack}" + json.dumps([event, *args]))
        prefix = f"43{self._ack}"
        while not (frame := str(await self.ws.recv())).startswith(prefix):
            assert frame.startswith("42["), frame
            self.early.append(json.loads(frame[2:]))
        answer: list[Any] = json.loads(frame[len(prefix) :])
        return answer

    async def event(self) -> list[Any]:
        if self.early:
            return self.early.pop(0)
        frame = str(await self.ws.recv())
        assert frame.startswith("42["), frame
        got: list[Any] = json.loads(frame[2:])
        return got


@asynccontextmanager
async def clients(url: str, n: int) -> AsyncIterator[list[Sio]]:
    async with AsyncExitStack() as stack:
        found = []
        for _ in range(n):
            ws = await stack.enter_async_context(
                await Client.connect(f"{url}{PATH}?EIO=4&transport=websocket")
            )
            sio = Sio(ws)
            await sio.connect()
            found.append(sio)
        yield found


async def news_received(everyone: list[Sio]) -> list[bool]:
    """Who got "news" before the "marker" that follows it."""
    got = []
    for c in everyone:
        first = await c.event()
        if first == ["news", "extra!"]:
            assert await c.event() == ["marker"]
            got.append(True)
        else:
            assert first == ["marker"]
            got.append(False)
    return got


@pytest.mark.parametrize(
    ("skip", "me", "expected"),
    [
        ([], True, [False, True, True, True]),  # one connection, as before
        ("r1", False, [True, False, True, False]),  # a room
        (["r1", "r2"], False, [True, False, False, False]),  # several rooms
        ("r2", True, [False, True, False, False]),  # the sender and a room
        (["r1", "nobody-here"], True, [False, False, True, False]),
    ],
)
async def test_skip_connections_and_rooms(
    extras_server: ServerURL, skip: Any, me: bool, expected: list[bool]
) -> None:
    async with clients(extras_server, 4) as (a, b, c, d):
        await b.call("join", "r1")
        await c.call("join", "r2")
        await d.call("join", "r1")
        await d.call("join", "r2")
        [sent] = await a.call("news-skipping", skip, me)
        assert sent == sum(expected)
        assert await news_received([a, b, c, d]) == expected


async def test_skip_a_sid_skips_that_connection(extras_server: ServerURL) -> None:
    async with clients(extras_server, 3) as (a, b, c):
        # A sid names its connection's own room.
        [sent] = await a.call("news-skipping", [b.sid, c.sid], False)
        assert sent == 1
        assert await news_received([a, b, c]) == [True, False, False]


async def test_a_recovered_client_misses_what_its_room_was_skipped_from(
    extras_server: ServerURL,
) -> None:
    url = f"{extras_server}/recover/?EIO=4&transport=websocket"
    async with await Client.connect(url) as ws2:
        sender = Sio(ws2)
        await sender.connect()
        ws1 = await Client.connect(url)
        cut = Sio(ws1)
        pid = (await cut.connect())["pid"]
        await cut.call("join", "quiet")
        assert await sender.call("publish", "before", None) == [2]
        news = await cut.event()
        assert news[:2] == ["news", "before"]
        offset = news[2]
        await ws1.close()  # "transport close": the session is kept for recovery
        await sender.event()  # its own copy of "before"

        async def recovered() -> Sio | None:
            # Each round publishes: the skipped event, then one for everyone.
            await sender.call("publish", "skipped", ["quiet"])
            await sender.call("publish", "kept", [sender.sid])
            ws = await Client.connect(url)
            back = Sio(ws)
            payload = await back.connect({"pid": pid, "offset": offset})
            if payload["sid"] == cut.sid:
                return back
            await ws.close()
            return None

        back = await servers.wait_for(recovered, timeout=5.0, what="the session to be kept")
        try:
            assert await back.call("hello") == [[cut.sid, True]]
            missed = [e[:2] for e in back.early]
            assert missed and set(map(tuple, missed)) == {("news", "kept")}
        finally:
            await back.ws.close()


async def test_catch_all_gets_events_without_a_handler(extras_server: ServerURL) -> None:
    async with clients(extras_server, 1) as [a]:
        # With an ack: the event's name first, then its arguments; the return acks.
        assert await a.call("whatever", 1, "two") == [{"event": "whatever", "args": [1, "two"]}]
        assert await a.event() == ["caught", "whatever", [1, "two"]]
        # An event with its own handler does not reach the catch-all.
        assert await a.call("own", 7) == ["own handler 7"]
        # Without an ack.
        await a.ws.send('42["fire",{"x":5}]')
        assert await a.event() == ["caught", "fire", [{"x": 5}]]


async def hook_log(url: str, sid: str, entries: int) -> list[list[str]]:
    """What the hooks recorded for ``sid``, once they recorded ``entries`` entries."""
    async with clients(url, 1) as [probe]:

        async def logged() -> list[list[str]] | None:
            [found] = await probe.call("hook-log", sid)
            return found if len(found) >= entries else None

        log: list[list[str]] = await servers.wait_for(logged, timeout=5.0, what="the hooks")
        return log


def engine_sid(open_frame: str) -> str:
    assert open_frame.startswith("0{"), open_frame
    sid: str = json.loads(open_frame[1:])["sid"]
    return sid


async def test_engineio_hooks_over_websocket(extras_server: ServerURL) -> None:
    url = extras_server
    ws = await Client.connect(f"{url}{PATH}?EIO=4&transport=websocket")
    async with ws:
        sid = engine_sid(str(await ws.recv()))
        assert await hook_log(url, sid, 1) == [["connect", "websocket"]]
    assert await hook_log(url, sid, 2) == [
        ["connect", "websocket"],
        ["disconnect", "websocket", "transport close"],
    ]


def http(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http" + url[2:], timeout=5.0)


async def test_engineio_hooks_over_polling(extras_server: ServerURL) -> None:
    url = extras_server
    params = {"EIO": "4", "transport": "polling"}
    async with http(url) as client:
        sid = engine_sid((await client.get(PATH, params=params)).text)
        assert await hook_log(url, sid, 1) == [["connect", "polling"]]
        r = await client.post(PATH, params={**params, "sid": sid}, content="1")
        assert (r.status_code, r.text) == (200, "ok")
    assert await hook_log(url, sid, 2) == [
        ["connect", "polling"],
        ["disconnect", "polling", "transport close"],
    ]


async def test_engineio_hooks_of_an_engineio_controller(extras_server: ServerURL) -> None:
    url = extras_server
    path = "/engine.io/"
    params = {"EIO": "4", "transport": "polling"}
    async with http(url) as client:
        # Polling, upgraded to WebSocket: one connect, one disconnect, on the transport
        # the session ended on; the hooks share the instance the messages go to.
        sid = engine_sid((await client.get(path, params=params)).text)
        ws = await Client.connect(f"{url}{path}?EIO=4&transport=websocket&sid={sid}")
        async with ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            await ws.send("5")
            await ws.send("4hi")
            while (frame := await ws.recv()) == "2":
                await ws.send("3")
            assert frame == f"4opened {sid}"
        # A polling session nobody polls: its ping goes unanswered.
        quiet = engine_sid((await client.get(path, params=params)).text)
    assert await hook_log(url, sid, 2) == [
        ["connect", "polling"],
        ["disconnect", "websocket", "transport close"],
    ]
    assert await hook_log(url, quiet, 2) == [
        ["connect", "polling"],
        ["disconnect", "polling", "ping timeout"],
    ]
