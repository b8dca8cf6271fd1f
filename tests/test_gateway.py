"""Gateways: decorators, the compiled plan, extractors, replies and error frames."""

import dataclasses
import logging
import uuid
from typing import Annotated, Any, Literal, TypedDict

import anyio
import anyio.lowlevel
import msgspec
import pytest

from wsgate import (
    App,
    BroadcastGroup,
    ConfigurationError,
    DecoratorUsageError,
    Frame,
    Header,
    HeaderParam,
    Json,
    Query,
    QueryParam,
    WebSocket,
    WebSocketError,
    injectable,
    on_connect,
    on_disconnect,
    on_error,
    on_message,
    ws_controller,
)
from wsgate.errors import (
    WebSocketDisconnect,
    WebSocketRouteNotFoundError,
    WebSocketValidationError,
)
from wsgate.testing import TestClient, WebSocketDenied


class ChatMessage(msgspec.Struct):
    text: str
    n: int = 0


class Join(msgspec.Struct, tag="join"):
    room: str


class Leave(msgspec.Struct, tag="leave"):
    room: str


@dataclasses.dataclass
class DCBody:
    value: float


class TDBody(TypedDict):
    name: str


def test_contract_imports() -> None:
    assert issubclass(WebSocketDisconnect, WebSocketError)
    assert issubclass(WebSocketValidationError, WebSocketError)
    assert issubclass(WebSocketRouteNotFoundError, WebSocketError)
    assert issubclass(DecoratorUsageError, ConfigurationError)


# ------------------------------------------------------------------ decorator rules


def test_bare_ws_controller_is_refused() -> None:
    with pytest.raises(DecoratorUsageError, match="without parentheses"):

        @ws_controller  # type: ignore[arg-type]
        class G:
            pass


def test_bare_on_message_is_refused() -> None:
    with pytest.raises(DecoratorUsageError, match="needs the event name"):

        class G:
            @on_message  # type: ignore[arg-type]
            async def f(self) -> None: ...


def test_undecorated_class_is_a_startup_error_naming_it() -> None:
    class Plain:
        pass

    with pytest.raises(ConfigurationError, match="Plain is not a gateway"):
        App(gateways=[Plain])


def test_gateway_status_is_not_inherited() -> None:
    @ws_controller("/base")
    class Base:
        pass

    class Child(Base):
        pass

    with pytest.raises(
        ConfigurationError, match="Child is not a gateway.*inherits from the gateway"
    ):
        App(gateways=[Child])
    # Re-decorated, the subclass is a gateway of its own.
    ws_controller("/child")(Child)
    App(gateways=[Base, Child])


def test_two_handlers_for_one_event_is_a_startup_error() -> None:
    @ws_controller("/")
    class G:
        @on_message("a")
        async def one(self) -> None: ...

        @on_message("a")
        async def two(self) -> None: ...

    with pytest.raises(ConfigurationError, match="two handlers for event 'a' \\(one and two\\)"):
        App(gateways=[G])


def test_two_routes_with_one_template_is_a_startup_error() -> None:
    @ws_controller("/x/{a}")
    class A:
        pass

    @ws_controller("/x/{b}")
    class B:
        pass

    with pytest.raises(ConfigurationError, match="share the path template"):
        App(gateways=[A, B])


def test_unsuppliable_parameter_names_gateway_method_and_parameter() -> None:
    class Unknown:
        pass

    @ws_controller("/rooms/{room_id}")
    class G:
        @on_message("a")
        async def handler(self, thing: Unknown) -> None: ...

    with pytest.raises(ConfigurationError) as err:
        App(gateways=[G])
    message = str(err.value)
    assert "G.handler, parameter 'thing'" in message
    assert "room_id" in message  # lists what could supply it


def test_json_outside_message_handlers_is_a_startup_error() -> None:
    @ws_controller("/")
    class G:
        @on_connect
        async def connect(self, body: Json[int]) -> None: ...

    with pytest.raises(
        ConfigurationError, match=r"G.connect, parameter 'body'.*only works in @on_message"
    ):
        App(gateways=[G])


def test_subclass_override_without_decorator_is_not_a_hook() -> None:
    calls: list[str] = []

    @ws_controller("/base")
    class Base:
        @on_message("ping")
        async def ping(self) -> str:
            return "base"

        @on_connect
        async def connect(self) -> None:
            calls.append("base connect")

    @ws_controller("/child")
    class Child(Base):
        async def ping(self) -> str:  # not re-decorated: no longer a handler
            return "child"

        async def connect(self) -> None:
            calls.append("child connect")

    app = App(gateways=[Base, Child])
    (child_plan,) = [p for p in app.plans if p.cls is Child]
    assert child_plan.handlers == {}
    assert child_plan.on_connect is None


