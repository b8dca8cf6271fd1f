"""The Origin check (cross-site WebSocket hijacking): the policy on its own, then
through the App in-process (TestClient sends Origin and Host headers); the real-server
side is in tests/test_guards_servers.py."""

from __future__ import annotations

from typing import Any

import pytest

from wsgate import App, ConfigurationError, Json, WebSocket, on_connect, on_message, ws_controller
from wsgate.datastructures import Headers
from wsgate.origin import OriginPolicy
from wsgate.testing import TestClient, WebSocketDenied


def _headers(**values: str) -> Headers:
    return Headers([(k.replace("_", "-"), v) for k, v in values.items()])


# ------------------------------------------------------------------ the policy, sans-I/O


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("https://app.example.com", "app.example.com", True),
        ("http://app.example.com", "app.example.com", True),
        ("HTTPS://App.Example.COM", "app.example.com", True),
        ("https://app.example.com", "APP.example.com:443", True),
        ("http://localhost:8000", "localhost:8000", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("https://evil.example.net", "app.example.com", False),
        ("https://app.example.com.evil.net", "app.example.com", False),
        ("http://localhost:9000", "localhost:8000", False),
        ("http://localhost", "localhost:8000", False),
        ("http://app.example.com", "app.example.com:443", False),
        ("https://app.example.com:8443", "app.example.com", False),
        ("null", "app.example.com", False),
        ("not an origin", "app.example.com", False),
        ("https://app.example.com/path", "app.example.com", False),
    ],
)
def test_same_origin_default(origin: str, host: str, allowed: bool) -> None:
    policy = OriginPolicy(None)
    assert policy.allows(origin, _headers(host=host)) is allowed


def test_no_origin_header_is_allowed_whatever_the_policy() -> None:
    for policy in (OriginPolicy(None), OriginPolicy(["https://a.example.com"])):
        assert policy.allows(None, _headers(host="elsewhere"))


def test_forwarded_host_is_not_trusted_by_default() -> None:
    headers = _headers(host="internal:8000", x_forwarded_host="app.example.com")
    assert not OriginPolicy(None).allows("https://app.example.com", headers)
    trusting = OriginPolicy(None, trust_forwarded_host=True)
    assert trusting.allows("https://app.example.com", headers)
    # Without the header it falls back to Host.
    assert trusting.allows("http://internal:8000", _headers(host="internal:8000"))


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://APP.example.com:443", True),
        ("http://app.example.com", False),  # another scheme is another origin
        ("https://app.example.com:8443", False),
        ("http://localhost:3000", True),
        ("http://localhost:3001", False),
        ("https://a.example.org", True),
        ("https://a.b.example.org", True),
        ("https://example.org", False),  # the apex is not a subdomain
        ("https://evilexample.org", False),
        ("https://example.org.evil.net", False),
        ("http://a.example.org", False),
        ("null", False),
    ],
)
def test_allowed_origins_list(origin: str, allowed: bool) -> None:
    policy = OriginPolicy(
        ["https://app.example.com", "http://localhost:3000", "https://*.example.org"]
    )
    assert policy.allows(origin, _headers(host="app.example.com")) is allowed


def test_star_allows_everything() -> None:
    assert OriginPolicy("*").allows("https://evil.example.net", _headers(host="a"))
    assert OriginPolicy("*").allows("null", _headers(host="a"))


@pytest.mark.parametrize(
    "entry",
    [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://app.example.com:99999",
        "https://*.com",
        "https://a.*.example.com",
        "*",
        "https:// space.example.com",
        "",
    ],
)
def test_malformed_allowed_origin_is_a_startup_error(entry: str) -> None:
    with pytest.raises(ConfigurationError, match=r"scheme://host\[:port\]"):
        App(gateways=[Echo], allowed_origins=[entry])


def test_a_single_string_says_to_use_a_list() -> None:
    with pytest.raises(ConfigurationError, match=r"give a list of origins"):
        App(gateways=[Echo], allowed_origins="https://app.example.com")


# ------------------------------------------------------------------ through the App


@ws_controller("/echo")
class Echo:
    @on_message("echo")
    async def echo(self, body: Json[Any]) -> Any:
        return body


class Log:
    def __init__(self) -> None:
        self.connects = 0


@ws_controller("/logged")
class Logged:
    def __init__(self, log: Log) -> None:
        self.log = log

    @on_connect
    async def connect(self, ws: WebSocket) -> None:
        self.log.connects += 1


async def test_cross_origin_handshake_is_refused_with_403_json() -> None:
    app = App(gateways=[Echo])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect(
                "/echo", headers={"origin": "https://evil.example.net"}
            ):
                pass  # pragma: no cover - refused
    assert denied.value.status == 403
    assert (b"content-type", b"application/json") in denied.value.headers
    error = denied.value.json()["error"]
    assert error["code"] == "origin_not_allowed"
    assert error["detail"] == {"origin": "https://evil.example.net"}
    assert app.stats.refused_origin == 1
    assert app.stats.connections_total == 0  # refused before a connection existed


async def test_same_origin_and_no_origin_are_accepted() -> None:
    app = App(gateways=[Echo])
    async with TestClient(app) as client:  # Host: testserver
        for headers in ({"origin": "http://testserver"}, {"origin": "https://TestServer"}, {}):
            async with client.websocket_connect("/echo", headers=headers) as ws:
                assert (await ws.request("echo", 1))["data"] == 1
    assert app.stats.refused_origin == 0


async def test_refusal_runs_no_gateway_code() -> None:
    log = Log()
    app = App(gateways=[Logged], providers=[log])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied):
            async with client.websocket_connect("/logged", headers={"origin": "http://evil"}):
                pass  # pragma: no cover - refused
        async with client.websocket_connect("/logged", headers={"origin": "http://testserver"}):
            pass
    assert log.connects == 1


async def test_without_the_denial_extension_the_refusal_is_a_close_before_accept() -> None:
    app = App(gateways=[Echo])
    async with TestClient(app, denial_extension=False) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/echo", headers={"origin": "http://evil"}):
                pass  # pragma: no cover - refused
    assert denied.value.status == 403  # a close before accept, as servers report it
    assert app.stats.refused_origin == 1


async def test_listed_origins_and_patterns() -> None:
    app = App(gateways=[Echo], allowed_origins=["https://app.example.com", "https://*.example.org"])
    async with TestClient(app) as client:
        for origin in ("https://app.example.com", "https://x.example.org", "https://APP.example.com:443"):
            async with client.websocket_connect("/echo", headers={"origin": origin}) as ws:
                assert (await ws.request("echo", origin))["data"] == origin
        for origin in ("http://testserver", "https://example.org", "http://app.example.com"):
            with pytest.raises(WebSocketDenied) as denied:
                async with client.websocket_connect("/echo", headers={"origin": origin}):
                    pass  # pragma: no cover - refused
            assert denied.value.status == 403, origin
    assert app.stats.refused_origin == 3


async def test_star_opts_out() -> None:
    app = App(gateways=[Echo], allowed_origins="*")
    async with TestClient(app) as client:
        async with client.websocket_connect("/echo", headers={"origin": "https://evil.example"}) as ws:
            assert (await ws.request("echo", 2))["data"] == 2


async def test_origin_is_checked_before_routing() -> None:
    """A cross-site page cannot even probe which paths exist."""
    app = App(gateways=[Echo])
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/nowhere", headers={"origin": "http://evil"}):
                pass  # pragma: no cover - refused
    assert denied.value.status == 403
