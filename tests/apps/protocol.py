"""A gateway that uses every kind of type the AsyncAPI document and the TypeScript
generator describe (tests/test_asyncapi.py, tests/test_typescript.py), served with
``docs_path="/docs"``."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec

from wsgate import App, Json, Query, on_message, ws_controller


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Circle(msgspec.Struct, tag="circle"):
    radius: float


class Square(msgspec.Struct, tag="square"):
    side: float


Shape = Circle | Square


class Author(msgspec.Struct):
    name: str
    email: str | None = None


class ChatMessage(msgspec.Struct):
    """What a client sends with ``chat.send``."""

    text: str
    author: Author
    tags: list[str] = []
    meta: dict[str, int] = {}
    color: Color = Color.RED
    mood: Literal["happy", "sad"] | None = None


class Posted(msgspec.Struct):
    room: str
    text: str
    shape: Shape | None = None


class Tick(msgspec.Struct):
    n: int


@ws_controller(
    "/chat/{room_id}/{page:int}",
    tags=["chat"],
    summary="A chat room",
    emits={"chat.message": Posted, "left": dict[str, str], "ping": None},
)
class ChatGateway:
    """Rooms of people who talk."""

    @on_message("chat.send", summary="Post a message", tags=["messages"])
    async def send(self, room_id: str, body: Json[ChatMessage], lang: Query[str] = "en") -> None:
        """Everyone else in the room receives ``chat.message``."""

    @on_message("who")
    async def who(self, room_id: str) -> int:
        return 0

    @on_message("draw")
    async def draw(self, shape: Json[Shape]) -> list[Shape]:
        return [shape]

    @on_message("count")
    async def count(self, upto: Json[int] = 3) -> AsyncIterator[Tick]:
        for n in range(upto):
            yield Tick(n)

    @on_message("anything")
    async def anything(self, body: Json[Any]) -> tuple[int, str] | None:
        return None

    @on_message("*")
    async def other(self) -> None:
        pass


@ws_controller("/bin")
class BinaryGateway:
    @on_message("__binary__")
    async def binary(self, data: bytes) -> bytes:
        return data


app = App(gateways=[ChatGateway, BinaryGateway], docs_path="/docs")
