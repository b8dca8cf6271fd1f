"""A chat server: rooms at /chat/{room_id}, typed messages, a page to try it in a browser.

Run it with ``python -m examples.chat`` (hypercorn on trio) or any ASGI server::

    hypercorn --worker-class trio examples.chat.app:app
    uvicorn examples.chat.app:app

Its AsyncAPI document is served at /docs/asyncapi.json, readable at /docs.

Set ``WSGATE_REDIS_URL=redis://host:6379`` to share rooms between workers and machines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from wsgate import (
    App,
    BroadcastGroup,
    Json,
    Query,
    WebSocket,
    WebSocketError,
    injectable,
    on_connect,
    on_disconnect,
    on_message,
    status,
    ws_controller,
)

PAGE = (Path(__file__).parent / "index.html").read_bytes()


class ChatMessage(msgspec.Struct):
    """What a client sends with ``chat.send``."""

    text: str


class Posted(msgspec.Struct):
    """What the other members of the room receive."""

    room: str
    user: str
    text: str


class Presence(msgspec.Struct):
    """Who joined or left the room."""

    user: str


@injectable()
class Rooms(BroadcastGroup):
    """The chat rooms (an in-process BroadcastGroup unless WSGATE_REDIS_URL is set)."""


@ws_controller(
    "/chat/{room_id}",
    summary="A chat room",
    emits={"chat.message": Posted, "joined": Presence, "left": Presence},
)
class ChatGateway:
    """Members of a room see each other's messages, arrivals and departures."""

    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room_id: str, user: Query[str] = "anonymous") -> None:
        if len(room_id) > 64:
            raise WebSocketError(
                "room names are at most 64 characters", close_code=status.WS_1008_POLICY_VIOLATION
            )
        ws.state.user = user[:32]
        await self.rooms.subscribe(room_id, ws)
        await self.rooms.broadcast(
            room_id, {"event": "joined", "data": Presence(ws.state.user)}, exclude=ws
        )

    @on_message("chat.send", summary="Post a message to the room")
    async def send(self, ws: WebSocket, room_id: str, body: Json[ChatMessage]) -> None:
        posted = Posted(room=room_id, user=ws.state.user, text=body.text)
        await self.rooms.broadcast(room_id, {"event": "chat.message", "data": posted}, exclude=ws)

    @on_message("who", summary="How many members the room has")
    async def who(self, room_id: str) -> dict[str, Any]:
        return {"room": room_id, "members": await _count(self.rooms, room_id)}

    @on_message("echo", summary="Answers with the data it was sent")
    async def echo(self, body: Json[Any]) -> Any:
        return body

    @on_disconnect
    async def leave(self, ws: WebSocket, room_id: str) -> None:
        await self.rooms.broadcast(room_id, {"event": "left", "data": Presence(ws.state.user)})


async def _count(rooms: BroadcastGroup, room: str) -> int:
    total = getattr(rooms, "total_member_count", None)
    if total is not None:
        return int(await total(room))
    return rooms.member_count(room)


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serves the chat page at / (and 404 elsewhere)."""
    if scope["path"] in ("/", "/index.html"):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(PAGE)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": PAGE})
    else:
        await send(
            {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"9")]}
        )
        await send({"type": "http.response.body", "body": b"Not Found"})


def create_app(redis_url: str | None = None) -> App:
    """Build the chat app; with ``redis_url`` the rooms are shared through Redis/Valkey."""
    providers: list[Any]
    if redis_url:
        from wsgate.broadcast.redis import RedisBroadcastGroup

        providers = [RedisBroadcastGroup(redis_url)]
    else:
        providers = [Rooms]
    return App(gateways=[ChatGateway], providers=providers, http=http, docs_path="/docs")


app = create_app(os.environ.get("WSGATE_REDIS_URL"))
