"""Real servers and real clients for the tests: hypercorn (trio and asyncio workers) and
uvicorn in subprocesses, the ``websockets`` sync client behind async methods, and a raw
socket client for what a well-behaved client never does (stop reading, drop the TCP
connection without a close frame).

The servers run in their own processes, on their own event loop, whatever backend the
test runs on. Each (server, app) pair starts once per session, on a free port of
127.0.0.1, and is stopped (SIGINT, then SIGKILL after a deadline) when the session ends.

Fixtures (assign them to names in a test module to use them, e.g.
``server = servers.server``)::

    server       ws://127.0.0.1:PORT of tests/apps/gateways.py, once per server kind
    chat_server  the same for examples/chat/app.py
    isolation_server  the same for tests/apps/isolation.py
    socketio_server   the same for tests/apps/socketio_app.py

Each yields a :class:`ServerURL`: a ``str`` (the base URL) that also knows its server
``kind`` and its log file.

``WSGATE_SERVERS=hypercorn-trio,uvicorn`` narrows the server kinds (``uvicorn-wsproto``
and ``uvicorn-websockets`` (the legacy implementation) can be added the same way). The
servers' logs go to a temporary directory, removed at the end of the session unless
``WSGATE_KEEP_SERVER_LOGS=1``; ``server_logs_clean`` fails a module whose servers logged
errors it did not provoke on purpose.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import inspect
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent


def _hypercorn(worker_class: str) -> list[str]:
    return [
        "-m",
        "hypercorn",
        "--worker-class",
        worker_class,
        "--workers",
        "1",
        "--bind",
        "127.0.0.1:{port}",
        "--error-logfile",
        "-",
        "--graceful-timeout",
        "{graceful}",
        "{app}",
    ]


def _wsgate_run(workers: int) -> list[str]:
    return [
        "-m",
        "wsgate",
        "run",
        "--workers",
        str(workers),
        "--bind",
        "127.0.0.1:{port}",
        "--shutdown-timeout",
        "{graceful}",
        "{app}",
    ]


#: Server kind -> command line (``{port}``, ``{app}`` and ``{graceful}``, the seconds the
#: server waits for open connections when it stops, are filled in). hypercorn runs its
#: default single worker process: with ``--workers 0`` the trio worker takes SIGINT as a
#: KeyboardInterrupt raised in whichever task runs, e.g. inside the app.
COMMANDS: dict[str, list[str]] = {
    "hypercorn-trio": _hypercorn("trio"),
    "hypercorn-asyncio": _hypercorn("asyncio"),
    # uvicorn's default ("auto") WebSocket implementation is websockets-sansio when the
    # websockets package is installed; name it explicitly so the test is what it says.
    "uvicorn": [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--ws",
        "websockets-sansio",
        "--lifespan",
        "on",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "{graceful}",
        "{app}",
    ],
    # ``wsgate run`` with two workers (its broker: WSGATE_BROKER_URL, else embedded).
    "wsgate-run-2": _wsgate_run(2),
    "uvicorn-wsproto": [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--ws",
        "wsproto",
        "--lifespan",
        "on",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "{graceful}",
        "{app}",
    ],
    "uvicorn-websockets": [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--ws",
        "websockets",
        "--lifespan",
        "on",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "{graceful}",
        "{app}",
    ],
}

#: What each server does, checked by hand and asserted by the tests (so a server upgrade
#: that changes it is noticed): does it offer the ASGI ``websocket.http.response``
#: extension (HTTP denial responses), and which close code does it report in
#: ``websocket.disconnect`` when the peer drops the TCP connection without a close frame.
DENIAL_EXTENSION = {
    "hypercorn-trio": True,
    "hypercorn-asyncio": True,
    "uvicorn": True,
    "uvicorn-wsproto": True,
    "uvicorn-websockets": True,
}
CLIENT_CLOSE_CODE = {
    # hypercorn does not pass on the code of the client's close frame: it reports 1006
    # whenever the client closes first (protocol/ws_stream.py, StreamClosed).
    "hypercorn-trio": 1006,
    "hypercorn-asyncio": 1006,
    "uvicorn": None,  # None: the code the client sent
    "uvicorn-wsproto": None,
    "uvicorn-websockets": None,
}
#: When the server is stopped (SIGINT) with a connection open: the close code the client
#: gets (None: the TCP connection ends without a close frame) and the one
#: ``@on_disconnect`` sees. hypercorn waits ``--graceful-timeout`` and then cancels the
#: connection's task (wsgate records 1006); its asyncio worker then closes with 1011.
#: uvicorn closes every WebSocket with 1012 (service restart) first. Either way the
#: app's lifespan shutdown comes after the connections are gone.
SHUTDOWN_CLOSE_CODE = {
    "hypercorn-trio": None,
    "hypercorn-asyncio": 1011,
    "uvicorn": 1012,
    "uvicorn-wsproto": 1012,
    "uvicorn-websockets": 1012,
}
SHUTDOWN_HOOK_CODE = {
    "hypercorn-trio": 1006,
    "hypercorn-asyncio": 1006,
    "uvicorn": 1012,
    "uvicorn-wsproto": 1012,
    "uvicorn-websockets": 1012,
}
ABRUPT_CLOSE_CODE = {
    "hypercorn-trio": 1006,
    "hypercorn-asyncio": 1006,
    "uvicorn": 1005,  # websockets-sansio reports 1005 (no status), not 1006
    "uvicorn-wsproto": 1005,
    "uvicorn-websockets": 1006,
}

DEFAULT_SERVERS = "hypercorn-trio,hypercorn-asyncio,uvicorn"
SERVERS = [
    s.strip() for s in os.environ.get("WSGATE_SERVERS", DEFAULT_SERVERS).split(",") if s.strip()
]
for _kind in SERVERS:
    if _kind not in COMMANDS:
        raise ValueError(f"WSGATE_SERVERS: unknown server {_kind!r}; known: {', '.join(COMMANDS)}")

#: Seconds a server may take to start, and to stop before it is killed.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


#: Log lines that mean something went wrong in the server or in wsgate.
UNEXPECTED_LOG = re.compile(
    r"Traceback|\bERROR\b|\[ERROR\]|Exception in ASGI|Error in ASGI|Task exception|"
    r"Exception ignored| failed\b|ran past|was never awaited"
)
#: What the tests provoke on purpose: tests/apps/gateways.py's CrashingGateway.
EXPECTED_LOG = [
    re.compile(
        r"@on_connect failed on /crash; refusing with 1011\n"
        r"Traceback \(most recent call last\):\n(?:[ \^~].*\n)*RuntimeError: bug in @on_connect\n"
    ),
    # tests/apps/fuzz.py's ContainedGateway: a failure inside wsgate, contained (1011).
    re.compile(
        r"wsgate runtime error on /fuzz/contained; closing the connection with 1011\n"
        r"Traceback \(most recent call last\):\n"
        r"(?:(?:[ \^~].*|Traceback .*|During handling .*|wsgate\.errors\.WebSocketError: .*|)\n)*?"
        r"TypeError: wsgate cannot encode an object of type Unencodable.*\n"
    ),
    # uvicorn (websockets-sansio) logs a text frame that is not UTF-8 (sent on purpose by
    # tests/test_fuzz.py) with its own traceback, and closes with 1007; the app never sees it.
    re.compile(
        r"ERROR: +Invalid UTF-8 sequence received from client\.\n"
        r"Traceback \(most recent call last\):\n(?:[ \^~].*\n)*UnicodeDecodeError: .*\n"
    ),
]
#: uvicorn (websockets-sansio) logs this when an app that refused the handshake with the
#: denial extension returns before the connection is lost: it does not mark the
#: handshake done after a ``websocket.http.response.body`` (uvicorn's bug, harmless).
UVICORN_DENIAL_NOISE = re.compile(
    r"ERROR: +ASGI callable returned without completing handshake\.\n"
)


class ServerURL(str):
    """The base ``ws://127.0.0.1:PORT`` URL of a running server (a ``str``), plus what
    the tests need to know about it."""

    kind: str
    port: int
    log_path: Path

    def __new__(cls, url: str, kind: str, port: int, log_path: Path) -> ServerURL:
        self = super().__new__(cls, url)
        self.kind = kind
        self.port = port
        self.log_path = log_path
        return self

    def log(self) -> str:
        """What the server printed so far (its stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class ServerProcess:
    """One server subprocess serving one app."""

    def __init__(
        self, kind: str, app: str, log_dir: Path | None = None, *, graceful_timeout: int = 3
    ) -> None:
        self.kind = kind
        self.app = app
        self.log_dir = log_dir
        self.graceful_timeout = graceful_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.url: ServerURL | None = None
        self._log_file: Any = None

    def start(self, timeout: float = START_TIMEOUT, port: int | None = None) -> ServerURL:
        """Start the server on a free port, or on ``port`` (e.g. to restart it where its
        clients will reconnect)."""
        deadline = time.monotonic() + timeout
        last_error = ""
        fixed_port = port
        # A free port can be taken by someone else between our probe and the server's
        # bind; the server then exits at once and we try another port.
        for _attempt in range(5):
            port = fixed_port or _free_port()
            fd, name = tempfile.mkstemp(
                prefix=f"wsgate-{self.kind}-", suffix=".log", dir=self.log_dir
            )
            os.close(fd)
            log_path = Path(name)
            self._log_file = log_path.open("wb")
            args = [
                a.format(port=port, app=self.app, graceful=self.graceful_timeout)
                for a in COMMANDS[self.kind]
            ]
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                [str(ROOT), str(ROOT / "tests"), *filter(None, [env.get("PYTHONPATH")])]
            )
            env["PYTHONUNBUFFERED"] = "1"
            env.pop("WSGATE_REDIS_URL", None)
            self.proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.url = ServerURL(f"ws://127.0.0.1:{port}", self.kind, port, log_path)
            if self._wait_ready(port, deadline):
                return self.url
            last_error = self.url.log()
            self.stop()
            if time.monotonic() >= deadline:
                break
        raise RuntimeError(f"{self.kind} serving {self.app} did not start:\n{last_error[-4000:]}")

    def _wait_ready(self, port: int, deadline: float) -> bool:
        """Poll with an HTTP request until the server answers (any status: the app is
        loaded and its lifespan startup done) or the process exits."""
        assert self.proc is not None
        delay = 0.01
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/__ready__")
                conn.getresponse().read()
            except OSError:
                time.sleep(delay)  # retry with backoff until the deadline
                delay = min(delay * 2, 0.2)
                continue
            finally:
                conn.close()
            # Make sure the server that answered is ours, not someone else's on a port we
            # lost.
            return self.proc.poll() is None
        return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return proc.returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def run_server(kind: str, app: str) -> Iterator[ServerURL]:
    """Serve ``app`` ("module:attr") with server ``kind`` for the duration of the block."""
    log_dir = Path(tempfile.mkdtemp(prefix="wsgate-server-"))
    server = ServerProcess(kind, app, log_dir)
    try:
        yield server.start()
    finally:
        server.stop()
        if not os.environ.get("WSGATE_KEEP_SERVER_LOGS"):
            shutil.rmtree(log_dir, ignore_errors=True)


