"""Run the benchmarks: ``python -m benchmarks [dispatch|fanout ...] [--quick]``.

With no name, runs every benchmark (about two and a half minutes on a 2-core machine). Each writes
its markdown report to ``benchmarks/results/``. ``--quick`` uses fewer rounds (a smoke
test; the figures are noisier). Each benchmark also runs alone with its own options:
``python -m benchmarks.dispatch --help``, ``python -m benchmarks.fanout --help``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from benchmarks import dispatch, fanout

BENCHMARKS: dict[str, tuple[Callable[..., str], dict[str, int], dict[str, int]]] = {
    # name: (run, default options, --quick options)
    "dispatch": (dispatch.run, {}, {"rounds": 3}),
    "fanout": (fanout.run, {}, {"rounds": 2}),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"one or more of {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    started = time.perf_counter()
    for name in args.names or BENCHMARKS:
        fn, options, quick = BENCHMARKS[name]
        print(f"== {name}", flush=True)
        fn(**(quick if args.quick else options), out=not args.no_write)
    print(f"\nall done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
