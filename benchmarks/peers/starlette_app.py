"""Starlette: ``WebSocketEndpoint`` with ``encoding = "json"`` for the echo, and the naive
room: the publisher's handler encodes the tick once and awaits ``ws.send_text`` for each
member in turn (what most Starlette/FastAPI chat examples do). A member that cannot take
the frame blocks the loop for everyone.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

__all__ = ["app"]

members: dict[WebSocket, None] = {}


class Echo(WebSocketEndpoint):
    encoding = "json"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        if data.get("event") == "echo":
            await websocket.send_json({"event": "echo", "id": data.get("id"), "data": data["data"]})


class Subscriber(WebSocketEndpoint):
    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        members[websocket] = None

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        members.pop(websocket, None)


class Publisher(WebSocketEndpoint):
    encoding = "json"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        if data.get("event") != "publish":
            return
        text = json.dumps({"event": "tick", "data": data["data"]}, separators=(",", ":"))
        for ws in list(members):
            try:
                await ws.send_text(text)
            except Exception:  # the member left meanwhile
                members.pop(ws, None)


app = Starlette(
    routes=[
        WebSocketRoute("/echo", Echo),
        WebSocketRoute("/sub", Subscriber),
        WebSocketRoute("/pub", Publisher),
    ]
)
