"""wsgate's Socket.IO server against python-socketio, under real servers.

Targets: python-socketio (``AsyncServer`` + ``ASGIApp``) on hypercorn's asyncio worker
(the only kind it runs on), wsgate's Socket.IO on hypercorn asyncio, and wsgate's
Socket.IO on hypercorn's trio worker; the apps are ``benchmarks/peers/socketio_app.py``
and ``benchmarks/peers/wsgate_socketio_app.py`` (the same events). The load client is
:mod:`benchmarks.loadgen` with ``--sio`` (Socket.IO over the WebSocket transport), in its
own process. Targets are alternated round by round and every ratio is computed within
a round, against python-socketio's run of the same round.

- **acked round trips**: N connections each emit ``echo`` with an ack id and emit the
  next as soon as the ack came (a closed loop); *x python-socketio* = round trips/s over
  python-socketio's. Measured with the load generator's own client and with the
  ``websockets`` client (``CLIENTS``), and against a floor on each server: a bare ASGI
  app that answers the acked echo by slicing the frame (``bare:socketio_echo``), what
  the server itself costs.
- **fan-out**: 1,000 members of one room, one publisher keeping 4 ``publish`` events in
  flight, each re-emitted by the server to the room; *x python-socketio* = frames
  delivered/s over python-socketio's.
- *server µs* is the server process's CPU time per round trip / delivered frame, and
  *CPU x* python-socketio's over the target's (above 1: cheaper than python-socketio):
  on a loaded machine it moves less than the rates do.
- **memory**: a fresh server per measurement, 5,000 idle Socket.IO connections
  (namespace connected); KiB of server RSS per connection, and its ratio to
  python-socketio's.

Run: ``python -m benchmarks.socketio_bench [--quick] [--rounds N]`` (a few minutes; not
part of ``nox -s bench``); writes ``benchmarks/results/socketio.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

from benchmarks._common import environment, markdown_table, publish, rotated
from benchmarks.harness import ClientError, ServerError, serving
from benchmarks.servers_bench import ASYNCIO, TRIO, Collector, Target, _client, _memory_once

__all__ = ["main"]

SOCKETIO = Target("python-socketio", "benchmarks.peers.socketio_app:app", sio=True, trio=False)
WSGATE_SIO = Target("wsgate Socket.IO", "benchmarks.peers.wsgate_socketio_app:app", sio=True)
#: (server kind, target); the first is the reference of every ratio.
PAIRS = [(ASYNCIO, SOCKETIO), (ASYNCIO, WSGATE_SIO), (TRIO, WSGATE_SIO)]
#: The floor of the acked round trips on each server (echo only).
BARE_SIO = Target("bare ASGI Socket.IO echo", "benchmarks.peers.bare:socketio_echo", sio=True)
FLOORS = [(ASYNCIO, BARE_SIO), (TRIO, BARE_SIO)]
REFERENCE = (ASYNCIO, SOCKETIO.label)
#: The load clients of the acked round trips: the load generator's own (about a third of
#: the ``websockets`` client's CPU per round trip, which matters when client and server
#: share two cores) and the ``websockets`` asyncio client, as users' programs have it.
CLIENTS: dict[str, list[str]] = {"raw": [], "websockets": ["--check"]}


def _ratios(
    got: dict[tuple[str, str], float | None], inverse: bool = False
) -> dict[tuple[str, str], float | None]:
    """Each value over the reference's (``inverse``: the reference's over each value, for
    costs, so that above 1 means better than python-socketio either way)."""
    ref = got.get(REFERENCE)
    if inverse:
        return {k: (ref / v if v and ref is not None else None) for k, v in got.items()}
    return {k: (v / ref if v is not None and ref else None) for k, v in got.items()}


def bench_load(
    rounds: int,
    duration: float,
    warmup: float,
    conns: Sequence[int],
    members: int,
    fanout: bool = True,
) -> tuple[Collector, Collector]:
    echo, fan = Collector(), Collector()
    with serving((k, t.app) for k, t in PAIRS + FLOORS) as servers:
        everything = list(zip(PAIRS + FLOORS, servers, strict=True))
        pairs = everything[: len(PAIRS)]
        for r in range(rounds):
            for n, client in [(n, c) for c in CLIENTS for n in conns]:
                got: dict[tuple[str, str], float | None] = {}
                cpu: dict[tuple[str, str], float | None] = {}
                for (kind, t), s in rotated(everything, r + n):
                    args: list[Any] = ["echo", "--conns", n, "--warmup", warmup]
                    args += ["--duration", duration, "--sio", *CLIENTS[client]]
                    res = _client(s, args, warmup + duration + 60, echo)
                    got[(kind, t.label)] = res["rate"] if res else None
                    cpu[(kind, t.label)] = res["server_cpu_us"] if res else None
                cpu_ratios = _ratios(cpu, inverse=True)
                for key, ratio in _ratios(got).items():
                    echo.add(
                        (*key, n, client),
                        rate=got[key],
                        ratio=ratio,
                        cpu=cpu[key],
                        cpu_ratio=cpu_ratios[key],
                    )
                print(
                    f"  acked round trips, {n} conns, {client} client, round {r + 1}: {got}",
                    flush=True,
                )
            if not fanout:
                continue
            got = {}
            cpu = {}
            for (kind, t), s in rotated(pairs, r):
                args = ["fanout", "--members", members, "--size", 64, "--window", 4]
                args += ["--duration", duration, "--warmup", warmup, "--sio"]
                res = _client(s, args, duration + 90, fan)
                got[(kind, t.label)] = res["rate"] if res else None
                cpu[(kind, t.label)] = res["server_cpu_us"] if res else None
                time.sleep(0.2)  # let the server finish closing the connections
            cpu_ratios = _ratios(cpu, inverse=True)
            for key, ratio in _ratios(got).items():
                fan.add(
                    (*key, members),
                    rate=got[key],
                    ratio=ratio,
                    cpu=cpu[key],
                    cpu_ratio=cpu_ratios[key],
                )
            print(f"  fan-out, round {r + 1}: {got}", flush=True)
    return echo, fan


def bench_memory(rounds: int, conns: int) -> Collector:
    col = Collector()
    for r in range(rounds):
        got: dict[tuple[str, str], float | None] = {}
        for kind, t in rotated(PAIRS, r):
            try:
                got[(kind, t.label)] = _memory_once(kind, t, conns, 100, 1.0)
            except (ClientError, ServerError) as exc:
                print(f"  FAILED: {kind} {t.label}: {exc}", flush=True)
                col.failures.append(f"memory {kind} {t.label}: {str(exc)[:200]}")
                got[(kind, t.label)] = None
        for key, ratio in _ratios(got).items():
            per = got[key]
            col.add(key, kib=per / 1024 if per is not None else None, ratio=ratio)
        print(f"  memory, round {r + 1}: {got}", flush=True)
    return col


def _med(values: list[Any]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "failed"
    m = statistics.median(vals)
    return f"{m:,.2f} ({min(vals):,.2f}-{max(vals):,.2f})" if m < 100 else f"{m:,.0f}"


def goals(echo: Collector) -> list[str]:
    """The goals table: acked round trips on hypercorn asyncio at least 2x
    python-socketio's in every round (judged on the smallest ratio), and on hypercorn
    trio at least python-socketio's rate (judged on the median)."""
    rows = []
    for (kind, label, n, client), v in echo.rows.items():
        if label != WSGATE_SIO.label:
            continue
        ratios = [x for x in v["ratio"] if x is not None]
        if not ratios:
            continue
        if kind == ASYNCIO:
            goal, judged, what = ">= 2.0 in every round", min(ratios), "smallest"
            met = judged >= 2.0
        else:
            goal, judged, what = ">= 1.0", statistics.median(ratios), "median"
            met = judged >= 1.0
        figure = (
            f"acked round trips, {kind}, {n} conns, {client} client: "
            "rate over python-socketio's on hypercorn-asyncio"
        )
        measured = f"{judged:.2f} ({what}; {min(ratios):.2f}-{max(ratios):.2f})"
        rows.append([figure, goal, measured, "yes" if met else "**no**"])
    if not rows:
        return ["(not measured in this run)"]
    intro = "*measured*: the value judged, then the range over the rounds."
    return [intro, "", markdown_table(["figure", "goal", "measured", "met"], rows)]


