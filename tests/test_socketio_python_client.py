"""Socket.IO with python-socketio's AsyncClient against real servers (hypercorn trio,
hypercorn asyncio, uvicorn) serving tests/apps/socketio_app.py.

python-socketio's client runs on asyncio only: each scenario runs on its own event loop
in a worker thread, so the tests themselves run on trio and on asyncio.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
import socketio

socketio_server = servers.socketio_server
server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

TIMEOUT = 5.0
TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}


def http(url: str) -> str:
    return "http" + url[2:]


async def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run an asyncio scenario on its own loop in a worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(asyncio.run, scenario()))


class Inbox:
    """Events received by a python-socketio client, awaited with a timeout."""

    def __init__(self, client: socketio.AsyncClient, *events: str, namespace: str = "/"):
        self.queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        for event in events:
            client.on(event, functools.partial(self._put, event), namespace=namespace)

    async def _put(self, event: str, *args: Any) -> None:
        await self.queue.put((event, args))

    async def get(self) -> tuple[str, tuple[Any, ...]]:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)


async def connect(
    url: str, transports: list[str] | None = None, **kwargs: Any
) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    inbox = Inbox(client, "auth", "message-back", "binary-back", "shouted")
    client.inbox = inbox  # type: ignore[attr-defined]
    await client.connect(
        http(url), transports=transports or ["websocket"], wait_timeout=TIMEOUT, **kwargs
    )
    return client


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_events_and_acks_both_ways(socketio_server: str, transport: str) -> None:
    async def scenario() -> None:
        client = socketio.AsyncClient(reconnection=False)
        inbox = Inbox(client, "auth", "message-back", "binary-back")
        client.on("question", lambda q: "42:" + q)
        await client.connect(
            http(socketio_server),
            auth={"tag": "t1"},
            transports=TRANSPORTS[transport],
            wait_timeout=TIMEOUT,
        )
        try:
            assert await inbox.get() == ("auth", ({"tag": "t1"},))
            await client.emit("message", ("a", 2, {"x": None}))
            assert await inbox.get() == ("message-back", ("a", 2, {"x": None}))
            # The return value is the ack: a Struct, a tuple as several arguments, None.
            assert await client.call("chat", {"text": "hello"}, timeout=TIMEOUT) == {
                "ok": True,
                "length": 5,
            }
            assert await client.call("pair", (1, 2), timeout=TIMEOUT) == (2, 1)
            assert await client.call("nothing", timeout=TIMEOUT) is None
            # A failed validation acks with an error object.
            error = await client.call("chat", {"text": 5}, timeout=TIMEOUT)
            assert error["error"]["code"] == "validation_error"
            assert error["error"]["detail"] == [
                {"path": "$[0].text", "message": "Expected `str`, got `int`"}
            ]
            # Server-to-client call() awaits the client's ack.
            assert await client.call("ask", ("q?", 2), timeout=TIMEOUT) == ["answer", "42:q?"]
            # Binary anywhere in the arguments, both ways.
            echoed = await client.call("binary", (b"\x00\x01", {"k": b"zz"}), timeout=TIMEOUT)
            assert echoed == b"\x00\x01"
            assert await inbox.get() == (
                "binary-back",
                ({"nested": [b"\x00\x01", b"\x01\x00"]}, {"k": b"zz"}),
            )
            info = await client.call("info", timeout=TIMEOUT)
            assert info["namespace"] == "/" and info["sid"] == client.get_sid()
            assert info["rooms"] == [info["sid"]]
            if transport == "polling":
                assert info["transport"] == "polling"
            else:
                await _wait_transport(client, "websocket")
        finally:
            await client.disconnect()

    await run(scenario)


async def _wait_transport(client: socketio.AsyncClient, transport: str) -> None:
    for _ in range(200):
        info = await client.call("info", timeout=TIMEOUT)
        if info["transport"] == transport:
            return
        await asyncio.sleep(0.02)  # the upgrade completes in the background
    raise AssertionError(f"transport never became {transport}")


async def test_call_times_out_when_the_client_does_not_ack(socketio_server: str) -> None:
    async def scenario() -> None:
        client = socketio.AsyncClient(reconnection=False)
        release = asyncio.Event()

        async def slow(question: str) -> str:
            await release.wait()  # answers only after the server gave up
            return "late"

        client.on("question", slow)
        await client.connect(http(socketio_server), transports=["websocket"])
        try:
            assert await client.call("ask", ("q", 0.2), timeout=TIMEOUT) == "timeout"
            release.set()
            # The connection is still fine afterwards, and the late ack is ignored.
            assert await client.call("pair", (3, 4), timeout=TIMEOUT) == (4, 3)
        finally:
            await client.disconnect()

    await run(scenario)


async def test_namespaces_auth_and_invalid_namespace(socketio_server: str) -> None:
    async def scenario() -> None:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            http(socketio_server),
            namespaces=["/", "/admin"],
            auth={"token": "secret"},
            transports=["websocket"],
        )
        try:
            sid = client.get_sid("/admin")
            assert await client.call("whoami", namespace="/admin", timeout=TIMEOUT) == (
                f"admin {sid}"
            )
            assert client.get_sid("/") != sid
        finally:
            await client.disconnect()

        for namespace, auth, message in [
            ("/admin", None, "bad token"),
            ("/nope", None, "Invalid namespace"),
            ("/", {"refuse": True}, "not welcome"),
        ]:
            errors: list[Any] = []
            refused = socketio.AsyncClient(reconnection=False)
            refused.on("connect_error", errors.append, namespace=namespace)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(
                    http(socketio_server),
                    namespaces=[namespace],
                    auth=auth,
                    transports=["websocket"],
                    wait_timeout=TIMEOUT,
                )
            await refused.disconnect()
            assert errors and errors[0]["message"] == message, (namespace, errors)
        assert errors[0]["data"] == {"why": "refuse"}

    await run(scenario)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_rooms_broadcast_with_skip(socketio_server: str, transport: str) -> None:
    async def scenario() -> None:
        a, b, c = [await connect(socketio_server, TRANSPORTS[transport]) for _ in range(3)]
        try:
            for x in (a, b, c):
                assert (await x.inbox.get())[0] == "auth"
            assert await a.call("join", "r", timeout=TIMEOUT) == ["r"]
            assert await b.call("join", "r", timeout=TIMEOUT) == ["r"]
            # c is not in the room; a shouts: b gets it, a (skipped) and c do not.
            assert await a.call("shout", ("r", "one"), timeout=TIMEOUT) == 1
            assert await b.inbox.get() == ("shouted", ("one",))
            assert await c.call("join", "r", timeout=TIMEOUT) == ["r"]
            assert await c.call("shout", ("r", "two"), timeout=TIMEOUT) == 2
            # a's next event is "two": it never got its own "one".
            assert await a.inbox.get() == ("shouted", ("two",))
            assert await b.inbox.get() == ("shouted", ("two",))
            assert await b.call("leave", "r", timeout=TIMEOUT) == []
            await a.call("shout-all", "three", timeout=TIMEOUT)
            for x in (a, b, c):
                assert await x.inbox.get() == ("shouted", ("three",))
        finally:
            for x in (a, b, c):
                await x.disconnect()

    await run(scenario)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_server_side_disconnect(socketio_server: str, transport: str) -> None:
    tag = f"kick-{uuid.uuid4()}"

    async def scenario() -> list[str]:
        client = socketio.AsyncClient(reconnection=False)
        gone = asyncio.Event()
        client.on("disconnect", gone.set)
        await client.connect(
            http(socketio_server), auth={"tag": tag}, transports=TRANSPORTS[transport]
        )
        await client.emit("kick-me")
        await asyncio.wait_for(gone.wait(), TIMEOUT)
        assert not client.connected
        watcher = await connect(socketio_server)
        try:
            return list(await watcher.call("disconnects", tag, timeout=TIMEOUT))
        finally:
            await watcher.disconnect()

    assert await run(scenario) == ["server namespace disconnect"]
