"""The WebSocket object: each method and each state rule, through an in-process App."""

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import anyio.lowlevel
import attrs
import msgspec
import pytest

from wsgate import (
    App,
    Json,
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
    WebSocketStateError,
    WebSocketValidationError,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)
from wsgate.testing import TestClient, WebSocketClosed, WebSocketDenied


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class DC:
    a: int


@attrs.define
class AT:
    b: str


class Color(enum.Enum):
    RED = "red"


def owning(path: str, body: Any) -> type:
    """A gateway with no @on_message handlers whose @on_connect is ``body(ws)``."""

    @ws_controller(path)
    class Owner:
        @on_connect
        async def run(self, ws: WebSocket) -> None:
            await body(ws)

    return Owner


async def test_accept_with_subprotocol_and_headers() -> None:
    async def body(ws: WebSocket) -> None:
        assert ws.connection_state is WebSocketState.CONNECTING
        await ws.accept(subprotocol="b", headers={"x-one": "1"})
        assert ws.connection_state is WebSocketState.CONNECTED
        await ws.send_json([ws.accepted_subprotocol, list(ws.subprotocols)])

    async def body_pairs(ws: WebSocket) -> None:
        await ws.accept(headers=[("x-two", "2"), ("x-two", "3")])
        await ws.send_text("ok")

    app = App(gateways=[owning("/a", body), owning("/b", body_pairs)])
    async with TestClient(app) as client:
        async with client.websocket_connect("/a", subprotocols=["a", "b"]) as ws:
            assert ws.accepted_subprotocol == "b"
            assert (b"x-one", b"1") in ws.accept_headers
            assert await ws.receive_json() == ["b", ["a", "b"]]
        async with client.websocket_connect("/b") as ws:
            assert await ws.receive_text() == "ok"
            assert ws.accept_headers.count((b"x-two", b"2")) == 1
            assert (b"x-two", b"3") in ws.accept_headers


async def test_accept_rejects_a_subprotocol_the_client_did_not_offer() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.accept(subprotocol="zzz")

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/", subprotocols=["a"]):
                pass
    assert denied.value.status == 500
    # No exception text leaves the server.
    assert denied.value.json() == {
        "error": {"code": "internal_error", "message": "internal server error", "detail": None}
    }


async def test_strict_receive_text_and_bytes() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await ws.receive_text()
        except TypeError as exc:
            await ws.send_text(f"text: {exc}")
        try:
            await ws.receive_bytes()
        except TypeError as exc:
            await ws.send_text(f"bytes: {exc}")
        await ws.send_bytes(await ws.receive_bytes())
        await ws.send_text(await ws.receive_text())

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_text()).startswith("text: received a binary frame")
        await ws.send_text("hello")
        assert (await ws.receive_text()).startswith("bytes: received a text frame")
        await ws.send_bytes(b"\xff")
        assert await ws.receive_bytes() == b"\xff"
        await ws.send_text("é")
        assert await ws.receive_text() == "é"


async def test_receive_json_and_receive_as() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"got": await ws.receive_json()})
        point = await ws.receive_as(Point)
        await ws.send_json({"sum": point.x + point.y})
        try:
            await ws.receive_as(Point)
        except WebSocketValidationError as exc:
            await ws.send_json({"errors": exc.errors})

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        await ws.send_json([1, "two", None])
        assert await ws.receive_json() == {"got": [1, "two", None]}
        await ws.send_json({"x": 2, "y": 3})
        assert await ws.receive_json() == {"sum": 5}
        await ws.send_json({"x": 2, "y": "three"})
        assert await ws.receive_json() == {
            "errors": [{"path": "$.y", "message": "Expected `int`, got `str`"}]
        }


