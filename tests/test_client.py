"""wsgate.client, the Python client, against real servers (hypercorn trio, hypercorn
asyncio, uvicorn) serving tests/apps/client_app.py, on trio and on asyncio."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import msgspec
import pytest
import servers
from httpx_ws.transport import ASGIWebSocketTransport
from servers import SERVER_PARAMS, ServerPool, ServerProcess, ServerURL

from wsgate import App
from wsgate.client import (
    ClientState,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    DataValidationError,
    Push,
    ReconnectPolicy,
    RequestError,
    connect,
)

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean
server_kind = servers.server_kind

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

APP = "apps.client_app:app"
#: Reconnect quickly in tests (the default starts at 0.5 s).
FAST = ReconnectPolicy(initial_delay=0.05, max_delay=0.5)
#: Seconds any wait in these tests may take before it fails.
WAIT = 10.0


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/client_app.py under each server kind."""
    return server_pool.get(request.param, APP)


class Point(msgspec.Struct):
    x: int
    y: int


class Sum(msgspec.Struct):
    sum: int


class Tick(msgspec.Struct):
    n: int


class Who(msgspec.Struct):
    token: str
    user: str
    pid: int
    subprotocol: str | None


async def test_request_returns_the_reply_decoded_into_a_type(server: str) -> None:
    async with connect(f"{server}/svc") as conn:
        assert conn.connection_state is ClientState.OPEN
        assert await conn.request("echo", {"a": [1, 2]}) == {"a": [1, 2]}
        assert await conn.request("echo") is None
        # A Struct is encoded as the request's data and the reply decoded into one.
        assert await conn.request("add", Point(2, 3), type=Sum) == Sum(5)
        assert await conn.request("echo", [1, 2], type=tuple[int, int]) == (1, 2)
        # Concurrent requests are matched to their own replies.
        results: dict[int, Any] = {}

        async def one(n: int) -> None:
            results[n] = await conn.request("add", {"x": n, "y": n}, type=Sum)

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(one, n)
        assert results == {n: Sum(2 * n) for n in range(20)}


async def test_error_frames_raise_request_error_and_the_connection_stays(server: str) -> None:
    async with connect(f"{server}/svc") as conn:
        with pytest.raises(RequestError) as forbidden:
            await conn.request("forbidden")
        assert (forbidden.value.code, forbidden.value.message) == ("forbidden", "not for you")
        assert forbidden.value.detail == {"need": "admin"}
        assert forbidden.value.event == "forbidden"

        with pytest.raises(RequestError) as invalid:
            await conn.request("add", {"x": 1, "y": "two"})
        assert invalid.value.code == "validation_error"
        assert invalid.value.detail[0]["path"] == "$.data.y"

        with pytest.raises(RequestError) as unknown:
            await conn.request("nope")
        assert unknown.value.code == "unknown_event"
        assert unknown.value.detail == {"event": "nope"}

        assert await conn.request("echo", 1) == 1
        assert conn.connection_state is ClientState.OPEN


async def test_a_reply_that_does_not_match_the_type_raises_a_clear_error(server: str) -> None:
    async with connect(f"{server}/svc") as conn:
        with pytest.raises(DataValidationError) as err:
            await conn.request("echo", {"x": 1, "y": "two"}, type=Point)
        assert isinstance(err.value, ValueError)
        assert "'echo'" in str(err.value) and "Point" in str(err.value)
        assert "$.y" in str(err.value)
        assert isinstance(err.value.__cause__, msgspec.ValidationError)
        assert err.value.data == b'{"x":1,"y":"two"}'


@pytest.mark.virtual_time
async def test_a_timed_out_request_raises_and_its_late_reply_is_discarded() -> None:
    # In-process on the virtual clock: the default request_timeout (10 s) against a
    # handler that answers after 15 s.
    from apps.client_app import app

    async with httpx.AsyncClient(transport=ASGIWebSocketTransport(app)) as http:
        async with connect("ws://test/svc", http_client=http, reconnect=False) as conn:
            sent = anyio.current_time()
            with pytest.raises(TimeoutError, match="no reply to 'slow' within 10.0 s"):
                await conn.request("slow", 15.0)
            assert anyio.current_time() - sent == pytest.approx(10.0)
            # The late reply (at 15 s) comes before this one's (at 10 + 20 s) and is
            # dropped, not taken for it.
            assert await conn.request("slow", 20.0, timeout=60) == "done"
            assert anyio.current_time() - sent == pytest.approx(30.0)
            assert conn.statistics().late_replies == 1
            with pytest.raises(ValueError, match="timeout must be positive"):
                await conn.request("echo", timeout=0)
            assert await conn.request("echo", 2, timeout=math.inf) == 2


