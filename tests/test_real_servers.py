"""wsgate under real servers (hypercorn trio, hypercorn asyncio, uvicorn) with the real
``websockets`` client: the wire protocol, handshakes and refusals, closes, and
``@on_disconnect`` when a client vanishes.

Each server runs in its own process (tests/servers.py); the tests run on trio and on
asyncio and talk to it through the ``websockets`` sync client in worker threads. What
is only visible inside the server (hook counts, open connections) is asked through the
``/probe`` gateway of tests/apps/gateways.py.
"""

from __future__ import annotations

import functools
import signal
import uuid
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
from apps import gateways as gateways_app
from apps.gateways import NO_EXTENSION_PREFIX
from servers import (
    ABRUPT_CLOSE_CODE,
    CLIENT_CLOSE_CODE,
    DENIAL_EXTENSION,
    SHUTDOWN_CLOSE_CODE,
    SHUTDOWN_HOOK_CODE,
    Client,
    RawClient,
    ServerProcess,
    ServerURL,
    wait_for,
)
from websockets.exceptions import InvalidStatus

from wsgate import serve

# The fixtures, from the harness.
server = servers.server
chat_server = servers.chat_server
server_kind = servers.server_kind
server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

# Request the backend fixture at collection time: without it the anyio plugin re-creates
# each async test per backend after collection and drops the server parametrization
# (and ignores WSGATE_BACKENDS).
pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")


def _error(frame: dict[str, Any]) -> dict[str, Any]:
    assert frame["event"] == "error", frame
    data: dict[str, Any] = frame["data"]
    return data


async def _refusal(url: str) -> InvalidStatus | tuple[int | None, str]:
    """Connect to ``url`` expecting a refusal: the InvalidStatus of an HTTP denial, or
    the ``(code, reason)`` of an accept-then-close."""
    try:
        client = await Client.connect(url)
    except InvalidStatus as exc:
        return exc
    code, reason, seen = await client.wait_closed()
    assert seen == [], f"a refused connection got frames: {seen!r}"
    return code, reason


# ------------------------------------------------------------------ the envelope


async def test_echo_replies_correlate_by_id(server: ServerURL) -> None:
    async with await Client.connect(f"{server}/echo") as c:
        payloads: list[tuple[int | str, Any]] = [
            (1, {"a": 1}),
            ("two", [1, 2, 3]),
            (3, "text with \u00e9 and \u2603"),
            ("x-4", None),
            (5, 12.5),
        ]
        # Pipelined: every frame is sent before any reply is read.
        for id, data in payloads:
            await c.send_event("echo", data, id=id)
        replies = [await c.recv_json() for _ in payloads]
        assert replies == [{"event": "echo", "id": id, "data": data} for id, data in payloads]
        # Without an id the reply is a push: no "id" key at all.
        await c.send_event("echo", {"n": 1})
        assert await c.recv_json() == {"event": "echo", "data": {"n": 1}}


async def test_typed_validation_error_keeps_the_connection(server: ServerURL) -> None:
    async with await Client.connect(f"{server}/echo") as c:
        frame = await c.request("add", {"x": 1, "y": "two"}, id=7)
        assert frame["id"] == 7
        err = _error(frame)
        assert err["code"] == "validation_error"
        assert err["detail"] == [{"path": "$.data.y", "message": "Expected `int`, got `str`"}]
        assert "add" in err["message"]

        frame = await c.request("add", {"x": 1}, id="missing")
        err = _error(frame)
        assert frame["id"] == "missing"
        assert err["code"] == "validation_error"
        assert err["detail"] == [{"path": "$.data", "message": "Object missing required field `y`"}]

        # The connection is still open and served.
        assert await c.request("add", {"x": 1, "y": 2}, id=8) == {
            "event": "add",
            "id": 8,
            "data": {"sum": 3},
        }
        assert c.skipped == []


async def test_invalid_json_frame_keeps_the_connection(server: ServerURL) -> None:
    async with await Client.connect(f"{server}/echo") as c:
        await c.send("this is not json{")
        frame = await c.recv_json()
        assert frame["id"] is None
        err = _error(frame)
        assert err["code"] == "invalid_frame"
        assert "JSON" in err["message"]

        # Valid JSON but not an envelope: the id is still read back.
        await c.send_json({"id": 5, "data": 1})
        frame = await c.recv_json()
        assert frame["id"] == 5
        assert _error(frame)["code"] == "invalid_frame"

        await c.send_json([1, 2])
        assert _error(await c.recv_json())["code"] == "invalid_frame"

        assert await c.request("echo", "still here", id=6) == {
            "event": "echo",
            "id": 6,
            "data": "still here",
        }


