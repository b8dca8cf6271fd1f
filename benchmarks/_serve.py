"""Server launcher: ``python -m benchmarks._serve KIND MODULE:APP``.

Binds 127.0.0.1 on a free port, prints ``PORT <n>`` on stdout, then serves the app in
this one process (no supervisor, so ``/proc/PID`` is the server) with:

``hypercorn-trio``
    ``hypercorn.trio.serve`` (what ``hypercorn --worker-class trio`` runs in its worker)
``hypercorn-asyncio``
    ``hypercorn.asyncio.serve`` (``hypercorn --worker-class asyncio``), stdlib event loop
``uvicorn``
    ``uvicorn.Server.serve`` with ``--loop asyncio --http h11 --ws websockets-sansio``
    (named explicitly so the result does not depend on whether uvloop is installed)

``uvicorn-cli``, ``hypercorn-cli-trio``, ``hypercorn-cli-asyncio``
    the servers' own command lines as users type them, with their defaults:
    ``uvicorn MODULE:APP --ws-per-message-deflate false`` and
    ``hypercorn -k trio|asyncio MODULE:APP`` (this process picks the free port, prints it
    and becomes the server with ``exec``, so ``/proc/PID`` is still the server;
    hypercorn's CLI runs its one worker in a child process, counted in its tree)

Defaults otherwise (access log off, except for the CLI kinds). The open-file limit is raised to the hard limit
first. Stopped by the harness with SIGTERM (SIGKILL after a second).

For experiments, ``BENCH_SERVER_GC=off`` disables the garbage collector in the server and
``BENCH_SERVER_GC=freeze`` calls ``gc.freeze()`` once the app is imported (the
benchmarks themselves leave the collector as it is). ``BENCH_SERVER_GC_STATS=FILE``
keeps writing the collector's work so far (collections and seconds per generation, as
JSON) to FILE, every 0.2 s: counts that, unlike CPU time, barely move with the load of
a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import socket
import sys
from typing import Any

from benchmarks._proc import raise_nofile

KINDS = (
    "hypercorn-trio",
    "hypercorn-asyncio",
    "uvicorn",
    "uvicorn-cli",
    "hypercorn-cli-trio",
    "hypercorn-cli-asyncio",
)


def cli_command(kind: str, app: str, port: int) -> list[str]:
    """The command line a user types for ``kind`` (one of the ``*-cli`` kinds), run with
    this interpreter: the server's defaults, except permessage-deflate off on uvicorn
    (the ``websockets`` client offers it; hypercorn's CLI has no switch for it, so the
    client must not offer it)."""
    bind = ["--host", "127.0.0.1", "--port", str(port)]
    if kind == "uvicorn-cli":
        return [sys.executable, "-m", "uvicorn", app, *bind, "--ws-per-message-deflate", "false"]
    worker = kind.rsplit("-", 1)[1]
    return [sys.executable, "-m", "hypercorn", "-k", worker, "-b", f"127.0.0.1:{port}", app]


def load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr or "app")


def _write_gc_stats(path: str) -> None:
    import json
    import threading
    import time

    counts = [0, 0, 0]
    seconds = [0.0, 0.0, 0.0]
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            gen = info["generation"]
            counts[gen] += 1
            seconds[gen] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)

    def writer() -> None:
        while True:
            time.sleep(0.2)
            with open(path + ".tmp", "w") as f:
                json.dump({"collections": counts, "seconds": seconds}, f)
            os.replace(path + ".tmp", path)

    threading.Thread(target=writer, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._serve")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("app", help="module:attribute")
    args = parser.parse_args()
    raise_nofile()
    if args.kind.endswith("-cli") or "-cli-" in args.kind:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        print(f"PORT {port}", flush=True)
        os.dup2(2, 1)
        cmd = cli_command(args.kind, args.app, port)
        os.execv(cmd[0], cmd)
    app = load(args.app)
    gc_mode = os.environ.get("BENCH_SERVER_GC", "")
    if gc_mode == "off":
        gc.disable()
    elif gc_mode == "freeze":
        gc.collect()
        gc.freeze()
    stats_file = os.environ.get("BENCH_SERVER_GC_STATS")
    if stats_file:
        _write_gc_stats(stats_file)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    os.dup2(2, 1)  # the harness reads one line; anything the server prints goes to its log

    if args.kind.startswith("hypercorn"):
        from hypercorn.config import Config

        cfg = Config()
        cfg.bind = [f"fd://{sock.fileno()}"]
        cfg.accesslog = None
        cfg.errorlog = "-"
        if args.kind == "hypercorn-trio":
            import trio
            from hypercorn.trio import serve as trio_serve

            trio.run(trio_serve, app, cfg)
        else:
            import asyncio

            from hypercorn.asyncio import serve as asyncio_serve

            asyncio.run(asyncio_serve(app, cfg))
    else:
        import uvicorn

        config = uvicorn.Config(
            app,
            loop="asyncio",
            http="h11",
            ws="websockets-sansio",
            lifespan="on",
            access_log=False,
            log_level="warning",
        )
        uvicorn.Server(config).run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
