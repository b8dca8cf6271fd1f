"""Embed wsgate in a trio program: serve gateways beside your own tasks, push from them.

    python examples/embed_trio.py [port]

The program's own task (a ticker here; in real life a market feed, a job queue, a
sensor) broadcasts to every client subscribed to ``/ticks`` while hypercorn serves them
in the same nursery. Ctrl+C cancels the nursery: the server shuts down gracefully and
clients are closed with 1001.
"""

from __future__ import annotations

import signal
import sys
from typing import TypedDict

import trio

import wsgate
from wsgate import App, BroadcastGroup, WebSocket, on_connect, on_message, ws_controller

rooms = BroadcastGroup()


class Tick(TypedDict):
    """What the ticker pushes: ``{"event": "tick", "data": {"n": 1}}``."""

    n: int


@ws_controller("/ticks", emits={"tick": Tick})
class Ticks:
    """Subscribes each client to the ticker; answers ``{"event": "ping", "id": 1}``."""

    def __init__(self, groups: BroadcastGroup) -> None:
        self.groups = groups

    @on_connect
    async def join(self, ws: WebSocket) -> None:
        await self.groups.subscribe("ticks", ws)

    @on_message("ping")
    async def ping(self) -> str:
        return "pong"


app = App(gateways=[Ticks], providers=[rooms])


async def ticker(interval: float) -> None:
    """The program's own work: push a tick to every subscribed client."""
    n = 0
    while True:
        n += 1
        await rooms.broadcast("ticks", {"event": "tick", "data": Tick(n=n)})
        await trio.sleep(interval)


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(wsgate.serve, app, "127.0.0.1", port)
        print(f"serving ws://127.0.0.1:{bound}/ticks", flush=True)
        nursery.start_soon(ticker, 0.5)
        # Ctrl+C or SIGTERM: stop gracefully (clients are closed with 1001).
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 8001)