class ServerPool:
    """Starts each (kind, app) once and stops them all at the end of the session."""

    def __init__(self) -> None:
        self._servers: dict[tuple[str, str], ServerProcess] = {}
        self._urls: dict[tuple[str, str], ServerURL] = {}
        self.log_dir = Path(tempfile.mkdtemp(prefix="wsgate-servers-"))

    def get(self, kind: str, app: str) -> ServerURL:
        key = (kind, app)
        url = self._urls.get(key)
        if url is not None:
            proc = self._servers[key].proc
            if proc is not None and proc.poll() is None:
                return url
            raise RuntimeError(f"{kind} serving {app} died:\n{url.log()[-4000:]}")
        server = ServerProcess(kind, app, self.log_dir)
        self._servers[key] = server
        self._urls[key] = url = server.start()
        return url

    def unexpected_log_lines(self) -> dict[str, list[str]]:
        """Lines of the servers' logs that report an error nobody asked for: a traceback,
        an exception that reached the server, a wsgate hook that failed or overran."""
        found: dict[str, list[str]] = {}
        for (kind, app), url in self._urls.items():
            text = url.log()
            for pattern in EXPECTED_LOG:
                text = pattern.sub("", text)
            if kind.startswith("uvicorn"):
                text = UVICORN_DENIAL_NOISE.sub("", text)
            bad = [line for line in text.splitlines() if UNEXPECTED_LOG.search(line)]
            if bad:
                found[f"{kind} serving {app} (log: {url.log_path})"] = bad
        return found

    def assert_logs_clean(self) -> None:
        found = self.unexpected_log_lines()
        if found:
            report = "\n".join(
                f"{where}:\n  " + "\n  ".join(lines[:20]) for where, lines in found.items()
            )
            raise AssertionError(f"the servers logged errors:\n{report}")

    def stop_all(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()
        self._urls.clear()
        if not os.environ.get("WSGATE_KEEP_SERVER_LOGS"):
            shutil.rmtree(self.log_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def server_logs_clean(server_pool: ServerPool) -> Iterator[None]:
    """After a module's tests: fail if a server logged an error the tests did not
    provoke on purpose (an exception that reached the server, a failed wsgate hook)."""
    yield
    server_pool.assert_logs_clean()


SERVER_PARAMS = [pytest.param(kind, id=kind) for kind in SERVERS]


@pytest.fixture(params=SERVER_PARAMS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """Each server kind, for tests that start (and stop) a server of their own."""
    return str(request.param)


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/gateways.py under each server kind."""
    return server_pool.get(request.param, "apps.gateways:app")


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def chat_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """examples/chat/app.py under each server kind."""
    return server_pool.get(request.param, "examples.chat.app:app")


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def isolation_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/isolation.py under each server kind."""
    return server_pool.get(request.param, "apps.isolation:app")


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def socketio_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/socketio_app.py under each server kind."""
    return server_pool.get(request.param, "apps.socketio_app:app")


# ------------------------------------------------------------------ the websockets client

_CONNECT_HAS_LEGACY = "legacy" in inspect.signature(connect).parameters

#: Seconds any single receive may wait before the test fails.
RECV_TIMEOUT = 5.0


class Client:
    """A ``websockets`` sync client connection driven from async tests: every blocking
    call runs in a worker thread, and every receive has a timeout.

    ``async with await Client.connect(url) as c: ...`` closes it (with 1000) on exit.
    """

    def __init__(self, conn: ClientConnection, room_view: bool = False) -> None:
        self.conn = conn
        #: Frames :meth:`request` read while waiting for its answer.
        self.skipped: list[Any] = []
        self.room_view = room_view

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        subprotocols: list[str] | None = None,
        sock: socket.socket | None = None,
        max_queue: int | None = 16,
        open_timeout: float = 5.0,
        room_view: bool = False,
    ) -> Client:
        """Open a connection (no compression offered). Raises
        ``websockets.exceptions.InvalidStatus`` if the server refuses the handshake.

        ``room_view``: :meth:`recv_json` leaves out presence frames and the position
        (``pos``) of frames from a group with history, after checking its shape: the
        chat example's rooms as they were without presence and history."""

        def open_() -> ClientConnection:
            kwargs: dict[str, Any] = {}
            if sock is not None:
                kwargs["sock"] = sock
            if _CONNECT_HAS_LEGACY:
                kwargs["legacy"] = True  # websockets >= 17: a connection, without a warning
            return connect(
                url,
                compression=None,
                open_timeout=open_timeout,
                close_timeout=5,
                subprotocols=subprotocols,  # type: ignore[arg-type]
                max_queue=max_queue,
                max_size=None,
                ping_interval=None,
                **kwargs,
            )

        return cls(await anyio.to_thread.run_sync(open_), room_view)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def subprotocol(self) -> str | None:
        return self.conn.subprotocol

    async def send(self, data: str | bytes) -> None:
        await anyio.to_thread.run_sync(self.conn.send, data)

    async def send_json(self, data: Any) -> None:
        await self.send(_dumps(data))

    async def send_event(self, event: str, data: Any = None, id: int | str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": data}
        if id is not None:
            frame["id"] = id
        await self.send_json(frame)

    async def recv(self, timeout: float = RECV_TIMEOUT) -> str | bytes:
        """The next message; ``TimeoutError`` if none comes in time, ``ConnectionClosed``
        if the connection closed."""
        return await anyio.to_thread.run_sync(lambda: self.conn.recv(timeout=timeout))

    async def recv_json(self, timeout: float = RECV_TIMEOUT) -> Any:
        while True:
            data = await self.recv(timeout)
            assert isinstance(data, str), f"expected a text frame, got {data!r}"
            frame = _loads(data)
            if not self.room_view or not isinstance(frame, dict):
                return frame
            if str(frame.get("event", "")).startswith("presence."):
                continue
            pos = frame.pop("pos", None)
            if pos is not None:
                assert isinstance(pos["offset"], int) and isinstance(pos["epoch"], str), pos
            return frame

    async def recv_many(self, n: int, timeout: float = RECV_TIMEOUT) -> list[str | bytes]:
        """``n`` messages, each within ``timeout`` (one thread hop for all of them)."""

        def many() -> list[str | bytes]:
            return [self.conn.recv(timeout=timeout) for _ in range(n)]

        return await anyio.to_thread.run_sync(many)

    async def request(
        self, event: str, data: Any = None, id: int | str = 1, timeout: float = RECV_TIMEOUT
    ) -> Any:
        """Send an envelope with ``id``; return the frame that answers it (other frames
        received meanwhile are kept in :attr:`skipped`)."""
        await self.send_event(event, data, id=id)
        while True:
            frame = await self.recv_json(timeout)
            if isinstance(frame, dict) and frame.get("id") == id:
                return frame
            self.skipped.append(frame)

    async def wait_closed(self, timeout: float = RECV_TIMEOUT) -> tuple[int | None, str, list[Any]]:
        """Read until the server closes: ``(code, reason, messages read meanwhile)``.
        ``code`` is None if the connection ended without a close frame."""
        seen: list[Any] = []
        try:
            while True:
                seen.append(await self.recv(timeout))
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            return (rcvd.code if rcvd else None), (rcvd.reason if rcvd else ""), seen

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await anyio.to_thread.run_sync(self.conn.close, code, reason)


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, separators=(",", ":"))


def _loads(data: str) -> Any:
    import json

    return json.loads(data)


# ------------------------------------------------------------------ the raw socket client


class RawClient:
    """A minimal blocking WebSocket client on a plain socket, for misbehaving on purpose:
    it reads only when asked (so the server's sends to it stall), and it can drop the TCP
    connection without a close frame. Use it from async tests through
    ``anyio.to_thread.run_sync``.
    """

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self._buf = bytearray(buffered)

    @classmethod
    def connect(cls, url: str, *, rcvbuf: int | None = None, timeout: float = 5.0) -> RawClient:
        """Handshake with ``url`` (ws://host:port/path). ``rcvbuf`` shrinks the socket's
        receive buffer before connecting, so the TCP window stays small."""
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://") :].partition("/")
        host, _, port = hostport.partition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(request.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"handshake: connection closed after {buf!r}")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status_line + b" ":
            sock.close()
            raise ConnectionError(f"handshake refused: {head!r}")
        return cls(sock, rest)

    # -- sending ---------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = _mask(payload, mask)
        self.sock.sendall(header + mask + masked)

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode())

    def send_json(self, data: Any) -> None:
        self.send_text(_dumps(data))

    def send_event(self, event: str, data: Any = None, id: int | str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": data}
        if id is not None:
            frame["id"] = id
        self.send_json(frame)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        self.send_frame(0x8, struct.pack("!H", code) + reason.encode())

    # -- receiving -------------------------------------------------------------------

    def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed by the server without a close frame")
            self._buf += chunk

    def read_frame(self, timeout: float = RECV_TIMEOUT) -> tuple[int, bytes]:
        """The next frame from the server as ``(opcode, payload)`` (unfragmented frames
        only, which is what the servers here send)."""
        self.sock.settimeout(timeout)
        self._fill(2)
        b0, b1 = self._buf[0], self._buf[1]
        assert b0 & 0x80, "fragmented frames are not supported by this test client"
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        offset = 2
        if n == 126:
            self._fill(4)
            n = struct.unpack_from("!H", self._buf, 2)[0]
            offset = 4
        elif n == 127:
            self._fill(10)
            n = struct.unpack_from("!Q", self._buf, 2)[0]
            offset = 10
        self._fill(offset + n)
        payload = bytes(self._buf[offset : offset + n])
        del self._buf[: offset + n]
        return b0 & 0x0F, payload

    def read_until_close(
        self, timeout: float = RECV_TIMEOUT
    ) -> tuple[list[bytes], int | None, str]:
        """Read data frames until the close frame: ``(payloads, close code, reason)``."""
        payloads: list[bytes] = []
        while True:
            opcode, payload = self.read_frame(timeout)
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return payloads, code, payload[2:].decode(errors="replace")
            if opcode in (0x1, 0x2):
                payloads.append(payload)
            # pings (0x9) and pongs are ignored

    # -- leaving ---------------------------------------------------------------------

    def abort(self) -> None:
        """Reset the TCP connection (RST): no close frame, no FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def drop(self) -> None:
        """Close the TCP connection (FIN) without a WebSocket close frame."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _mask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


async def wait_for(
    predicate: Any, *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> Any:
    """Poll the async ``predicate()`` until it returns something truthy (returned), or
    fail after ``timeout`` seconds. For state only observable by asking the server."""
    last: Any = None
    with anyio.move_on_after(timeout):
        while True:
            last = await predicate()
            if last:
                return last
            await anyio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