async def test_hooks_work_with_staticmethod_and_classmethod_in_either_order() -> None:
    log: list[str] = []

    @ws_controller("/")
    class G:
        @on_connect
        @staticmethod
        async def connect(ws: WebSocket) -> None:
            log.append("connect")

        @classmethod
        @on_disconnect
        async def disconnect(cls) -> None:
            log.append(f"disconnect {cls.__name__}")

        @on_message("s")
        @staticmethod
        async def s() -> str:
            return "static"

        @classmethod
        @on_message("c")
        async def c(cls) -> str:
            return cls.__name__

    app = App(gateways=[G])
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as ws:
            assert (await ws.request("s", id=1))["data"] == "static"
            assert (await ws.request("c", id=2))["data"] == "G"
    assert log == ["connect", "disconnect G"]


async def test_stacked_on_message_routes_several_events() -> None:
    @ws_controller("/")
    class G:
        @on_message("a")
        @on_message("b")
        async def both(self, frame: Frame) -> str:
            return frame.event.upper()

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        assert (await ws.request("a", id=1))["data"] == "A"
        assert (await ws.request("b", id=2))["data"] == "B"


async def test_wildcard_and_binary_handlers() -> None:
    @ws_controller("/")
    class G:
        @on_message("known")
        async def known(self) -> str:
            return "specific"

        @on_message("*")
        async def anything(self, frame: Frame) -> dict[str, Any]:
            return {"caught": frame.event, "raw": bytes(frame.data).decode()}

        @on_message("__binary__")
        async def binary(self, ws: WebSocket, data: bytes) -> None:
            await ws.send_bytes(data[::-1])

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        assert (await ws.request("known", id=1))["data"] == "specific"
        assert (await ws.request("other", {"x": 1}, id=2))["data"] == {
            "caught": "other",
            "raw": '{"x":1}',
        }
        await ws.send_bytes(b"abc")
        assert await ws.receive_bytes() == b"cba"


async def test_binary_frame_without_handler_gets_unknown_event() -> None:
    @ws_controller("/")
    class G:
        @on_message("a")
        async def a(self) -> None: ...

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        await ws.send_bytes(b"\x00")
        frame = await ws.receive_json()
        assert frame["event"] == "error"
        assert frame["data"]["code"] == "unknown_event"
        # The connection stays open.
        await ws.send_bytes(b"\x00")
        assert (await ws.receive_json())["data"]["code"] == "unknown_event"


# ------------------------------------------------------------------ extractors


@ws_controller("/rooms/{room_id}/items/{item:int}/{key:uuid}")
class Extractors:
    @on_message("path")
    async def path(self, room_id: str, item: int, key: uuid.UUID) -> list[Any]:
        return [room_id, item, str(key), type(item).__name__, type(key).__name__]

    @on_message("query")
    async def query(
        self,
        page: Query[int],
        tags: Query[list[str]],
        size: Annotated[int, QueryParam(alias="per-page")] = 10,
        missing: Query[str | None] = None,
    ) -> list[Any]:
        return [page, tags, size, missing]

    @on_message("header")
    async def header(
        self,
        x_token: Header[str],
        lang: Annotated[str, HeaderParam("accept-language")] = "en",
    ) -> list[str]:
        return [x_token, lang]

    @on_message("struct")
    async def struct(self, body: Json[ChatMessage]) -> ChatMessage:
        return ChatMessage(body.text.upper(), body.n + 1)

    @on_message("union")
    async def union(self, body: Json[Join | Leave]) -> str:
        return type(body).__name__

    @on_message("dataclass")
    async def dataclass(self, body: Json[DCBody]) -> float:
        return body.value * 2

    @on_message("typeddict")
    async def typeddict(self, body: Json[TDBody]) -> str:
        return body["name"]

    @on_message("optional")
    async def optional(self, body: Json[ChatMessage | None]) -> bool:
        return body is None

    @on_message("literal")
    async def literal(self, body: Json[Literal["a", "b"]]) -> str:
        return body

    @on_message("default")
    async def default(self, body: Json[int] = 41) -> int:
        return body + 1


UID = "12345678-1234-5678-1234-567812345678"


