"""A chat server: rooms at /chat/{room_id}, typed messages, a page to try it in a browser.

Run it with ``python -m examples.chat`` (hypercorn on trio) or any ASGI server::

    hypercorn --worker-class trio examples.chat.app:app
    uvicorn examples.chat.app:app

Its AsyncAPI document is served at /docs/asyncapi.json, readable at /docs.

Set ``WSGATE_REDIS_URL=redis://host:6379`` to share rooms between workers and machines.

The page (index.html) uses the browser client the App serves at /wsgate.js. Events:
``chat.send`` (answered with null once broadcast, so the page can show the message as
sent), ``rename``, ``who``, ``echo``; pushes: ``chat.message``, ``joined``, ``left`` and
``renamed`` (the last three carry the room's member count). Each join, leave (with its
close code) and error is logged on the ``examples.chat`` logger.
"""

from __future__ import annotations

import logging
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
    on_error,
    on_message,
    status,
    ws_controller,
)

PAGE = (Path(__file__).parent / "index.html").read_bytes()
MAX_NAME = 32
MAX_TEXT = 2000

log = logging.getLogger("examples.chat")


class ChatMessage(msgspec.Struct):
    """What a client sends with ``chat.send``."""

    text: str


class Rename(msgspec.Struct):
    """What a client sends with ``rename``."""

    user: str


class Refused(WebSocketError):
    """A frame the chat does not accept (an empty message, a bad name): an error frame
    with code ``refused``; the connection stays open."""

    code = "refused"


class Posted(msgspec.Struct):
    """What the other members of the room receive."""

    room: str
    user: str
    text: str


class Presence(msgspec.Struct):
    """Who joined or left the room, and how many members it has now."""

    user: str
    members: int


class Renamed(msgspec.Struct):
    """A member's new name."""

    from_: str = msgspec.field(name="from")
    to: str


@injectable()
class Rooms(BroadcastGroup):
    """The chat rooms (an in-process BroadcastGroup unless WSGATE_REDIS_URL is set)."""


@ws_controller(
    "/chat/{room_id}",
    summary="A chat room",
    emits={"chat.message": Posted, "joined": Presence, "left": Presence, "renamed": Renamed},
)
class ChatGateway:
    """Members of a room see each other's messages, arrivals and departures."""

    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room_id: str, user: Query[str] = "anonymous") -> None:
        if len(room_id) > 64:
            log.warning("refused path=%s: room name too long", ws.path)
            raise WebSocketError(
                "room names are at most 64 characters", close_code=status.WS_1008_POLICY_VIOLATION
            )
        ws.state.user = user.strip()[:MAX_NAME] or "anonymous"
        await self.rooms.subscribe(room_id, ws)
        members = await _count(self.rooms, room_id)
        log.info(
            "join path=%s user=%s room=%s members=%d", ws.path, ws.state.user, room_id, members
        )
        await self.rooms.broadcast(
            room_id, {"event": "joined", "data": Presence(ws.state.user, members)}, exclude=ws
        )

    @on_message("chat.send", summary="Post a message to the room")
    async def send(self, ws: WebSocket, room_id: str, body: Json[ChatMessage]) -> None:
        text = body.text.strip()
        if not text:
            raise Refused("empty message: type some text")
        if len(text) > MAX_TEXT:
            raise Refused(f"messages are at most {MAX_TEXT} characters")
        posted = Posted(room=room_id, user=ws.state.user, text=text)
        await self.rooms.broadcast(room_id, {"event": "chat.message", "data": posted}, exclude=ws)

    @on_message("rename", summary="Change your name in the room")
    async def rename(self, ws: WebSocket, room_id: str, body: Json[Rename]) -> dict[str, str]:
        new = body.user.strip()[:MAX_NAME]
        if not new:
            raise Refused("a name needs at least one visible character")
        old, ws.state.user = ws.state.user, new
        log.info("rename path=%s user=%s room=%s from=%s", ws.path, new, room_id, old)
        await self.rooms.broadcast(
            room_id, {"event": "renamed", "data": Renamed(old, new)}, exclude=ws
        )
        return {"user": new}

    @on_message("who", summary="How many members the room has")
    async def who(self, room_id: str) -> dict[str, Any]:
        return {"room": room_id, "members": await _count(self.rooms, room_id)}

    @on_message("echo", summary="Answers with the data it was sent")
    async def echo(self, body: Json[Any]) -> Any:
        return body

    @on_error
    async def failed(self, ws: WebSocket, room_id: str, exc: Exception) -> None:
        # wsgate logs the traceback; this line says whose connection it was. Returning
        # normally keeps the connection open (the frame gets an internal_error frame).
        log.error("error path=%s user=%s room=%s: %r", ws.path, ws.state.user, room_id, exc)

    @on_disconnect
    async def leave(self, ws: WebSocket, room_id: str) -> None:
        members = await _count(self.rooms, room_id)
        log.info(
            "leave path=%s user=%s room=%s code=%s members=%d",
            ws.path,
            ws.state.user,
            room_id,
            ws.close_code,
            members,
        )
        await self.rooms.broadcast(
            room_id, {"event": "left", "data": Presence(ws.state.user, members)}
        )


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
    _log_to_stderr()
    return App(
        gateways=[ChatGateway],
        providers=providers,
        http=http,
        client_path="/wsgate.js",
        docs_path="/docs",
    )


def _log_to_stderr() -> None:
    """Print the chat's log lines when nothing configured logging (as under hypercorn and
    uvicorn, which configure only their own loggers). wsgate's own warnings and errors
    reach stderr through logging's last-resort handler in any case."""
    if logging.getLogger().handlers or log.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


app = create_app(os.environ.get("WSGATE_REDIS_URL"))
