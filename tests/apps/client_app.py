"""A gateway for the Python client's tests (tests/test_client.py), served as
``apps.client_app:app``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio

from apps.client_app_types import CloseRequest, Forbidden, Point
from wsgate import (
    App,
    Header,
    Json,
    Query,
    WebSocket,
    WebSocketError,
    on_connect,
    on_message,
    ws_controller,
)


@ws_controller("/svc", concurrency=8)
class ServiceGateway:
    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body

    @on_message("add")
    async def add(self, body: Json[Point]) -> dict[str, int]:
        return {"sum": body.x + body.y}

    @on_message("forbidden")
    async def forbidden(self) -> None:
        raise Forbidden("not for you", detail={"need": "admin"})

    @on_message("slow")
    async def slow(self, body: Json[float]) -> str:
        await anyio.sleep(body)  # stands for a slow backend call
        return "done"

    @on_message("whoami")
    async def whoami(
        self, ws: WebSocket, x_token: Header[str] = "", user: Query[str] = ""
    ) -> dict[str, Any]:
        return {
            "token": x_token,
            "user": user,
            "pid": os.getpid(),
            "subprotocol": ws.accepted_subprotocol,
        }

    @on_message("push")
    async def push(self, ws: WebSocket, body: Json[int]) -> int:
        for n in range(body):
            await ws.send_json({"event": "tick", "data": {"n": n}})
        await ws.send_json({"event": "other", "data": "x"})
        return body

    @on_message("count")
    async def count(self, body: Json[int]) -> AsyncIterator[dict[str, int]]:
        for n in range(body):
            yield {"n": n}

    @on_message("close")
    async def close(self, ws: WebSocket, body: Json[CloseRequest]) -> None:
        await ws.close(body.code, body.reason)


@ws_controller("/sub")
class SubprotocolGateway:
    @on_connect
    async def connect(self, ws: WebSocket) -> None:
        await ws.accept(subprotocol=ws.subprotocols[-1] if ws.subprotocols else None)

    @on_message("which")
    async def which(self, ws: WebSocket) -> str | None:
        return ws.accepted_subprotocol


@ws_controller("/guarded")
class GuardedGateway:
    @on_connect
    async def connect(self, x_token: Header[str] = "") -> None:
        if x_token != "secret":
            raise WebSocketError(
                "a valid x-token header is needed", close_code=4003, detail={"header": "x-token"}
            )

    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body


app = App(gateways=[ServiceGateway, SubprotocolGateway, GuardedGateway])
