"""wsgate side by side with its peers, under real servers: echo, fan-out, a slow
consumer, memory per idle connection.

Every target app (``benchmarks/peers/``) runs under a real server in its own process on
127.0.0.1 (``benchmarks/_serve.py``: hypercorn's trio worker, hypercorn's asyncio worker,
uvicorn), and is driven by the load client (``benchmarks/loadgen.py``) in another
process. The targets of one comparison are started together and alternated round by
round (A B C, then B C A, ...); every ratio is computed *within a round*, between runs
a few seconds apart, so that a noisy neighbour on this shared 2-core machine slows both
sides of a ratio. Tables give the median and the min-max over the rounds.

How to read the figures
-----------------------

**Echo** (``echo``): N connections (16 and 256) each send
``{"event":"echo","data":{"room":"lobby","text":"hello world","n":42},"id":n}`` and
send the next one as soon as the reply came (a closed loop; every reply is decoded and
its ``id`` and ``data`` checked). *round trips/s* over the measured window, *ratio to
floor* = that / the bare ASGI echo on the same server in the same round (1.0: the
framework costs nothing; the server's own WebSocket code is the floor), *server µs/rt*
= server CPU time (``/proc/PID/stat`` utime+stime) per round trip, *client CPU* = the
load client's share of a core (near 1.0 would mean the client, not the server, limits).
With 16 connections client and server partly wait on each other; 256 keep the server
busy.

**Fan-out** (``broadcast``): 1,000 subscribed connections and one publisher. The
publisher keeps a *window* of 4 or 8 broadcasts in flight (a new one as soon as every
member received an older one) of a tick whose ``data`` encodes to 64 or 256 bytes (every
size with every window) and carries its send time
(``time.monotonic_ns``, one clock: publisher and members are in the same client
process). Before the window, every run broadcasts the same way for up to 1 s (or until
64 KiB went to each member): a steady state, and the stalled member (below) has its
buffers full when the window opens. *delivered/s* = frames received by the members in
the window; *p99 ms* = 99th percentile of (receive time - send time) over those frames:
latency under saturation, queueing behind up to window - 1 earlier broadcasts included; *server
µs/frame* = server CPU per delivered frame. *x python-socketio* = delivered/s over
python-socketio's (on hypercorn asyncio, the only server it runs on) in the same round;
*CPU vs naive* = server µs/frame over the Starlette naive loop's on the same server in
the same round (below 1.0: cheaper per frame).

**Slow consumer** (``broadcast``): the same fan-out with one more member, a raw socket
with ``SO_RCVBUF`` = 4 KiB that completes the handshake and never reads, with 64-byte
and 2 KiB ticks at window 4 (the 64-byte run without it is also the fan-out run of that
case). *others keep* = delivered/s to the 1,000 readers with the stalled member / without
it (same target, same round, adjacent runs). *peak RSS* = the server's VmHWM over the run
(reset through ``/proc/PID/clear_refs`` before it), and its difference to the run without
the stalled member. hypercorn's trio worker blocks a send once about 16 KiB are unsent
(trio sets TCP_NOTSENT_LOWAT), its asyncio worker only after megabytes of kernel buffer:
within these short runs only the 2 KiB ticks on trio stall a naive loop (64-byte ticks
would need minutes).

**Fan-out start** (``fanout-start``): the fan-out above (1,000 members, 256-byte ticks,
window 8), wsgate and Starlette's naive loop, from two starts alternated in each round:
*primed* as above, and *unprimed*: no broadcast before the window, 100 broadcasts with 8
in flight from the first frame to members that never received one, all of it measured.
*CPU vs naive* as above, per start. The primed start alone once hid a 1.85x gap on
hypercorn's trio worker (every member's writer started at once, then kept running).

**Memory** (``memory``): a fresh server per measurement; 100 connections are opened
(warm-up), RSS of the server's process tree is read, 5,000 more are opened and left
idle (Socket.IO: namespace connected), and after a 1 s settle RSS is read again.
*KiB/conn* = the difference / 5,000; *over bare* = that minus the bare ASGI app's on the
same server in the same round.

Loopback caveat: a ``send()`` to a client that sleeps in ``epoll_wait`` costs the server
the wake-up; how often the client sleeps shifts the server's cost per frame (on hypercorn
asyncio the fan-out moves between about 42k and 64k frames/s with one more connection
the client never reads, stalled or not). Ratios near 1 within ±0.1 are noise, not
effects; ``benchmarks/profile_server.py`` (py-spy) shows where the server's CPU goes.

The servers run with Python's default garbage collector settings unless
``BENCH_SERVER_GC`` says otherwise (``benchmarks/_serve.py``); the fan-out results record
it, and the CPU goal is judged only with the default.

Run: ``python -m benchmarks.servers_bench {echo,broadcast,memory,fanout-start} [--quick]`` (or
``python -m benchmarks`` for everything); each writes ``results/peers-<name>.json`` and
regenerates ``results/peers.md`` and ``results/peers.png`` (:mod:`benchmarks.report`);
``--out DIR`` writes all of these to DIR instead, ``--no-write`` nowhere.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks._common import RESULTS, rotated
from benchmarks.harness import ClientError, IdleClient, Server, ServerError, run_client, serving

__all__ = ["BENCHMARKS", "main", "run_broadcast", "run_echo", "run_fanout_start", "run_memory"]

TRIO, ASYNCIO, UVICORN = "hypercorn-trio", "hypercorn-asyncio", "uvicorn"


@dataclass(frozen=True)
class Target:
    label: str
    app: str
    sio: bool = False
    trio: bool = True  # runs on hypercorn's trio worker

    def runs_on(self, kind: str) -> bool:
        return self.trio or kind != TRIO


FLOOR = Target("bare ASGI echo", "benchmarks.peers.bare:echo")
BARE_JSON = Target("bare ASGI + JSON", "benchmarks.peers.bare:json_echo")
WSGATE = Target("wsgate", "benchmarks.peers.wsgate_app:app")
STARLETTE = Target("Starlette", "benchmarks.peers.starlette_app:app")
LITESTAR = Target("Litestar", "benchmarks.peers.litestar_app:app")
# python-socketio's ASGI app and AsyncServer are asyncio only.
SOCKETIO = Target("python-socketio", "benchmarks.peers.socketio_app:app", sio=True, trio=False)

ECHO_TARGETS = (FLOOR, BARE_JSON, WSGATE, STARLETTE, LITESTAR, SOCKETIO)
FANOUT_TARGETS = (WSGATE, STARLETTE, SOCKETIO)
MEMORY_TARGETS = (FLOOR, WSGATE, STARLETTE, SOCKETIO)

Samples = dict[str, list[Any]]
#: where results go: results/ (True), nowhere (False), or that directory
Out = bool | Path


class Collector:
    """Per-round values, keyed by the row they belong to."""

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, ...], Samples] = {}
        self.failures: list[str] = []

    def add(self, key: tuple[Any, ...], **values: Any) -> None:
        row = self.rows.setdefault(key, {})
        for name, value in values.items():
            row.setdefault(name, []).append(value)

    def as_list(self, fields: Sequence[str]) -> list[dict[str, Any]]:
        return [{**dict(zip(fields, key, strict=True)), **v} for key, v in self.rows.items()]


def _client(
    server: Server, args: list[Any], timeout: float, col: Collector
) -> dict[str, Any] | None:
    """One client run; a failure is recorded (and the server restarted if it died)."""
    try:
        return run_client(
            [*args[:1], "--port", server.port, "--server-pid", server.pid, *args[1:]], timeout
        )
    except (ClientError, ServerError) as exc:
        msg = f"{server.kind} {server.app} {' '.join(map(str, args))}: {exc}"
        print(f"  FAILED: {msg[:2000]}", flush=True)
        col.failures.append(msg.splitlines()[0][:300])
        if not server.alive():
            server.stop()
            server.start()
        return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _write(name: str, data: dict[str, Any], out: Out) -> None:
    """Write ``peers-<name>.json`` to results/ (``out`` True), to the directory ``out``,
    or nowhere (False)."""
    if out is False:
        return
    folder = RESULTS if out is True else Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"peers-{name}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"written to {path}")


def _meta(name: str, settings: dict[str, Any], started: float, col: Collector) -> dict[str, Any]:
    return {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(time.perf_counter() - started),
        "settings": settings,
        "machine": report.machine(),
        "failures": col.failures,
    }


def _log_errors(servers: Sequence[Server], col: Collector) -> None:
    for s in servers:
        n = s.errors_logged()
        if n:
            col.failures.append(f"{s.kind} {s.app}: {n} tracebacks in {s.log}")


# --------------------------------------------------------------------------- echo


def run_echo(
    rounds: int = 3,
    duration: float = 1.0,
    warmup: float = 0.25,
    conns: Sequence[int] = (16, 256),
    kinds: Sequence[str] = (TRIO, ASYNCIO, UVICORN),
    *,
    out: Out = True,
) -> dict[str, Any]:
    """Echo round trips/s per server kind and concurrency, ratios to the bare floor."""
    started = time.perf_counter()
    col = Collector()
    timeout = warmup + duration + 60
    for kind in kinds:
        targets = [t for t in ECHO_TARGETS if t.runs_on(kind)]
        with serving((kind, t.app) for t in targets) as servers:
            pairs = list(zip(targets, servers, strict=True))
            for r in range(rounds):
                for n in conns:
                    got: dict[str, dict[str, Any] | None] = {}
                    for t, s in rotated(pairs, r + n):
                        args: list[Any] = ["echo", "--conns", n, "--warmup", warmup]
                        args += ["--duration", duration, *(["--sio"] if t.sio else [])]
                        got[t.label] = _client(s, args, timeout, col)
                    floor = got[FLOOR.label]
                    starlette = got[STARLETTE.label]
                    for t in targets:
                        res = got[t.label]
                        if res is None:
                            continue
                        col.add(
                            (kind, n, t.label),
                            rate=res["rate"],
                            ratio=_ratio(res["rate"], floor and floor["rate"]),
                            vs_starlette=_ratio(res["rate"], starlette and starlette["rate"]),
                            server_cpu_us=res["server_cpu_us"],
                            server_cpu=res["server_cpu"],
                            client_cpu=res["client_cpu"],
                        )
                    print(
                        f"  echo {kind} {n} conns, round {r + 1}/{rounds}: "
                        + ", ".join(
                            f"{k} {v['rate']:,.0f}" if v else f"{k} failed" for k, v in got.items()
                        ),
                        flush=True,
                    )
            _log_errors(servers, col)
    settings = {"rounds": rounds, "duration": duration, "warmup": warmup, "conns": list(conns)}
    data = {
        **_meta("echo", settings, started, col),
        "rows": col.as_list(["kind", "conns", "target"]),
    }
    _write("echo", data, out)
    return data


# --------------------------------------------------------------------------- fan-out


def run_broadcast(
    rounds: int = 3,
    duration: float = 1.0,
    members: int = 1000,
    sizes: Sequence[int] = (64, 256),
    windows: Sequence[int] = (4, 8),
    stall_sizes: Sequence[int] = (64, 2048),
    stall_window: int = 4,
    warmup: float = 1.0,
    kinds: Sequence[str] = (TRIO, ASYNCIO),
    *,
    out: Out = True,
) -> dict[str, Any]:
    """Fan-out without a stalled member for every size x window, and the slow-consumer
    pairs (with and without the stalled member) for every ``stall_sizes`` at
    ``stall_window``; every (server, target) alternated in each run of a round."""
    started = time.perf_counter()
    col = Collector()
    timeout = duration + 90
    pairs_spec = [(k, t) for k in kinds for t in FANOUT_TARGETS if t.runs_on(k)]
    peak_reset = True  # VmHWM could be reset before every run
    cases = _broadcast_cases(sizes, windows, stall_sizes, stall_window)
    with serving((k, t.app) for k, t in pairs_spec) as servers:
        pairs = [(k, t, s) for (k, t), s in zip(pairs_spec, servers, strict=True)]
        for r in range(rounds):
            for size, window, stalls in cases:
                got: dict[tuple[str, str, bool], dict[str, Any] | None] = {}
                for kind, t, s in rotated(pairs, r):
                    for stall in stalls if r % 2 == 0 else stalls[::-1]:
                        args: list[Any] = ["fanout", "--members", members, "--size", size]
                        args += ["--window", window, "--duration", duration]
                        args += ["--warmup", warmup]
                        args += [*(["--sio"] if t.sio else []), *(["--stall"] if stall else [])]
                        peak_reset &= s.reset_peak_rss()
                        rss0 = s.rss()
                        res = _client(s, args, timeout, col)
                        if res is not None:
                            res["peak_rss"] = s.peak_rss()
                            res["rss0"] = rss0
                        got[(kind, t.label, stall)] = res
                        time.sleep(0.2)  # let the server finish closing the connections
                _record_broadcast(col, got, size, window, pairs)
                _print_round(
                    f"broadcast {size} B, window {window}, round {r + 1}/{rounds}",
                    {(k, t, " +stall" if st else ""): v for (k, t, st), v in got.items()},
                    lambda v: f"{v['rate']:,.0f}/s",
                )
        _log_errors(servers, col)
    settings = {
        "rounds": rounds,
        "duration": duration,
        "members": members,
        "sizes": list(sizes),
        "windows": list(windows),
        "stall sizes": list(stall_sizes),
        "stall window": stall_window,
        "warmup": warmup,
        "peak RSS reset per run": peak_reset,
        "server GC": os.environ.get("BENCH_SERVER_GC") or "default",
    }
    data = {
        **_meta("broadcast", settings, started, col),
        "rows": col.as_list(["kind", "target", "size", "window", "stall"]),
    }
    _write("broadcast", data, out)
    return data


def _print_round(
    title: str,
    got: dict[tuple[str, str, str], dict[str, Any] | None],
    fmt: Callable[[dict[str, Any]], str],
) -> None:
    """One progress line: each (server, target, suffix) and its figure, or "failed"."""
    cells = (f"{k[10:]} {t}{x} " + (fmt(v) if v else "failed") for (k, t, x), v in got.items())
    print(f"  {title}: " + ", ".join(cells), flush=True)


def _broadcast_cases(
    sizes: Sequence[int], windows: Sequence[int], stall_sizes: Sequence[int], stall_window: int
) -> list[tuple[int, int, tuple[bool, ...]]]:
    """(size, window, stall values) of each run of a round: one run without the stalled
    member per size x window, one with it per stall size (at ``stall_window``, next to
    the run without it, which serves the fan-out table too when the size is in both)."""
    cases: dict[tuple[int, int], tuple[bool, ...]] = {}
    for window in windows:
        for size in sizes:
            cases[(size, window)] = (False,)
    for size in stall_sizes:
        cases[(size, stall_window)] = (False, True)
    return [(size, window, stalls) for (size, window), stalls in cases.items()]


def _record_broadcast(
    col: Collector,
    got: dict[tuple[str, str, bool], dict[str, Any] | None],
    size: int,
    window: int,
    pairs: Sequence[tuple[str, Target, Server]],
) -> None:
    sio = got.get((ASYNCIO, SOCKETIO.label, False))
    for kind, t, _ in pairs:
        for stall in (False, True):
            res = got.get((kind, t.label, stall))
            if res is None:
                continue
            base = got.get((kind, t.label, False))
            naive = got.get((kind, STARLETTE.label, stall))
            mib = 1 << 20
            col.add(
                (kind, t.label, size, window, stall),
                rate=res["rate"],
                p50_ms=res["p50_ms"],
                p99_ms=res["p99_ms"],
                server_cpu_us=res["server_cpu_us"],
                server_cpu=res["server_cpu"],
                client_cpu=res["client_cpu"],
                lost=res["lost"],
                vs_socketio=_ratio(res["rate"], sio and sio["rate"]),
                cpu_vs_naive=_ratio(res["server_cpu_us"], naive and naive["server_cpu_us"]),
                vs_no_stall=_ratio(res["rate"], base and base["rate"]),
                peak_rss_mb=res["peak_rss"] / mib,
                peak_rss_delta_mb=(res["peak_rss"] - base["peak_rss"]) / mib if base else None,
            )


# --------------------------------------------------------------------------- fan-out start

START_TARGETS = (WSGATE, STARLETTE)


def run_fanout_start(
    rounds: int = 3,
    members: int = 1000,
    size: int = 256,
    window: int = 8,
    broadcasts: int = 100,
    duration: float = 1.0,
    warmup: float = 1.0,
    kinds: Sequence[str] = (TRIO, ASYNCIO),
    *,
    out: Out = True,
) -> dict[str, Any]:
    """Fan-out measured from two starts, wsgate against Starlette's naive loop:
    *primed* (as :func:`run_broadcast`: one broadcast reaches everyone, then a warm-up,
    then the measured window) and *unprimed* (``broadcasts`` broadcasts with ``window``
    in flight from the very first frame, to members that never received one, all of it
    measured). A runtime whose cost depends on how the fan-out starts shows it here."""
    started = time.perf_counter()
    col = Collector()
    timeout = duration + warmup + 120
    pairs_spec = [(k, t) for k in kinds for t in START_TARGETS if t.runs_on(k)]
    starts = ("primed", "unprimed")
    with serving((k, t.app) for k, t in pairs_spec) as servers:
        pairs = [(k, t, s) for (k, t), s in zip(pairs_spec, servers, strict=True)]
        for r in range(rounds):
            got: dict[tuple[str, str, str], dict[str, Any] | None] = {}
            for start in rotated(starts, r):
                for kind, t, s in rotated(pairs, r):
                    args: list[Any] = ["fanout", "--members", members, "--size", size]
                    args += ["--window", window]
                    if start == "unprimed":
                        args += ["--unprimed", "--broadcasts", broadcasts]
                    else:
                        args += ["--duration", duration, "--warmup", warmup]
                    got[(kind, t.label, start)] = _client(s, args, timeout, col)
                    time.sleep(0.2)  # let the server finish closing the connections
            for (kind, label, start), res in got.items():
                if res is None:
                    continue
                naive = got.get((kind, STARLETTE.label, start))
                col.add(
                    (kind, label, start),
                    rate=res["rate"],
                    p99_ms=res["p99_ms"],
                    server_cpu_us=res["server_cpu_us"],
                    lost=res["lost"],
                    cpu_vs_naive=_ratio(res["server_cpu_us"], naive and naive["server_cpu_us"]),
                )
            _print_round(
                f"fan-out start, round {r + 1}/{rounds}",
                {(k, t, f" {start}"): v for (k, t, start), v in got.items()},
                lambda v: f"{v['server_cpu_us']:.1f} µs/frame",
            )
        _log_errors(servers, col)
    settings = {
        "rounds": rounds,
        "members": members,
        "size": size,
        "window": window,
        "unprimed broadcasts": broadcasts,
        "primed duration": duration,
        "primed warmup": warmup,
        "server GC": os.environ.get("BENCH_SERVER_GC") or "default",
    }
    data = {
        **_meta("fanout-start", settings, started, col),
        "rows": col.as_list(["kind", "target", "start"]),
    }
    _write("fanout-start", data, out)
    return data


# --------------------------------------------------------------------------- memory


def run_memory(
    rounds: int = 2,
    conns: int = 5000,
    warm: int = 100,
    settle: float = 1.0,
    kinds: Sequence[str] = (TRIO, ASYNCIO),
    *,
    out: Out = True,
) -> dict[str, Any]:
    """RSS per idle connection, a fresh server per measurement."""
    started = time.perf_counter()
    col = Collector()
    pairs = [(k, t) for k in kinds for t in MEMORY_TARGETS if t.runs_on(k)]
    for r in range(rounds):
        got: dict[tuple[str, str], float] = {}
        for kind, t in rotated(pairs, r):
            try:
                got[(kind, t.label)] = _memory_once(kind, t, conns, warm, settle)
            except (ClientError, ServerError) as exc:
                print(f"  FAILED: {kind} {t.label}: {exc}", flush=True)
                col.failures.append(f"memory {kind} {t.label}: {str(exc).splitlines()[0][:300]}")
        for kind, t in pairs:
            per = got.get((kind, t.label))
            if per is None:
                continue
            bare = got.get((kind, FLOOR.label))
            col.add(
                (kind, t.label), kib=per / 1024, over_bare=(per - bare) / 1024 if bare else None
            )
        print(
            f"  memory round {r + 1}/{rounds}: "
            + ", ".join(f"{k[0][10:]} {k[1]} {v / 1024:.1f} KiB" for k, v in got.items()),
            flush=True,
        )
    settings = {"rounds": rounds, "conns": conns, "warm": warm, "settle": settle}
    data = {**_meta("memory", settings, started, col), "rows": col.as_list(["kind", "target"])}
    _write("memory", data, out)
    return data


def _memory_once(kind: str, t: Target, conns: int, warm: int, settle: float) -> float:
    """Bytes of server RSS per idle connection."""
    with serving([(kind, t.app)]) as (server,):
        args: list[Any] = ["--port", server.port, "--warm", warm, "--conns", conns]
        with IdleClient([*args, *(["--sio"] if t.sio else [])]) as client:
            client.wait_ready(120)
            time.sleep(settle / 2)
            before = _steady_rss(server)
            client.proceed()
            opened = client.wait_ready(300)
            if opened != warm + conns:
                raise ClientError(f"opened {opened} connections, not {warm + conns}")
            time.sleep(settle)
            after = _steady_rss(server)
            result = client.finish(60)
            if result["lost"]:
                raise ClientError(f"{result['lost']} connections were closed by the server")
        return (after - before) / conns


def _steady_rss(server: Server) -> int:
    samples = []
    for _ in range(3):
        samples.append(server.rss())
        time.sleep(0.1)
    return sorted(samples)[1]


# --------------------------------------------------------------------------- main

BENCHMARKS: dict[str, tuple[Callable[..., dict[str, Any]], dict[str, Any], dict[str, Any]]] = {
    # name: (run, default options, --quick options)
    "echo": (run_echo, {}, {"rounds": 1, "duration": 0.5, "warmup": 0.2}),
    "broadcast": (run_broadcast, {}, {"rounds": 1, "duration": 0.7, "warmup": 0.5}),
    "memory": (run_memory, {}, {"rounds": 1, "conns": 1000}),
    "fanout-start": (run_fanout_start, {}, {"rounds": 1, "duration": 0.7, "warmup": 0.5}),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.servers_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("names", nargs="*", metavar="name", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--no-write", action="store_true", help="print only")
    where.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the JSON, peers.md and peers.png to DIR instead of results/",
    )
    args = parser.parse_args(argv)
    out: Out = False if args.no_write else (args.out or True)
    for name in args.names or BENCHMARKS:
        fn, options, quick = BENCHMARKS[name]
        opts = dict(quick if args.quick else options)
        if args.rounds is not None:
            opts["rounds"] = args.rounds
        print(f"== {name}", flush=True)
        fn(**opts, out=out)
    if out is not False:
        print(report.write(RESULTS if out is True else out))


if __name__ == "__main__":
    main()
