"""Guards, per-connection dependencies, connection limits and the handshake timeout,
in-process through the TestClient (the real-server side is in
tests/test_guards_servers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.lowlevel
import pytest

from wsgate import (
    App,
    ConfigurationError,
    Frame,
    Header,
    HeaderParam,
    Json,
    Query,
    WebSocket,
    WebSocketError,
    on_connect,
    on_disconnect,
    on_message,
    ws_controller,
)
from wsgate.testing import TestClient, WebSocketClosed, WebSocketDenied


class User:
    def __init__(self, name: str, admin: bool = False) -> None:
        self.name = name
        self.admin = admin


class Journal:
    """What ran, in order (an app-wide provider)."""

    def __init__(self) -> None:
        self.events: list[str] = []


TOKENS = {"t-ann": User("ann", admin=True), "t-bob": User("bob")}


def current_user(token: Annotated[str, HeaderParam("x-token")], journal: Journal) -> User:
    """A per-connection dependency: authenticates the handshake."""
    journal.events.append("current_user")
    user = TOKENS.get(token)
    if user is None:
        raise WebSocketError("unknown token", close_code=4001)
    return user


def is_admin(user: User) -> bool:
    return user.admin


async def log_guard(journal: Journal, ws: WebSocket) -> None:
    journal.events.append(f"app guard {ws.path}")


def has_data(frame: Frame) -> bool:
    return bytes(frame.data) != b"null"


@ws_controller("/room/{room}", guards=[lambda room: room != "closed"])
class Room:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @on_connect
    async def connect(self, user: User, room: str) -> None:
        self.journal.events.append(f"on_connect {user.name} {room}")

    @on_message("whoami")
    async def whoami(self, user: User) -> str:
        return user.name

    @on_message("admin", guards=[is_admin])
    async def admin(self) -> str:
        return "secret"

    @on_message("named", guards=[has_data])
    async def named(self, body: Json[str | None] = None) -> Any:
        return body

    @on_disconnect
    async def gone(self, user: User) -> None:
        self.journal.events.append(f"on_disconnect {user.name}")


@ws_controller("/admin", guards=[is_admin])
class AdminOnly:
    @on_message("ping")
    async def ping(self) -> str:
        return "pong"


def _app(**options: Any) -> tuple[App, Journal]:
    journal = Journal()
    app = App(
        gateways=[Room, AdminOnly],
        providers=[journal],
        guards=[log_guard],
        dependencies=[current_user],
        **options,
    )
    return app, journal


async def _denied(client: TestClient, path: str, **kwargs: Any) -> WebSocketDenied:
    with pytest.raises(WebSocketDenied) as denied:
        async with client.websocket_connect(path, **kwargs):
            pass  # pragma: no cover - refused
    return denied.value


# ------------------------------------------------------------------ handshake guards


async def test_guards_and_dependencies_run_before_on_connect_in_order() -> None:
    app, journal = _app()
    async with TestClient(app) as client:
        async with client.websocket_connect("/room/1", headers={"x-token": "t-bob"}) as ws:
            assert (await ws.request("whoami"))["data"] == "bob"
    assert journal.events == [
        "app guard /room/1",  # the App's guard first; it needs no dependency
        "current_user",  # called once per connection
        "on_connect bob 1",
        "on_disconnect bob",
    ]


async def test_a_guard_returning_false_refuses_with_403_forbidden() -> None:
    app, journal = _app()
    async with TestClient(app) as client:
        denied = await _denied(client, "/admin", headers={"x-token": "t-bob"})
        async with client.websocket_connect("/admin", headers={"x-token": "t-ann"}) as ws:
            assert (await ws.request("ping"))["data"] == "pong"
        denied_room = await _denied(client, "/room/closed", headers={"x-token": "t-ann"})
    assert denied.status == 403
    assert denied.json()["error"]["code"] == "forbidden"
    assert denied_room.json()["error"]["code"] == "forbidden"
    assert app.stats.refused_guard == 2
    assert "on_connect ann closed" not in journal.events


async def test_a_dependency_raising_websocket_error_refuses_like_a_guard() -> None:
    app, journal = _app()
    async with TestClient(app) as client:
        denied = await _denied(client, "/room/1", headers={"x-token": "nope"})
    assert denied.status == 403
    assert denied.json() == {"error": {"code": "error", "message": "unknown token", "detail": None}}
    assert not any(e.startswith("on_connect") for e in journal.events)
    assert app.stats.refused_guard == 1


async def test_a_missing_header_refuses_with_validation_error() -> None:
    app, _ = _app()
    async with TestClient(app) as client:
        denied = await _denied(client, "/room/1")
    assert denied.status == 403
    assert denied.json()["error"]["code"] == "validation_error"


async def test_without_denial_extension_the_error_close_code_is_used() -> None:
    app, _ = _app()
    async with TestClient(app, denial_extension=False) as client:
        with pytest.raises(WebSocketClosed) as closed:
            async with client.websocket_connect("/room/1", headers={"x-token": "nope"}) as ws:
                await ws.receive(timeout=2)
    assert (closed.value.code, closed.value.reason) == (4001, "unknown token")


async def test_a_crashing_guard_refuses_with_500(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("guard bug")

    @ws_controller("/x", guards=[broken])
    class X:
        @on_message("e")
        async def e(self) -> None: ...

    app = App(gateways=[X])
    async with TestClient(app) as client:
        denied = await _denied(client, "/x")
    assert denied.status == 500
    assert b"guard bug" not in denied.body
    assert "a guard or per-connection dependency failed on /x" in caplog.text


async def test_one_guard_protects_many_gateways_with_their_own_path_params() -> None:
    seen: list[Any] = []

    def only_even(n: int, ws: WebSocket, lang: Header[str] = "en", page: Query[int] = 0) -> bool:
        seen.append((ws.path_template, n, lang, page))
        return n % 2 == 0

    @ws_controller("/a/{n:int}")
    class A:
        @on_message("e")
        async def e(self) -> str:
            return "a"

    @ws_controller("/b/{n}")
    class B:
        @on_message("e")
        async def e(self) -> str:
            return "b"

    app = App(gateways=[A, B], guards=[only_even])
    async with TestClient(app) as client:
        for path in ("/a/2", "/b/4?page=3"):
            async with client.websocket_connect(path, headers={"lang": "fr"}) as ws:
                assert (await ws.request("e"))["event"] == "e"
        await _denied(client, "/a/3")
        await _denied(client, "/b/5")
    assert seen[:2] == [("/a/{n:int}", 2, "fr", 0), ("/b/{n}", 4, "fr", 3)]


# ------------------------------------------------------------------ message guards


async def test_message_guard_answers_forbidden_and_keeps_the_connection() -> None:
    app, _ = _app()
    async with TestClient(app) as client:
        async with client.websocket_connect("/room/1", headers={"x-token": "t-bob"}) as ws:
            assert await ws.request("admin", id=7) == {
                "event": "error",
                "id": 7,
                "data": {"code": "forbidden", "message": "not allowed to send 'admin'", "detail": None},
            }
            assert (await ws.request("whoami", id=8))["data"] == "bob"  # still open
            assert (await ws.request("named", None, id=9))["data"]["code"] == "forbidden"
            assert (await ws.request("named", "x", id=10))["data"] == "x"
        async with client.websocket_connect("/room/1", headers={"x-token": "t-ann"}) as ws:
            assert (await ws.request("admin", id=1))["data"] == "secret"
    assert app.stats.forbidden_frames == 2


async def test_message_guard_websocket_error_code_and_close() -> None:
    def quota(body: Any = None) -> None:
        raise WebSocketError("over quota", detail={"left": 0})

    def banned() -> None:
        raise WebSocketError("banned", close_code=4003)

    @ws_controller("/q")
    class Q:
        @on_message("send", guards=[quota])
        async def send(self) -> None:  # pragma: no cover - refused
            raise AssertionError("the handler must not run")

        @on_message("ban", guards=[banned])
        async def ban(self) -> None:  # pragma: no cover - refused
            raise AssertionError("the handler must not run")

    app = App(gateways=[Q])
    async with TestClient(app) as client:
        async with client.websocket_connect("/q") as ws:
            frame = await ws.request("send", id=1)
            assert frame["data"] == {"code": "error", "message": "over quota", "detail": {"left": 0}}
            frame = await ws.request("ban", id=2)
            assert frame["data"]["message"] == "banned"
            assert await ws.wait_closed(timeout=2) == (4003, "banned")


async def test_guards_differ_per_stacked_event() -> None:
    @ws_controller("/s")
    class S:
        @on_message("open")
        @on_message("locked", guards=[lambda: False])
        async def h(self, frame: Frame) -> str:
            return frame.event

    async with TestClient(App(gateways=[S])) as client:
        async with client.websocket_connect("/s") as ws:
            assert (await ws.request("open", id=1))["data"] == "open"
            assert (await ws.request("locked", id=2))["data"]["code"] == "forbidden"


# ------------------------------------------------------------------ startup errors


def test_a_guard_parameter_nothing_supplies_names_guard_gateway_and_parameter() -> None:
    def needs_secret(secret: int) -> bool:  # pragma: no cover - never called
        return True

    with pytest.raises(ConfigurationError) as err:
        App(gateways=[AdminOnly], guards=[needs_secret], dependencies=[current_user])
    text = str(err.value)
    assert "needs_secret" in text and "AdminOnly" in text and "'secret'" in text

    @ws_controller("/g")
    class G:
        @on_message("e", guards=[needs_secret])
        async def e(self) -> None: ...

    with pytest.raises(ConfigurationError, match=r"needs_secret.*G\.e.*'e'.*'secret'"):
        App(gateways=[G])


def test_guards_take_functions() -> None:
    from wsgate import DecoratorUsageError

    with pytest.raises(DecoratorUsageError, match=r"guards=\["):
        ws_controller("/x", guards=is_admin)  # type: ignore[arg-type]
    with pytest.raises(DecoratorUsageError, match="functions"):
        on_message("e", guards=["admin"])  # type: ignore[list-item]


class A_:
    pass


class B_:
    pass


def make_a(b: B_) -> A_:  # pragma: no cover - never called
    return A_()


def make_b(a: A_) -> B_:  # pragma: no cover - never called
    return B_()


def test_dependency_cycle_is_a_startup_error_naming_it() -> None:
    with pytest.raises(ConfigurationError, match=r"cycle.*make_a -> .*make_b -> .*make_a"):
        App(gateways=[AdminOnly], dependencies=[make_a, make_b], guards=[lambda: True])


def test_dependency_without_return_type_is_a_startup_error() -> None:
    def anon(ws: WebSocket):  # type: ignore[no-untyped-def]  # pragma: no cover
        return 1

    with pytest.raises(ConfigurationError, match=r"dependency .*anon has no return annotation"):
        App(gateways=[AdminOnly], dependencies=[anon])


def test_dependency_parameter_nothing_supplies_names_it() -> None:
    def needs(thing: A_) -> B_:  # pragma: no cover - never called
        return B_()

    @ws_controller("/n")
    class N:
        @on_connect
        async def c(self, b: B_) -> None: ...

    with pytest.raises(
        ConfigurationError, match=r"dependency .*needs \(for gateway .*N\), parameter 'thing'"
    ):
        App(gateways=[N], dependencies=[needs])


def test_dependency_type_clashing_with_a_provider() -> None:
    def journal() -> Journal:  # pragma: no cover - never called
        return Journal()

    with pytest.raises(ConfigurationError, match="already provides"):
        App(gateways=[AdminOnly], providers=[Journal], dependencies=[journal])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_connections": 0}, "max_connections must be"),
        ({"max_connections_per_client": -1}, "max_connections_per_client must be"),
        ({"handshake_timeout": 0}, "handshake_timeout must be"),
    ],
)
def test_limits_are_validated(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        App(gateways=[AdminOnly], **options)


# ------------------------------------------------------------------ per-connection contexts


class Resource:
    def __init__(self, journal: Journal, name: str) -> None:
        self.journal = journal
        self.name = name


@asynccontextmanager
async def resource(journal: Journal, name: Query[str] = "r") -> AsyncIterator[Resource]:
    journal.events.append(f"enter {name}")
    try:
        yield Resource(journal, name)
    finally:
        await anyio.lowlevel.checkpoint()  # exiting may await
        journal.events.append(f"exit {name}")


class Session_:
    pass


async def session_gen(res: Resource) -> AsyncIterator[Session_]:
    res.journal.events.append("enter session")
    yield Session_()
    res.journal.events.append("exit session")


def refuse_if(refuse: Query[str] = "") -> None:
    if refuse:
        raise WebSocketError("refused by guard")


@ws_controller("/res", guards=[refuse_if])
class UsesResource:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @on_connect
    async def connect(self, res: Resource, query_fail: Query[str] = "") -> None:
        self.journal.events.append("on_connect")
        if query_fail:
            raise WebSocketError("refused by on_connect")

    @on_message("name")
    async def name(self, res: Resource, s: Session_) -> str:
        return res.name

    @on_disconnect
    async def gone(self) -> None:
        self.journal.events.append("on_disconnect")


def _res_app() -> tuple[App, Journal]:
    journal = Journal()
    return App(
        gateways=[UsesResource], providers=[journal], dependencies=[resource, session_gen]
    ), journal


async def test_context_dependency_exits_after_on_disconnect() -> None:
    app, journal = _res_app()
    async with TestClient(app) as client:
        async with client.websocket_connect("/res?name=db") as ws:
            assert (await ws.request("name"))["data"] == "db"
    assert journal.events == [
        "enter db",
        "enter session",
        "on_connect",
        "on_disconnect",
        "exit session",  # last entered, first exited
        "exit db",
    ]


async def test_context_dependency_exits_when_the_handshake_is_refused() -> None:
    app, journal = _res_app()
    async with TestClient(app) as client:
        await _denied(client, "/res?query_fail=1")
    assert journal.events == ["enter r", "enter session", "on_connect", "exit session", "exit r"]


async def test_guard_refusing_before_any_dependency_enters_none() -> None:
    app, journal = _res_app()
    async with TestClient(app) as client:
        await _denied(client, "/res?refuse=1")
    assert journal.events == []


# ------------------------------------------------------------------ limits and timeouts


@ws_controller("/plain")
class Plain:
    @on_message("ping")
    async def ping(self) -> str:
        return "pong"


async def test_max_connections_refuses_the_next_with_503() -> None:
    app = App(gateways=[Plain], max_connections=2)
    async with TestClient(app) as client:
        async with client.websocket_connect("/plain") as a, client.websocket_connect("/plain") as b:
            denied = await _denied(client, "/plain")
            assert denied.status == 503
            assert denied.json()["error"]["code"] == "too_many_connections"
            for ws in (a, b):  # the others see nothing
                assert (await ws.request("ping"))["data"] == "pong"
        async with client.websocket_connect("/plain") as c:  # room again
            assert (await c.request("ping"))["data"] == "pong"
    assert app.stats.refused_limit == 1


async def test_without_denial_extension_a_limit_closes_with_1013() -> None:
    app = App(gateways=[Plain], max_connections=1)
    async with TestClient(app, denial_extension=False) as client:
        async with client.websocket_connect("/plain"):
            scope = client.websocket_scope("/plain")
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "websocket.connect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1013}]


async def test_max_connections_per_client() -> None:
    app = App(gateways=[Plain], max_connections_per_client=1)
    async with TestClient(app) as one, TestClient(app, lifespan=False, client=("10.0.0.2", 1)) as two:
        async with one.websocket_connect("/plain"):
            denied = await _denied(one, "/plain")
            assert denied.status == 503
            async with two.websocket_connect("/plain") as other:  # another address
                assert (await other.request("ping"))["data"] == "pong"
        async with one.websocket_connect("/plain"):
            pass
    assert app.stats.refused_limit == 1


#: The default handshake_timeout; the sweep looks 4 times per period, at least once a second.
HANDSHAKE_TIMEOUT = 10.0
HANDSHAKE_SWEEP = 1.0


@pytest.mark.virtual_time
@pytest.mark.parametrize("guard_takes", [HANDSHAKE_TIMEOUT - 0.1, None])  # None: forever
async def test_a_slow_guard_is_refused_at_the_handshake_timeout_not_before(
    guard_takes: float | None,
) -> None:
    async def slow() -> None:
        if guard_takes is None:
            await anyio.Event().wait()
        await anyio.sleep(guard_takes or 0)  # a slow backend call

    @ws_controller("/slow", guards=[slow])
    class Slow:
        @on_message("e")
        async def e(self) -> str:
            return "handled"

    app = App(gateways=[Slow], handshake_timeout=HANDSHAKE_TIMEOUT)
    async with TestClient(app, timeout=60) as client:
        if guard_takes is not None:
            async with client.websocket_connect("/slow") as ws:
                assert (await ws.request("e", id=1))["data"] == "handled"
            assert app.stats.handshake_timeouts == 0
            return
        started = anyio.current_time()
        denied = await _denied(client, "/slow")
        waited = anyio.current_time() - started
    assert HANDSHAKE_TIMEOUT <= waited <= HANDSHAKE_TIMEOUT + HANDSHAKE_SWEEP
    assert denied.status == 503
    assert denied.json()["error"]["code"] == "handshake_timeout"
    assert app.stats.handshake_timeouts == 1


@pytest.mark.virtual_time
async def test_slow_on_connect_hits_the_handshake_timeout_without_extension() -> None:
    @ws_controller("/slow")
    class Slow:
        @on_connect
        async def c(self) -> None:
            await anyio.sleep_forever()

        @on_message("e")
        async def e(self) -> None: ...

    app = App(gateways=[Slow], handshake_timeout=HANDSHAKE_TIMEOUT)
    async with TestClient(app, denial_extension=False, timeout=60) as client:
        started = anyio.current_time()
        with pytest.raises(WebSocketClosed) as closed:
            async with client.websocket_connect("/slow") as ws:
                await ws.receive()
        waited = anyio.current_time() - started
    assert HANDSHAKE_TIMEOUT <= waited <= HANDSHAKE_TIMEOUT + HANDSHAKE_SWEEP
    assert closed.value.code == 1013
    assert app.stats.handshake_timeouts == 1


@pytest.mark.virtual_time
async def test_an_owning_on_connect_that_accepted_outlives_the_handshake_timeout() -> None:
    @ws_controller("/own")
    class Own:
        @on_connect
        async def run(self, ws: WebSocket) -> None:
            await ws.accept()
            await anyio.sleep(3 * HANDSHAKE_TIMEOUT)  # long after the deadline, accepted
            async for text in ws.iter_text():
                await ws.send_text("got " + text)

    app = App(gateways=[Own], handshake_timeout=HANDSHAKE_TIMEOUT)
    async with TestClient(app, timeout=60) as client:
        async with client.websocket_connect("/own") as ws:
            await ws.send_text("a")
            assert await ws.receive_text() == "got a"
    assert app.stats.handshake_timeouts == 0


@pytest.mark.virtual_time
async def test_a_dispatching_on_connect_that_accepted_is_not_cut() -> None:
    @ws_controller("/accepts")
    class Accepts:
        @on_connect
        async def c(self, ws: WebSocket) -> None:
            await ws.accept()
            await ws.send_text("accepted")
            await anyio.sleep(3 * HANDSHAKE_TIMEOUT)  # long after the deadline, accepted

        @on_message("e")
        async def e(self) -> str:
            return "handled"

    app = App(gateways=[Accepts], handshake_timeout=HANDSHAKE_TIMEOUT)
    async with TestClient(app, timeout=60) as client:
        async with client.websocket_connect("/accepts") as ws:
            assert await ws.receive_text() == "accepted"
            assert (await ws.request("e", id=1))["data"] == "handled"
    assert app.stats.handshake_timeouts == 0


async def test_a_guard_may_answer_the_handshake_itself() -> None:
    journal = Journal()

    async def deny(ws: WebSocket) -> None:
        await ws.deny(401, b"log in first")

    @ws_controller("/d", guards=[deny])
    class D:
        @on_connect
        async def c(self) -> None:  # pragma: no cover - refused before
            journal.events.append("on_connect")

    app = App(gateways=[D])
    async with TestClient(app) as client:
        denied = await _denied(client, "/d")
    assert (denied.status, denied.body) == (401, b"log in first")
    assert journal.events == []


async def test_context_dependency_exits_when_on_connect_crashes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()

    @ws_controller("/crash")
    class Crash:
        @on_connect
        async def c(self, res: Resource) -> None:
            raise RuntimeError("bug")

    app = App(gateways=[Crash], providers=[journal], dependencies=[resource])
    async with TestClient(app) as client:
        denied = await _denied(client, "/crash")
    assert denied.status == 500
    assert journal.events == ["enter r", "exit r"]
