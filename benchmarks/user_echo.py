"""Echo measured the way users run it: ``python -m benchmarks.user_echo``.

Each server is started as a fresh process from its own command line with its defaults
(``uvicorn MODULE:APP --ws-per-message-deflate false``; ``hypercorn -k trio MODULE:APP``
and ``-k asyncio``: the ``*-cli`` kinds of :mod:`benchmarks._serve`), and driven by the
``websockets`` asyncio client (what users test with) in a separate process, on
127.0.0.1 only. The targets, all from ``benchmarks/peers/``: the bare ASGI echo (the
floor), Starlette's JSON ``WebSocketEndpoint`` and wsgate's typed echo gateway.

A run starts one fresh server per target; the client opens N connections
(``compression=None``: hypercorn accepts permessage-deflate whenever it is offered) to
each, then runs ``--cycles`` cycles in which every target in turn (the order rotates)
gets a burst of ``--burst`` round trips: each connection sends
``{"event":"echo","data":{"room":"lobby","text":"hello world","n":42},"id":n}`` and
the next one as soon as the reply came (one frame in flight per connection; every
reply's ``id`` and ``data`` are checked). Alternating bursts a fraction of a second
long means a neighbour's load on this shared machine slows every target alike; one
target after the other (``--sequential``, the way the gap of issue 15 was first
measured) lets it land on one of them. Every wait is bounded (``--timeout`` per burst).

Reported per target: *round trips/s*, *server µs/rt* (the server process tree's utime +
stime from ``/proc/PID/stat`` per round trip) and *client µs/rt* (the client's own CPU),
for the *cold* burst (the first after the server started) and *warm* (all the others),
as medians over the runs, and *ratio to floor* (round trips/s over the bare echo's in
the same run). ``--client raw`` drives the same servers with the project's raw load
client (:mod:`benchmarks.loadgen`, a window of ``--raw-seconds`` per burst) instead,
``--launch inprocess`` starts them with ``benchmarks._serve``'s in-process servers
instead of their command lines: the two differences between this benchmark and the
``echo`` of :mod:`benchmarks.servers_bench`.

Run: ``python -m benchmarks.user_echo [--servers uvicorn-cli ...] [--runs 3]
[--cycles 30] [--burst 800]``; writes ``results/user-echo-latest.md`` and
``results/user-echo.json`` (``--out DIR``, ``--no-write``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks._common import RESULTS, publish, write_result
from benchmarks._proc import cpu_seconds
from benchmarks.harness import ROOT, Server, _env, run_client, serving

HOST = "127.0.0.1"
DATA = {"room": "lobby", "text": "hello world", "n": 42}
TARGETS = {
    "bare": "benchmarks.peers.bare:echo",
    "starlette": "benchmarks.peers.starlette_app:app",
    "wsgate": "benchmarks.peers.wsgate_app:app",
}
#: Bursts per target and run, round trips per burst: bursts of a fraction of a second,
#: so that a neighbour's load on a shared machine falls on every target alike.
CYCLES, BURST = 30, 800
CLI_SERVERS = ("uvicorn-cli", "hypercorn-cli-trio", "hypercorn-cli-asyncio")
#: The in-process twin of each command-line server (``--launch inprocess``).
INPROCESS = {
    "uvicorn-cli": "uvicorn",
    "hypercorn-cli-trio": "hypercorn-trio",
    "hypercorn-cli-asyncio": "hypercorn-asyncio",
}


# --------------------------------------------------------------------------- the client


def _own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _client(
    targets: dict[str, tuple[int, int]], conns: int, cycles: int, burst: int, timeout: float
) -> dict[str, list[dict[str, float]]]:
    """Connect ``conns`` sockets to every target, then run ``cycles`` cycles; in each,
    every target in turn (the order rotates) gets a burst of ``burst`` round trips.
    Per target and cycle: seconds, round trips, server CPU seconds."""
    from websockets.asyncio.client import connect

    text = json.dumps(DATA, separators=(",", ":"))
    sockets: dict[str, list[Any]] = {}
    async with asyncio.timeout(timeout):
        for name, (port, _) in targets.items():
            url = f"ws://{HOST}:{port}/echo"
            sockets[name] = [await connect(url, compression=None) for _ in range(conns)]
    bad = 0
    seq = 0

    async def one(ws: Any, n: int) -> None:
        nonlocal bad, seq
        for _ in range(n):
            seq += 1
            i = seq
            await ws.send(f'{{"event":"echo","data":{text},"id":{i}}}')
            reply = json.loads(await ws.recv())
            if reply.get("id") != i or reply.get("data") != DATA:
                bad += 1

    names = list(targets)
    out: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    per = max(1, burst // conns)
    try:
        for c in range(cycles):
            k = c % len(names)
            for name in names[k:] + names[:k]:
                pid = targets[name][1]
                t0, s0, u0 = time.perf_counter(), cpu_seconds(pid), _own_cpu()
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(one(ws, per) for ws in sockets[name]))
                t1, s1, u1 = time.perf_counter(), cpu_seconds(pid), _own_cpu()
                out[name].append(
                    {"seconds": t1 - t0, "trips": per * conns, "cpu": s1 - s0, "client": u1 - u0}
                )
    finally:
        for group in sockets.values():
            for ws in group:
                await ws.close()
    if bad:
        raise RuntimeError(f"{bad} bad replies")
    return out


def client_main(argv: Sequence[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.user_echo client")
    p.add_argument("targets", nargs="+", help="NAME=PORT:PID")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--cycles", type=int, default=CYCLES)
    p.add_argument("--burst", type=int, default=BURST)
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args(argv)
    targets = {}
    for spec in a.targets:
        name, _, addr = spec.partition("=")
        port, _, pid = addr.partition(":")
        targets[name] = (int(port), int(pid))
    result = asyncio.run(_client(targets, a.conns, a.cycles, a.burst, a.timeout))
    print(json.dumps(result))


# --------------------------------------------------------------------------- the driver


def _websockets_client(servers: dict[str, Server], a: argparse.Namespace) -> Any:
    cmd = [sys.executable, "-m", "benchmarks.user_echo", "client"]
    cmd += [f"{name}={srv.port}:{srv.pid}" for name, srv in servers.items()]
    cmd += ["--conns", str(a.conns), "--cycles", str(a.cycles), "--burst", str(a.burst)]
    cmd += ["--timeout", str(a.timeout)]
    budget = a.timeout * a.cycles * len(servers) + 60
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, timeout=budget)
    if done.returncode:
        raise RuntimeError(done.stderr.decode(errors="replace")[-3000:])
    return json.loads(done.stdout.decode().splitlines()[-1])


def _raw_client(servers: dict[str, Server], a: argparse.Namespace) -> Any:
    """The project's raw client, one time window per target and cycle (its bursts are
    windows of ``--raw-seconds``, on a fresh client process each)."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    names = list(servers)
    for c in range(a.cycles):
        k = c % len(names)
        for name in names[k:] + names[:k]:
            srv = servers[name]
            args = ["echo", "--port", srv.port, "--server-pid", srv.pid, "--conns", a.conns]
            args += ["--warmup", 0, "--duration", a.raw_seconds]
            r = run_client(args, timeout=a.raw_seconds + 60)
            cpu = r["server_cpu_us"] * r["count"] / 1e6
            client = r["client_cpu"] * r["seconds"]
            out[name].append(
                {"seconds": r["seconds"], "trips": r["count"], "cpu": cpu, "client": client}
            )
    return out


