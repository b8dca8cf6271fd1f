"""A minimal WebSocket client on AnyIO sockets, for tests that need hundreds of
connections at once on trio or asyncio (one task each, no threads), or a client that
never answers the server's pings.

``await AsyncRawClient.connect(url)`` handshakes (no extensions offered); ``request()``
sends an envelope and returns the answer; ``wait_close()`` reads until the server's close
frame, answers it and returns its code. Pings are answered with pongs unless
``answer_pings=False``. Every read has a timeout.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

import anyio
import anyio.abc


class AsyncRawClient:
    def __init__(self, stream: anyio.abc.SocketStream, buffered: bytes) -> None:
        self.stream = stream
        self._buf = bytearray(buffered)
        # A pong written by the reading task and a frame written by another task must not
        # interleave on the stream (anyio refuses two writers at once).
        self._writing = anyio.Lock()

    @classmethod
    async def connect(cls, url: str, *, timeout: float = 10.0) -> AsyncRawClient:
        """Open ``ws://host:port/path``; raises ``ConnectionError`` if refused."""
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://") :].partition("/")
        host, _, port = hostport.partition(":")
        with anyio.fail_after(timeout):
            stream = await anyio.connect_tcp(host, int(port))
            key = base64.b64encode(os.urandom(16)).decode()
            await stream.send(
                (
                    f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            buf = b""
            while b"\r\n\r\n" not in buf:
                try:
                    buf += await stream.receive()
                except anyio.EndOfStream:
                    raise ConnectionError(f"handshake: closed after {buf!r}") from None
        head, _, rest = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0] + b" ":
            await stream.aclose()
            raise ConnectionError(f"handshake refused: {head!r}")
        return cls(stream, rest)

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        async with self._writing:
            await self.stream.send(header + mask + masked)

    async def send_json(self, data: Any) -> None:
        await self.send_frame(0x1, json.dumps(data).encode())

    async def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            try:
                self._buf += await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                raise ConnectionError("closed without a close frame") from None

    async def read_frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """The next frame, as ``(opcode, payload)``."""
        with anyio.fail_after(timeout):
            await self._fill(2)
            b1 = self._buf[1]
            n, offset = b1 & 0x7F, 2
            if n == 126:
                await self._fill(4)
                n, offset = struct.unpack_from("!H", self._buf, 2)[0], 4
            elif n == 127:
                await self._fill(10)
                n, offset = struct.unpack_from("!Q", self._buf, 2)[0], 10
            await self._fill(offset + n)
        opcode = self._buf[0] & 0x0F
        payload = bytes(self._buf[offset : offset + n])
        del self._buf[: offset + n]
        return opcode, payload

    async def receive_json(self, timeout: float = 10.0, answer_pings: bool = True) -> Any:
        """The next text frame, decoded (pings answered on the way)."""
        while True:
            opcode, payload = await self.read_frame(timeout)
            if opcode == 0x9 and answer_pings:
                await self.send_frame(0xA, payload)
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise ConnectionError(f"closed by the server with {code}")
            elif opcode == 0x1:
                return json.loads(payload)

    async def request(self, event: str, data: Any = None, id: int = 1) -> Any:
        """Send ``{"event", "data", "id"}`` and return the ``data`` of its answer."""
        await self.send_json({"event": event, "data": data, "id": id})
        while True:
            frame = await self.receive_json()
            if frame.get("id") == id:
                return frame.get("data")

    async def wait_close(self, timeout: float = 10.0) -> int | None:
        """Read until the server's close frame, answer it, close the socket; return the
        close code (None if the connection ended without a close frame)."""
        try:
            while True:
                opcode, payload = await self.read_frame(timeout)
                if opcode == 0x9:
                    await self.send_frame(0xA, payload)
                elif opcode == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    try:
                        await self.send_frame(0x8, payload[:2])
                    except (anyio.BrokenResourceError, OSError):
                        pass
                    return code
        except ConnectionError:
            return None
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()
