"""What each server does to open WebSockets when it is stopped with SIGTERM, sent to its
main process only or to its whole process group (systemd's default
``KillMode=control-group``): the close code the clients see, how many ``@on_disconnect``
hooks and lifespan shutdowns ran, the exit status and how long it took.

``python -m benchmarks.drain`` (about two minutes) writes ``results/drain.md``. The app
is tests/apps/ops.py; 20 clients (``websockets``) per run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from benchmarks._common import RESULTS, environment

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 20
GRACEFUL = 5

SERVERS: dict[str, tuple[list[str], int]] = {
    "hypercorn trio": (["-m", "hypercorn", "--worker-class", "trio"], 1),
    "hypercorn asyncio": (["-m", "hypercorn", "--worker-class", "asyncio"], 1),
    "hypercorn trio --workers 2": (
        ["-m", "hypercorn", "--worker-class", "trio", "--workers", "2"], 2),
    "hypercorn asyncio --workers 2": (
        ["-m", "hypercorn", "--worker-class", "asyncio", "--workers", "2"], 2),
    "uvicorn": (["-m", "uvicorn", "--lifespan", "on"], 1),
    "uvicorn --workers 2": (["-m", "uvicorn", "--lifespan", "on", "--workers", "2"], 2),
    "hypercorn trio --workers 2, drain_on_signal(app)": (
        ["-m", "hypercorn", "--worker-class", "trio", "--workers", "2"], 2),
    "hypercorn asyncio --workers 2, drain_on_signal(app)": (
        ["-m", "hypercorn", "--worker-class", "asyncio", "--workers", "2"], 2),
    "uvicorn --workers 2, drain_on_signal(app)": (
        ["-m", "uvicorn", "--lifespan", "on", "--workers", "2"], 2),
    "wsgate run --backend trio --workers 2": (
        ["-m", "wsgate", "run", "--backend", "trio", "--workers", "2"], 2),
    "wsgate run --backend asyncio --workers 2": (
        ["-m", "wsgate", "run", "--backend", "asyncio", "--workers", "2"], 2),
}  # fmt: skip


def _argv(name: str, base: list[str], port: int) -> list[str]:
    app = "apps.ops:drained" if "drain_on_signal" in name else "apps.ops:app"
    if base[1] == "hypercorn":
        tail = ["--bind", f"127.0.0.1:{port}", "--graceful-timeout", str(GRACEFUL)]
        return [*base, *tail, app]
    if base[1] == "uvicorn":
        tail = ["--host", "127.0.0.1", "--port", str(port)]
        return [*base, *tail, "--timeout-graceful-shutdown", str(GRACEFUL), app]
    tail = ["--bind", f"127.0.0.1:{port}", "--shutdown-timeout", str(GRACEFUL + 2)]
    return [*base, "apps.ops:app", *tail]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/metrics")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    raise RuntimeError("server did not start")


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _one(name: str, target: str, tmp: Path) -> dict[str, Any]:
    base, workers = SERVERS[name]
    port = _free_port()
    hooks = tmp / f"hooks-{port}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "tests"), str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "WSGATE_TEST_LOG": str(hooks),
    }
    env.pop("WSGATE_REDIS_URL", None)
    proc = _start([sys.executable, *_argv(name, base, port)], env)
    try:
        await asyncio.to_thread(_wait_http, port, proc)
        url = f"ws://127.0.0.1:{port}/room/drain"
        conns = []
        pids: set[int] = set()
        # Open clients until every worker has answered (at most 200 attempts).
        for _ in range(200):
            ws = await connect(url, compression=None, ping_interval=None)
            await ws.send('{"event":"hello","id":1}')
            pids.add(int(json.loads(await ws.recv())["data"]))
            conns.append(ws)
            if len(conns) >= CLIENTS and len(pids) >= workers:
                break

        async def closed(ws: Any) -> int | None:
            try:
                async with asyncio.timeout(GRACEFUL + 5):
                    await ws.wait_closed()
            except TimeoutError:
                return -1
            rcvd = ws.protocol.close_rcvd
            return rcvd.code if rcvd is not None else None

        started = time.monotonic()
        if target == "main process":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
        codes = await asyncio.gather(*(closed(ws) for ws in conns))
        try:
            status: int | None = await asyncio.to_thread(proc.wait, GRACEFUL + 10)
        except subprocess.TimeoutExpired:
            status = None
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = hooks.read_text().split("\n") if hooks.exists() else []
    hook_codes = [ln.split()[1] for ln in lines if ln and ln.split()[1].isdigit()]
    lifespans = sum(1 for ln in lines if ln.endswith("lifespan-shutdown"))
    return {
        "server": name,
        "signal to": target,
        "client sees": _counts(codes),
        "@on_disconnect": f"{len(hook_codes)}/{len(conns)} " + _counts(hook_codes),
        "lifespan shutdown": f"{lifespans}/{workers}",
        "exit": "killed" if status is None else str(status),
        "seconds": f"{elapsed:.1f}",
    }


def _counts(values: list[Any]) -> str:
    c = collections.Counter("no close frame" if v is None else str(v) for v in values)
    return ", ".join(f"{k} x{n}" if len(c) > 1 else str(k) for k, n in sorted(c.items()))


async def main(names: list[str]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for target in ("main process", "process group"):
                row = await _one(name, target, Path(tmp))
                print(row, flush=True)
                rows.append(row)
    return rows


def write(rows: list[dict[str, Any]]) -> Path:
    cols = list(rows[0])
    out = [
        "# SIGTERM with open WebSockets, per server",
        "",
        f"`python -m benchmarks.drain`; {CLIENTS}+ clients per run, graceful timeout "
        f"{GRACEFUL} s. {environment()}",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    path = RESULTS / "drain.md"
    path.write_text("\n".join(out) + "\n")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("servers", nargs="*", default=list(SERVERS))
    rows = asyncio.run(main(parser.parse_args().servers))
    print(write(rows))