def _phase(bursts: list[dict[str, float]]) -> dict[str, float]:
    seconds = sum(b["seconds"] for b in bursts)
    trips = sum(b["trips"] for b in bursts)
    return {
        "rate": trips / seconds,
        "server_cpu_us": sum(b["cpu"] for b in bursts) / trips * 1e6,
        "client_cpu_us": sum(b["client"] for b in bursts) / trips * 1e6,
    }


def measure(a: argparse.Namespace) -> dict[str, list[Any]]:
    """Per server: ``a.runs`` runs, each on a fresh process per target (all started
    together, driven in alternation by one client)."""
    results: dict[str, list[Any]] = {}
    for server in a.servers:
        kind = server if a.launch == "cli" else INPROCESS[server]
        results[kind] = []
        drive = _raw_client if a.client == "raw" else _websockets_client
        for i in range(a.runs):
            if a.sequential:
                run = {}
                for t in a.targets:
                    with serving([(kind, TARGETS[t])]) as (srv,):
                        run.update(drive({t: srv}, a))
            else:
                with serving([(kind, TARGETS[t]) for t in a.targets]) as started:
                    run = drive(dict(zip(a.targets, started, strict=True)), a)
            results[kind].append(run)
            line = "  ".join(
                f"{t} {_phase(run[t][1:])['rate']:6.0f}/s {_phase(run[t][1:])['server_cpu_us']:5.1f}µs"
                for t in a.targets
            )
            print(f"{kind:22} run {i + 1}: {line}", flush=True)
    return results


