"""examples/service_client.py (the Python client) talking to examples/chat, started as a
user would start them, with a ``websockets`` client in the same room."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest
from test_examples import ROOT, Example
from websockets.sync.client import connect

pytestmark = pytest.mark.examples


class Lines:
    """A process's output lines, read by a thread, each awaited with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        #: Every line, as the reader thread got it.
        self.all: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout

        def read() -> None:
            for line in stdout:
                self.all.append(line)
                self._queue.put(line)

        self._thread = threading.Thread(target=read, daemon=True)
        self._thread.start()

    def everything(self, timeout: float = 5.0) -> str:
        """All the output, once the process has exited."""
        self._thread.join(timeout)
        return "".join(self.all)

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        for line in self.seen:
            if text in line:
                return line
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"{text!r} not printed within {timeout}s; printed: {self.seen!r}"
                ) from None
            self.seen.append(line)
            if text in line:
                return line


async def test_the_service_posts_typed_messages_and_prints_what_others_say(
    anyio_backend: str,
) -> None:
    chat = Example("-m", "examples.chat", "0")
    service: subprocess.Popen[str] | None = None
    lines: Lines | None = None
    try:
        base = chat.url()

        def talk() -> tuple[list[Any], str, str]:
            nonlocal service, lines
            with connect(f"{base}/chat/lobby?user=ann", compression=None, open_timeout=5) as ann:
                service = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "examples.service_client",
                        "--url",
                        base,
                        "--name",
                        "ticker",
                        "--interval",
                        "0.05",
                        "--backend",
                        anyio_backend,
                    ],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                lines = Lines(service)
                joined_line = lines.wait_for("service_client: joined")
                frames = []
                while len([f for f in frames if f["event"] == "chat.message"]) < 3:
                    frame = json.loads(ann.recv(timeout=5))
                    if not frame["event"].startswith("presence."):  # who is online
                        frame.pop("pos", None)  # its position in the room's history
                        frames.append(frame)
                ann.send(json.dumps({"event": "chat.send", "data": {"text": "hi ticker"}}))
                heard = lines.wait_for("ann: hi ticker")
            lines.wait_for("* ann left")
            return frames, joined_line, heard

        frames, joined_line, heard = await anyio.to_thread.run_sync(talk)
        assert "joined lobby" in joined_line and "(2 members)" in joined_line
        assert frames[0] == {"event": "joined", "data": {"user": "ticker", "members": 2}}
        posts = [f["data"] for f in frames if f["event"] == "chat.message"]
        assert [p["user"] for p in posts] == ["ticker"] * 3
        assert [p["text"].split(":")[0] for p in posts] == ["WSG #1", "WSG #2", "WSG #3"]
        assert heard.strip() == "[lobby] ann: hi ticker"

        # The chat server restarts on the same port: the service reconnects by itself
        # (1001 from the server does not end it) and its prices reach the room again.
        port = base.rsplit(":", 1)[1]
        first_chat_out = chat.stop()
        assert "Traceback" not in first_chat_out, first_chat_out

        def after_restart() -> Any:
            assert lines is not None
            lines.wait_for("connection reconnecting")
            nonlocal chat
            chat = Example("-m", "examples.chat", port)
            assert chat.url().endswith(f":{port}")
            lines.wait_for("reconnected to lobby", timeout=30)
            with connect(f"{base}/chat/lobby?user=bob", compression=None, open_timeout=5) as bob:
                while (frame := json.loads(bob.recv(timeout=5)))["event"] != "chat.message":
                    pass
            return frame

        frame = await anyio.to_thread.run_sync(after_restart)
        assert frame["data"]["user"] == "ticker" and frame["data"]["text"].startswith("WSG #")
    finally:
        out = ""
        if service is not None:
            service.send_signal(signal.SIGINT)
            try:
                service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
            assert lines is not None
            out = lines.everything()
        chat_out = chat.stop()
    assert service is not None and service.returncode == 0, out
    assert "service_client: left" in out
    assert "Traceback" not in out + chat_out, out + chat_out