async def test_path_query_header_and_json_extractors() -> None:
    app = App(gateways=[Extractors])
    async with TestClient(app) as client:
        async with client.websocket_connect(
            f"/rooms/r1/items/5/{UID}?page=2&tags=a&tags=b&per-page=50",
            headers={"x-token": "secret", "accept-language": "fr"},
        ) as ws:
            assert (await ws.request("path", id=1))["data"] == ["r1", 5, UID, "int", "UUID"]
            assert (await ws.request("query", id=2))["data"] == [2, ["a", "b"], 50, None]
            assert (await ws.request("header", id=3))["data"] == ["secret", "fr"]
            assert (await ws.request("struct", {"text": "hi", "n": 1}, id=4))["data"] == {
                "text": "HI",
                "n": 2,
            }
            assert (await ws.request("union", {"type": "leave", "room": "x"}, id=5))[
                "data"
            ] == "Leave"
            assert (await ws.request("dataclass", {"value": 1.5}, id=6))["data"] == 3.0
            assert (await ws.request("typeddict", {"name": "n"}, id=7))["data"] == "n"
            assert (await ws.request("optional", None, id=8))["data"] is True
            assert (await ws.request("literal", "b", id=9))["data"] == "b"
            assert (await ws.request("default", id=10))["data"] == 42
            assert (await ws.request("default", 1, id=11))["data"] == 2


async def test_missing_or_invalid_query_and_header_give_validation_errors() -> None:
    app = App(gateways=[Extractors])
    async with TestClient(app) as client:
        async with client.websocket_connect(f"/rooms/r/items/1/{UID}?page=x") as ws:
            err = await ws.request("query", id=1)
            assert err["data"]["code"] == "validation_error"
            assert err["data"]["detail"][0]["path"] == "$.query.page"
            err = await ws.request("header", id=2)
            assert err["data"]["code"] == "validation_error"
            assert err["data"]["detail"] == [
                {"path": "$.headers.x-token", "message": "required value is missing"}
            ]


async def test_validation_error_frame_lists_the_failing_path() -> None:
    app = App(gateways=[Extractors])
    async with TestClient(app) as client:
        async with client.websocket_connect(f"/rooms/r/items/1/{UID}") as ws:
            err = await ws.request("struct", {"text": 5}, id="abc")
            assert err == {
                "event": "error",
                "id": "abc",
                "data": {
                    "code": "validation_error",
                    "message": "invalid data for 'struct': Expected `str`, got `int` - at `$.text`",
                    "detail": [{"path": "$.data.text", "message": "Expected `str`, got `int`"}],
                },
            }
            err = await ws.request("struct", None, id=2)
            assert err["data"]["detail"][0]["path"] == "$.data"
            err = await ws.request("union", {"type": "nope", "room": "x"}, id=3)
            assert err["data"]["detail"][0]["path"] == "$.data.type"
            # Still open and serving.
            assert (await ws.request("literal", "a", id=4))["data"] == "a"


async def test_path_parameter_of_a_bad_shape_does_not_match() -> None:
    app = App(gateways=[Extractors])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect(f"/rooms/r/items/notanint/{UID}"):
                pass
        assert denied.value.status == 404


# ------------------------------------------------------------------ wire protocol


@ws_controller("/wire")
class Wire:
    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body

    @on_message("silent")
    async def silent(self) -> None:
        return None

    @on_message("boom")
    async def boom(self) -> None:
        raise RuntimeError("secret internal detail")

    @on_message("refuse")
    async def refuse(self) -> None:
        raise WebSocketError("not allowed here", detail={"why": "rules"})

    @on_message("sync")
    def sync(self, body: Json[int]) -> int:
        return body * 3


async def test_replies_and_exactly_once_answers() -> None:
    async with TestClient(App(gateways=[Wire])) as client, client.websocket_connect("/wire") as ws:
        # With an id: one reply, data = the return value.
        assert await ws.request("echo", {"a": [1, 2]}, id=1) == {
            "event": "echo",
            "id": 1,
            "data": {"a": [1, 2]},
        }
        # With an id and a None return: still exactly one reply, data null.
        assert await ws.request("silent", id=2) == {"event": "silent", "id": 2, "data": None}
        # Without an id: a non-None return is pushed without id; None sends nothing.
        await ws.send_event("silent")
        await ws.send_event("echo", "x")
        assert await ws.receive_json() == {"event": "echo", "data": "x"}
        # Sync handlers work too.
        assert (await ws.request("sync", 2, id=3))["data"] == 6


