"""The app ``benchmarks/presence_bench.py`` serves: the App's :class:`wsgate.Presence`
(its defaults: ``diff_interval=0.1``) on whatever broker ``WSGATE_BROKER_URL`` names
(``memory://`` when unset).

Written as a user would, on one path ``/p``: ``watch`` ``{"group"}`` subscribes the
connection to the group's presence (answered once the ``presence.state`` is on its way),
``unwatch`` ``{"group"}`` stops it, ``join`` ``{"group", "user"}`` tracks the connection
in the group under ``user`` (no answer: the subscribers' diffs are what is measured).
"""

from __future__ import annotations

import msgspec

from wsgate import App, Json, Presence, WebSocket, on_message, ws_controller

__all__ = ["app"]


class Group(msgspec.Struct):
    group: str


class Join(msgspec.Struct):
    group: str
    user: str


@ws_controller("/p")
class PresenceMember:
    def __init__(self, presence: Presence) -> None:
        self.presence = presence

    @on_message("watch")
    async def watch(self, ws: WebSocket, body: Json[Group]) -> bool:
        await self.presence.subscribe(ws, body.group)
        return True

    @on_message("unwatch")
    async def unwatch(self, ws: WebSocket, body: Json[Group]) -> bool:
        await self.presence.unsubscribe(ws, body.group)
        return True

    @on_message("join")
    async def join(self, ws: WebSocket, body: Json[Join]) -> None:
        await self.presence.track(ws, body.group, body.user)


app = App(gateways=[PresenceMember])
