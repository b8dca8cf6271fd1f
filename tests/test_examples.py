"""Each example started as a user would start it, under a real server, and talked to."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from websockets.sync.client import connect

import wsgate
from wsgate import App, WebSocket, on_disconnect, on_message, ws_controller

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.examples


class Example:
    """A running example process; its first output line carries the URL."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def url(self, timeout: float = 20.0) -> str:
        line = _readline(self.proc, timeout)
        m = re.search(r"(ws|http)://127\.0\.0\.1:\d+", line)
        assert m, f"no URL in the example's first line: {line!r}"
        return m.group(0).replace("http://", "ws://")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    import threading

    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert result, f"the example printed nothing within {timeout}s"
    return result[0]


def recv_json(ws: Any) -> Any:
    return json.loads(ws.recv(timeout=5))


def recv_room(ws: Any) -> Any:
    """The chat's next frame, presence frames left out and without its position."""
    while True:
        frame = recv_json(ws)
        if not frame["event"].startswith("presence."):
            frame.pop("pos", None)
            return frame


async def test_chat_demo_serves_the_page_and_chats() -> None:
    example = Example("-m", "examples.chat", "0")
    try:
        base = example.url()

        def talk() -> list[Any]:
            page = urllib.request.urlopen(base.replace("ws://", "http://") + "/", timeout=5).read()
            assert b"<title>wsgate chat</title>" in page
            with connect(f"{base}/chat/lobby?user=ann", compression=None, open_timeout=5) as ann:
                with connect(
                    f"{base}/chat/lobby?user=bob", compression=None, open_timeout=5
                ) as bob:
                    joined = recv_room(ann)
                    ann.send(json.dumps({"event": "who", "id": 1}))
                    who = recv_room(ann)
                    ann.send(json.dumps({"event": "chat.send", "data": {"text": "hi bob"}}))
                    got = recv_room(bob)
                    bob.send(json.dumps({"event": "chat.send", "data": {"text": 5}, "id": 2}))
                    err = recv_room(bob)
                    assert recv_room(ann)["event"] == "chat.message"  # ann's own, in the room
                left = recv_room(ann)
            return [joined, who, got, err, left]

        joined, who, got, err, left = await anyio.to_thread.run_sync(talk)
        assert joined == {"event": "joined", "data": {"user": "bob", "members": 2}}
        assert who == {"event": "who", "id": 1, "data": {"room": "lobby", "members": 2}}
        assert got == {
            "event": "chat.message",
            "data": {"room": "lobby", "user": "ann", "text": "hi bob", "token": ""},
        }
        assert err["data"]["code"] == "validation_error"
        assert err["data"]["detail"][0]["path"] == "$.data.text"
        assert left == {"event": "left", "data": {"user": "bob", "members": 1}}
    finally:
        out = example.stop()
    assert "Traceback" not in out, out
    # One log line per join and leave, with the path, user, room and close code.
    assert "join path=/chat/lobby user=bob room=lobby members=2" in out, out
    assert re.search(r"leave path=/chat/lobby user=bob room=lobby code=\d+ members=1", out), out


async def test_embed_trio_pushes_from_the_programs_own_task() -> None:
    example = Example("examples/embed_trio.py", "0")
    try:
        url = example.url() + "/ticks"

        def talk() -> list[Any]:
            with connect(url, compression=None, open_timeout=5) as ws:
                ticks = [recv_json(ws) for _ in range(2)]
                ws.send(json.dumps({"event": "ping", "id": 1}))
                while (frame := recv_json(ws)).get("event") == "tick":
                    pass
                return [*ticks, frame]

        first, second, pong = await anyio.to_thread.run_sync(talk)
        assert first["event"] == second["event"] == "tick"
        assert second["data"]["n"] == first["data"]["n"] + 1
        assert pong == {"event": "ping", "id": 1, "data": "pong"}
    finally:
        out = example.stop()
    assert "Traceback" not in out, out


async def test_serve_embeds_in_the_running_backend_and_stops_on_cancel() -> None:
    closed: list[int | None] = []

    @ws_controller("/echo")
    class Echo:
        @on_message("echo")
        async def echo(self, ws: WebSocket) -> str:
            return "hello"

        @on_disconnect
        async def gone(self, ws: WebSocket) -> None:
            closed.append(ws.close_code)

    app = App(gateways=[Echo])
    opened = anyio.Event()
    result: list[Any] = []

    def client(port: int) -> Any:
        with connect(f"ws://127.0.0.1:{port}/echo", compression=None, open_timeout=5) as ws:
            ws.send(json.dumps({"event": "echo", "id": 1}))
            reply = recv_json(ws)
            anyio.from_thread.run_sync(opened.set)
            try:
                ws.recv(timeout=5)
            except Exception as exc:
                return reply, getattr(getattr(exc, "rcvd", None), "code", None)
        return reply, None

    async def run_client(port: int) -> None:
        result.append(await anyio.to_thread.run_sync(client, port))

    async with anyio.create_task_group() as outer:
        async with anyio.create_task_group() as server:
            port = await server.start(wsgate.serve, app, "127.0.0.1", 0)
            outer.start_soon(run_client, port)
            await opened.wait()
            server.cancel_scope.cancel()  # stops the server: connections are closed with 1001
    assert closed == [1001]
    assert result == [({"event": "echo", "id": 1, "data": "hello"}, 1001)]