def per_run(results: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The figures of every run (cold burst, warm bursts) per server and target: what the
    JSON keeps, instead of every burst."""
    return {
        kind: [
            {t: {"cold": _phase(b[:1]), "warm": _phase(b[1:])} for t, b in run.items()}
            for run in runs
        ]
        for kind, runs in results.items()
    }


def summarize(results: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Per server and target: medians over the runs of the cold (first) burst and of the
    warm ones, with the ratio to the floor (the bare echo of the same run)."""
    rows = []
    for kind, runs in results.items():
        for target in runs[0]:
            row: dict[str, Any] = {"server": kind, "target": target}
            for phase, pick in (("cold", slice(0, 1)), ("warm", slice(1, None))):
                figures = [_phase(run[target][pick]) for run in runs]
                ratios = [
                    _phase(run[target][pick])["rate"] / _phase(run["bare"][pick])["rate"]
                    for run in runs
                    if "bare" in run
                ]
                row[phase] = {
                    "rate": statistics.median(f["rate"] for f in figures),
                    "server_cpu_us": statistics.median(f["server_cpu_us"] for f in figures),
                    "client_cpu_us": statistics.median(f["client_cpu_us"] for f in figures),
                    "ratio": statistics.median(ratios) if ratios else None,
                    "ratio_range": [min(ratios), max(ratios)] if ratios else None,
                }
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The summary as a markdown table."""
    lines = [
        "| server | target | cold rt/s | cold ratio | cold µs/rt | warm rt/s "
        "| warm ratio (min-max) | warm server µs/rt | warm client µs/rt |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c, w = r["cold"], r["warm"]
        lo, hi = w["ratio_range"] or (0, 0)
        lines.append(
            f"| {r['server']} | {r['target']} | {c['rate']:.0f} | {c['ratio']:.2f} "
            f"| {c['server_cpu_us']:.0f} | {w['rate']:.0f} | {w['ratio']:.2f} ({lo:.2f}-{hi:.2f}) "
            f"| {w['server_cpu_us']:.1f} | {w['client_cpu_us']:.1f} |"
        )
    return "\n".join(lines)


def run(
    servers: Sequence[str] = CLI_SERVERS,
    targets: Sequence[str] = tuple(TARGETS),
    client: str = "websockets",
    launch: str = "cli",
    conns: int = 16,
    runs: int = 3,
    cycles: int = CYCLES,
    burst: int = BURST,
    raw_seconds: float = 0.5,
    timeout: float = 60.0,
    sequential: bool = False,
    out: bool | Path = True,
) -> dict[str, Any]:
    """Measure, print the table and (``out``) write ``user-echo.json`` and
    ``user-echo-latest.md`` to ``benchmarks/results/`` (or to the directory ``out``)."""
    a = argparse.Namespace(
        servers=list(servers),
        targets=list(targets),
        client=client,
        launch=launch,
        conns=conns,
        runs=runs,
        cycles=cycles,
        burst=burst,
        raw_seconds=raw_seconds,
        timeout=timeout,
        sequential=sequential,
    )
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = report.machine()
    results = measure(a)
    rows = summarize(results)
    settings = vars(a)
    data = {
        "date": started,
        "machine": machine,
        "settings": settings,
        "summary": rows,
        "runs": per_run(results),
    }
    command = "python -m benchmarks.user_echo " + " ".join(
        f"--{k.replace('_', '-')}"
        + ("" if isinstance(v, bool) else " " + (" ".join(v) if isinstance(v, list) else str(v)))
        for k, v in settings.items()
        if v is not False
    )
    text = "\n\n".join(
        [
            "# Echo as users run it (generated)",
            f"{started}; `{command}`; {report.machine_line(machine)}.",
            "Medians over the runs; *ratio* = round trips/s over the bare echo's in the "
            "same run ("
            + ("one target after the other" if sequential else "targets alternated burst by burst")
            + "); µs/rt = CPU per round trip (server: its process tree; client: its own).",
            table(rows),
        ]
    )
    publish("user-echo-latest.md", text, out)
    if out is not False:
        write_result("user-echo.json", json.dumps(data, indent=1), RESULTS if out is True else out)
    return data


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        return client_main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.user_echo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--servers", nargs="+", choices=CLI_SERVERS, default=list(CLI_SERVERS))
    p.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    p.add_argument("--client", choices=("websockets", "raw"), default="websockets")
    p.add_argument("--launch", choices=("cli", "inprocess"), default="cli")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--runs", type=int, default=3, help="runs, each on fresh servers")
    p.add_argument("--cycles", type=int, default=CYCLES, help="bursts per target (first: cold)")
    p.add_argument("--burst", type=int, default=BURST, help="round trips per burst")
    p.add_argument("--raw-seconds", type=float, default=0.5, help="window per raw burst")
    p.add_argument("--timeout", type=float, default=60.0, help="limit per burst (s)")
    p.add_argument(
        "--sequential", action="store_true", help="one target after the other, not alternated"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--no-write", action="store_true", help="print only")
    where.add_argument("--out", type=Path, metavar="DIR", help="write to DIR, not results/")
    a = vars(p.parse_args(argv))
    no_write = a.pop("no_write")
    out = a.pop("out")
    run(**a, out=False if no_write else (out or True))


if __name__ == "__main__":
    main()
