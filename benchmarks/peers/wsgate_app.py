"""wsgate: the echo gateway, and the fan-out room through :class:`wsgate.BroadcastGroup`.

Written as a user would: typed handlers (msgspec Structs validated by ``Json[...]``), the
reply is the handler's return value, the room is the app's default BroadcastGroup.
"""

from __future__ import annotations

import msgspec

from wsgate import App, BroadcastGroup, Json, WebSocket, on_connect, on_message, ws_controller

__all__ = ["app"]


class EchoMsg(msgspec.Struct):
    room: str
    text: str
    n: int


class Tick(msgspec.Struct):
    t: int
    s: int
    p: str


@ws_controller("/echo")
class EchoGateway:
    @on_message("echo")
    async def echo(self, body: Json[EchoMsg]) -> EchoMsg:
        return body


@ws_controller("/sub")
class SubscriberGateway:
    @on_connect
    async def join(self, ws: WebSocket, rooms: BroadcastGroup) -> None:
        await rooms.subscribe("room", ws)


@ws_controller("/pub")
class PublisherGateway:
    def __init__(self, rooms: BroadcastGroup) -> None:
        self.rooms = rooms

    @on_message("publish")
    async def publish(self, body: Json[Tick]) -> None:
        await self.rooms.broadcast("room", {"event": "tick", "data": body})


app = App(gateways=[EchoGateway, SubscriberGateway, PublisherGateway])
