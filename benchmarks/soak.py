"""Soak: hours of traffic squeezed into minutes, watching the server's memory and tasks.

``python -m benchmarks.soak [--minutes 10] [--servers hypercorn-trio,hypercorn-asyncio]``
(``nox -s soak``). For each server, ``benchmarks/soak_app.py`` runs under hypercorn (one
worker) and one driver process (asyncio, ``websockets`` clients, no compression) keeps:

- ``--connections`` (1,000) connections spread over rooms of ``--room-size`` (100);
- ``--requests`` echo requests per second (answered) and ``--broadcasts`` broadcasts per
  second, each to a whole room (``room-size`` frames delivered per broadcast);
- churn: ``--churn`` connections per second closed and replaced by new ones;
- one slow consumer: a member that never reads (small receive buffer), replaced every
  60 s, in a room that gets ``--slow-room-broadcasts`` (20) more broadcasts per second
  (the server closes it with 1013 when its outbox overflows).

Every ``--sample`` seconds the driver asks the app (``/control``) for its RSS (from
/proc), its task count and its counters. At the end it reports the RSS slope over the
second half (linear least squares) in MiB/min and in bytes per closed session, the
task count, client errors and server tracebacks, and RSS before and after
``malloc_trim(0)``. ``--tracemalloc`` also diffs tracemalloc snapshots taken at the
middle and at the end
(tracing starts at a quarter of the run, which slows the server from then on),
and ``--gc-types`` the live objects by type; ``--malloc-arena-max N`` sets
``MALLOC_ARENA_MAX`` for the server. Results: ``results/soak-<server>[-<label>].json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from benchmarks._common import RESULTS, environment

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "hypercorn-trio": ["-m", "hypercorn", "--worker-class", "trio"],
    "hypercorn-asyncio": ["-m", "hypercorn", "--worker-class", "asyncio"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(kind: str, port: int, log: Path, opts: argparse.Namespace) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONUNBUFFERED": "1",
    }
    if opts.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = str(opts.malloc_arena_max)
    for item in opts.server_env:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--server-env takes KEY=VALUE, got {item!r}")
        env[key] = value
    argv = [sys.executable, *SERVERS[kind], "--workers", "1", "--bind", f"127.0.0.1:{port}"]
    argv += ["--error-logfile", "-", "benchmarks.soak_app:app"]
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    raise RuntimeError("server did not start")


class Driver:
    def __init__(self, url: str, opts: argparse.Namespace) -> None:
        self.url = url
        self.opts = opts
        self.rooms = max(1, opts.connections // opts.room_size)
        self.conns: list[ClientConnection | None] = [None] * opts.connections
        self.readers: set[asyncio.Task[None]] = set()
        self.received = 0
        self.replies = 0
        self.sent_requests = 0
        self.sent_broadcasts = 0
        self.reconnects = 0
        self.errors: dict[str, int] = {}
        self.stalled: socket.socket | None = None
        self.stalled_count = 0
        self.control: ClientConnection | None = None
        self._ids = 0
        self._control_ids = 0

    def error(self, what: str, exc: BaseException | None = None) -> None:
        key = what if exc is None else f"{what}: {type(exc).__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1

    async def _open(self, i: int) -> None:
        room = i % self.rooms
        try:
            ws = await connect(
                f"{self.url}/soak/r{room}", compression=None, ping_interval=None,
                max_queue=None, open_timeout=10, close_timeout=2,
            )  # fmt: skip
        except Exception as exc:
            self.error("connect", exc)
            return
        self.conns[i] = ws
        task = asyncio.create_task(self._read(ws))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for msg in ws:
                self.received += 1
                if isinstance(msg, str) and msg.startswith('{"event":"echo"'):
                    self.replies += 1
        except ConnectionClosed as exc:
            if exc.rcvd is not None or exc.sent is None:  # the server closed it
                self.error(f"closed by the server ({exc.rcvd.code if exc.rcvd else None})")
        except Exception as exc:
            self.error("read", exc)

    async def open_all(self) -> None:
        sem = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with sem:
                await self._open(i)

        await asyncio.gather(*(one(i) for i in range(len(self.conns))))
        self.control = await connect(
            f"{self.url}/control", compression=None, ping_interval=None, max_size=None
        )

    async def call(self, event: str) -> Any:
        assert self.control is not None
        self._control_ids += 1
        ident = self._control_ids
        await self.control.send(json.dumps({"event": event, "id": ident}))
        async with asyncio.timeout(60):
            while True:
                frame = json.loads(await self.control.recv())
                if frame.get("id") == ident:
                    return frame["data"]

    def _pick(self) -> ClientConnection | None:
        ws = self.conns[random.randrange(len(self.conns))]
        return ws if ws is not None and ws.state.name == "OPEN" else None

    async def traffic(self, until: float) -> None:
        tick = 0.01
        req_per_tick = self.opts.requests * tick
        bc_per_tick = self.opts.broadcasts * tick
        slow_per_tick = self.opts.slow_room_broadcasts * tick if self.opts.slow_consumer else 0.0
        req_acc = bc_acc = slow_acc = 0.0
        payload = {"text": "x" * 64}
        next_t = time.monotonic()
        while time.monotonic() < until:
            req_acc += req_per_tick
            bc_acc += bc_per_tick
            while req_acc >= 1:
                req_acc -= 1
                ws = self._pick()
                if ws is not None:
                    self._ids += 1
                    msg = json.dumps({"event": "echo", "data": payload, "id": self._ids})
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(msg)
                        self.sent_requests += 1
            slow_acc += slow_per_tick
            while slow_acc >= 1:
                # Traffic for the room of the member that never reads.
                slow_acc -= 1
                ws = self.conns[random.randrange(0, len(self.conns), self.rooms)]
                if ws is not None and ws.state.name == "OPEN":
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send('{"event":"shout","data":{"text":"to the slow room"}}')
                        self.sent_broadcasts += 1
            while bc_acc >= 1:
                bc_acc -= 1
                ws = self._pick()
                if ws is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send('{"event":"shout","data":{"text":"hello room"}}')
                        self.sent_broadcasts += 1
            next_t += tick
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))

    async def churn(self, until: float) -> None:
        # Each reconnect runs on its own (at most 50 at once), so a slow close or
        # handshake does not lower the rate.
        interval = 1 / self.opts.churn
        next_t = time.monotonic()
        sem = asyncio.Semaphore(50)
        tasks: set[asyncio.Task[None]] = set()

        async def replace(i: int) -> None:
            async with sem:
                ws = self.conns[i]
                self.conns[i] = None
                if ws is not None:
                    with contextlib.suppress(Exception):
                        await ws.close()
                await self._open(i)
                self.reconnects += 1

        busy: set[int] = set()
        while time.monotonic() < until:
            i = random.randrange(len(self.conns))
            if i not in busy:
                busy.add(i)
                task = asyncio.create_task(replace(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _t, i=i: busy.discard(i))
            next_t += interval
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stall_one(self) -> None:
        if self.stalled is not None:
            self.stalled.close()
        host, port = self.url[len("ws://") :].split(":")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((host, int(port)))
        s.sendall(
            b"GET /soak/r0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(1)  # the headers only: from now on this client never reads
        self.stalled = s
        self.stalled_count += 1

    async def slow_consumer(self, until: float) -> None:
        while time.monotonic() < until:
            try:
                await asyncio.to_thread(self._stall_one)
            except OSError as exc:
                self.error("stalled member", exc)
            await asyncio.sleep(min(60.0, max(0.0, until - time.monotonic())))
        if self.stalled is not None:
            self.stalled.close()


def _tracebacks(text: str) -> list[str]:
    """Each traceback in the server's log, with the line before it and its last line."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            out.append("\n".join(lines[max(0, i - 1) : j + 1]))
    return out


