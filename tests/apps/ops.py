"""The app the operations tests run under ``wsgate run``, hypercorn and uvicorn
(tests/test_run.py, tests/test_liveness.py, tests/test_metrics.py).

Environment:

- ``WSGATE_TEST_LOG``: a file each ``@on_disconnect`` appends ``"<pid> <close code>\\n"``
  to (what the tests count), and the lifespan shutdown ``"<pid> lifespan-shutdown\\n"``.
- ``WSGATE_REDIS_URL`` / ``WSGATE_TEST_PREFIX``: use a RedisBroadcastGroup with that
  prefix instead of the in-process group.

``/room/{room}``: joins the room in ``@on_connect``; ``hello`` answers with the worker's
pid; ``say`` broadcasts to the room. ``/metrics`` serves the Prometheus text.
"""

from __future__ import annotations

import os
from typing import Any

from wsgate import (
    App,
    BroadcastGroup,
    Json,
    WebSocket,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)
from wsgate.metrics import mount_metrics
from wsgate.run import drain_on_signal

LOG = os.environ.get("WSGATE_TEST_LOG")


@ws_controller("/room/{room}")
class RoomGateway:
    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room: str) -> None:
        await self.rooms.subscribe(room, ws)

    @on_message("hello")
    async def hello(self) -> int:
        return os.getpid()

    @on_message("say")
    async def say(self, room: str, body: Json[Any]) -> int:
        return await self.rooms.broadcast(room, {"event": "said", "data": body})

    @on_disconnect
    async def leave(self, ws: WebSocket) -> None:
        if LOG:
            # One short append per hook: lines from several workers do not interleave.
            _append(LOG, f"{os.getpid()} {ws.close_code}\n")


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


def _providers() -> list[Any]:
    url = os.environ.get("WSGATE_REDIS_URL")
    if not url:
        return []
    from wsgate.broadcast.redis import RedisBroadcastGroup

    return [RedisBroadcastGroup(url, prefix=os.environ.get("WSGATE_TEST_PREFIX", "wsgate"))]


def _lifespan_shutdown() -> None:
    if LOG:
        _append(LOG, f"{os.getpid()} lifespan-shutdown\n")


app = App(gateways=[RoomGateway], providers=_providers(), on_shutdown=[_lifespan_shutdown])
mount_metrics(app, "/metrics")
#: The same app, draining on SIGTERM/SIGINT under another server's command line.
drained = drain_on_signal(app)