async def test_events_yields_pushes_typed_and_untyped(server: str) -> None:
    async with connect(f"{server}/svc") as conn:
        ticks = conn.events("tick", type=Tick)
        everything = conn.events()
        assert await conn.request("push", 3) == 3
        with anyio.fail_after(WAIT):
            got = [await ticks.receive() for _ in range(3)]
            seen = [await everything.receive() for _ in range(4)]
        assert got == [Push("tick", Tick(0)), Push("tick", Tick(1)), Push("tick", Tick(2))]
        # Every push, but never the reply to the request.
        assert [p.event for p in seen] == ["tick", "tick", "tick", "other"]
        assert seen[0].data == {"n": 0} and seen[3].data == "x"

        # A push that does not match the subscription's type: a clear error, and the
        # subscription goes on.
        wrong = conn.events("other", type=int)
        await conn.request("push", 0)
        with anyio.fail_after(WAIT), pytest.raises(DataValidationError, match="'other'"):
            await wrong.receive()
        ticks.close()
        everything.close()
        wrong.close()
        with pytest.raises(RuntimeError, match="subscription was closed"):
            await ticks.receive()


async def test_a_slow_subscriber_loses_the_oldest_pushes_and_counts_them(server: str) -> None:
    async with connect(f"{server}/svc") as conn:
        async with conn.events("tick", type=Tick, queue_size=2) as ticks:
            await conn.request("push", 5)  # frames arrive in order: the pushes came first
            assert ticks.dropped == 3
            assert conn.statistics().dropped_pushes == 3
            with anyio.fail_after(WAIT):
                assert [(await ticks.receive()).data.n for _ in range(2)] == [3, 4]
            # Requests were never held up by the full buffer.
            assert await conn.request("echo", "still here") == "still here"


async def test_iteration_ends_when_the_connection_is_closed(server: str) -> None:
    async with connect(f"{server}/svc") as conn:
        received: list[int] = []

        async def consume() -> None:
            async for push in conn.events("tick", type=Tick):
                received.append(push.data.n)
                if len(received) == 2:
                    await conn.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            with anyio.fail_after(WAIT):
                await conn.send_event("push", 2)
                await conn.wait_for_state(ClientState.CLOSED)
        assert received == [0, 1]
        with pytest.raises(ConnectionClosed, match="closed by the program"):
            await conn.request("echo", 1)


async def test_stream_yields_the_items_of_an_async_generator_handler(server: str) -> None:
    async with connect(f"{server}/svc") as conn:
        items = []
        with anyio.fail_after(WAIT):
            async with conn.stream("count", 3, type=Tick) as stream:
                async for item in stream:
                    items.append(item)
                    if item.n == 2:
                        break
        assert items == [Tick(0), Tick(1), Tick(2)]
        with pytest.raises(RequestError) as err:
            async for _ in conn.stream("count", "three"):
                pass  # pragma: no cover - the request fails first
        assert err.value.code == "validation_error"


async def test_headers_query_and_subprotocols_reach_the_server(server: str) -> None:
    async with connect(f"{server}/svc?user=ann", headers={"x-token": "t0k"}) as conn:
        who = await conn.request("whoami", type=Who)
        assert (who.token, who.user) == ("t0k", "ann")
    async with connect(f"{server}/sub", subprotocols=["a", "b"]) as conn:
        assert conn.subprotocol == "b"
        assert await conn.request("which") == "b"


async def test_a_refused_handshake_raises_connect_error(server: str) -> None:
    with pytest.raises(ConnectError) as refused:
        async with connect(f"{server}/guarded"):
            pass  # pragma: no cover
    assert refused.value.status == 403
    assert refused.value.message.startswith("the server refused the handshake with HTTP 403")
    assert refused.value.detail == {"header": "x-token"}
    async with connect(f"{server}/guarded", headers={"x-token": "secret"}) as conn:
        assert await conn.request("echo", 5) == 5

    with pytest.raises(ConnectError) as unreachable:
        async with connect(f"ws://127.0.0.1:{_closed_port()}/svc"):
            pass  # pragma: no cover
    assert unreachable.value.status is None
    assert isinstance(unreachable.value, ConnectionError)


