"""Fan-out: one broadcast to 1,000 and to 10,000 members, in one process.

Members are real connections opened through :class:`wsgate.testing.TestClient` to an app
whose gateway subscribes each connection to one group in ``@on_connect``; each has its
own reader and writer task, an outbox of 256 and, as its ASGI ``send``, the test
client's unbounded in-memory queue (wrapped by a counter). The message is
``{"event": "tick", "data": {...}}`` with ``data`` encoding to 64 bytes.

Variants, alternated round by round (order rotated), on the same members:

``BroadcastGroup``
    ``await groups.broadcast("room", msg)``: one encode, one shared ASGI message, a
    non-blocking ``offer`` into each member's outbox (which wakes its writer).
``naive loop``
    ``for ws in members: await ws.send_json(msg)``: an encode per member and a waiting
    ``put`` into each outbox (it never waits here: the outboxes are empty).
``direct ASGI loop``
    ``for send in sends: await send({"type": "websocket.send", "text": encode(msg)...})``:
    what a framework without writer tasks does (Starlette's naive room): an encode and
    the ASGI ``send`` per member, inline, no outbox and no task wake-up. With a real
    server this loop stops for everyone when one member stalls (see DESIGN.md); here the
    send is an in-memory queue and never stalls, so this row is the cost floor.

Figures, per variant (each round sends ``--broadcasts`` broadcasts and waits after each
until every member's ``send`` got it):

*enqueue ns/member*
    time of the call (``broadcast()`` or the loop) divided by the members: what the
    sending task pays. For the direct loop this already includes the ASGI send.
*drained/s*
    broadcasts per second counting until the last member's writer handed the frame to
    ASGI ``send`` (enqueue + every writer woken, run and sent): the sustainable rate.
*drain ms*
    that time for one broadcast;
*of which gc ms*
    the part of it the garbage collector ran (timed with ``gc.callbacks``).
*speedup vs naive*
    naive time / variant time, computed within each round (above 1: faster than naive).

Each size runs on asyncio and trio, and in three garbage-collector modes, alternated
within each round: ``default`` (CPython's thresholds, as a server runs), ``frozen``
(``gc.freeze()`` after the members connected, so collections skip the long-lived
connection objects) and ``tuned`` (frozen, and ``gc.set_threshold(50_000, 20, 100)``);
DESIGN.md suggests trying both. With 10,000 members one full collection takes about half
a second, and even young collections cost about 1.5 ms each, because the young objects of
a fan-out (each writer's wake-up) point into a heap of hundreds of MB; none of them ever
finds garbage here (reference counting frees everything). The ``max`` columns and the
``of which gc ms`` column show where collections landed.

Run: ``python -m benchmarks.fanout [--rounds 5] [--sizes 1000 10000]``; writes
``benchmarks/results/fanout.md``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from benchmarks._common import (
    CountingApp,
    GcClock,
    Summary,
    environment,
    markdown_table,
    publish,
    rotated,
)
from wsgate import App, BroadcastGroup, WebSocket, on_connect, ws_controller
from wsgate.encoding import encode
from wsgate.testing import TestClient, TestWebSocket

__all__ = ["main", "run"]

GROUP = "room"
MSG: dict[str, Any] = {"event": "tick", "data": {"seq": 123456, "payload": "x" * 37}}
assert len(encode(MSG["data"])) == 64, len(encode(MSG["data"]))
BACKENDS = ("asyncio", "trio")
MODES = ("default", "frozen", "tuned")
#: gc thresholds of the ``tuned`` mode (CPython 3.11 defaults: 700, 10, 10).
TUNED_THRESHOLDS = (50_000, 20, 100)
GROUP_V, NAIVE_V, ASGI_V = "BroadcastGroup", "naive loop", "direct ASGI loop"
VARIANTS = (GROUP_V, NAIVE_V, ASGI_V)


@ws_controller("/room")
class RoomGateway:
    @on_connect
    async def join(self, ws: WebSocket, groups: BroadcastGroup) -> None:
        await groups.subscribe(GROUP, ws)


@dataclass
class Figures:
    """Per-round figures of one (size, backend, mode, variant)."""

    enqueue_ns: list[float] = field(default_factory=list)  # per member
    drained_per_s: list[float] = field(default_factory=list)
    drain_ms: list[float] = field(default_factory=list)
    gc_ms: list[float] = field(default_factory=list)  # per broadcast
    speedup_enqueue: list[float] = field(default_factory=list)
    speedup_drained: list[float] = field(default_factory=list)


Key = tuple[int, str, str, str]  # members, backend, mode, variant


class Room:
    """``n`` connected members and the three ways to send them one message."""

    def __init__(
        self, app: App, counter: CountingApp, clients: list[TestWebSocket], clock: GcClock
    ) -> None:
        self.n = len(clients)
        self.clock = clock
        self.counter = counter
        self.clients = clients
        self.groups: BroadcastGroup = app.container.get(BroadcastGroup)
        self.members = self.groups.members(GROUP)
        self.sends = list(counter.sends)
        assert len(self.members) == len(self.sends) == self.n

    async def group(self) -> None:
        sent = await self.groups.broadcast(GROUP, MSG)
        assert sent == self.n, sent

    async def naive(self) -> None:
        for ws in self.members:
            await ws.send_json(MSG)

    async def direct(self) -> None:
        for send in self.sends:
            await send({"type": "websocket.send", "text": encode(MSG).decode()})

    def drain_clients(self) -> int:
        k = 0
        for c in self.clients:
            stream = c._from_app
            while True:
                try:
                    stream.receive_nowait()
                except anyio.WouldBlock:
                    break
                k += 1
        return k

    async def measure(
        self, op: Callable[[], Awaitable[None]], k: int
    ) -> tuple[float, float, float]:
        """Send ``k`` broadcasts with ``op``, each waited until fully sent; returns the
        summed (enqueue, drained, garbage collection) seconds."""
        enqueue = drained = 0.0
        gc_before = self.clock.seconds
        for _ in range(k):
            done = self.counter.expect(self.n)
            t0 = time.perf_counter()
            await op()
            t1 = time.perf_counter()
            await done.wait()
            t2 = time.perf_counter()
            enqueue += t1 - t0
            drained += t2 - t0
        gc_seconds = self.clock.seconds - gc_before
        assert self.drain_clients() == k * self.n
        return enqueue, drained, gc_seconds


async def _run_size(
    n: int, rounds: int, k: int, backend: str, figures: dict[Key, Figures]
) -> float:
    app = App(gateways=[RoomGateway])
    counter = CountingApp(app)
    t_setup = time.perf_counter()
    async with TestClient(counter) as client, AsyncExitStack() as stack:
        clock = stack.enter_context(GcClock())
        clients = [
            await stack.enter_async_context(client.websocket_connect("/room")) for _ in range(n)
        ]
        room = Room(app, counter, clients, clock)
        setup = time.perf_counter() - t_setup
        ops = {GROUP_V: room.group, NAIVE_V: room.naive, ASGI_V: room.direct}
        for v in VARIANTS:  # warm-up
            await room.measure(ops[v], 1)
        for r in range(rounds):
            for mode in rotated(MODES, r):
                thresholds = gc.get_threshold()
                if mode != "default":
                    gc.collect()
                    gc.freeze()
                if mode == "tuned":
                    gc.set_threshold(*TUNED_THRESHOLDS)
                try:
                    got = {v: await room.measure(ops[v], k) for v in rotated(VARIANTS, r)}
                finally:
                    gc.set_threshold(*thresholds)
                    if mode != "default":
                        gc.unfreeze()
                naive_enq, naive_drained, _ = got[NAIVE_V]
                for v, (enq, drained, gc_s) in got.items():
                    f = figures.setdefault((n, backend, mode, v), Figures())
                    f.enqueue_ns.append(enq / (k * n) * 1e9)
                    f.drained_per_s.append(k / drained)
                    f.drain_ms.append(drained / k * 1e3)
                    f.gc_ms.append(gc_s / k * 1e3)
                    f.speedup_enqueue.append(naive_enq / enq)
                    f.speedup_drained.append(naive_drained / drained)
            print(f"  {n:,} members on {backend}: round {r + 1}/{rounds}", flush=True)
    return setup


def _fmt(s: Summary, spec: str) -> str:
    return f"{s.median:{spec}} ({s.min:{spec}}-{s.max:{spec}})"


def run(
    rounds: int = 5,
    sizes: Sequence[int] = (1_000, 10_000),
    broadcasts: int | None = None,
    *,
    out: bool | Path = True,
) -> str:
    """Run the benchmark; print and (with ``out``) write the markdown report."""
    figures: dict[Key, Figures] = {}
    setups: list[str] = []
    started = time.perf_counter()
    for n in sizes:
        # About 0.1-0.2 s of broadcasting per variant per round at either size.
        k = broadcasts or max(2, 20_000 // n)
        for backend in BACKENDS:
            setup = anyio.run(_run_size, n, rounds, k, backend, figures, backend=backend)
            setups.append(f"{n:,} on {backend}: {setup:.1f} s")
    elapsed = time.perf_counter() - started

    rows = []
    for key, f in figures.items():
        n, backend, mode, v = key
        rows.append(
            [
                f"{n:,}",
                backend,
                mode,
                v,
                _fmt(Summary.of(f.enqueue_ns), ",.0f"),
                _fmt(Summary.of(f.drained_per_s), ",.1f"),
                _fmt(Summary.of(f.drain_ms), ",.2f"),
                _fmt(Summary.of(f.gc_ms), ",.1f"),
                _fmt(Summary.of(f.speedup_enqueue), ".2f"),
                _fmt(Summary.of(f.speedup_drained), ".2f"),
            ]
        )
    order = {v: i for i, v in enumerate(VARIANTS)}
    rows.sort(key=lambda row: (int(row[0].replace(",", "")), row[1], row[2], order[row[3]]))
    table = markdown_table(
        [
            "members",
            "backend",
            "gc",
            "variant",
            "enqueue ns/member",
            "drained/s",
            "drain ms",
            "of which gc ms",
            "speedup vs naive: enqueue",
            "drained",
        ],
        rows,
        left=4,
    )
    report = "\n".join(
        [
            "# Fan-out",
            "",
            f"`python -m benchmarks.fanout --rounds {rounds}`: members are TestClient "
            f"connections; per round and variant "
            + ", ".join(f"{broadcasts or max(2, 20_000 // n)} broadcasts to {n:,}" for n in sizes)
            + f"; variants and gc modes alternated and rotated each round; {elapsed:.0f} s "
            f"in all (connecting the members: {'; '.join(setups)}).",
            "",
            f"Message: `{encode(MSG).decode()}` (data: 64 bytes).",
            "",
            "Every cell: median (min-max) over the rounds.",
            "",
            table,
            "",
            "enqueue: the sending task's time per member. drained: until every member's "
            "writer handed the frame to ASGI send. gc ms: collector time within drain ms. "
            "speedup: naive time / variant time in the same round. gc frozen: gc.freeze() "
            "after connecting (unfrozen after the round); tuned: frozen and "
            f"gc.set_threshold{TUNED_THRESHOLDS}.",
            "",
            environment(),
            "",
        ]
    )
    publish("fanout.md", report, out)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--broadcasts", type=int, default=None, help="per variant per round")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    run(args.rounds, args.sizes, args.broadcasts, out=not args.no_write)


if __name__ == "__main__":
    main()
