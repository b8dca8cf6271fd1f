"""Gateways for the slow-consumer tests (tests/test_isolation.py), served as
``apps.isolation:app``.

- ``/flood/{key}``: ``flood`` sends ``n`` text frames of ``size`` bytes to the caller,
  awaiting each ``ws.send_text`` (the handler waits while the outbox is full).
- ``/echo``: ``echo`` answers with its data.
- ``/room/{room}``: every connection joins the room unless ``?role=publisher``;
  ``publish`` broadcasts ``count`` text frames numbered from ``start``.
- ``/probe``: ``progress``/``room`` report counters the tests cannot see on the wire.

Every frame the flood and the room send starts with its 8-digit sequence number, so a
client can check order and gaps.
"""

from __future__ import annotations

from typing import Any

import msgspec

from wsgate import (
    App,
    BroadcastGroup,
    Json,
    Query,
    WebSocket,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)


class FloodRequest(msgspec.Struct):
    n: int
    size: int


class PublishRequest(msgspec.Struct):
    start: int
    count: int
    size: int


class Progress:
    """Per-key counters of the flood gateway (an app-wide provider)."""

    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self.finished: dict[str, bool] = {}
        self.disconnects: dict[str, int] = {}
        self.close_codes: dict[str, list[int | None]] = {}


def numbered(i: int, size: int) -> str:
    return f"{i:08d}" + "x" * (size - 8)


@ws_controller("/flood/{key}")
class FloodGateway:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    @on_message("flood")
    async def flood(self, ws: WebSocket, key: str, body: Json[FloodRequest]) -> None:
        sent = self.progress.sent
        sent[key] = 0
        pad = "x" * (body.size - 8)
        for i in range(body.n):
            await ws.send_text(f"{i:08d}" + pad)
            sent[key] = i + 1
        self.progress.finished[key] = True

    @on_disconnect
    async def gone(self, ws: WebSocket, key: str) -> None:
        self.progress.disconnects[key] = self.progress.disconnects.get(key, 0) + 1
        self.progress.close_codes.setdefault(key, []).append(ws.close_code)


@ws_controller("/echo")
class EchoGateway:
    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body


@ws_controller("/room/{room}")
class RoomGateway:
    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room: str, role: Query[str] = "member") -> None:
        if role != "publisher":
            await self.rooms.subscribe(room, ws)

    @on_message("publish")
    async def publish(self, room: str, body: Json[PublishRequest]) -> dict[str, int]:
        pad = "x" * (body.size - 8)
        enqueued = 0
        for i in range(body.start, body.start + body.count):
            enqueued += await self.rooms.broadcast(room, f"{i:08d}" + pad)
        return {"enqueued": enqueued}


@ws_controller("/probe")
class ProbeGateway:
    def __init__(self, progress: Progress, rooms: BroadcastGroup) -> None:
        self.progress = progress
        self.rooms = rooms

    @on_message("progress")
    async def flood_progress(self, ws: WebSocket, body: Json[str]) -> dict[str, Any]:
        p = self.progress
        return {
            "sent": p.sent.get(body, 0),
            "finished": p.finished.get(body, False),
            "disconnects": p.disconnects.get(body, 0),
            "close_codes": p.close_codes.get(body, []),
            "open": f"/flood/{body}" in [c.path for c in ws.app.connections],
        }

    @on_message("room")
    async def room(self, ws: WebSocket, body: Json[str]) -> dict[str, Any]:
        return {
            "members": self.rooms.member_count(body),
            "group": self.rooms.group_stats(body).as_dict(),
            "app": ws.app.stats.as_dict(),
        }


app = App(gateways=[FloodGateway, EchoGateway, RoomGateway, ProbeGateway], providers=[Progress])