async def test_iterators_end_when_the_peer_closes() -> None:
    seen: list[Any] = []
    done: list[str] = []

    async def texts(ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            seen.append(text)
        done.append("text")

    async def jsons(ws: WebSocket) -> None:
        await ws.accept()
        async for value in ws.iter_json():
            seen.append(value)
        done.append("json")

    async def raw(ws: WebSocket) -> None:
        await ws.accept()
        async for frame in ws:
            seen.append(frame)
        async for _ in ws.iter_bytes():
            pass  # already closed: ends at once
        done.append("raw")

    app = App(gateways=[owning("/t", texts), owning("/j", jsons), owning("/r", raw)])
    async with TestClient(app) as client:
        async with client.websocket_connect("/t") as ws:
            await ws.send_text("a")
            await ws.send_text("b")
        async with client.websocket_connect("/j") as ws:
            await ws.send_json({"k": 1})
        async with client.websocket_connect("/r") as ws:
            await ws.send_text("t")
            await ws.send_bytes(b"b")
    assert seen == ["a", "b", {"k": 1}, "t", b"b"]
    assert done == ["text", "json", "raw"]


async def test_send_json_permissive_default_and_binary_mode() -> None:
    value = {
        "struct": Point(1, 2),
        "dc": DC(3),
        "attrs": AT("x"),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "id": uuid.UUID(int=1),
        "price": decimal.Decimal("1.50"),
        "color": Color.RED,
        "tags": {"only"},
    }

    async def body(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json(value)
        await ws.send_json([1], mode="binary")
        try:
            await ws.send_json(object())
        except TypeError as exc:
            await ws.send_text(str(exc))

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        assert await ws.receive_json() == {
            "struct": {"x": 1, "y": 2},
            "dc": {"a": 3},
            "attrs": {"b": "x"},
            "when": "2024-01-02T03:04:05Z",
            "id": "00000000-0000-0000-0000-000000000001",
            "price": "1.50",
            "color": "red",
            "tags": ["only"],
        }
        assert await ws.receive_bytes() == b"[1]"
        assert "cannot encode an object of type object" in await ws.receive_text()


async def test_send_type_errors() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.accept()
        for call in (lambda: ws.send_text(b"x"), lambda: ws.send_bytes("x")):  # type: ignore[arg-type]
            try:
                await call()
            except TypeError as exc:
                await ws.send_text(str(exc))

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        assert (await ws.receive_text()).startswith("send_text() takes str, not bytes")
        assert (await ws.receive_text()).startswith("send_bytes() takes bytes, not str")


async def test_a_raw_close_through_send_is_refused_with_the_way_to_close() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await ws.send({"type": "websocket.close", "code": 1000})
        except ValueError as exc:
            await ws.send_text(str(exc))
        await ws.close(4002, "closed properly")

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        assert "close the connection with ws.close(code, reason)" in await ws.receive_text()
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive_text()
        assert (closed.value.code, closed.value.reason) == (4002, "closed properly")


async def test_close_is_idempotent_and_keeps_code_and_reason() -> None:
    seen: list[tuple[int | None, str]] = []

    @ws_controller("/")
    class G:
        @on_connect
        async def run(self, ws: WebSocket) -> None:
            await ws.accept()
            await ws.send_text("before")
            await ws.close(4001, "bye now")
            await ws.close(1000, "ignored")
            seen.append((ws.close_code, ws.close_reason))

        @on_disconnect
        async def gone(self, ws: WebSocket) -> None:
            seen.append((ws.close_code, ws.close_reason))

    app = App(gateways=[G])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        # Frames queued before close() are flushed first.
        assert await ws.receive_text() == "before"
        assert await ws.wait_closed() == (4001, "bye now")
    assert seen == [(4001, "bye now"), (4001, "bye now")]


async def test_close_before_accept_refuses_the_handshake() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.close(4003)

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/"):
                pass
    assert denied.value.status == 403


async def test_deny_with_and_without_the_extension() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.deny(401, b'{"error":"who are you"}', headers={"www-authenticate": "Bearer"})

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/"):
                pass
    assert denied.value.status == 401
    assert denied.value.body == b'{"error":"who are you"}'
    assert (b"www-authenticate", b"Bearer") in denied.value.headers
    async with TestClient(app, denial_extension=False) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/"):
                pass
    assert denied.value.status == 403


async def test_properties() -> None:
    async def body(ws: WebSocket) -> None:
        ws.state.who = "me"
        await ws.accept()
        await ws.send_json(
            {
                "path": ws.path,
                "template": ws.path_template,
                "params": ws.path_params,
                "q": ws.query_params.getlist("tag"),
                "q1": ws.query_params["tag"],
                "h": ws.headers["X-Token"],
                "hl": ws.headers.getlist("x-multi"),
                "url": ws.url,
                "client": list(ws.client or ()),
                "state": ws.state.who,
                "app_state": ws.app_state.name,
                "scope_type": ws.scope["type"],
            }
        )

    app = App(gateways=[owning("/items/{item_id:int}", body)])
    app.state.name = "demo"
    async with TestClient(app) as client:
        async with client.websocket_connect("/items/7?tag=a&tag=b", headers={"x-token": "t"}) as ws:
            got = await ws.receive_json()
    assert got == {
        "path": "/items/7",
        "template": "/items/{item_id:int}",
        "params": {"item_id": 7},
        "q": ["a", "b"],
        "q1": "a",
        "h": "t",
        "hl": [],
        "url": "ws://testserver/items/7?tag=a&tag=b",
        "client": ["127.0.0.1", 50000],
        "state": "me",
        "app_state": "demo",
        "scope_type": "websocket",
    }


async def test_multi_valued_headers() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json(ws.headers.getlist("X-Multi"))

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client:
        scope_headers = client.websocket_scope("/")["headers"]
        assert (b"host", b"testserver") in scope_headers
        async with client.websocket_connect(
            "/", headers=[("x-multi", "1"), ("X-Multi", "2")]
        ) as ws:
            assert await ws.receive_json() == ["1", "2"]


async def test_state_rules() -> None:
    async def body(ws: WebSocket) -> None:
        messages = []
        for action in (ws.send_text("x"), ws.receive()):
            try:
                await action
            except WebSocketStateError as exc:
                messages.append(str(exc))
        await ws.accept()
        try:
            await ws.accept()
        except WebSocketStateError as exc:
            messages.append(str(exc))
        try:
            await ws.deny(403)
        except WebSocketStateError as exc:
            messages.append(str(exc))
        await ws.send_json(messages)
        await ws.receive_text()  # wait for the client to ask for the close
        await ws.close()
        try:
            await ws.send_text("after close")
        except WebSocketStateError as exc:
            ws.app_state.after_close = str(exc)

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as ws:
            messages = await ws.receive_json()
            await ws.send_text("close please")
            assert (await ws.wait_closed())[0] == 1000
    assert messages[0].startswith("cannot send: the connection is CONNECTING")
    assert messages[1].startswith("cannot receive: the connection is CONNECTING")
    assert messages[2] == "cannot accept: the connection is CONNECTED, not CONNECTING"
    assert messages[3].startswith("cannot deny: the connection is CONNECTED")
    assert app.state.after_close.startswith("cannot send: the connection is DISCONNECTED")


async def test_send_after_the_peer_left_raises_websocket_disconnect() -> None:
    outcome: list[str] = []

    async def body(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await ws.receive_text()
        except WebSocketDisconnect as exc:
            outcome.append(f"receive: {exc.close_code}")
        try:
            await ws.send_text("anyone?")
        except WebSocketDisconnect as exc:
            outcome.append(f"send: {exc.close_code}")

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as ws:
            await ws.close(4005)
    assert outcome == ["receive: 4005", "send: 4005"]


async def test_receive_is_refused_where_the_runtime_dispatches() -> None:
    @ws_controller("/")
    class G:
        @on_message("read")
        async def read(self, ws: WebSocket) -> str:
            try:
                await ws.receive_text()
            except WebSocketStateError as exc:
                return str(exc)
            return "no error"

    app = App(gateways=[G])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        reply = await ws.request("read", id=1)
        assert reply["data"].startswith("cannot receive: this gateway has @on_message handlers")


async def test_owning_gateway_closes_with_1000_when_it_returns() -> None:
    async def body(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client, client.websocket_connect("/") as ws:
        await ws.send_text("once")
        assert await ws.receive_text() == "once"
        assert await ws.wait_closed() == (1000, "")
        with pytest.raises(WebSocketClosed):
            await ws.receive_text()


async def test_an_owning_handler_gets_the_frames_sent_just_before_the_peer_left() -> None:
    seen: list[str] = []
    release = anyio.Event()

    async def body(ws: WebSocket) -> None:
        await ws.accept()
        await release.wait()  # busy while the client sends three frames and leaves
        async for text in ws.iter_text():
            seen.append(text)

    app = App(gateways=[owning("/", body)])
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as ws:
            for text in ("a", "b", "c"):
                await ws.send_text(text)
            await ws.close()
            release.set()
    assert seen == ["a", "b", "c"]


async def test_frames_sent_just_before_the_peer_left_are_still_dispatched() -> None:
    seen: list[int] = []

    @ws_controller("/")
    class G:
        @on_message("n")
        async def n(self, body: Json[int]) -> None:
            await anyio.lowlevel.checkpoint()
            seen.append(body)

    async with TestClient(App(gateways=[G])) as client:
        async with client.websocket_connect("/") as ws:
            for i in range(20):
                await ws.send_event("n", i)
    assert seen == list(range(20))
