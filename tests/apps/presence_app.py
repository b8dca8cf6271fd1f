"""A presence gateway for the tests: ``/presence/{room}?user=...&watch=1&track=1``.

On connect it subscribes the connection to the room's presence (``watch``) and tracks it
under ``user`` with ``{"user": user}`` (``track``). Events: ``status`` (update the meta),
``leave`` (untrack), ``restart`` (close with 1012), ``track`` (track again with
``{"key", "meta"}``), ``unwatch``, ``list``, ``count``.

``app`` uses the App's broker (``WSGATE_BROKER_URL``) with a short diff interval.
"""

from __future__ import annotations

from typing import Any

from wsgate import App, Json, Presence, Query, WebSocket, on_connect, on_message, ws_controller


@ws_controller("/presence/{room}")
class PresenceRoom:
    def __init__(self, presence: Presence) -> None:
        self.presence = presence

    @on_connect
    async def join(
        self,
        ws: WebSocket,
        room: str,
        user: Query[str] = "anon",
        watch: Query[int] = 1,
        track: Query[int] = 1,
    ) -> None:
        if watch:
            await self.presence.subscribe(ws, room)
        if track:
            await self.presence.track(ws, room, user, {"user": user})

    @on_message("status")
    async def status(self, ws: WebSocket, room: str, body: Json[dict[str, Any]]) -> None:
        await self.presence.update(ws, room, body)

    @on_message("track")
    async def track(self, ws: WebSocket, room: str, body: Json[dict[str, Any]]) -> None:
        await self.presence.track(ws, room, body["key"], body.get("meta"))

    @on_message("leave")
    async def leave(self, ws: WebSocket, room: str) -> None:
        await self.presence.untrack(ws, room)

    @on_message("unwatch")
    async def unwatch(self, ws: WebSocket, room: str) -> None:
        await self.presence.unsubscribe(ws, room)

    @on_message("restart")
    async def restart(self, ws: WebSocket) -> None:
        await ws.close(1012, "restart")

    @on_message("list")
    async def list(self, room: str) -> dict[str, list[Any]]:
        return await self.presence.list(room)

    @on_message("count")
    async def count(self, room: str) -> int:
        return await self.presence.count(room)


def make_app(presence: Presence | None = None, **options: Any) -> App:
    providers = [presence] if presence is not None else []
    return App(gateways=[PresenceRoom], providers=providers, **options)


app = make_app(Presence(diff_interval=0.05), client_path="/wsgate.js")