@pytest.mark.parametrize("code", [1000, 1008, 4001])
async def test_close_codes_that_say_not_to_reconnect_close_for_good(server: str, code: int) -> None:
    states: list[ClientState] = []
    async with connect(f"{server}/svc", reconnect=FAST, on_state_change=states.append) as conn:
        subscription = conn.events()
        await conn.send_event("close", {"code": code, "reason": "bye"})
        with anyio.fail_after(WAIT):
            await conn.wait_for_state(ClientState.CLOSED)
        assert (conn.close_code, conn.close_reason) == (code, "bye")
        assert states == [ClientState.OPEN, ClientState.CLOSED]
        assert conn.statistics().connects == 1
        with pytest.raises(ConnectionClosed) as err:
            await conn.request("echo", 1)
        assert err.value.code == code
        assert f"closed it with code {code}" in str(err.value)
        with pytest.raises(ConnectionClosed):
            await conn.wait_for_state(ClientState.OPEN, timeout=WAIT)
        async for _ in subscription:
            raise AssertionError("the subscription ends when the connection is closed")
        await conn.close()  # already closed: nothing changes
        assert conn.close_code == code
    with pytest.raises(ConnectionClosed, match=f"closed it with code {code}"):
        await conn.request("echo", 1)


@pytest.mark.parametrize("code", [1011, 1012, 1013])
async def test_other_close_codes_reconnect_and_subscriptions_survive(
    server: str, code: int
) -> None:
    reconnected = anyio.Event()

    async def on_reconnect(conn: Any) -> None:
        # Runs while the connection is open: it may make requests (e.g. re-join rooms).
        assert await conn.request("echo", "again") == "again"
        reconnected.set()

    async with connect(f"{server}/svc", reconnect=FAST, on_reconnect=on_reconnect) as conn:
        ticks = conn.events("tick", type=Tick)
        await conn.send_event("close", {"code": code})
        with anyio.fail_after(WAIT):
            await reconnected.wait()
        assert conn.connection_state is ClientState.OPEN
        assert conn.close_code == code
        assert conn.statistics().connects == 2
        await conn.request("push", 1)
        with anyio.fail_after(WAIT):
            assert (await ticks.receive()).data == Tick(0)


async def test_reconnect_false_closes_for_good_when_the_connection_drops(server: str) -> None:
    async with connect(f"{server}/svc", reconnect=False) as conn:
        await conn.send_event("close", {"code": 1012})
        with anyio.fail_after(WAIT):
            await conn.wait_for_state(ClientState.CLOSED)
        with pytest.raises(ConnectionClosed, match="reconnect=False"):
            await conn.send_event("echo")


async def test_a_request_in_flight_when_the_connection_drops_is_not_resent(
    server: str,
) -> None:
    async with connect(f"{server}/svc", reconnect=FAST) as conn:
        outcome: list[BaseException] = []

        async def slow() -> None:
            try:
                await conn.request("slow", 5.0, timeout=WAIT)
            except ConnectionLost as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            await conn.request("echo", 1)  # the slow request is on the wire before this reply
            await conn.send_event("close", {"code": 1012})
        assert len(outcome) == 1
        assert "not resent" in str(outcome[0])
        assert getattr(outcome[0], "code", None) == 1012
        with anyio.fail_after(WAIT):
            await conn.wait_for_state(ClientState.OPEN)
            assert await conn.request("echo", 2) == 2


async def test_a_stream_ends_with_connection_lost_when_the_connection_drops(
    server: str,
) -> None:
    async with connect(f"{server}/svc", reconnect=FAST) as conn:
        stream = conn.stream("count", 1, type=Tick)
        with anyio.fail_after(WAIT):
            assert await stream.__anext__() == Tick(0)
            await conn.send_event("close", {"code": 1012})
            with pytest.raises(ConnectionLost):
                await stream.__anext__()
        stream.close()


async def test_leaving_the_block_closes_and_lets_the_exception_through(server: str) -> None:
    with pytest.raises(KeyError):
        async with connect(f"{server}/svc") as conn:
            pending = conn.events("tick")
            raise KeyError("from the program")
    assert conn.connection_state is ClientState.CLOSED
    assert conn.close_code == 1000
    async for _ in pending:
        raise AssertionError("nothing was pushed")

    # Cancelled from outside while waiting for a reply: the cancellation goes through
    # and the connection is closed.
    with anyio.move_on_after(1.0) as scope:
        async with connect(f"{server}/svc") as conn:
            await conn.request("slow", 5.0, timeout=WAIT)
    assert scope.cancelled_caught
    assert conn.connection_state is ClientState.CLOSED


