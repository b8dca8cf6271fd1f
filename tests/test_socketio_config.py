"""Startup checks of Socket.IO / Engine.IO controllers (mistakes fail when the App is
built, naming the class, method and parameter), and an App served without a lifespan."""

from __future__ import annotations

from typing import Any

import pytest

from wsgate import (
    App,
    ConfigurationError,
    DecoratorUsageError,
    WebSocket,
    on_connect,
    ws_controller,
)
from wsgate.socketio import (
    EngineIOConnection,
    SocketIOConnection,
    SocketIOServer,
    engineio_controller,
    on_engineio_message,
    on_socketio_event,
    socketio_controller,
)


class Unregistered:
    pass


def test_shared_path_needs_the_same_engine_options() -> None:
    @socketio_controller("/socket.io", ping_interval_ms=1000)
    class A:
        pass

    @socketio_controller("/socket.io", namespace="/b", ping_interval_ms=2000)
    class B:
        pass

    with pytest.raises(
        ConfigurationError, match=r"\.A, \S+\.B share the Socket.IO path '/socket.io'"
    ):
        App(gateways=[A, B])


def test_one_namespace_once_and_engineio_alone() -> None:
    @socketio_controller()
    class A:
        pass

    @socketio_controller()
    class B:
        pass

    with pytest.raises(ConfigurationError, match="namespace '/' at '/socket.io' is served twice"):
        App(gateways=[A, B])

    @engineio_controller("/socket.io")
    class E:
        pass

    with pytest.raises(ConfigurationError, match="needs a path of its own"):
        App(gateways=[A, E])


def test_decorator_misuse() -> None:
    with pytest.raises(DecoratorUsageError, match="without parentheses"):
        socketio_controller(type("X", (), {}))  # type: ignore[arg-type]
    with pytest.raises(DecoratorUsageError, match="namespace must start with '/'"):
        socketio_controller(namespace="chat")
    with pytest.raises(DecoratorUsageError, match="ping_timeout_ms must be an int >= 1"):
        engineio_controller(ping_timeout_ms=0)
    with pytest.raises(DecoratorUsageError, match="needs the event name"):
        on_socketio_event(lambda: None)  # type: ignore[arg-type]


def test_handler_and_constructor_errors_name_the_culprit() -> None:
    @socketio_controller()
    class Twice:
        @on_socketio_event("x")
        async def one(self, conn: SocketIOConnection) -> None: ...

        @on_socketio_event("x")
        async def two(self, conn: SocketIOConnection) -> None: ...

    with pytest.raises(ConfigurationError, match=r"Twice: two handlers for Socket.IO event 'x'"):
        App(gateways=[Twice])

    @socketio_controller()
    class Keyword:
        @on_socketio_event("x")
        async def handler(self, conn: SocketIOConnection, *, thing: Unregistered) -> None: ...

    with pytest.raises(
        ConfigurationError, match=r"Keyword.handler: keyword-only parameter 'thing'"
    ):
        App(gateways=[Keyword])

    @socketio_controller()
    class Needs:
        def __init__(self, thing: Unregistered) -> None: ...

    with pytest.raises(ConfigurationError, match=r"Needs.__init__: parameter 'thing'"):
        App(gateways=[Needs])

    @engineio_controller()
    class TwoMessages:
        @on_engineio_message
        async def a(self, conn: EngineIOConnection, data: Any) -> None: ...

        @on_engineio_message
        async def b(self, conn: EngineIOConnection, data: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="several @on_engineio_message methods"):
        App(gateways=[TwoMessages])


def test_socketio_server_is_injectable_in_gateways() -> None:
    @socketio_controller()
    class Chat:
        pass

    @ws_controller("/push")
    class Push:
        def __init__(self, sio: SocketIOServer) -> None:
            self.sio = sio

        @on_connect
        async def hello(self, ws: WebSocket) -> None: ...

    app = App(gateways=[Chat, Push])
    assert isinstance(app.container.get(SocketIOServer), SocketIOServer)
    assert {p.template for p in app.plans} == {"/push", "/socket.io"}
    # Without Socket.IO controllers there is no SocketIOServer to inject.
    with pytest.raises(
        ConfigurationError, match=r"Push.__init__: parameter 'sio' of type SocketIOServer"
    ):
        App(gateways=[Push])


async def test_polling_without_a_lifespan_runs_handlers_in_the_post() -> None:
    import httpx

    @socketio_controller(ping_interval_ms=60_000)
    class Echo:
        @on_socketio_event("echo")
        async def echo(self, conn: SocketIOConnection, *args: Any) -> tuple[Any, ...]:
            return args

    app = App(gateways=[Echo])
    transport = httpx.ASGITransport(app=app)  # no lifespan: no background task group
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        params = {"EIO": "4", "transport": "polling"}
        opened = await client.get("/socket.io/", params=params)
        sid = opened.text[1:].split('"sid":"')[1].split('"')[0]
        params["sid"] = sid
        assert (await client.post("/socket.io/", params=params, content="40")).text == "ok"
        r = await client.post("/socket.io/", params=params, content='421["echo",1,"two"]')
        assert r.text == "ok"
        r = await client.get("/socket.io/", params=params)
        packets = r.text.split("\x1e")
        assert packets[0].startswith('40{"sid":') and packets[1] == '431[1,"two"]'


async def test_in_process_rooms_and_server_emit() -> None:
    from wsgate.testing import TestClient

    @socketio_controller()
    class Lobby:
        @on_socketio_event("join")
        async def join(self, conn: SocketIOConnection, room: str) -> list[str]:
            await conn.join(room)
            return sorted(conn.rooms - {conn.sid})

    app = App(gateways=[Lobby])
    sio = app.container.get(SocketIOServer)
    async with TestClient(app, timeout=5) as client:
        query = {"EIO": "4", "transport": "websocket"}
        async with client.websocket_connect("/socket.io/", query=query) as ws:
            assert (await ws.receive_text()).startswith("0{")
            await ws.send_text("40")
            sid = (await ws.receive_text())[2:].split('"sid":"')[1].split('"')[0]
            await ws.send_text('421["join","blue"]')
            assert await ws.receive_text() == '431[["blue"]]'
            assert sorted(sio.rooms()) == sorted(["blue", sid])
            assert await sio.emit("news", {"n": 1}, b"\x01", room="blue") == 1
            assert await ws.receive_text() == ('451-["news",{"n":1},{"_placeholder":true,"num":0}]')
            assert await ws.receive_bytes() == b"\x01"
            with pytest.raises(LookupError, match="no Socket.IO controller serves namespace '/x'"):
                await sio.emit("news", namespace="/x")
