"""Liveness: a client that stops answering is closed by the server's protocol pings, and
its ``@on_disconnect`` runs, within ``ping interval + ping timeout`` (the bound that
docs/how-to/deploy.md states), under hypercorn (trio, asyncio), uvicorn and
``wsgate run``.

ASGI gives the app no ping of its own, so this is server configuration:

- hypercorn sends pings (``--websocket-ping-interval``) but never waits for the pongs;
  its ``--read-timeout`` closes a connection from which nothing arrived for that long,
  and a live client's pong arrives within every interval. Bound: the read timeout.
- uvicorn: ``--ws-ping-interval`` + ``--ws-ping-timeout`` (no pong in time: closed).
- ``wsgate run --ping-interval S [--ping-timeout T]`` sets hypercorn's two for you:
  bound ``S + T`` (T defaults to S).

The vanished client is a raw socket that completed the handshake and then neither reads
nor answers (what a peer whose host died, or a process stopped with SIGSTOP, looks like
to the server: no pong ever comes). A healthy client that answers pings, connected all
along, must still be served afterwards.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
import servers
from aioraw import AsyncRawClient
from redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
#: Scheduling slack on top of the stated bound (2 shared cores, client and server).
SLACK = 1.5

#: server -> (command line, liveness bound in seconds). hypercorn's command line takes
#: whole seconds only.
SERVERS: dict[str, tuple[list[str], float]] = {
    "hypercorn-trio": (
        ["-m", "hypercorn", "--worker-class", "trio", "--websocket-ping-interval", "1",
         "--read-timeout", "2", "--bind", "127.0.0.1:{port}", "apps.ops:app"],
        2.0,
    ),
    "hypercorn-asyncio": (
        ["-m", "hypercorn", "--worker-class", "asyncio", "--websocket-ping-interval", "1",
         "--read-timeout", "2", "--bind", "127.0.0.1:{port}", "apps.ops:app"],
        2.0,
    ),
    "uvicorn": (
        ["-m", "uvicorn", "--ws", "websockets-sansio", "--ws-ping-interval", "1",
         "--ws-ping-timeout", "1", "--host", "127.0.0.1", "--port", "{port}",
         "--lifespan", "on", "apps.ops:app"],
        2.0,
    ),
    "wsgate-run-trio": (
        ["-m", "wsgate", "run", "apps.ops:app", "--backend", "trio", "--ping-interval",
         "0.5", "--bind", "127.0.0.1:{port}"],
        1.0,
    ),
    "wsgate-run-asyncio": (
        ["-m", "wsgate", "run", "apps.ops:app", "--backend", "asyncio", "--ping-interval",
         "0.5", "--ping-timeout", "0.5", "--bind", "127.0.0.1:{port}"],
        1.0,
    ),
}  # fmt: skip


class Launched:
    def __init__(self, kind: str, tmp: Path) -> None:
        argv, self.bound = SERVERS[kind]
        self.kind = kind
        self.port = free_port()
        self.hooks_path = tmp / "hooks.log"
        self.log_path = tmp / "server.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "PYTHONUNBUFFERED": "1",
            "WSGATE_TEST_LOG": str(self.hooks_path),
        }
        env.pop("WSGATE_REDIS_URL", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *(a.format(port=self.port) for a in argv)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/metrics")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)  # not listening yet: poll again until the deadline
            finally:
                conn.close()
        self.stop()
        raise AssertionError(f"server did not start:\n{self.log_path.read_text()[-3000:]}")

    def hook_codes(self) -> list[int]:
        if not self.hooks_path.exists():
            return []
        fields = [line.split() for line in self.hooks_path.read_text().splitlines()]
        return [int(code) for _, code in fields if code.isdigit()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(params=list(SERVERS))
def launched(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Launched]:
    server = Launched(request.param, tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def test_a_client_that_stops_answering_is_closed_within_the_bound(
    launched: Launched,
) -> None:
    base = f"ws://127.0.0.1:{launched.port}/room/live"
    healthy = await AsyncRawClient.connect(base)
    answered = anyio.Event()

    async def keep_answering() -> None:
        # The only reader of the healthy client: answers pings, waits for its reply.
        while True:
            frame = await healthy.receive_json(timeout=30)
            if frame.get("id") == 7:
                answered.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(keep_answering)
        gone = await AsyncRawClient.connect(base)
        await gone.request("hello")
        vanished_at = time.monotonic()  # from now on it neither reads nor answers

        async def hook_ran() -> bool:
            return bool(launched.hook_codes())

        await servers.wait_for(
            hook_ran, timeout=launched.bound + SLACK + 5, what="@on_disconnect of the silent client"
        )
        detected_after = time.monotonic() - vanished_at
        assert detected_after <= launched.bound + SLACK, (
            f"@on_disconnect ran {detected_after:.2f}s after the client went silent; "
            f"bound {launched.bound}s"
        )
        assert len(launched.hook_codes()) == 1  # the healthy client is still there
        # ... and still served, after more than one ping cycle.
        await healthy.send_json({"event": "hello", "id": 7})
        with anyio.fail_after(5):
            await answered.wait()
        tg.cancel_scope.cancel()
    await gone.aclose()
    await healthy.aclose()