async def test_invalid_frames_get_invalid_frame_and_the_connection_stays_open() -> None:
    async with TestClient(App(gateways=[Wire])) as client, client.websocket_connect("/wire") as ws:
        for bad in [
            "not json",
            "[1, 2]",
            '"str"',
            '{"data": 1}',
            '{"event": 5}',
            '{"event": "echo", "id": [1]}',
        ]:
            await ws.send_text(bad)
            frame = await ws.receive_json()
            assert frame["event"] == "error", bad
            assert frame["data"]["code"] == "invalid_frame", bad
            assert frame["id"] is None
        # An id that can be read is echoed even when the event is missing.
        await ws.send_text('{"id": 9}')
        frame = await ws.receive_json()
        assert (frame["id"], frame["data"]["code"]) == (9, "invalid_frame")
        assert (await ws.request("echo", 1, id=10))["data"] == 1


async def test_unknown_event() -> None:
    async with TestClient(App(gateways=[Wire])) as client, client.websocket_connect("/wire") as ws:
        assert await ws.request("nope", id=1) == {
            "event": "error",
            "id": 1,
            "data": {
                "code": "unknown_event",
                "message": "no handler for event 'nope'",
                "detail": {"event": "nope"},
            },
        }


async def test_internal_error_leaks_nothing_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="wsgate")
    async with TestClient(App(gateways=[Wire])) as client, client.websocket_connect("/wire") as ws:
        frame = await ws.request("boom", id=1)
        assert frame == {
            "event": "error",
            "id": 1,
            "data": {"code": "internal_error", "message": "internal server error", "detail": None},
        }
        assert "secret" not in str(frame)
        await ws.send_event("boom")
        assert (await ws.receive_json())["id"] is None
        # A WebSocketError raised by a handler becomes an error frame with its code.
        assert (await ws.request("refuse", id=2))["data"] == {
            "code": "error",
            "message": "not allowed here",
            "detail": {"why": "rules"},
        }
        assert (await ws.request("echo", "still open", id=3))["data"] == "still open"
    record = next(r for r in caplog.records if "Wire.boom" in r.getMessage())
    assert "/wire" in record.getMessage() and "'boom'" in record.getMessage()
    assert record.exc_info is not None and "secret internal detail" in str(record.exc_info[1])


async def test_on_error_returning_resumes_and_id_still_gets_its_error() -> None:
    seen: list[str] = []

    @ws_controller("/")
    class G:
        @on_message("boom")
        async def boom(self) -> None:
            raise ValueError("bad")

        @on_message("ok")
        async def ok(self) -> str:
            return "fine"

        @on_error
        async def handle(self, ws: WebSocket, exc: Exception) -> None:
            seen.append(f"{type(exc).__name__}: {exc}")
            await ws.send_json({"event": "oops"})

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        await ws.send_event("boom")
        assert await ws.receive_json() == {"event": "oops"}  # no error frame without id
        await ws.send_event("boom", id=5)
        assert await ws.receive_json() == {"event": "oops"}
        assert (await ws.receive_json())["data"]["code"] == "internal_error"
        assert (await ws.request("ok", id=6))["data"] == "fine"
    assert seen == ["ValueError: bad", "ValueError: bad"]


async def test_on_error_raising_closes_with_1011() -> None:
    disconnected: list[int | None] = []

    @ws_controller("/")
    class G:
        @on_message("boom")
        async def boom(self) -> None:
            raise ValueError("bad")

        @on_error
        async def handle(self, error: ValueError) -> None:
            raise error

        @on_disconnect
        async def gone(self, ws: WebSocket) -> None:
            disconnected.append(ws.close_code)

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        await ws.send_event("boom", id=1)
        assert (await ws.receive_json())["data"]["code"] == "internal_error"
        assert (await ws.wait_closed())[0] == 1011
    assert disconnected == [1011]


# ------------------------------------------------------------------ lifecycle


async def test_on_connect_error_refuses_with_403_json_or_close_code() -> None:
    @ws_controller("/")
    class G:
        @on_connect
        async def connect(self, token: Query[str] = "") -> None:
            if token != "ok":
                raise WebSocketError("bad token", close_code=4003, detail={"hint": "log in"})

        @on_disconnect
        async def gone(self) -> None:
            raise AssertionError("on_disconnect must not run for a refused connection")

    app = App(gateways=[G])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/"):
                pass
        assert denied.value.status == 403
        assert denied.value.json() == {
            "error": {"code": "error", "message": "bad token", "detail": {"hint": "log in"}}
        }
        async with client.websocket_connect("/?token=ok"):
            pass
    async with TestClient(app, denial_extension=False) as client:
        async with client.websocket_connect("/") as ws:
            assert await ws.wait_closed() == (4003, "bad token")