async def test_unknown_event(server: ServerURL) -> None:
    async with await Client.connect(f"{server}/echo") as c:
        frame = await c.request("nope", {"x": 1}, id=3)
        err = _error(frame)
        assert err["code"] == "unknown_event"
        assert err["detail"] == {"event": "nope"}
        assert await c.request("echo", 1, id=4) == {"event": "echo", "id": 4, "data": 1}


async def test_binary_round_trip(server: ServerURL) -> None:
    data = bytes(range(256)) * 64  # every byte value, 16 KiB: no text decoding anywhere
    async with await Client.connect(f"{server}/echo") as c:
        await c.send(data)
        reply = await c.recv()
        assert isinstance(reply, bytes)
        assert reply == b"echo:" + data
        # Text frames still go through the envelope on the same connection.
        assert await c.request("echo", "t", id=1) == {"event": "echo", "id": 1, "data": "t"}


# ------------------------------------------------------------------ handshakes


async def test_server_offers_the_denial_extension_as_recorded(server: ServerURL) -> None:
    """The per-server expectations below rest on this table; check it against the scope
    the server really builds."""
    async with await Client.connect(f"{server}/probe") as c:
        frame = await c.request("extensions", id=1)
    offered = "websocket.http.response" in frame["data"]
    assert offered is DENIAL_EXTENSION[server.kind]


#: Refusals are checked as the server really offers them ("offered": the denial
#: extension where the server has it) and with the extension removed from the scope by
#: the test app ("removed": the fallback every server without it gets).
EXTENSION = pytest.mark.parametrize("extension", ["offered", "removed"])


def _refusal_url(server: ServerURL, extension: str, path: str) -> tuple[str, bool]:
    """The URL to connect to, and whether the app can answer with an HTTP response."""
    if extension == "offered":
        return f"{server}{path}", DENIAL_EXTENSION[server.kind]
    return f"{server}{NO_EXTENSION_PREFIX}{path}", False


@EXTENSION
async def test_unknown_path_is_refused(server: ServerURL, extension: str) -> None:
    url, http_denial = _refusal_url(server, extension, "/no/such/endpoint")
    result = await _refusal(url)
    assert isinstance(result, InvalidStatus), result
    if http_denial:
        assert result.response.status_code == 404
        assert result.response.headers["content-type"] == "application/json"
        body = _json(result.response.body)
        assert body["error"]["code"] == "not_found"
        assert "/no/such/endpoint" in body["error"]["message"]
    else:
        # The app closes before accepting: every server here answers 403, empty body.
        assert result.response.status_code == 403
        assert bytes(result.response.body) == b""


@EXTENSION
async def test_on_connect_websocket_error_refuses(server: ServerURL, extension: str) -> None:
    url, http_denial = _refusal_url(server, extension, "/refuse")
    result = await _refusal(url)
    if http_denial:
        assert isinstance(result, InvalidStatus), result
        assert result.response.status_code == 403
        assert result.response.headers["content-type"] == "application/json"
        assert _json(result.response.body) == {
            "error": {"code": "error", "message": "nope", "detail": None}
        }
    else:
        # Accepted, then closed at once with the error's code and message.
        assert result == (4003, "nope")


@EXTENSION
async def test_on_connect_crash_refuses_with_500(server: ServerURL, extension: str) -> None:
    url, http_denial = _refusal_url(server, extension, "/crash")
    result = await _refusal(url)
    if http_denial:
        assert isinstance(result, InvalidStatus), result
        assert result.response.status_code == 500
        body = _json(result.response.body)
        assert body["error"]["code"] == "internal_error"
        assert "bug" not in result.response.body.decode()  # no internals leak
    else:
        assert result == (1011, "internal error")


@EXTENSION
async def test_deny_sends_the_http_response(server: ServerURL, extension: str) -> None:
    url, http_denial = _refusal_url(server, extension, "/deny")
    result = await _refusal(url)
    assert isinstance(result, InvalidStatus), result
    if http_denial:
        assert result.response.status_code == 401
        assert result.response.headers["content-type"] == "application/json"
        assert bytes(result.response.body) == b'{"why":"no token"}'
    else:
        assert result.response.status_code == 403


async def test_gateways_work_below_the_no_extension_prefix(server: ServerURL) -> None:
    """The "removed" variants above refuse because of the gateway, not the prefix."""
    async with await Client.connect(f"{server}{NO_EXTENSION_PREFIX}/echo") as c:
        assert await c.request("echo", 1, id=1) == {"event": "echo", "id": 1, "data": 1}
    async with await Client.connect(f"{server}{NO_EXTENSION_PREFIX}/probe") as c:
        frame = await c.request("extensions", id=1)
        assert "websocket.http.response" not in frame["data"]


