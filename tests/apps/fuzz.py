"""Gateways for the hostile-input tests (tests/test_fuzz.py), in-process and under real
servers (served as ``apps.fuzz:app``).

Every frame sent to ``/fuzz/echo`` or ``/fuzz/text`` gets exactly one frame back: the
handlers never return None, and every refusal is one error frame. That lets the tests
pair each frame they send with the frame that answers it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from wsgate import App, Json, WebSocket, WebSocketError, on_disconnect, on_message, ws_controller


class Point(msgspec.Struct):
    x: int
    y: int


class Closes:
    """The close codes ``@on_disconnect`` saw on ``/fuzz/contained`` (an app-wide provider)."""

    def __init__(self) -> None:
        self.codes: list[int | None] = []


@ws_controller("/fuzz/echo")
class FuzzEchoGateway:
    """Text and binary frames; binary payloads are decoded as JSON into a Point."""

    @on_message("echo")
    async def echo(self, body: Json[Any] = None) -> dict[str, Any]:
        return {"echo": body}

    @on_message("point")
    async def point(self, body: Json[Point]) -> dict[str, int]:
        return {"sum": body.x + body.y}

    @on_message("__binary__")
    async def binary(self, body: Json[Point]) -> dict[str, int]:
        return {"binary_sum": body.x + body.y}


@ws_controller("/fuzz/text")
class FuzzTextGateway:
    """Text frames only: a binary frame is answered with ``unknown_event``."""

    @on_message("echo")
    async def echo(self, body: Json[Any] = None) -> dict[str, Any]:
        return {"echo": body}


class Unencodable:
    """Something no JSON encoder knows."""


@ws_controller("/fuzz/contained")
class ContainedGateway:
    """Makes the runtime itself fail: the error frame for a WebSocketError whose detail
    cannot be encoded raises inside the dispatcher, outside any handler."""

    def __init__(self, closes: Closes) -> None:
        self.closes = closes

    @on_message("echo")
    async def echo(self, body: Json[Any] = None) -> dict[str, Any]:
        return {"echo": body}

    @on_message("unencodable-detail")
    async def unencodable(self) -> None:
        raise WebSocketError("refused", detail=Unencodable())

    @on_disconnect
    async def gone(self, ws: WebSocket) -> None:
        self.closes.codes.append(ws.close_code)


@ws_controller("/fuzz/probe")
class FuzzProbeGateway:
    """What the app counted and saw, for the tests under real servers."""

    def __init__(self, closes: Closes) -> None:
        self.closes = closes

    @on_message("stats")
    async def stats(self, ws: WebSocket) -> dict[str, int]:
        return ws.app.stats.as_dict()

    @on_message("contained-closes")
    async def contained_closes(self) -> list[int | None]:
        return self.closes.codes


def make_app(**config: Any) -> App:
    """A fresh App with the fuzz gateways (``config``: App keyword arguments)."""
    return App(
        gateways=[FuzzEchoGateway, FuzzTextGateway, ContainedGateway, FuzzProbeGateway],
        providers=[Closes],
        **config,
    )


app = make_app()