async def test_on_connect_unexpected_error_refuses_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @ws_controller("/")
    class G:
        @on_connect
        async def connect(self) -> None:
            raise KeyError("oops")

    app = App(gateways=[G])
    async with TestClient(app, denial_extension=False) as client:
        async with client.websocket_connect("/") as ws:
            assert (await ws.wait_closed())[0] == 1011
    assert any("refusing with 1011" in r.getMessage() for r in caplog.records)


@pytest.mark.virtual_time
async def test_on_disconnect_runs_exactly_once_for_every_ending() -> None:
    ends: list[tuple[str, int | None]] = []
    release = anyio.Event()

    @ws_controller("/{how}")
    class G:
        @on_message("server-close")
        async def server_close(self, ws: WebSocket) -> None:
            await ws.close(4000, "server said so")

        @on_message("raise")
        async def fail(self) -> None:
            raise RuntimeError("x")

        @on_error
        async def error(self, exc: Exception) -> None:
            raise exc

        @on_message("block")
        async def block(self) -> None:
            await release.wait()

        @on_disconnect
        async def gone(self, ws: WebSocket, how: str) -> None:
            await (
                anyio.lowlevel.checkpoint()
            )  # a checkpoint: the hook is shielded from the cancellation
            ends.append((how, ws.close_code))

    app = App(gateways=[G])
    async with TestClient(app) as client:
        async with client.websocket_connect("/peer") as ws:
            await ws.close(4100)
        async with client.websocket_connect("/server") as ws:
            await ws.send_event("server-close")
            assert await ws.wait_closed() == (4000, "server said so")
        async with client.websocket_connect("/handler") as ws:
            await ws.send_event("raise")
            assert (await ws.wait_closed())[0] == 1011
        async with client.websocket_connect("/blocked") as ws:
            await ws.send_event("block")
            await ws.close(1001)  # the blocked handler is cancelled after the grace (1 s)
        async with client.websocket_connect("/shutdown") as ws:
            # Lifespan shutdown while connected: closed with 1001.
            await client.app.shutdown()
            assert await ws.wait_closed() == (1001, "server shutting down")
    assert sorted(ends) == sorted(
        [("peer", 4100), ("server", 4000), ("handler", 1011), ("blocked", 1001), ("shutdown", 1001)]
    )


async def test_frames_are_handled_in_order_by_default() -> None:
    @ws_controller("/")
    class G:
        @on_message("n")
        async def n(self, body: Json[int]) -> int:
            for _ in range(body % 3):
                await anyio.lowlevel.checkpoint()
            return body

    async with TestClient(App(gateways=[G])) as client, client.websocket_connect("/") as ws:
        for i in range(50):
            await ws.send_event("n", i, id=i)
        assert [(await ws.receive_json())["id"] for _ in range(50)] == list(range(50))


@pytest.mark.virtual_time
async def test_concurrency_lets_a_fast_handler_pass_a_slow_one() -> None:
    release = anyio.Event()

    @ws_controller("/", concurrency=4)
    class G:
        @on_message("slow")
        async def slow(self) -> str:
            await release.wait()
            return "slow"

        @on_message("fast")
        async def fast(self) -> str:
            release.set()
            return "fast"

    @ws_controller("/serial")
    class Serial:
        @on_message("slow")
        async def slow(self) -> str:
            await release.wait()
            return "slow"

        @on_message("fast")
        async def fast(self) -> str:
            return "fast"

    async with TestClient(App(gateways=[G, Serial])) as client:
        async with client.websocket_connect("/") as ws:
            await ws.send_event("slow", id=1)
            await ws.send_event("fast", id=2)
            assert [(await ws.receive_json())["data"] for _ in range(2)] == ["fast", "slow"]
        release = anyio.Event()
        async with client.websocket_connect("/serial") as ws:
            await ws.send_event("slow", id=1)
            await ws.send_event("fast", id=2)
            with pytest.raises(TimeoutError):
                await ws.receive_json(timeout=30)  # fast waits behind slow
            release.set()
            assert [(await ws.receive_json())["data"] for _ in range(2)] == ["slow", "fast"]


