"""python-socketio (``AsyncServer``, ASGI mode; asyncio only): an ``echo`` event whose
return value is the ack, and the room: subscribers (``?role=sub`` in the query string)
enter ``"room"`` in their connect handler; a ``publish`` event emits ``tick`` to it (the
packet is encoded once, then queued to each member's Engine.IO socket)."""

from __future__ import annotations

from typing import Any

import socketio

__all__ = ["app"]

sio = socketio.AsyncServer(async_mode="asgi", logger=False, engineio_logger=False)


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    if "role=sub" in environ.get("QUERY_STRING", ""):
        await sio.enter_room(sid, "room")


@sio.event
async def echo(sid: str, data: Any) -> Any:
    return data


@sio.event
async def publish(sid: str, data: Any) -> None:
    await sio.emit("tick", data, room="room")


app = socketio.ASGIApp(sio)
