"""Trio task steps per echo round trip or per fan-out frame: a count, not a time.

On a shared machine CPU time moves by tens of percent between runs; the number of task
steps the trio scheduler runs per unit of work does not. Each target runs under
hypercorn's trio worker in a child process started with a trio ``Instrument`` that counts
task steps and scheduler passes (I/O waits), and writes the counts to a file; the usual
load client (:mod:`benchmarks.loadgen`) drives it.

``python -m benchmarks.trio_steps echo --conns 256`` or ``python -m benchmarks.trio_steps
fanout``; prints one line per target (counts cover the whole run, warm-up included).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from benchmarks.harness import ROOT, run_client

TARGETS = {
    "bare": "benchmarks.peers.bare:echo",
    "starlette": "benchmarks.peers.starlette_app:app",
    "wsgate": "benchmarks.peers.wsgate_app:app",
}


def _serve(app_spec: str, out: str) -> None:
    """Child process: serve ``app_spec`` under hypercorn's trio worker, counting."""
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from benchmarks._serve import load

    class Count(trio.abc.Instrument):
        def __init__(self) -> None:
            self.steps = 0
            self.passes = 0

        def before_task_step(self, task: Any) -> None:
            self.steps += 1

        def before_io_wait(self, timeout: float) -> None:
            self.passes += 1

    count = Count()

    def writer() -> None:
        while True:
            time.sleep(0.2)
            with open(out + ".tmp", "w") as f:
                json.dump({"steps": count.steps, "passes": count.passes}, f)
            os.replace(out + ".tmp", out)

    app = load(app_spec)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    threading.Thread(target=writer, daemon=True).start()
    cfg = Config()
    cfg.bind = [f"fd://{sock.fileno()}"]
    cfg.accesslog = None
    trio.run(serve, app, cfg, instruments=[count])


def measure(
    load: str, target: str, conns: int, duration: float, unprimed: bool = False
) -> dict[str, float]:
    """Steps and scheduler passes per round trip (echo) or delivered frame (fanout)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "counts.json")
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        cmd = [sys.executable, "-m", "benchmarks.trio_steps", "--serve", TARGETS[target], out]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, env=env)
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline().split()[1])
            if load == "echo":
                args: list[Any] = ["echo", "--conns", conns]
            else:
                args = ["fanout", "--members", 1000, "--size", 64]
                if unprimed:  # 100 broadcasts of 256 B, 8 in flight from the first frame
                    args = ["fanout", "--members", 1000, "--size", 256, "--window", 8]
                    args += ["--unprimed", "--broadcasts", 100]
            args += ["--warmup", 0.5, "--duration", duration, "--port", port]
            result = run_client([*args, "--server-pid", proc.pid], duration + 120)
            time.sleep(0.5)  # the counts file is rewritten every 0.2 s
            with open(out) as f:
                counts = json.load(f)
        finally:
            proc.kill()
            proc.wait()
    n = result["count"]
    return {
        "per second": result["rate"],
        "steps": counts["steps"] / n,
        "passes": counts["passes"] / n,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(prog="python -m benchmarks.trio_steps", description=__doc__)
    p.add_argument("load", choices=["echo", "fanout"])
    p.add_argument("--conns", type=int, default=256)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    p.add_argument(
        "--unprimed",
        action="store_true",
        help="fanout from an unprimed start (see benchmarks/servers_bench.py, fan-out start)",
    )
    args = p.parse_args()
    unit = "round trip" if args.load == "echo" else "delivered frame"
    targets = [t for t in args.targets if args.load == "echo" or t != "bare"]
    for target in targets:
        m = measure(args.load, target, args.conns, args.duration, args.unprimed)
        print(
            f"{target:10} task steps per {unit}: {m['steps']:.2f}; scheduler passes: "
            f"{m['passes']:.3f} ({m['per second']:,.0f}/s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
