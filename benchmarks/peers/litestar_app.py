"""Litestar: a ``websocket_listener`` whose typed argument (a msgspec Struct, validated by
Litestar) is the frame and whose return value is the reply."""

import msgspec
from litestar import Litestar, websocket_listener
from litestar.dto import MsgspecDTO

__all__ = ["app"]


class EchoMsg(msgspec.Struct):
    room: str
    text: str
    n: int


class EchoFrame(msgspec.Struct):
    event: str
    data: EchoMsg
    id: int | None = None


class Reply(msgspec.Struct):
    event: str
    id: int | None
    data: EchoMsg


@websocket_listener("/echo", dto=MsgspecDTO[EchoFrame], return_dto=MsgspecDTO[Reply])
async def echo(data: EchoFrame) -> Reply:
    return Reply(event=data.event, id=data.id, data=data.data)


app = Litestar([echo])
