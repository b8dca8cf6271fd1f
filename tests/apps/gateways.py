"""Gateways exercising the wire protocol under real servers (tests/test_real_servers.py).

Served as ``apps.gateways:app`` (the App wrapped so that the same gateways can also be
reached as if the server lacked the denial extension). What the tests cannot see on the wire (how many times
``@on_disconnect`` ran, which connections are still being served) they ask for through
the ``/probe`` gateway, never through server internals.
"""

from __future__ import annotations

from typing import Any

import msgspec

from wsgate import (
    App,
    Json,
    WebSocket,
    WebSocketError,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)


class Point(msgspec.Struct):
    x: int
    y: int


class CloseRequest(msgspec.Struct):
    code: int
    reason: str = ""


class Tracker:
    """What the ``@on_disconnect`` hooks saw, by connection key (an app-wide provider)."""

    def __init__(self) -> None:
        self.disconnects: dict[str, int] = {}
        self.close_codes: dict[str, list[int | None]] = {}


@ws_controller("/echo")
class EchoGateway:
    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body

    @on_message("add")
    async def add(self, body: Json[Point]) -> dict[str, int]:
        return {"sum": body.x + body.y}

    @on_message("__binary__")
    async def binary(self, ws: WebSocket, data: bytes) -> None:
        await ws.send_bytes(b"echo:" + data)

    @on_message("close")
    async def close(self, ws: WebSocket, body: Json[CloseRequest]) -> None:
        await ws.close(body.code, body.reason)

    @on_message("fail")
    async def fail(self, body: Json[CloseRequest]) -> None:
        raise WebSocketError("go away", close_code=body.code)


@ws_controller("/refuse")
class RefusingGateway:
    @on_connect
    async def connect(self) -> None:
        raise WebSocketError("nope", close_code=4003)

    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:  # pragma: no cover - never reached
        return body


@ws_controller("/crash")
class CrashingGateway:
    @on_connect
    async def connect(self) -> None:
        raise RuntimeError("bug in @on_connect")

    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:  # pragma: no cover - never reached
        return body


@ws_controller("/deny")
class DenyingGateway:
    @on_connect
    async def connect(self, ws: WebSocket) -> None:
        await ws.deny(401, b'{"why":"no token"}', headers={"content-type": "application/json"})

    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:  # pragma: no cover - never reached
        return body


@ws_controller("/subprotocol")
class SubprotocolGateway:
    @on_connect
    async def connect(self, ws: WebSocket) -> None:
        await ws.accept(subprotocol="b")

    @on_message("which")
    async def which(self, ws: WebSocket) -> dict[str, Any]:
        return {"accepted": ws.accepted_subprotocol, "offered": list(ws.subprotocols)}


@ws_controller("/tracked/{key}")
class TrackedGateway:
    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body

    @on_disconnect
    async def gone(self, ws: WebSocket, key: str) -> None:
        self.tracker.disconnects[key] = self.tracker.disconnects.get(key, 0) + 1
        self.tracker.close_codes.setdefault(key, []).append(ws.close_code)
        # For the shutdown test, which can only read the log of a server that has exited.
        print(f"on_disconnect key={key} code={ws.close_code}", flush=True)


@ws_controller("/probe")
class ProbeGateway:
    """Tells the tests what the app saw."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    @on_message("tracked")
    async def tracked(self, ws: WebSocket, body: Json[str]) -> dict[str, Any]:
        open_paths = [c.path for c in ws.app.connections]
        return {
            "disconnects": self.tracker.disconnects.get(body, 0),
            "close_codes": self.tracker.close_codes.get(body, []),
            "open": f"/tracked/{body}" in open_paths,
        }

    @on_message("stats")
    async def stats(self, ws: WebSocket) -> dict[str, int]:
        return ws.app.stats.as_dict()

    @on_message("extensions")
    async def extensions(self, ws: WebSocket) -> list[str]:
        """The ASGI extensions the server put in this connection's scope."""
        return sorted(ws.scope.get("extensions") or {})


@ws_controller("/raw")
class RawGateway:
    """Owns its connection: no @on_message, @on_connect accepts and loops."""

    @on_connect
    async def run(self, ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            if text == "bye":
                return  # the runtime then closes with 1000
            await ws.send_text("raw:" + text)


gateway_app = App(
    gateways=[
        EchoGateway,
        RefusingGateway,
        CrashingGateway,
        DenyingGateway,
        SubprotocolGateway,
        TrackedGateway,
        ProbeGateway,
        RawGateway,
    ],
    providers=[Tracker],
)


NO_EXTENSION_PREFIX = "/no-denial-extension"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The gateways, and the same gateways below ``/no-denial-extension`` as a server
    without the ASGI ``websocket.http.response`` extension would serve them (the
    extension is removed from the scope), so the fallback refusals run under every real
    server."""
    if scope["type"] == "websocket" and scope["path"].startswith(NO_EXTENSION_PREFIX + "/"):
        extensions = dict(scope.get("extensions") or {})
        extensions.pop("websocket.http.response", None)
        scope = {
            **scope,
            "extensions": extensions,
            "root_path": scope.get("root_path", "") + NO_EXTENSION_PREFIX,
        }
    await gateway_app(scope, receive, send)
