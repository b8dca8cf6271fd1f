"""What the Python client costs per request: ``python -m benchmarks.client_bench``.

Sequential echo requests (one in flight) against one wsgate server
(``hypercorn-asyncio`` by default, in its own process on 127.0.0.1), from this process:

``websockets``        the asyncio ``websockets`` client, hand-written envelope and id matching
``httpx-ws``          httpx-ws on asyncio, the same by hand (the library the client is built on)
``client-asyncio``    ``wsgate.client`` on asyncio: ``await conn.request("echo", data)``
``client-trio``       ``wsgate.client`` on trio

Each round runs every target once, in a rotated order; each target's rate is divided by
the rate of ``websockets`` in the same round, and the table gives the median (min-max) of
those ratios. Both ends share the machine, so the ratios also hold the server's share.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from benchmarks._common import Summary, environment, markdown_table, publish, rotated
from wsgate import App, Json, on_message, ws_controller


@ws_controller("/echo")
class Echo:
    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body


app = App(gateways=[Echo])

DATA = {"symbol": "WSG", "price": 101.25, "tags": ["a", "b"]}


async def _websockets(url: str, n: int) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None) as ws:
        for i in range(n):
            await ws.send(json.dumps({"event": "echo", "data": DATA, "id": i}))
            while json.loads(await ws.recv()).get("id") != i:
                pass


async def _httpx_ws(url: str, n: int) -> None:
    from httpx_ws import aconnect_ws

    async with aconnect_ws(url.replace("ws://", "http://")) as ws:
        for i in range(n):
            await ws.send_text(json.dumps({"event": "echo", "data": DATA, "id": i}))
            while json.loads(await ws.receive_text()).get("id") != i:
                pass


async def _client(url: str, n: int) -> None:
    from wsgate.client import connect

    async with connect(url) as conn:
        for _ in range(n):
            await conn.request("echo", DATA)


TARGETS: dict[str, tuple[str, Callable[[str, int], Awaitable[None]]]] = {
    "websockets": ("asyncio", _websockets),
    "httpx-ws": ("asyncio", _httpx_ws),
    "client-asyncio": ("asyncio", _client),
    "client-trio": ("trio", _client),
}


def rate(target: str, url: str, n: int) -> float:
    backend, fn = TARGETS[target]
    start = time.perf_counter()
    anyio.run(fn, url, n, backend=backend)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="hypercorn-asyncio")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", action="store_true", help="write results/client.md")
    args = parser.parse_args()

    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._serve", args.server, "benchmarks.client_bench:app"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.split()[1])
        url = f"ws://127.0.0.1:{port}/echo"
        names = list(TARGETS)
        ratios: dict[str, list[float]] = {name: [] for name in names}
        rates: dict[str, list[float]] = {name: [] for name in names}
        rate("websockets", url, 200)  # warm up
        for k in range(args.rounds):
            got = {name: rate(name, url, args.requests) for name in rotated(names, k)}
            for name in names:
                rates[name].append(got[name])
                ratios[name].append(got[name] / got["websockets"])
    finally:
        proc.terminate()
        proc.wait(5)
    rows = []
    for name in names:
        r, s = Summary.of(ratios[name]), Summary.of(rates[name])
        rows.append(
            [
                name,
                f"{s.median:,.0f}",
                f"{r.median:.2f} ({r.min:.2f}-{r.max:.2f})",
            ]
        )
    report = "\n".join(
        [
            "# Python client: sequential requests per second",
            "",
            f"{args.server}, {args.rounds} rounds of {args.requests} requests; {environment()}",
            "",
            markdown_table(["client", "requests/s", "vs websockets"], rows),
        ]
    )
    publish("client.md", report, args.out)


if __name__ == "__main__":
    main()