async def test_async_generator_handlers_stream_and_are_cancelled_with_the_connection() -> None:
    finished: list[str] = []

    @ws_controller("/")
    class G:
        @on_message("ticks")
        async def ticks(self, body: Json[int]) -> Any:
            try:
                for i in range(body):
                    yield {"i": i}
                await anyio.sleep_forever()
            finally:
                finished.append("closed")

        @on_message("ping")
        async def ping(self) -> str:
            return "pong"

    async with TestClient(App(gateways=[G])) as client:
        async with client.websocket_connect("/") as ws:
            await ws.send_event("ticks", 3, id=1)
            assert await ws.receive_json() == {"event": "ticks", "id": 1, "data": None}
            assert [await ws.receive_json() for _ in range(3)] == [
                {"event": "ticks", "data": {"i": i}} for i in range(3)
            ]
            # The stream runs beside the dispatcher: other frames are still served.
            assert (await ws.request("ping", id=2))["data"] == "pong"
    assert finished == ["closed"]


async def test_gateway_without_handlers_whose_on_connect_returns_stays_open_for_pushes() -> None:
    @ws_controller("/feed")
    class Feed:
        def __init__(self, groups: BroadcastGroup) -> None:
            self.groups = groups

        @on_connect
        async def connect(self, ws: WebSocket) -> None:
            await self.groups.subscribe("feed", ws)

    app = App(gateways=[Feed])
    groups = app.container.get(BroadcastGroup)
    async with TestClient(app) as client, client.websocket_connect("/feed") as ws:
        assert await groups.broadcast("feed", {"event": "tick"}) == 1
        assert await ws.receive_json() == {"event": "tick"}
        assert (await ws.request("anything", id=1))["data"]["code"] == "unknown_event"


async def test_root_path_prefix() -> None:
    @ws_controller("/chat/{room}")
    class G:
        @on_message("where")
        async def where(self, ws: WebSocket, room: str) -> list[str]:
            return [ws.path, room]

    async with TestClient(App(gateways=[G])) as client:
        async with client.websocket_connect("/chat/1", root_path="/api") as ws:
            assert (await ws.request("where", id=1))["data"] == ["/chat/1", "1"]


# ------------------------------------------------------------------ dependency injection


@injectable()
class Clock:
    def now(self) -> int:
        return 42


@injectable()
class Service:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock


@injectable()
class Rooms(BroadcastGroup):
    pass


async def test_providers_are_singletons_built_with_their_dependencies() -> None:
    instances: list[Any] = []

    @ws_controller("/")
    class G:
        def __init__(self, service: Service, rooms: BroadcastGroup) -> None:
            instances.append((self, service, rooms))

        @on_message("now")
        async def now(self, service: Service, clock: Clock) -> list[Any]:
            return [service.clock.now(), service.clock is clock]

    app = App(gateways=[G], providers=[Service, Clock, Rooms])
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as a, client.websocket_connect("/") as b:
            assert (await a.request("now", id=1))["data"] == [42, True]
            assert (await b.request("now", id=1))["data"] == [42, True]
    (g1, s1, r1), (g2, s2, r2) = instances
    assert g1 is not g2  # one gateway instance per connection
    assert s1 is s2  # providers are app-wide singletons
    assert r1 is r2 and type(r1) is Rooms  # the subclass satisfies BroadcastGroup
    assert app.broadcasters == (r1,)


def test_missing_provider_and_cycles_are_startup_errors() -> None:
    class Missing:
        pass

    @injectable()
    class NeedsMissing:
        def __init__(self, m: Missing) -> None: ...

    with pytest.raises(ConfigurationError, match="NeedsMissing.__init__: parameter 'm' of type"):
        App(providers=[NeedsMissing])

    @ws_controller("/")
    class G:
        def __init__(self, m: Missing) -> None: ...

    with pytest.raises(ConfigurationError, match="G.__init__: parameter 'm'"):
        App(gateways=[G])


@injectable()
class CycleA:
    def __init__(self, b: "CycleB") -> None: ...


@injectable()
class CycleB:
    def __init__(self, a: CycleA) -> None: ...


def test_dependency_cycle_is_a_startup_error() -> None:
    with pytest.raises(
        ConfigurationError, match="dependency cycle between providers: CycleA -> CycleB -> CycleA"
    ):
        App(providers=[CycleA, CycleB])


def test_provider_instances_are_used_as_given() -> None:
    clock = Clock()
    app = App(providers=[clock])
    assert app.container.get(Clock) is clock
    assert type(app.container.get(BroadcastGroup)) is BroadcastGroup  # the default one