async def test_subprotocol_negotiation(server: ServerURL) -> None:
    async with await Client.connect(f"{server}/subprotocol", subprotocols=["a", "b"]) as c:
        assert c.subprotocol == "b"
        frame = await c.request("which", id=1)
        assert frame["data"] == {"accepted": "b", "offered": ["a", "b"]}


# ------------------------------------------------------------------ closes


async def test_server_initiated_close_code_and_reason(server: ServerURL) -> None:
    c = await Client.connect(f"{server}/echo")
    await c.send_event("close", {"code": 4001, "reason": "bye now"})
    code, reason, seen = await c.wait_closed()
    assert (code, reason, seen) == (4001, "bye now", [])


async def test_handler_websocket_error_with_close_code(server: ServerURL) -> None:
    c = await Client.connect(f"{server}/echo")
    await c.send_event("fail", {"code": 4002}, id=9)
    code, reason, seen = await c.wait_closed()
    # The error frame answering the frame comes first, then the close.
    assert len(seen) == 1
    frame = _json(seen[0])
    assert frame["id"] == 9
    assert _error(frame)["code"] == "error"
    assert _error(frame)["message"] == "go away"
    assert (code, reason) == (4002, "go away")


@pytest.mark.parametrize("how", ["close-frame", "fin", "rst"])
async def test_on_disconnect_runs_once_when_the_client_leaves(server: ServerURL, how: str) -> None:
    key = f"{how}-{uuid.uuid4().hex}"
    raw = await anyio.to_thread.run_sync(RawClient.connect, f"{server}/tracked/{key}")
    try:
        await anyio.to_thread.run_sync(lambda: raw.send_event("echo", "hi", id=1))
        opcode, payload = await anyio.to_thread.run_sync(raw.read_frame)
        assert (opcode, _json(payload)) == (1, {"event": "echo", "id": 1, "data": "hi"})
        async with await Client.connect(f"{server}/probe") as probe:
            before = (await probe.request("tracked", key, id=0))["data"]
            assert before == {"disconnects": 0, "close_codes": [], "open": True}

            if how == "close-frame":
                # A well-behaved close: send the close frame, read the server's answer,
                # then close the TCP connection.
                await anyio.to_thread.run_sync(lambda: raw.send_close(4321, "done"))
                frames, code, _ = await anyio.to_thread.run_sync(raw.read_until_close)
                assert (frames, code) == ([], 4321)  # the server echoes the code
                await anyio.to_thread.run_sync(raw.close)
                expected_code = CLIENT_CLOSE_CODE[server.kind] or 4321
            elif how == "fin":
                await anyio.to_thread.run_sync(raw.drop)  # TCP FIN, no close frame
                expected_code = ABRUPT_CLOSE_CODE[server.kind]
            else:
                await anyio.to_thread.run_sync(raw.abort)  # TCP RST, no close frame
                expected_code = ABRUPT_CLOSE_CODE[server.kind]

            n = 0

            async def finished() -> Any:
                nonlocal n
                n += 1
                data = (await probe.request("tracked", key, id=n))["data"]
                # "open" turns False only once the connection's task ended, i.e. after
                # @on_disconnect returned: no second call can come after it.
                return data if not data["open"] else None

            after = await wait_for(finished, timeout=15, what="the connection to end")
            assert after["disconnects"] == 1
            assert after["close_codes"] == [expected_code]
    finally:
        raw.close()


async def test_raw_owning_gateway(server: ServerURL) -> None:
    c = await Client.connect(f"{server}/raw")
    for text in ["hello", "", "\u00e9t\u00e9", '{"event":"echo"}']:
        await c.send(text)
        assert await c.recv() == "raw:" + text
    await c.send("bye")  # @on_connect returns: the runtime closes with 1000
    code, _reason, seen = await c.wait_closed()
    assert (code, seen) == (1000, [])


async def test_raw_owning_gateway_client_close(server: ServerURL) -> None:
    async with await Client.connect(f"{server}/raw") as c:
        await c.send("x")
        assert await c.recv() == "raw:x"
    assert c.conn.close_code == 1000  # the server answered our close


# ------------------------------------------------------------------ shutdown