async def test_wait_for_state_times_out_with_a_clear_error(server: str) -> None:
    async with connect(f"{server}/svc") as conn:
        with pytest.raises(TimeoutError, match="not RECONNECTING within 0.05 s"):
            await conn.wait_for_state(ClientState.RECONNECTING, timeout=0.05)


async def test_the_client_reconnects_after_a_server_restart(
    server_kind: str, tmp_path: Path
) -> None:
    server = ServerProcess(server_kind, APP, tmp_path, graceful_timeout=1)
    url = await anyio.to_thread.run_sync(server.start)
    try:
        reconnected = anyio.Event()

        async def on_reconnect(conn: Any) -> None:
            reconnected.set()

        async with connect(
            f"{url}/svc?user=ann", reconnect=FAST, on_reconnect=on_reconnect
        ) as conn:
            ticks = conn.events("tick", type=Tick)
            before = await conn.request("whoami", type=Who)

            await anyio.to_thread.run_sync(server.stop)
            with anyio.fail_after(WAIT):
                await conn.wait_for_state(ClientState.RECONNECTING)
            # While the server is down, a request waits for the reconnect, up to its timeout.
            with pytest.raises(TimeoutError):
                await conn.request("echo", 1, timeout=0.1)

            waited: list[Any] = []

            async def wait_then_request() -> None:
                waited.append(await conn.request("echo", "waited", timeout=WAIT + 30))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_then_request)
                await anyio.to_thread.run_sync(lambda: server.start(port=url.port))
                with anyio.fail_after(WAIT):
                    await reconnected.wait()
            assert waited == ["waited"]
            after = await conn.request("whoami", type=Who)
            assert after.pid != before.pid and after.user == "ann"
            await conn.request("push", 2)
            with anyio.fail_after(WAIT):
                assert [(await ticks.receive()).data for _ in range(2)] == [Tick(0), Tick(1)]
            assert conn.statistics().connects == 2
    finally:
        await anyio.to_thread.run_sync(server.stop)


async def test_the_client_gives_up_after_max_attempts(server_kind: str, tmp_path: Path) -> None:
    server = ServerProcess(server_kind, APP, tmp_path, graceful_timeout=1)
    url = await anyio.to_thread.run_sync(server.start)
    try:
        states: list[ClientState] = []
        policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, max_attempts=3)
        async with connect(f"{url}/svc", reconnect=policy, on_state_change=states.append) as conn:
            await anyio.to_thread.run_sync(server.stop)
            with anyio.fail_after(WAIT):
                await conn.wait_for_state(ClientState.CLOSED)
            assert states == [
                ClientState.OPEN,
                ClientState.RECONNECTING,
                ClientState.CLOSED,
            ]
            assert isinstance(conn.last_error, ConnectError)
            assert conn.last_error.status is None
            with pytest.raises(ConnectionClosed, match="reconnecting failed"):
                await conn.request("echo", 1)
    finally:
        await anyio.to_thread.run_sync(server.stop)


async def test_the_client_talks_to_an_app_in_process() -> None:
    from apps.client_app import app

    async with httpx.AsyncClient(transport=ASGIWebSocketTransport(app)) as http:
        async with connect("ws://test/svc?user=ann", http_client=http, reconnect=False) as conn:
            assert (await conn.request("whoami", type=Who)).user == "ann"
            assert await conn.request("add", Point(1, 2), type=Sum) == Sum(3)
        assert conn.connection_state is ClientState.CLOSED


async def test_a_connection_must_be_entered_before_use() -> None:
    conn = connect("ws://127.0.0.1:1/svc")
    with pytest.raises(RuntimeError, match="async with connect"):
        await conn.request("echo")
    with pytest.raises(RuntimeError, match="never entered"):
        await conn.close()


async def test_the_state_machine_allows_only_its_transitions() -> None:
    from wsgate.client.state import StateMachine

    seen: list[ClientState] = []
    machine = StateMachine(seen.append)
    with pytest.raises(RuntimeError, match="CONNECTING -> RECONNECTING"):
        machine.move(ClientState.RECONNECTING)
    for state in (ClientState.OPEN, ClientState.RECONNECTING, ClientState.OPEN):
        machine.move(state)
    machine.move(ClientState.OPEN)  # no change, no notification
    machine.move(ClientState.CLOSED)
    with pytest.raises(RuntimeError, match="CLOSED -> OPEN"):
        machine.move(ClientState.OPEN)
    assert seen == [
        ClientState.OPEN,
        ClientState.RECONNECTING,
        ClientState.OPEN,
        ClientState.CLOSED,
    ]


