"""Handler parameter markers: ``Json[T]``, ``Query[T]``, ``Header[T]``.

Each is a type alias over ``Annotated``, so a type checker sees the plain type::

    async def send(self, body: Json[ChatMessage]) -> None:   # body: ChatMessage
    async def page(self, n: Query[int]) -> None:             # ?n=3
    async def lang(self, lang: Annotated[str, HeaderParam("accept-language")]) -> None:
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar

__all__ = ["Header", "HeaderParam", "Json", "JsonBody", "Query", "QueryParam"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JsonBody:
    """Marks a parameter that receives the frame's ``data``, decoded into its type."""


@dataclass(frozen=True, slots=True)
class QueryParam:
    """Marks a parameter read from the query string (``alias`` if the name differs)."""

    alias: str | None = None


@dataclass(frozen=True, slots=True)
class HeaderParam:
    """Marks a parameter read from a handshake header (``alias`` if the name differs;
    by default ``x_token`` reads the ``x-token`` header)."""

    alias: str | None = None


#: The frame's ``data``, decoded and validated into ``T`` by msgspec.
Json = Annotated[T, JsonBody()]
#: A query string parameter converted to ``T`` (``list[T]`` for repeated keys).
Query = Annotated[T, QueryParam()]
#: A handshake header converted to ``T`` (``list[T]`` for repeated headers).
Header = Annotated[T, HeaderParam()]
