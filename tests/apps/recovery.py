"""The app the clients' history-recovery tests run against under real servers
(tests/test_client_recovery.py, tests/test_browser_recovery.py through
tests/js/recovery.mjs), served as ``apps.recovery:app``.

``/rooms/{room}``: ``@on_connect`` refuses with HTTP 503 while the room is held (so a
test decides when a dropped client gets back in), else subscribes the connection to
``room:{room}`` in a group with history. ``/small/{room}`` is the same on a group that
keeps only 2 frames.

Events: ``say`` (a list of texts) broadcasts one ``chat.message`` per text to the room
and returns their count; ``drop`` closes the caller's connection with 1012 (service
restart: clients reconnect); ``hold`` / ``release`` (a room name) refuse / admit new
connections to that room; ``members`` (a room name) is the room's member count.
"""

from __future__ import annotations

from wsgate import (
    App,
    BroadcastGroup,
    History,
    Json,
    WebSocket,
    WebSocketError,
    on_connect,
    on_message,
    ws_controller,
)

HELD: set[str] = set()


class Held(WebSocketError):
    """The room is held by the test: try again later."""

    code = "held"
    http_status = 503


class SmallHistory(BroadcastGroup):
    """A group that keeps only the last 2 frames of each room."""


class _Rooms:
    group: BroadcastGroup

    @on_connect
    async def join(self, ws: WebSocket, room: str) -> None:
        if room in HELD:
            raise Held(f"room {room} is held")
        await self.group.subscribe(f"room:{room}", ws)

    @on_message("say")
    async def say(self, room: str, body: Json[list[str]]) -> int:
        for text in body:
            await self.group.broadcast(
                f"room:{room}", {"event": "chat.message", "data": {"text": text}}
            )
        return len(body)

    @on_message("drop")
    async def drop(self, ws: WebSocket) -> None:
        await ws.close(1012, "dropped by the test")

    @on_message("hold")
    async def hold(self, body: Json[str]) -> None:
        HELD.add(body)

    @on_message("release")
    async def release(self, body: Json[str]) -> None:
        HELD.discard(body)

    @on_message("members")
    async def members(self, body: Json[str]) -> int:
        return self.group.member_count(f"room:{body}")


@ws_controller("/rooms/{room}", concurrency=4)
class Rooms(_Rooms):
    def __init__(self, group: BroadcastGroup) -> None:
        self.group = group


@ws_controller("/small/{room}", concurrency=4)
class SmallRooms(_Rooms):
    def __init__(self, group: SmallHistory) -> None:
        self.group = group


app = App(
    gateways=[Rooms, SmallRooms],
    providers=[
        BroadcastGroup(history=History(size=100, ttl=60.0)),
        SmallHistory(history=History(size=2, ttl=60.0)),
    ],
)