def _read_and_remove(path: Path) -> str:
    text = path.read_text(errors="replace")
    path.unlink()
    return text


def _slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / var if var else 0.0


async def soak(kind: str, opts: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix=f"soak-{kind}-", suffix=".log")[1])
    proc = await asyncio.to_thread(_start, kind, port, log, opts)
    try:
        await asyncio.to_thread(_wait_up, port, proc)
        d = Driver(f"ws://127.0.0.1:{port}", opts)
        await d.open_all()
        first = await d.call("stats")
        duration = opts.minutes * 60
        t0 = time.monotonic()
        until = t0 + duration
        samples: list[dict[str, Any]] = []
        probes: dict[str, Any] = {}
        jobs = [
            asyncio.create_task(d.traffic(until)),
            asyncio.create_task(d.churn(until)),
        ]
        if opts.slow_consumer:
            jobs.append(asyncio.create_task(d.slow_consumer(until)))
        half_done = quarter_done = False
        while time.monotonic() < until:
            await asyncio.sleep(min(opts.sample, max(0.0, until - time.monotonic())))
            s = await d.call("stats")
            s["t"] = time.monotonic() - t0
            samples.append(s)
            print(
                f"{kind} t={s['t']:6.0f}s rss={s['rss_kib'] / 1024:7.1f} MiB "
                f"tasks={s['tasks']} open={s['connections_open']} "
                f"total={s['connections_total']} objects={s['gc_objects']} "
                f"heap={s.get('arena', 0) / 2**20:.1f} used={s.get('uordblks', 0) / 2**20:.1f} "
                f"pymalloc={s.get('pymalloc_arenas')}/{s.get('pymalloc_used', 0) / 2**20:.1f}",
                flush=True,
            )
            if opts.tracemalloc and not quarter_done and s["t"] >= duration / 4:
                quarter_done = True
                await d.call("trace_start")
            if not half_done and s["t"] >= duration / 2:
                half_done = True
                if opts.tracemalloc:
                    await d.call("snapshot")
                if opts.gc_types:
                    await d.call("gc_types")
        await asyncio.gather(*jobs)
        if opts.tracemalloc:
            await d.call("snapshot")
            probes["tracemalloc_diff"] = await d.call("snapshot_diff")
        if opts.gc_types:
            probes["gc_types_diff"] = await d.call("gc_types")
        probes["trim"] = await d.call("trim")
        last = await d.call("stats")
        for ws in d.conns:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
        await asyncio.gather(*d.readers, return_exceptions=True)
        if d.control is not None:
            await d.control.close()
        # What the server logged while serving (its own shutdown is not the soak's).
        logged_while_serving = (await asyncio.to_thread(log.stat)).st_size
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
    text = (await asyncio.to_thread(_read_and_remove, log))[:logged_while_serving]
    second = [s for s in samples if s["t"] >= duration / 2]
    rss_slope = _slope([(s["t"], s["rss_kib"] * 1024) for s in second])  # bytes/s
    closed_rate = _slope([(s["t"], s["connections_total"]) for s in second])  # sessions/s
    task_slope = _slope([(s["t"], s["tasks"]) for s in second])
    obj_slope = _slope([(s["t"], s["gc_objects"]) for s in second])
    heap_fields = ("arena", "uordblks", "fordblks", "hblkhd", "pymalloc_arenas", "pymalloc_used")
    # Bytes per minute over the second half (pymalloc_arenas: 1 MiB arenas per minute).
    heap_slopes = {
        f: _slope([(s["t"], s[f]) for s in second]) * 60 for f in heap_fields if f in last
    }
    return {
        "server": kind,
        "label": opts.label,
        "minutes": opts.minutes,
        "environment": environment(),
        "options": {k: v for k, v in vars(opts).items() if k != "servers"},
        "rss_start_mib": first["rss_kib"] / 1024,
        "rss_end_mib": last["rss_kib"] / 1024,
        "rss_slope_mib_per_min": rss_slope * 60 / 2**20,
        "bytes_per_closed_session": rss_slope / closed_rate if closed_rate else None,
        "closed_sessions_per_s": closed_rate,
        "tasks_start": first["tasks"],
        "tasks_end": last["tasks"],
        "tasks_slope_per_min": task_slope * 60,
        "gc_objects_slope_per_min": obj_slope * 60,
        "heap_slopes_per_min": heap_slopes,
        "heap_end": {f: last[f] for f in heap_fields if f in last},
        "sessions": last["connections_total"],
        "requests_sent": d.sent_requests,
        "replies": d.replies,
        "broadcasts_sent": d.sent_broadcasts,
        "frames_received": d.received,
        "delivered_per_s": (last["bc_delivered"] - first["bc_delivered"]) / duration,
        "slow_consumer_closes": last["slow_consumer_closes"],
        "stalled_members": d.stalled_count,
        "client_errors": d.errors,
        "server_tracebacks": text.count("Traceback"),
        "server_log_errors": _tracebacks(text)[:3],
        "probes": probes,
        "samples": samples,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--room-size", type=int, default=100)
    p.add_argument("--requests", type=float, default=100.0, help="echo requests per second")
    p.add_argument("--broadcasts", type=float, default=10.0, help="broadcasts per second")
    p.add_argument(
        "--slow-room-broadcasts", type=float, default=20.0,
        help="extra broadcasts per second to the slow consumer's room",
    )  # fmt: skip
    p.add_argument("--churn", type=float, default=10.0, help="reconnects per second")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    p.add_argument(
        "--no-slow-consumer", dest="slow_consumer", action="store_false",
        help="without the member that never reads",
    )  # fmt: skip
    p.add_argument("--tracemalloc", action="store_true")
    p.add_argument("--gc-types", action="store_true")
    p.add_argument("--malloc-arena-max", type=int, default=None)
    p.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE",
        help="environment of the server (e.g. MALLOC_MMAP_THRESHOLD_=131072); repeatable",
    )  # fmt: skip
    p.add_argument("--label", default="", help="suffix of the result file")
    opts = p.parse_args()
    for kind in opts.servers.split(","):
        result = asyncio.run(soak(kind, opts))
        name = f"soak-{kind}{'-' + opts.label if opts.label else ''}.json"
        (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
        summary = {k: v for k, v in result.items() if k not in ("samples", "environment")}
        print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
