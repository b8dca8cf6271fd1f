"""The handshake checks under real servers (hypercorn trio, hypercorn asyncio, uvicorn)
with the real ``websockets`` client sending Origin and other headers: cross-origin
refusals, guards at the handshake and per frame, ``max_connections``, and a
per-connection context exiting after ``@on_disconnect``. The apps are
tests/apps/guarded.py.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
from apps.guarded import NO_EXTENSION_PREFIX
from servers import SERVER_PARAMS, Client, ServerPool, ServerURL, wait_for
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

_HAS_LEGACY = "legacy" in inspect.signature(connect).parameters


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def guarded(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/guarded.py's ``app`` under each server kind."""
    return server_pool.get(request.param, "apps.guarded:app")


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def limited(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/guarded.py's ``limited`` (max_connections=2) under each server kind."""
    return server_pool.get(request.param, "apps.guarded:limited")


async def _connect(
    url: str, *, origin: str | None = None, headers: Mapping[str, str] | None = None
) -> Client:
    """A ``websockets`` client sending ``Origin`` and ``headers`` (InvalidStatus if
    refused)."""

    def open_() -> Any:
        kwargs: dict[str, Any] = {"legacy": True} if _HAS_LEGACY else {}
        return connect(
            url,
            origin=origin,  # type: ignore[arg-type]
            additional_headers=dict(headers or {}),
            compression=None,
            open_timeout=5,
            close_timeout=5,
            max_size=None,
            ping_interval=None,
            **kwargs,
        )

    return Client(await anyio.to_thread.run_sync(open_))


async def _refused(url: str, **kwargs: Any) -> InvalidStatus:
    try:
        client = await _connect(url, **kwargs)
    except InvalidStatus as exc:
        return exc
    await client.close()
    raise AssertionError(f"{url} accepted a handshake that should be refused")


def _body(exc: InvalidStatus) -> Any:
    assert exc.response.headers["content-type"] == "application/json"
    return json.loads(bytes(exc.response.body))


# ------------------------------------------------------------------ Origin


async def test_cross_origin_handshake_is_refused_with_403(guarded: ServerURL) -> None:
    refused = await _refused(f"{guarded}/echo", origin="https://evil.example.net")
    assert refused.response.status_code == 403
    error = _body(refused)["error"]
    assert error["code"] == "origin_not_allowed"
    assert error["detail"] == {"origin": "https://evil.example.net"}


async def test_cross_origin_without_denial_extension_is_closed_before_accept(
    guarded: ServerURL,
) -> None:
    """A close (1008) before accept: every server here answers it with 403."""
    url = f"{guarded}{NO_EXTENSION_PREFIX}/echo"
    refused = await _refused(url, origin="https://evil.example.net")
    assert refused.response.status_code == 403
    assert bytes(refused.response.body) == b""
    async with await _connect(url, origin=f"http://127.0.0.1:{guarded.port}") as c:
        assert (await c.request("echo", 1, id=1))["data"] == 1


async def test_same_origin_and_originless_handshakes_are_accepted(guarded: ServerURL) -> None:
    # The client's Host header is 127.0.0.1:PORT; a page served by this server has
    # this origin.
    for origin in (f"http://127.0.0.1:{guarded.port}", None):
        async with await _connect(f"{guarded}/echo", origin=origin) as c:
            assert await c.request("echo", "hi", id=1) == {"event": "echo", "id": 1, "data": "hi"}


async def test_another_port_of_the_same_host_is_another_origin(guarded: ServerURL) -> None:
    refused = await _refused(f"{guarded}/echo", origin=f"http://127.0.0.1:{guarded.port + 1}")
    assert refused.response.status_code == 403


# ------------------------------------------------------------------ guards


async def test_guard_refuses_the_handshake_with_403_json(guarded: ServerURL) -> None:
    for headers in ({}, {"x-token": "wrong"}):
        refused = await _refused(f"{guarded}/secure", headers=headers)
        assert refused.response.status_code == 403
        assert _body(refused) == {
            "error": {
                "code": "error",
                "message": "a valid x-token header is required",
                "detail": None,
            }
        }


async def test_message_guard_answers_forbidden_and_the_connection_stays(guarded: ServerURL) -> None:
    async with await _connect(f"{guarded}/secure", headers={"x-token": "t-bob"}) as c:
        assert (await c.request("whoami", id=1))["data"] == "bob"
        frame = await c.request("admin", id=2)
        assert frame["event"] == "error" and frame["id"] == 2
        assert frame["data"]["code"] == "forbidden"
        assert (await c.request("whoami", id=3))["data"] == "bob"
    async with await _connect(f"{guarded}/secure", headers={"x-token": "t-ann"}) as c:
        assert (await c.request("admin", id=1))["data"] == "welcome, ann"


# ------------------------------------------------------------------ dependencies


async def test_context_dependency_exits_after_on_disconnect(guarded: ServerURL) -> None:
    key = uuid.uuid4().hex
    async with await _connect(f"{guarded}/ctx/{key}") as c:
        assert (await c.request("key", id=1))["data"] == key

    async def events() -> list[str] | None:
        async with await _connect(f"{guarded}/probe") as probe:
            seen: list[str] = (await probe.request("events", key, id=1))["data"]
        return seen if "exit" in seen else None

    seen = await wait_for(events, what=f"the context of {key} to exit")
    assert seen == ["enter", "on_connect", "on_disconnect", "exit"]


# ------------------------------------------------------------------ limits


async def test_handshake_timeout_refuses_with_503(guarded: ServerURL) -> None:
    """The lifespan sweep bounds handshakes under every server."""
    refused = await _refused(f"{guarded}/slow")
    assert refused.response.status_code == 503
    assert _body(refused)["error"]["code"] == "handshake_timeout"


async def test_max_connections_refuses_the_next_client_with_503(limited: ServerURL) -> None:
    url = f"{limited}/hold"

    async def try_connect() -> Client | None:
        # Connections of a previous test may still be ending on the server.
        try:
            return await _connect(url)
        except InvalidStatus:
            return None

    first: Client = await wait_for(try_connect, what="a free connection slot")
    second: Client = await wait_for(try_connect, what="a second free connection slot")
    try:
        refused = await _refused(url)
        assert refused.response.status_code == 503
        assert _body(refused)["error"]["code"] == "too_many_connections"
        for c in (first, second):  # the others see nothing but their own replies
            assert await c.request("ping", id=1) == {"event": "ping", "id": 1, "data": "pong"}
            assert c.skipped == []
    finally:
        await first.close()
        await second.close()
    third: Client = await wait_for(try_connect, what="the slots to be released")
    async with third:
        assert (await third.request("ping", id=1))["data"] == "pong"
