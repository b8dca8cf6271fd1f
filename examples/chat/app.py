"""A chat server: rooms at /chat/{room_id}, typed messages, a page to try it in a browser.

Run it with ``python -m examples.chat`` (hypercorn on trio) or any ASGI server::

    hypercorn --worker-class trio examples.chat.app:app
    uvicorn examples.chat.app:app

Its AsyncAPI document is served at /docs/asyncapi.json, readable at /docs.

Across workers it needs nothing more: ``wsgate run examples.chat.app:app --workers 2``
starts an embedded Valkey and every worker meets the others there (so does any server
with ``WSGATE_BROKER_URL=redis://host:6379``). The rooms keep their last 100 messages:
a new member is shown the last 50, a member that reconnects is given what it missed (or
told that it could not be, and the page reloads the room), and "who is online" comes
from presence, across workers.

The page (index.html) uses the browser client the App serves at /wsgate.js. Events:
``chat.send`` (answered with null once broadcast, so the page can show the message as
sent), ``rename``, ``who``, ``history``, ``echo``; pushes: ``chat.message``, ``joined``,
``left`` and ``renamed`` (the last three carry the room's member count), and presence's
``presence.state``/``presence.diff``. Each join, leave (with its close code) and error
is logged on the ``examples.chat`` logger.
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
    History,
    Json,
    Presence,
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
    """What a client sends with ``chat.send``: the text, and a token of its choosing the
    room's copy carries back (so the page recognises its own messages)."""

    text: str
    token: str = ""


class Rename(msgspec.Struct):
    """What a client sends with ``rename``."""

    user: str


class Refused(WebSocketError):
    """A frame the chat does not accept (an empty message, a bad name): an error frame
    with code ``refused``; the connection stays open."""

    code = "refused"


class Posted(msgspec.Struct):
    """What the members of the room receive (the sender too, with its token)."""

    room: str
    user: str
    text: str
    token: str = ""


class Arrival(msgspec.Struct):
    """Who joined or left the room, and how many members it has now."""

    user: str
    members: int


class Renamed(msgspec.Struct):
    """A member's new name."""

    from_: str = msgspec.field(name="from")
    to: str


@injectable()
class Rooms(BroadcastGroup):
    """The chat rooms, with their last 100 messages: in the process, or across workers
    through the App's broker."""

    def __init__(self) -> None:
        super().__init__(history=History(size=100, ttl=3600.0))


@ws_controller(
    "/chat/{room_id}",
    summary="A chat room",
    emits={"chat.message": Posted, "joined": Arrival, "left": Arrival, "renamed": Renamed},
)
class ChatGateway:
    """Members of a room see each other's messages, arrivals and departures, and who is
    online."""

    def __init__(self, rooms: BroadcastGroup, presence: Presence) -> None:
        self.rooms = rooms
        self.presence = presence

    @on_connect
    async def join(self, ws: WebSocket, room_id: str, user: Query[str] = "anonymous") -> None:
        if len(room_id) > 64:
            log.warning("refused path=%s: room name too long", ws.path)
            raise WebSocketError(
                "room names are at most 64 characters", close_code=status.WS_1008_POLICY_VIOLATION
            )
        ws.state.user = user.strip()[:MAX_NAME] or "anonymous"
        await self.rooms.subscribe(room_id, ws)
        await self.presence.track(ws, room_id, ws.state.user, {"user": ws.state.user})
        await self.presence.subscribe(ws, room_id)
        members = await self.presence.count(room_id)
        log.info(
            "join path=%s user=%s room=%s members=%d", ws.path, ws.state.user, room_id, members
        )
        await self.rooms.broadcast(
            room_id, {"event": "joined", "data": Arrival(ws.state.user, members)}, exclude=ws
        )

    @on_message("chat.send", summary="Post a message to the room")
    async def send(self, ws: WebSocket, room_id: str, body: Json[ChatMessage]) -> None:
        text = body.text.strip()
        if not text:
            raise Refused("empty message: type some text")
        if len(text) > MAX_TEXT:
            raise Refused(f"messages are at most {MAX_TEXT} characters")
        posted = Posted(room=room_id, user=ws.state.user, text=text, token=body.token[:64])
        # The sender gets it too: its position in the room's history then includes its
        # own messages, and the page recognises them by their token.
        await self.rooms.broadcast(room_id, {"event": "chat.message", "data": posted})

    @on_message("rename", summary="Change your name in the room")
    async def rename(self, ws: WebSocket, room_id: str, body: Json[Rename]) -> dict[str, str]:
        new = body.user.strip()[:MAX_NAME]
        if not new:
            raise Refused("a name needs at least one visible character")
        old, ws.state.user = ws.state.user, new
        await self.presence.track(ws, room_id, new, {"user": new})
        log.info("rename path=%s user=%s room=%s from=%s", ws.path, new, room_id, old)
        await self.rooms.broadcast(
            room_id, {"event": "renamed", "data": Renamed(old, new)}, exclude=ws
        )
        return {"user": new}

    @on_message("who", summary="How many members the room has")
    async def who(self, room_id: str) -> dict[str, Any]:
        return {"room": room_id, "members": await self.presence.count(room_id)}

    @on_message("history", summary="The room's last 50 messages, oldest first")
    async def history(self, room_id: str) -> list[Any]:
        return [p.message for p in await self.rooms.history(room_id, limit=50)]

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
        # (Presence has removed the connection's entry already, as the room has.)
        members = await self.presence.count(room_id)
        log.info(
            "leave path=%s user=%s room=%s code=%s members=%d",
            ws.path,
            ws.state.user,
            room_id,
            ws.close_code,
            members,
        )
        await self.rooms.broadcast(
            room_id, {"event": "left", "data": Arrival(ws.state.user, members)}
        )


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


def create_app(broker: str | None = None) -> App:
    """Build the chat app; ``broker`` (default: ``WSGATE_BROKER_URL``, else in-process)
    is where the workers' rooms and presence meet."""
    _log_to_stderr()
    return App(
        gateways=[ChatGateway],
        providers=[Rooms],
        broker=broker,
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


# WSGATE_REDIS_URL is the name older versions of this example read.
app = create_app(os.environ.get("WSGATE_REDIS_URL") or None)