def test_reconnect_policy_backoff_and_rules() -> None:
    policy = ReconnectPolicy()
    assert [policy.delay(n, rand=lambda: 1.0) for n in range(8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        20.0,
        20.0,
    ]
    assert policy.delay(3, rand=lambda: 0.0) == 0.0
    assert policy.delay(10_000, rand=lambda: 0.5) == 10.0
    assert [policy.reconnects_after_close(c) for c in (None, 1001, 1006, 1011, 1012, 1013)] == [
        True
    ] * 6
    assert not any(policy.reconnects_after_close(c) for c in (1000, 1008, 4000, 4003, 4999))
    assert [policy.reconnects_after_status(s) for s in (None, 403, 404, 408, 429, 500, 503)] == [
        True,
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert not ReconnectPolicy(max_attempts=3).gives_up(2)
    assert ReconnectPolicy(max_attempts=3).gives_up(3)
    with pytest.raises(ValueError, match="multiplier"):
        ReconnectPolicy(multiplier=0.5)
    with pytest.raises(ValueError, match="delays"):
        ReconnectPolicy(initial_delay=-1)
    with pytest.raises(ValueError, match="ws:// or wss://"):
        connect("tcp://127.0.0.1:1/")
    with pytest.raises(TypeError, match="ReconnectPolicy"):
        connect("ws://127.0.0.1:1/", reconnect=3)  # type: ignore[arg-type]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _NoJitter(ReconnectPolicy):
    """The policy's ceilings without their random part, so the waits are exact."""

    def delay(self, attempt: int, rand: Any = None) -> float:
        return ReconnectPolicy.delay(self, attempt, rand=lambda: 1.0)


class _Restarting(httpx.AsyncBaseTransport):
    """In front of an in-process app: answers the next ``refuse`` handshakes with 503, as
    a proxy does while the app behind it restarts, and notes when each one came."""

    def __init__(self, app: App) -> None:
        self.app = ASGIWebSocketTransport(app)
        self.refuse = 0
        self.attempts: list[float] = []

    async def __aenter__(self) -> _Restarting:
        await self.app.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.app.__aexit__(*exc)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(anyio.current_time())
        if self.refuse > 0:
            self.refuse -= 1
            return httpx.Response(503, content=b"restarting")
        return await self.app.handle_async_request(request)


@pytest.mark.virtual_time
async def test_reconnect_backs_off_between_refused_handshakes() -> None:
    # In-process on the virtual clock: the server restarts (1012) and the next four
    # handshakes are refused with 503. The client waits 1, 2, 4, 8 and (the maximum) 8
    # seconds before its attempts; once open again, the count starts over.
    from apps.client_app import app

    policy = _NoJitter(initial_delay=1.0, multiplier=2.0, max_delay=8.0)
    states: list[ClientState] = []
    proxy = _Restarting(app)
    async with httpx.AsyncClient(transport=proxy) as http:
        async with connect(
            "ws://test/svc", http_client=http, reconnect=policy, on_state_change=states.append
        ) as conn:
            proxy.refuse = 4
            await conn.send_event("close", {"code": 1012})
            await conn.wait_for_state(ClientState.RECONNECTING, timeout=WAIT)
            closed = anyio.current_time()
            await conn.wait_for_state(ClientState.OPEN, timeout=60)
            assert await conn.request("echo", "back") == "back"
            times = [closed, *proxy.attempts[1:]]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert gaps == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0])
            assert conn.statistics().connects == 2
            # Open again: after the next restart the first wait is the initial delay.
            await conn.send_event("close", {"code": 1012})
            await conn.wait_for_state(ClientState.RECONNECTING, timeout=WAIT)
            closed = anyio.current_time()
            await conn.wait_for_state(ClientState.OPEN, timeout=60)
            assert proxy.attempts[-1] - closed == pytest.approx(1.0)
    assert states == [ClientState.OPEN, ClientState.RECONNECTING] * 2 + [
        ClientState.OPEN,
        ClientState.CLOSED,
    ]
