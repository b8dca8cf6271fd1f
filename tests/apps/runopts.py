"""The app tests/test_run_broker.py and tests/test_run_options.py serve with ``wsgate run``.

``/who``: ``who`` answers with what the worker sees of the connection and of its
environment (client address, URL, path, pid, ``WSGATE_WORKER_ID``,
``WSGATE_METRICS_DIR``, ``WSGATE_BROKER_URL``).

``/room/{room}``: joins the room in ``@on_connect``; ``hello`` answers with the worker's
pid; ``say`` broadcasts ``{"event": "said", "data": ...}`` to the room. The group is a
RedisBroadcastGroup on ``WSGATE_BROKER_URL`` when that is a Redis/Valkey URL (what
``wsgate run`` gives its workers), so that a broadcast reaches every worker.
"""

from __future__ import annotations

import os
from typing import Any

from wsgate import App, BroadcastGroup, Json, WebSocket, on_connect, on_message, ws_controller


@ws_controller("/who")
class WhoGateway:
    @on_message("who")
    async def who(self, ws: WebSocket) -> dict[str, Any]:
        client = ws.client
        return {
            "client": [client.host, client.port] if client else None,
            "url": ws.url,
            "path": ws.path,
            "pid": os.getpid(),
            "worker_id": os.environ.get("WSGATE_WORKER_ID"),
            "metrics_dir": os.environ.get("WSGATE_METRICS_DIR"),
            "broker": os.environ.get("WSGATE_BROKER_URL"),
        }


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


def _providers() -> list[Any]:
    url = os.environ.get("WSGATE_BROKER_URL", "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return []
    from wsgate.broadcast.redis import RedisBroadcastGroup

    # A short reconnect backoff: the tests restart the broker and wait for the workers.
    return [RedisBroadcastGroup(url, prefix="runopts", reconnect_max_delay=0.5)]


app = App(gateways=[WhoGateway, RoomGateway], providers=_providers())