async def test_server_shutdown_ends_connections_and_runs_on_disconnect_once(
    server_kind: str, tmp_path: Path
) -> None:
    """Stopping a server (SIGINT) with a connection open: the client sees the connection
    end, ``@on_disconnect`` runs exactly once, and the server exits cleanly."""
    proc = ServerProcess(server_kind, "apps.gateways:app", tmp_path, graceful_timeout=1)
    url = await anyio.to_thread.run_sync(proc.start)
    key = uuid.uuid4().hex
    try:
        c = await Client.connect(f"{url}/tracked/{key}")
        assert await c.request("echo", 1, id=1) == {"event": "echo", "id": 1, "data": 1}
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGINT)
        code, _reason, seen = await c.wait_closed(timeout=15)
        assert seen == []
        assert code == SHUTDOWN_CLOSE_CODE[server_kind]
        returncode = await anyio.to_thread.run_sync(lambda: proc.proc.wait(15))  # type: ignore[union-attr]
        assert returncode == 0, url.log()
        hooks = [line for line in url.log().splitlines() if f"on_disconnect key={key}" in line]
        assert hooks == [f"on_disconnect key={key} code={SHUTDOWN_HOOK_CODE[server_kind]}"], (
            url.log()
        )
    finally:
        proc.stop()


async def test_serve_cancelled_closes_connections_with_1001() -> None:
    """``wsgate.serve`` (hypercorn embedded in this process): cancelling its scope "stops
    the server gracefully: lifespan shutdown runs, so open connections are closed with
    1001 and their @on_disconnect hooks run" (its docstring)."""
    key = uuid.uuid4().hex
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                functools.partial(
                    serve, gateways_app.gateway_app, "127.0.0.1", 0, graceful_timeout=3
                )
            )
            c = await Client.connect(f"ws://127.0.0.1:{port}/tracked/{key}")
            assert await c.request("echo", 1, id=1) == {"event": "echo", "id": 1, "data": 1}
            tg.cancel_scope.cancel()
        code, reason, _seen = await c.wait_closed(timeout=5)
    tracker = gateways_app.gateway_app.container.get(gateways_app.Tracker)
    assert (code, reason) == (1001, "server shutting down"), (
        f"the client saw {code} {reason!r}; @on_disconnect saw {tracker.close_codes.get(key)}"
    )
    assert tracker.disconnects.get(key) == 1
    assert tracker.close_codes[key] == [1001]


# ------------------------------------------------------------------ the chat example


async def test_chat_broadcast_reaches_the_other_members(chat_server: ServerURL) -> None:
    room = f"r{uuid.uuid4().hex[:12]}"
    url = f"{chat_server}/chat/{room}"
    alice = await Client.connect(f"{url}?user=alice", room_view=True)
    bob = await Client.connect(f"{url}?user=bob", room_view=True)
    carol = await Client.connect(f"{url}?user=carol", room_view=True)
    outsider = await Client.connect(f"{chat_server}/chat/{room}-other?user=dave", room_view=True)
    try:
        # Joining happens in @on_connect, before accept: all three are members now.
        who = await alice.request("who", id="w")
        assert who == {"event": "who", "id": "w", "data": {"room": room, "members": 3}}
        assert alice.skipped == [
            {"event": "joined", "data": {"user": "bob", "members": 2}},
            {"event": "joined", "data": {"user": "carol", "members": 3}},
        ]
        assert await bob.recv_json() == {"event": "joined", "data": {"user": "carol", "members": 3}}

        await alice.send_event("chat.send", {"text": "hi all"})
        expected = {
            "event": "chat.message",
            "data": {"room": room, "user": "alice", "text": "hi all", "token": ""},
        }
        assert await bob.recv_json() == expected
        assert await carol.recv_json() == expected
        # The sender gets the room's copy too, and another room hears nothing: the next
        # frame each gets then is the answer to its own request.
        assert await alice.recv_json() == expected
        assert await alice.request("echo", 1, id=2) == {"event": "echo", "id": 2, "data": 1}
        assert len(alice.skipped) == 2  # nothing new arrived before the echo reply
        assert await outsider.request("echo", 1, id=2) == {"event": "echo", "id": 2, "data": 1}
        assert outsider.skipped == []

        # A typed message with the wrong shape is an error for the sender only.
        err = await bob.request("chat.send", {"txt": "typo"}, id=3)
        assert _error(err)["code"] == "validation_error"

        # Leaving is broadcast to those who stay.
        await carol.close()
        left = {"event": "left", "data": {"user": "carol", "members": 2}}
        assert await alice.recv_json() == left
        assert await bob.recv_json() == left
        assert (await bob.request("who", id=4))["data"] == {"room": room, "members": 2}
    finally:
        with anyio.CancelScope(shield=True):
            for c in (alice, bob, carol, outsider):
                await c.close()


def _json(data: str | bytes | bytearray) -> Any:
    import json

    return json.loads(data)