def render(echo: Collector, fan: Collector, mem: Collector, settings: dict[str, Any]) -> str:
    out = [
        "# wsgate Socket.IO vs python-socketio",
        "",
        environment(),
        "",
        f"Settings: {settings}. Medians (min-max) over the rounds; ratios within each round "
        "against python-socketio on hypercorn asyncio.",
        "",
        "## Goals",
        "",
        *goals(echo),
        "",
        "## Acked round trips",
        "",
    ]

    def rate_rows(table: Any) -> list[list[str]]:
        return [
            [
                f"{k[0]}, {k[1]}",
                *map(str, k[2:]),
                _med(v["rate"]),
                _med(v["ratio"]),
                _med(v["cpu"]),
                _med(v["cpu_ratio"]),
            ]
            for k, v in table.rows.items()
        ]

    head = ["target", "conns", "client", "round trips/s", "x python-socketio", "server µs/rt"]
    out.append(markdown_table([*head, "CPU x"], rate_rows(echo)))
    out += ["", "## Fan-out to one room", ""]
    head = ["target", "members", "frames/s", "x python-socketio", "server µs/frame", "CPU x"]
    out.append(markdown_table(head, rate_rows(fan)))
    out += ["", "## Memory per idle connection", ""]
    rows = [[f"{k[0]}, {k[1]}", _med(v["kib"]), _med(v["ratio"])] for k, v in mem.rows.items()]
    out.append(markdown_table(["target", "KiB/conn", "of python-socketio's"], rows))
    failures = echo.failures + fan.failures + mem.failures
    if failures:
        out += ["", "Failures:", "", *[f"- {f}" for f in failures]]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.socketio_bench")
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--only", choices=("echo", "fanout", "memory"), default=None, help="one part only"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    duration, warmup = (0.5, 0.3) if args.quick else (1.0, 0.5)
    conns = (16, 256)
    members = 1000
    mem_conns = 1000 if args.quick else 5000
    echo, fan, mem = Collector(), Collector(), Collector()
    if args.only in (None, "echo", "fanout"):
        echo, fan = bench_load(
            rounds,
            duration,
            warmup,
            conns if args.only != "fanout" else (),
            members,
            fanout=args.only != "echo",
        )
    if args.only in (None, "memory"):
        mem = bench_memory(max(1, rounds - 1), mem_conns)
    settings = {
        "rounds": rounds,
        "duration s": duration,
        "conns": list(conns),
        "members": members,
        "idle conns": mem_conns,
    }
    publish("socketio.md", render(echo, fan, mem, settings), not args.no_write)


if __name__ == "__main__":
    main()
