"""Where a server's CPU goes, per echo round trip or per delivered fan-out frame.

Starts each target under a real server (as :mod:`benchmarks.servers_bench` does), puts
the echo (256 connections) or fan-out (1,000 members, 64-byte ticks) load on it and
samples the server process with `py-spy <https://github.com/benfred/py-spy>`_ meanwhile
(``pip install py-spy``; it is not installed by the nox session). Samples are taken only
while the server runs Python code (idle time is not sampled), so a package's share of
the samples times the server's CPU time per round trip (or frame) gives the
microseconds that package's code costs per unit. A sample is attributed to the package
of its innermost Python frame: C functions (msgspec, socket calls) count for the Python
function that called them.

``python -m benchmarks.profile_server echo --server uvicorn --targets bare wsgate``
writes ``results/profile-echo-uvicorn.md``: one column per target, and the difference of
each to the first one; then the innermost functions of each target. The shares of
single functions are less reliable than those of packages (py-spy attributes a
syscall, say ``socket.send``, to the Python function that made it).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import markdown_table, write_result
from benchmarks.harness import run_client, serving
from benchmarks.report import machine
from benchmarks.servers_bench import (
    BARE_JSON,
    FLOOR,
    LITESTAR,
    SOCKETIO,
    STARLETTE,
    WSGATE,
    Target,
)

TARGETS = {
    "bare": FLOOR,
    "json": BARE_JSON,
    "wsgate": WSGATE,
    "starlette": STARLETTE,
    "litestar": LITESTAR,
    "socketio": SOCKETIO,
}
#: (category, regular expression on the innermost frame's file), first match wins.
CATEGORIES = [
    ("wsgate", r"wsgate/"),
    ("the app (benchmarks/peers)", r"benchmarks/peers/"),
    ("anyio", r"anyio/"),
    ("trio", r"trio/"),
    ("asyncio event loop", r"asyncio/|selectors\.py"),
    ("hypercorn", r"hypercorn/"),
    ("wsproto", r"wsproto/"),
    ("h11", r"h11/"),
    ("uvicorn", r"uvicorn/"),
    ("websockets (uvicorn's protocol)", r"websockets/"),
    ("starlette", r"starlette/"),
    ("litestar", r"litestar/"),
    ("socketio / engineio", r"socketio/|engineio/"),
    ("outcome / sniffio / attrs", r"outcome/|sniffio/|attr/"),
]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def _leaf(stack: str) -> tuple[str, str]:
    """(function with file, file) of the innermost frame of a py-spy raw stack."""
    frame = stack.rsplit(";", 1)[-1]
    m = _FRAME.match(frame)
    if m is None:
        return frame, ""
    return f"{m['func']} ({m['file']}:{m['line']})", m["file"]


def _category(path: str) -> str:
    for name, pattern in CATEGORIES:
        if re.search(pattern, path):
            return name
    return "other (stdlib and the rest)"


def profile_once(
    kind: str, target: Target, load: str, duration: float, rate: int
) -> tuple[Counter[str], Counter[str], float, dict[str, Any]]:
    """Samples per category and per innermost function, and the server µs per unit."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    with serving([(kind, target.app)]) as (server,), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stacks.txt"
        warmup = 0.5
        if load == "echo":
            args: list[Any] = ["echo", "--conns", 256, "--warmup", warmup]
        else:
            args = ["fanout", "--members", 1000, "--size", 64, "--warmup", warmup]
        args += ["--duration", duration, "--port", server.port, "--server-pid", server.pid]
        args += ["--sio"] if target.sio else []
        proc = subprocess.Popen(
            [spy, "record", "-p", str(server.pid), "-r", str(rate), "-f", "raw", "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(0.5)  # py-spy attaches
            result = run_client(args, duration + 120)
        finally:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            proc.wait(30)
        cats: Counter[str] = Counter()
        funcs: Counter[str] = Counter()
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            func, path = _leaf(stack)
            n = int(count)
            cats[_category(path)] += n
            funcs[func] += n
    return cats, funcs, result["server_cpu_us"], result


def run(
    load: str = "echo",
    kind: str = "uvicorn",
    targets: Sequence[str] = ("bare", "wsgate"),
    duration: float = 5.0,
    rate: int = 250,
    top_n: int = 12,
    *,
    out: bool = True,
) -> str:
    unit = "round trip" if load == "echo" else "delivered frame"
    per: dict[str, tuple[Counter[str], Counter[str], float, dict[str, Any]]] = {}
    for name in targets:
        per[name] = profile_once(kind, TARGETS[name], load, duration, rate)
        print(f"  {name}: {per[name][2]:.1f} server µs per {unit}", flush=True)
    cats = sorted(
        {c for counts, *_ in per.values() for c in counts},
        key=lambda c: -max(counts[c] / max(sum(counts.values()), 1) for counts, *_ in per.values()),
    )

    def us(name: str, cat: str) -> float:
        counts, _, cpu_us, _ = per[name]
        total = sum(counts.values())
        return counts[cat] / total * cpu_us if total else 0.0

    first = targets[0]
    rows = []
    for cat in cats:
        row = [cat]
        for name in targets:
            row.append(f"{us(name, cat):.1f}")
        for name in targets[1:]:
            row.append(f"{us(name, cat) - us(first, cat):+.1f}")
        rows.append(row)
    total_row = ["**server CPU, all**"]
    total_row += [f"**{per[n][2]:.1f}**" for n in targets]
    total_row += [f"**{per[n][2] - per[first][2]:+.1f}**" for n in targets[1:]]
    rows.append(total_row)
    header = ["code running (innermost frame)", *(f"{n} µs" for n in targets)]
    header += [f"{n} - {first}" for n in targets[1:]]
    tops: list[str] = []
    for name in targets:
        _, funcs, cpu_us, _ = per[name]
        total = sum(funcs.values())
        top = [
            [f"`{func}`", f"{n / total * 100:.1f}", f"{n / total * cpu_us:.2f}"]
            for func, n in funcs.most_common(top_n)
        ]
        tops += [
            f"Innermost functions of {name} ({total:,} samples):",
            "",
            markdown_table(["function", "% of samples", f"µs per {unit}"], top),
            "",
        ]
    m = machine()
    report = "\n".join(
        [
            f"# Server profile: {load} on {kind}",
            "",
            f"`python -m benchmarks.profile_server {load} --server {kind} --targets "
            f"{' '.join(targets)}`: py-spy at {rate} Hz over {duration:.0f} s of load "
            f"({'256 echo connections' if load == 'echo' else '1,000 members, 64-byte ticks'}); "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, wsgate at git `{m['git']}`.",
            "",
            f"Server CPU µs per {unit}, split by the package whose code was running:",
            "",
            markdown_table(header, rows),
            "",
            *tops,
        ]
    )
    print(report)
    if out:
        print(f"written to {write_result(f'profile-{load}-{kind}.md', report)}")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("load", choices=["echo", "fanout"])
    parser.add_argument(
        "--server", default="uvicorn", choices=["hypercorn-trio", "hypercorn-asyncio", "uvicorn"]
    )
    parser.add_argument("--targets", nargs="+", default=["bare", "wsgate"], choices=list(TARGETS))
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    run(args.load, args.server, args.targets, args.duration, args.rate, out=not args.no_write)


if __name__ == "__main__":
    main()
