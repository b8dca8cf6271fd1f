"""The ASGI application: lifespan, HTTP fallback, unknown paths, shutdown."""

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from wsgate import (
    App,
    WebSocket,
    WebSocketRouteNotFoundError,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)
from wsgate.testing import TestClient, WebSocketDenied


async def call_http(app: App, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_http_goes_to_the_fallback_or_404() -> None:
    async def fallback(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    assert await call_http(App(), "/x") == (404, b"Not Found")
    assert await call_http(App(http=fallback), "/page") == (200, b"/page")


async def test_unknown_path_is_refused_with_404_or_a_close() -> None:
    app = App()
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/missing"):
                pass
        assert denied.value.status == 404
        assert denied.value.json()["error"]["code"] == "not_found"
        # The router's own error reaches the caller too.
        with pytest.raises(WebSocketRouteNotFoundError) as not_found:
            async with client.websocket_connect("/missing"):
                pass
        assert not_found.value.message == "no WebSocket endpoint at '/missing'"
    async with TestClient(app, denial_extension=False) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/missing"):
                pass
        assert denied.value.status == 403


async def test_lifespan_hooks_and_context_manager_providers() -> None:
    log: list[str] = []

    class Resource:
        async def __aenter__(self) -> "Resource":
            log.append("enter")
            return self

        async def __aexit__(self, *exc: object) -> None:
            log.append("exit")

    async def started() -> None:
        log.append("startup")

    app = App(
        providers=[Resource()], on_startup=[started], on_shutdown=[lambda: log.append("shutdown")]
    )
    async with TestClient(app):
        assert log == ["enter", "startup"]
    assert log == ["enter", "startup", "shutdown", "exit"]


async def test_failed_startup_is_reported() -> None:
    def broken() -> None:
        raise RuntimeError("no database")

    with pytest.raises(RuntimeError, match="app startup failed: RuntimeError\\('no database'\\)"):
        async with TestClient(App(on_startup=[broken])):
            pass


async def test_shutdown_closes_every_connection_with_1001_and_waits_for_hooks() -> None:
    hooks: list[int | None] = []
    connected = anyio.Event()

    @ws_controller("/")
    class G:
        @on_connect
        async def hello(self, ws: WebSocket) -> None:
            ws.app.state.count = getattr(ws.app.state, "count", 0) + 1
            if ws.app.state.count == 3:
                connected.set()

        @on_message("x")
        async def x(self) -> None: ...

        @on_disconnect
        async def bye(self, ws: WebSocket) -> None:
            await anyio.lowlevel.checkpoint()
            hooks.append(ws.close_code)

    app = App(gateways=[G])
    closes: list[tuple[int, str]] = []
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as a, client.websocket_connect("/") as b:
            async with client.websocket_connect("/") as c:
                await connected.wait()
                assert app.stats.connections_open == 3
                await app.shutdown()
                assert hooks == [1001, 1001, 1001]  # shutdown returned after every hook
                for ws in (a, b, c):
                    closes.append(await ws.wait_closed())
    assert closes == [(1001, "server shutting down")] * 3
    assert app.stats.connections_open == 0
    assert app.stats.connections_total == 3


async def test_a_handshake_still_in_on_connect_at_shutdown_is_refused() -> None:
    entered = anyio.Event()
    release = anyio.Event()

    @ws_controller("/")
    class Slow:
        @on_connect
        async def connect(self) -> None:
            entered.set()
            await release.wait()

    app = App(gateways=[Slow])
    async with TestClient(app) as client:
        async with anyio.create_task_group() as tg:

            async def connect() -> None:
                with pytest.raises(WebSocketDenied) as denied:
                    async with client.websocket_connect("/"):
                        pass
                assert denied.value.status == 403

            tg.start_soon(connect)
            await entered.wait()
            tg.start_soon(app.shutdown)
            await anyio.wait_all_tasks_blocked()
            release.set()
