"""The apps ``benchmarks/broker_bench.py`` serves: one room gateway, without and with
history, on whatever broker ``WSGATE_BROKER_URL`` names (``memory://`` when unset).

Written as a user would: members join ``/sub/{room}`` in ``@on_connect``; a publisher on
``/pub/{room}`` sends ``{"event": "publish", "data": {"n", "seq", "p"}}`` and the
handler broadcasts ``n`` ticks ``{"event": "tick", "data": {"seq", "p"}}`` to the room
through the App's default :class:`wsgate.BroadcastGroup` (a burst of ``n`` per message,
so that what is measured is the broadcasts, not the publisher's messages).
"""

from __future__ import annotations

import msgspec

from wsgate import (
    App,
    BroadcastGroup,
    History,
    Json,
    WebSocket,
    on_connect,
    on_message,
    ws_controller,
)

__all__ = ["HISTORY", "history", "plain"]

#: The history of ``history``: room for the 1,000 frames a reconnecting member misses.
HISTORY = History(size=1_200, ttl=300.0)


class Burst(msgspec.Struct):
    n: int
    seq: int
    p: str


@ws_controller("/sub/{room}")
class Member:
    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_connect
    async def join(self, ws: WebSocket, room: str) -> None:
        await self.rooms.subscribe(room, ws)


@ws_controller("/pub/{room}")
class Publisher:
    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_message("publish")
    async def publish(self, room: str, body: Json[Burst]) -> None:
        for i in range(body.n):
            await self.rooms.broadcast(
                room, {"event": "tick", "data": {"seq": body.seq + i, "p": body.p}}
            )


#: The room without history.
plain = App(gateways=[Member, Publisher])
#: The same room with ``HISTORY``: every frame carries its position, and a member that
#: reconnects with ``wsgate.since`` is replayed what it missed.
history = App(gateways=[Member, Publisher], history=HISTORY)
