"""The load client: ``python -m benchmarks.loadgen {echo,fanout,idle} --port N ...``.

Runs in its own process (started by :mod:`benchmarks.harness`), talks to one server on
127.0.0.1 and prints its result as one JSON line on stdout.

It is a minimal WebSocket client on plain sockets and one ``epoll`` loop, not a library:
the handshake offers no extension (so no server can turn permessage-deflate on; hypercorn
always accepts it when offered), frames are parsed straight from ``recv`` and answered in
the same loop iteration (no event loop, task or future per frame), and client frames are
masked with the all-zero key (a valid key that makes masking free). Pings are answered
with pongs, and Engine.IO pings (``2``) with ``3``. Per echo round trip it costs about
a third of the CPU of the ``websockets`` asyncio client, which matters on a 2-core box
where client and server share the cores; ``echo --check`` runs the same closed loop with
the ``websockets`` client (``compression=None``) to cross-check.

With ``--sio`` a connection is a Socket.IO v4 connection over the WebSocket transport:
``/socket.io/?EIO=4&transport=websocket``, the ``0{...}`` open packet, ``40`` answered
by ``40{...}``; events are ``42[...]`` and acks ``43<id>[...]``.

Every wait is bounded: connecting (``CONNECT_TIMEOUT`` per socket operation), the
measured window (``--duration``) and the drain after it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from benchmarks._proc import cpu_seconds, raise_nofile

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 30.0
#: Handshakes sent before their responses are read.
CONNECT_BATCH = 100
ZERO_MASK = b"\x00\x00\x00\x00"
DATA = {"room": "lobby", "text": "hello world", "n": 42}
DATA_JSON = msgspec.json.encode(DATA)
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"

_decode = msgspec.json.decode


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final client frame (masked with the zero key, so the payload is unchanged)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, 0x80 | n)) + ZERO_MASK + payload
    if n < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big") + ZERO_MASK + payload
    return bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big") + ZERO_MASK + payload


CLOSE_FRAME = frame((1000).to_bytes(2, "big"), 0x8)
SIO_PONG = frame(b"3")


def handshake_request(path: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def connect_path(path: str, sio: bool, role: str = "") -> str:
    if sio:
        return SIO_PATH + (f"&role={role}" if role else "")
    return path


OnMessage = Callable[["Conn", bytes], None]


class Conn:
    """One client WebSocket connection on a blocking socket that is only read when
    ``epoll`` says it is readable (sends are small and never fill the buffer)."""

    __slots__ = ("buf", "close_code", "frag", "lost", "on_message", "seq", "sio", "sock")

    def __init__(self, sock: socket.socket, sio: bool) -> None:
        self.sock = sock
        self.sio = sio
        self.buf = b""
        self.frag = b""
        self.seq = 0  # per-connection request id (echo)
        self.on_message: OnMessage | None = None
        self.close_code: int | None = None
        self.lost = False

    def send(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def feed(self, data: bytes) -> None:
        """Parse frames; data frames go to ``on_message`` (Engine.IO pings answered)."""
        if self.buf:
            data = self.buf + data
            self.buf = b""
        pos, n = 0, len(data)
        while n - pos >= 2:
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            if b1 & 0x80:
                raise ConnectionError("the server masked a frame")
            end = start + length
            if end > n:
                break
            b0 = data[pos]
            payload = data[start:end]
            pos = end
            opcode = b0 & 0x0F
            if not b0 & 0x80:  # a fragment (rare: no server here fragments)
                self.frag += payload
                continue
            if opcode == 0:
                payload, self.frag = self.frag + payload, b""
                opcode = 1
            if opcode <= 2:
                if self.sio and payload == b"2":
                    self.sock.sendall(SIO_PONG)
                elif self.on_message is not None:
                    self.on_message(self, payload)
            elif opcode == 9:
                self.sock.sendall(frame(payload, 0xA))
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
                self.lost = True
                return
        if pos < n:
            self.buf = data[pos:]

    def read_one(self) -> bytes:
        """Blocking: the next data frame (used during the handshake only)."""
        got: list[bytes] = []
        saved = self.on_message
        self.on_message = lambda _c, p: got.append(p)
        try:
            self.feed(b"")
            while not got:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed during the Socket.IO handshake")
                self.feed(chunk)
        finally:
            self.on_message = saved
        if len(got) > 1:
            raise ConnectionError(f"unexpected frames during the handshake: {got!r}")
        return got[0]

    def close(self) -> None:
        try:
            self.sock.sendall(CLOSE_FRAME)
        except OSError:
            pass
        self.sock.close()


def _new_socket(rcvbuf: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(CONNECT_TIMEOUT)
    return s


def _read_head(s: socket.socket, byte_by_byte: bool = False) -> tuple[bytes, bytes]:
    """Read the HTTP response head; returns (head, bytes read past it)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1 if byte_by_byte else 4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buf += chunk
        if len(buf) > 65536:
            raise ConnectionError("handshake response too long")
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {head.splitlines()[0]!r}")
    if b"sec-websocket-extensions" in head.lower():
        raise ConnectionError("the server enabled an extension nobody asked for")
    return head, rest


