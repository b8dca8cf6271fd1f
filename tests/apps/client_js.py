"""The gateway the browser client (wsgate.js) is tested against under real servers
(tests/test_browser_client.py, through tests/js/integration.mjs), with the client itself
served at /wsgate.js."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

from apps.client_app_types import CloseRequest, Forbidden, Point
from wsgate import (
    App,
    BroadcastGroup,
    Json,
    WebSocket,
    on_connect,
    on_message,
    ws_controller,
)


@ws_controller("/api", concurrency=4)
class Api:
    def __init__(self, group: BroadcastGroup) -> None:
        self.group = group

    @on_connect
    async def join(self, ws: WebSocket) -> None:
        await self.group.subscribe("all", ws)

    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body

    @on_message("add")
    async def add(self, body: Json[Point]) -> int:
        return body.x + body.y

    @on_message("refuse")
    async def refuse(self) -> None:
        raise Forbidden("not today", detail={"why": "testing"})

    @on_message("slow")
    async def slow(self, body: Json[float]) -> str:
        await anyio.sleep(body)  # longer than the client's timeout: the reply comes late
        return "late"

    @on_message("ticks")
    async def ticks(self, body: Json[int]) -> AsyncIterator[dict[str, int]]:
        for n in range(body):
            yield {"n": n}

    @on_message("shout")
    async def shout(self, body: Json[str]) -> None:
        await self.group.broadcast("all", {"event": "shouted", "data": body})

    @on_message("close")
    async def close(self, ws: WebSocket, body: Json[CloseRequest]) -> None:
        await ws.close(body.code, body.reason)


app = App(gateways=[Api], client_path="/wsgate.js")
