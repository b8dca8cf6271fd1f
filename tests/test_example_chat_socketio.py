"""examples/chat_socketio started as a user starts it, talked to by python-socketio
clients and by a browser's view of it (the page and the client library it loads), and
under ``wsgate run --workers 2``."""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import servers
import socketio

ROOT = Path(__file__).resolve().parent.parent
#: socket.io-client's browser bundle, kept in the example (no npm install needed).
CLIENT_JS = ROOT / "examples" / "chat_socketio" / "socket.io.min.js"
pytestmark = [pytest.mark.examples, pytest.mark.usefixtures("anyio_backend")]
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def example_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.chat_socketio", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(30)
        m = re.search(r"http://127\.0\.0\.1:\d+", lines[0] if lines else "")
        assert m, f"the example printed no URL: {lines}"
        yield m.group(0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


async def test_page_and_client_library(example_url: str) -> None:
    async with httpx.AsyncClient(base_url=example_url, timeout=TIMEOUT) as client:
        page = await client.get("/")
        assert page.status_code == 200 and '<script src="/socket.io-client.js">' in page.text
        js = await client.get("/socket.io-client.js")
        assert js.status_code == 200 and js.headers["content-type"] == "text/javascript"
        # The bundle kept in the example, whatever node_modules holds: the page works
        # right after `pip install -e ".[demo]"`.
        assert js.content == CLIENT_JS.read_bytes()
        assert js.text.startswith("/*!\n * Socket.IO v4.")
        assert "Released under the MIT License." in js.text[:200]
        assert 20_000 < len(js.content) < 100_000


async def chat(url: str, transports: list[str] | None = None) -> dict[str, Any]:
    """Ann says hi in the lobby; what Bob hears."""

    async def scenario() -> dict[str, Any]:
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def put(first: Any, *offset: Any) -> None:
            await got.put(first)

        ann = socketio.AsyncClient(reconnection=False)
        bob = socketio.AsyncClient(reconnection=False)
        bob.on("said", put)
        for client, user in ((ann, "ann"), (bob, "bob")):
            await client.connect(
                url, auth={"user": user}, transports=transports, wait_timeout=TIMEOUT
            )
        try:
            ack = await ann.call("say", {"text": "hi"}, timeout=TIMEOUT)
            heard = await asyncio.wait_for(got.get(), TIMEOUT)
        finally:
            await ann.disconnect()
            await bob.disconnect()
        return {"ack": ack, "heard": heard}

    return await anyio.to_thread.run_sync(functools.partial(asyncio.run, scenario()))


async def test_runs_under_wsgate_run_with_two_workers() -> None:
    with servers.run_server("wsgate-run-2", "examples.chat_socketio.app:app") as ws_url:
        url = "http" + ws_url[2:]
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
            assert (await client.get("/")).status_code == 200
            js = await client.get("/socket.io-client.js")
            assert js.status_code == 200 and js.content == CLIENT_JS.read_bytes()
        # WebSocket only: long-polling across workers needs sticky sessions. Several
        # pairs, so that some land on different workers: rooms span them.
        for _ in range(4):
            seen = await chat(url, ["websocket"])
            assert seen == {"ack": True, "heard": {"room": "lobby", "user": "ann", "text": "hi"}}


async def test_two_users_chat(example_url: str) -> None:
    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        ann = socketio.AsyncClient(reconnection=False)
        bob = socketio.AsyncClient(reconnection=False)
        got: asyncio.Queue[Any] = asyncio.Queue()

        async def put(first: Any, *offset: Any) -> None:
            # With connection state recovery on, room events carry the offset last.
            await got.put(first)

        bob.on("said", put)
        bob.on("system", put)
        errors: list[Any] = []
        nobody = socketio.AsyncClient(reconnection=False)
        nobody.on("connect_error", errors.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await nobody.connect(example_url, auth={"user": ""}, wait_timeout=TIMEOUT)
        seen["refused"] = errors[0]["message"]
        for client, user in ((ann, "ann"), (bob, "bob")):
            await client.connect(example_url, auth={"user": user}, wait_timeout=TIMEOUT)
        try:
            seen["ack"] = await ann.call("say", {"text": "hi"}, timeout=TIMEOUT)
            seen["bob"] = await asyncio.wait_for(got.get(), TIMEOUT)
            seen["join"] = await ann.call("join", "den", timeout=TIMEOUT)
            await bob.call("join", "den", timeout=TIMEOUT)
            await bob.call("say", {"text": "in the den"}, timeout=TIMEOUT)
            seen["bob2"] = await asyncio.wait_for(got.get(), TIMEOUT)
        finally:
            await ann.disconnect()
            await bob.disconnect()
        return seen

    seen = await anyio.to_thread.run_sync(functools.partial(asyncio.run, scenario()))
    assert seen["refused"] == "pick a name of 1 to 32 characters"
    assert seen["ack"] is True
    assert seen["bob"] == {"room": "lobby", "user": "ann", "text": "hi"}
    assert seen["join"] == "den"
    assert seen["bob2"] == {"room": "den", "user": "bob", "text": "in the den"}