def connect_many(n: int, port: int, path: str, sio: bool) -> list[Conn]:
    """Open ``n`` connections (``CONNECT_BATCH`` handshakes in flight), each fully
    handshaken (Socket.IO: namespace connected); blocking sockets without timeout."""
    conns: list[Conn] = []
    for i in range(0, n, CONNECT_BATCH):
        batch = []
        for _ in range(min(CONNECT_BATCH, n - i)):
            s = _new_socket()
            s.connect((HOST, port))
            s.sendall(handshake_request(path, port))
            batch.append(s)
        for s in batch:
            _, rest = _read_head(s)
            c = Conn(s, sio)
            c.buf = rest
            if sio:
                if not c.read_one().startswith(b"0{"):
                    raise ConnectionError("no Engine.IO open packet")
                c.send(b"40")
                if not c.read_one().startswith(b"40"):
                    raise ConnectionError("Socket.IO namespace connect refused")
            s.settimeout(None)
            conns.append(c)
    return conns


class Loop:
    """``epoll`` over the connections' sockets; :meth:`run` feeds what arrives."""

    def __init__(self, conns: Sequence[Conn]) -> None:
        self.ep = select.epoll()
        self.by_fd: dict[int, Conn] = {}
        self.watched: dict[int, Callable[[], None]] = {}
        for c in conns:
            self.add(c)

    def add(self, c: Conn) -> None:
        fd = c.sock.fileno()
        self.by_fd[fd] = c
        self.ep.register(fd, select.EPOLLIN)
        if c.buf:  # frames that arrived with the handshake
            c.feed(b"")

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever ``fd`` is readable."""
        self.watched[fd] = callback
        self.ep.register(fd, select.EPOLLIN)

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        """Until ``time.perf_counter() >= until`` (or ``stop()`` says so)."""
        poll, by_fd, now = self.ep.poll, self.by_fd, time.perf_counter
        while True:
            left = until - now()
            if left <= 0 or (stop is not None and stop()):
                return
            for fd, _ in poll(min(left, 0.05)):
                c = by_fd.get(fd)
                if c is None:
                    callback = self.watched.get(fd)
                    if callback is not None:
                        callback()
                    continue
                try:
                    data = c.sock.recv(262144)
                except ConnectionError:
                    data = b""
                if data:
                    c.feed(data)
                else:
                    c.lost = True
                    self.ep.unregister(fd)
                    del by_fd[fd]

    def close(self) -> None:
        self.ep.close()


def close_all(conns: Sequence[Conn]) -> None:
    for c in conns:
        c.close()


class Meter:
    """CPU of the server trees (summed: several for a cluster) and of this client over a
    window."""

    def __init__(self, server_pids: Sequence[int]) -> None:
        self.server_pids = [p for p in server_pids if p]

    def read(self) -> tuple[float, float, float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        server = sum(cpu_seconds(p) for p in self.server_pids)
        return time.perf_counter(), server, ru.ru_utime + ru.ru_stime


def _window(
    n: int, start: tuple[float, float, float], end: tuple[float, float, float]
) -> dict[str, Any]:
    (t0, s0, u0), (t1, s1, u1) = start, end
    return {
        "rate": n / (t1 - t0),
        "count": n,
        "seconds": t1 - t0,
        "server_cpu_us": (s1 - s0) / n * 1e6 if n else None,
        "server_cpu": (s1 - s0) / (t1 - t0),
        "client_cpu": (u1 - u0) / (t1 - t0),
    }


# --------------------------------------------------------------------------- echo


class Echo:
    """Closed loop: each connection sends a request, and the next one as soon as the
    reply came. Every reply is decoded and checked (id and data)."""

    def __init__(self, sio: bool) -> None:
        self.sio = sio
        self.running = True
        self.count = 0
        self.bad = 0
        self.first_bad: bytes | None = None
        self.outstanding = 0

    def request(self, conn: Conn) -> None:
        conn.seq += 1
        if self.sio:
            conn.send(b'42%d["echo",%s]' % (conn.seq, DATA_JSON))
        else:
            conn.send(b'{"event":"echo","data":%s,"id":%d}' % (DATA_JSON, conn.seq))
        self.outstanding += 1

    def on_message(self, conn: Conn, payload: bytes) -> None:
        self.outstanding -= 1
        try:
            if self.sio:
                prefix = b"43%d[" % conn.seq
                ok = payload.startswith(prefix) and _decode(payload[len(prefix) - 1 :]) == [DATA]
            else:
                reply = _decode(payload)
                ok = reply["id"] == conn.seq and reply["data"] == DATA
        except (msgspec.DecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            self.bad += 1
            if self.first_bad is None:
                self.first_bad = payload[:200]
        self.count += 1
        if self.running:
            self.request(conn)


def run_echo(args: argparse.Namespace) -> dict[str, Any]:
    sio = args.sio
    echo = Echo(sio)
    conns = connect_many(args.conns, args.port, connect_path("/echo", sio), sio)
    loop = Loop(conns)
    meter = Meter(args.server_pid)
    try:
        for c in conns:
            c.on_message = echo.on_message
            echo.request(c)
        loop.run(time.perf_counter() + args.warmup)
        c0, start = echo.count, meter.read()
        loop.run(start[0] + args.duration)
        c1, end = echo.count, meter.read()
        echo.running = False
        loop.run(time.perf_counter() + 10, lambda: echo.outstanding == 0)
        if echo.outstanding:
            raise RuntimeError(f"{echo.outstanding} replies missing after 10 s")
        lost = sum(c.lost for c in conns)
    finally:
        close_all(conns)
        loop.close()
    if echo.bad:
        raise RuntimeError(f"{echo.bad} bad replies, e.g. {echo.first_bad!r}")
    return {**_window(c1 - c0, start, end), "lost": lost}


def run_echo_websockets(args: argparse.Namespace) -> dict[str, Any]:
    """The same closed loop with the ``websockets`` asyncio client (cross-check)."""
    import asyncio

    from websockets.asyncio.client import connect

    sio = args.sio
    url = f"ws://{HOST}:{args.port}" + connect_path("/echo", sio)
    data = DATA_JSON.decode()

    async def open_sio(ws: Any) -> None:
        # Engine.IO's open packet, then the Socket.IO CONNECT of the main namespace.
        if not str(await ws.recv()).startswith("0"):
            raise RuntimeError("no Engine.IO open packet")
        await ws.send("40")
        if not str(await ws.recv()).startswith("40"):
            raise RuntimeError("the namespace refused the connection")

    async def ask_sio(ws: Any, i: int) -> bool:
        await ws.send(f'42{i}["echo",{data}]')
        prefix = f"43{i}["
        while True:
            reply = str(await ws.recv())
            if reply == "2":  # the server's ping
                await ws.send("3")
                continue
            return reply.startswith(prefix) and json.loads(reply[len(prefix) - 1 :]) == [DATA]

    async def ask(ws: Any, i: int) -> bool:
        await ws.send(f'{{"event":"echo","data":{data},"id":{i}}}')
        reply = json.loads(await ws.recv())
        return bool(reply.get("id") == i and reply.get("data") == DATA)

    async def main() -> dict[str, Any]:
        conns = [await connect(url, compression=None) for _ in range(args.conns)]
        if sio:
            for ws in conns:
                await open_sio(ws)
        count = bad = 0
        deadline = time.perf_counter() + args.warmup + args.duration
        round_trip = ask_sio if sio else ask

        async def one(ws: Any) -> None:
            nonlocal count, bad
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                if not await round_trip(ws, i):
                    bad += 1
                count += 1

        meter = Meter(args.server_pid)
        try:
            async with asyncio.timeout(args.warmup + args.duration + 30):
                tasks = [asyncio.create_task(one(ws)) for ws in conns]
                await asyncio.sleep(args.warmup)
                c0, start = count, meter.read()
                await asyncio.sleep(args.duration)
                c1, end = count, meter.read()
                await asyncio.gather(*tasks)
        finally:
            for ws in conns:
                await ws.close()
        if bad:
            raise RuntimeError(f"{bad} bad replies")
        return {**_window(c1 - c0, start, end), "lost": 0}

    return asyncio.run(main())


# --------------------------------------------------------------------------- fan-out


def tick_payload(seq: int, size: int) -> bytes:
    """The broadcast's ``data``: ``{"t":<monotonic ns>,"s":<seq>,"p":"xx..."}``, padded
    so that it encodes to exactly ``size`` bytes."""
    head = b'{"t":%d,"s":%d,"p":"' % (time.monotonic_ns(), seq)
    return head + b"x" * (size - len(head) - 2) + b'"}'


class FanOut:
    """The publisher keeps ``window`` broadcasts in flight: a new one goes out when every
    (non-stalled) member received an earlier one. Members parse the timestamp and the
    sequence number of each tick (no full decode)."""

    def __init__(self, members: int, size: int, window: int, sio: bool, publisher: Conn) -> None:
        self.members = members
        self.size = size
        self.window = window
        self.sio = sio
        self.publisher = publisher
        self.seq = 0
        self.got: list[int] = []  # per seq: members that received it
        self.completed = 0
        self.last_complete = -1
        self.running = False
        self.measuring = False
        self.received = 0
        self.latencies: list[int] = []
        self.limit = -1  # broadcasts to publish in all (-1: no limit)

    def publish(self) -> int:
        seq = self.seq
        self.seq += 1
        self.got.append(0)
        data = tick_payload(seq, self.size)
        if self.sio:
            self.publisher.send(b'42["publish",%s]' % data)
        else:
            self.publisher.send(b'{"event":"publish","data":%s}' % data)
        return seq

    def on_tick(self, conn: Conn, payload: bytes) -> None:
        now = time.monotonic_ns()
        i = payload.find(b'"t":') + 4
        j = payload.find(b",", i)
        k = payload.find(b'"s":', j) + 4
        seq = int(payload[k : payload.find(b",", k)])
        if self.measuring:
            self.received += 1
            self.latencies.append(now - int(payload[i:j]))
        got = self.got[seq] + 1
        self.got[seq] = got
        if got == self.members:
            self.completed += 1
            self.last_complete = seq
            if self.running and self.seq != self.limit:
                self.publish()


def stalled_member(port: int, sio: bool, rcvbuf: int) -> socket.socket:
    """A member that completes the handshake and never reads again: a socket with a
    small receive buffer (set before connecting, so the TCP window stays small)."""
    s = _new_socket(rcvbuf)
    s.connect((HOST, port))
    s.sendall(handshake_request(connect_path("/sub", sio, "sub"), port))
    _, rest = _read_head(s, byte_by_byte=True)  # read nothing past the handshake
    if sio:
        c = Conn(s, sio)
        c.buf = rest
        if not c.read_one().startswith(b"0{"):
            raise ConnectionError("no Engine.IO open packet")
        c.send(b"40")
        if not c.read_one().startswith(b"40"):
            raise ConnectionError("Socket.IO namespace connect refused")
    return s


def run_fanout(args: argparse.Namespace) -> dict[str, Any]:
    sio = args.sio
    ports = [args.port, *args.member_port]
    members = [
        c
        for i, port in enumerate(ports)
        for c in connect_many(
            args.members // len(ports) + (i < args.members % len(ports)),
            port,
            connect_path("/sub", sio, "sub"),
            sio,
        )
    ]
    conns = list(members)
    stalled: socket.socket | None = None
    loop: Loop | None = None
    try:
        if args.stall:
            stalled = stalled_member(args.port, sio, args.rcvbuf)
        (pub,) = connect_many(1, args.port, connect_path("/pub", sio, "pub"), sio)
        conns.append(pub)
        fan = FanOut(args.members, args.size, args.window, sio, pub)
        for c in members:
            c.on_message = fan.on_tick
        loop = Loop(conns)
        meter = Meter(args.server_pid)
        if args.unprimed:
            return _run_unprimed(args, fan, loop, meter, members)
        # Every member is in the room once one broadcast reached them all.
        for _ in range(5):
            seq = fan.publish()
            loop.run(time.perf_counter() + 5.0, lambda: fan.last_complete >= seq)  # noqa: B023
            if fan.last_complete >= seq:
                break
        else:
            raise RuntimeError(f"no broadcast reached all {args.members} members")
        fan.running = True
        for _ in range(fan.window):
            fan.publish()
        # Warm up into a steady state, and fill the stalled member's buffers: until
        # --warmup-bytes went to each member or --warmup seconds passed (a server whose
        # broadcast loop stalls never completes these broadcasts).
        wire = args.size + 40
        first = fan.seq
        loop.run(
            time.perf_counter() + args.warmup,
            lambda: (fan.seq - first) * wire >= args.warmup_bytes,
        )
        fan.measuring = True
        start = meter.read()
        loop.run(start[0] + args.duration)
        fan.running = fan.measuring = False
        end = meter.read()
        lost = sum(c.lost for c in members)
    finally:
        if stalled is not None:  # reset, so that a send blocked on it fails at once
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            stalled.close()
        close_all(conns)
        if loop is not None:
            loop.close()
    lat = sorted(fan.latencies)
    return {
        **_window(fan.received, start, end),
        "broadcasts": fan.completed - 1,
        "p50_ms": lat[len(lat) // 2] / 1e6 if lat else None,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6 if lat else None,
        "lost": lost,
    }


def _run_unprimed(
    args: argparse.Namespace, fan: FanOut, loop: Loop, meter: Meter, members: list[Conn]
) -> dict[str, Any]:
    """From an unprimed start: no broadcast before the window, so the first ``window``
    broadcasts go to members that never received a frame; ``--broadcasts`` in all, the
    window refilled as each one reaches every member, and the whole of it measured
    (the start is what this case is about). The members are in the room once the
    handshakes are answered (both peers subscribe before or right after accepting); a
    short settle lets the server finish that."""
    loop.run(time.perf_counter() + args.settle)
    total = args.broadcasts
    fan.measuring = True
    start = meter.read()
    fan.running = True
    for _ in range(min(fan.window, total)):
        fan.publish()
    fan.limit = total
    loop.run(time.perf_counter() + 60, lambda: fan.completed >= total)
    end = meter.read()
    fan.running = fan.measuring = False
    if fan.completed < total:
        raise RuntimeError(f"only {fan.completed} of {total} broadcasts reached every member")
    lat = sorted(fan.latencies)
    return {
        **_window(fan.received, start, end),
        "broadcasts": fan.completed,
        "p50_ms": lat[len(lat) // 2] / 1e6 if lat else None,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6 if lat else None,
        "lost": sum(c.lost for c in members),
    }


# --------------------------------------------------------------------------- idle


def run_idle(args: argparse.Namespace) -> None:
    """Open ``--warm`` connections, print ``READY n``, wait for a line on stdin, open
    ``--conns`` more, print ``READY n``, wait for a line, close everything. Answers pings
    while it waits. Prints a JSON line last."""
    sio = args.sio
    path = connect_path("/echo", sio)
    conns: list[Conn] = []
    loop = Loop([])
    go = False

    def wait_for_line() -> None:
        nonlocal go
        go = False
        loop.run(time.perf_counter() + 300, lambda: go)
        if not go:
            raise TimeoutError("no word from the harness in 300 s")

    def on_stdin() -> None:
        nonlocal go
        go = True
        if not os.read(sys.stdin.fileno(), 4096):  # the harness went away
            raise SystemExit("stdin closed")

    loop.watch(sys.stdin.fileno(), on_stdin)
    try:
        t0 = time.perf_counter()
        for c in connect_many(args.warm, args.port, path, sio):
            conns.append(c)
            loop.add(c)
        print("READY", len(conns), flush=True)
        wait_for_line()
        t1 = time.perf_counter()
        for c in connect_many(args.conns, args.port, path, sio):
            conns.append(c)
            loop.add(c)
        t2 = time.perf_counter()
        print("READY", len(conns), flush=True)
        wait_for_line()
        lost = sum(c.lost for c in conns)
    finally:
        close_all(conns)
        loop.close()
    print(json.dumps({"connect_s": t2 - t1, "warm_s": t1 - t0, "lost": lost}), flush=True)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen")
    sub = parser.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--port", type=int, required=True)
    common.add_argument("--sio", action="store_true", help="Socket.IO v4 over WebSocket")
    common.add_argument(
        "--server-pid",
        type=int,
        action="append",
        default=[],
        help="for its CPU time (repeat it: the CPU of every process given, summed)",
    )
    p = sub.add_parser("echo", parents=[common])
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--check", action="store_true", help="use the websockets client")
    p = sub.add_parser("fanout", parents=[common])
    p.add_argument("--members", type=int, default=1000)
    p.add_argument(
        "--member-port",
        type=int,
        action="append",
        default=[],
        help="another server of the cluster: the members are spread evenly over --port and "
        "these (the publisher stays on --port)",
    )
    p.add_argument("--size", type=int, default=64, help="bytes of the tick's data")
    p.add_argument("--window", type=int, default=4, help="broadcasts in flight")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--stall", action="store_true", help="add a member that never reads")
    p.add_argument("--rcvbuf", type=int, default=4096, help="its SO_RCVBUF")
    p.add_argument(
        "--warmup-bytes",
        type=int,
        default=65536,
        help="broadcast this much (to each member) before the window...",
    )
    p.add_argument("--warmup", type=float, default=1.0, help="...or for this long")
    p.add_argument(
        "--unprimed",
        action="store_true",
        help="no broadcast before the window: --broadcasts from the first frame, all measured",
    )
    p.add_argument("--broadcasts", type=int, default=100, help="with --unprimed")
    p.add_argument("--settle", type=float, default=0.3, help="with --unprimed: after connecting")
    p = sub.add_parser("idle", parents=[common])
    p.add_argument("--warm", type=int, default=100)
    p.add_argument("--conns", type=int, default=5000)
    args = parser.parse_args(argv)
    raise_nofile()
    if args.cmd == "echo":
        result = run_echo_websockets(args) if args.check else run_echo(args)
    elif args.cmd == "fanout":
        result = run_fanout(args)
    else:
        run_idle(args)
        return
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
