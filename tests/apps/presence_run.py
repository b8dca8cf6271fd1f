"""The app tests/test_run_presence.py serves with ``wsgate run --workers 2``.

``/p/{room}?user=...``: on connect the connection subscribes to the room's presence and
is tracked under ``user`` with ``{"user": user, "pid": <the worker's pid>}``; ``hello``
answers with the worker's pid and ``WSGATE_WORKER_ID``; ``list`` with the room's entries
in every worker.

The :class:`wsgate.Presence` is a provider instance with a heartbeat of 0.5 s (the
default is 5 s), so that a killed worker's entries leave within seconds; the App gives it
its broker (``WSGATE_BROKER_URL``, which ``wsgate run`` sets).
"""

from __future__ import annotations

import os
from typing import Any

from wsgate import App, Presence, Query, WebSocket, on_connect, on_message, ws_controller

#: Seconds between two heartbeats of a worker.
HEARTBEAT = 0.5


@ws_controller("/p/{room}")
class Tracked:
    def __init__(self, presence: Presence) -> None:
        self.presence = presence

    @on_connect
    async def join(self, ws: WebSocket, room: str, user: Query[str]) -> None:
        await self.presence.subscribe(ws, room)
        await self.presence.track(ws, room, user, {"user": user, "pid": os.getpid()})

    @on_message("hello")
    async def hello(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "worker_id": os.environ.get("WSGATE_WORKER_ID")}

    @on_message("list")
    async def list(self, room: str) -> dict[str, list[Any]]:
        return await self.presence.list(room)


app = App(gateways=[Tracked], providers=[Presence(heartbeat_interval=HEARTBEAT)])
