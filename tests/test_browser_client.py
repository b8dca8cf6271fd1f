"""The browser client, wsgate.js: its unit tests (node's test runner, fake WebSocket), its
types (tsc --strict on tests/ts/), the client against real servers (node's WebSocket,
the same WHATWG API as a browser's), and ``App(client_path=...)`` serving it.

The node tests and the tsc checks run in the default suite (each a few seconds); the
Chromium tests of the chat example are in tests/test_browser.py (``-m browser``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
from node_script import NodeScript
from servers import SERVER_PARAMS, ServerPool, ServerProcess, ServerURL

from wsgate import App
from wsgate.errors import ConfigurationError
from wsgate.static import client_source

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
TSC = ROOT / "node_modules" / ".bin" / "tsc"
TSC_FLAGS = [
    "--noEmit",
    "--strict",
    "--target",
    "es2022",
    "--module",
    "es2022",
    "--moduleResolution",
    "bundler",
    "--lib",
    "es2022",  # no DOM: the declarations stand on their own
]

server_pool = servers.server_pool
server_kind = servers.server_kind
server_logs_clean = servers.server_logs_clean


def _require_node() -> str:
    if NODE is None:
        pytest.fail("node (>= 20) is needed for the browser client's tests; install Node.js")
    return NODE


def _require_tsc() -> Path:
    if not TSC.exists():
        pytest.fail("node_modules/.bin/tsc is missing: run `npm ci` in the repository")
    return TSC


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def api_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/client_js.py under each server kind."""
    return server_pool.get(request.param, "apps.client_js:app")


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ node's test runner


def test_client_unit_tests_pass_under_node() -> None:
    result = _run([_require_node(), "--test", "tests/js/"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    assert "# pass 0" not in result.stdout


# ------------------------------------------------------------------ the declarations


def test_declarations_accept_typed_and_untyped_use() -> None:
    """usage_ok.ts compiles, which includes its @ts-expect-error lines each being an
    error (a wrong payload, an unknown event or push, a wrong reply type)."""
    result = _run([str(_require_tsc()), *TSC_FLAGS, "tests/ts/usage_ok.ts"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_declarations_reject_a_payload_that_does_not_match_the_event_map() -> None:
    result = _run([str(_require_tsc()), *TSC_FLAGS, "tests/ts/usage_bad.ts"])
    assert result.returncode != 0
    assert "usage_bad.ts(9," in result.stdout, result.stdout
    assert "Type 'number' is not assignable to type 'string'" in result.stdout


# ------------------------------------------------------------------ against real servers


async def test_client_against_a_real_server(api_server: ServerURL, server_logs_clean: None) -> None:
    node = _require_node()
    result = await anyio.to_thread.run_sync(
        lambda: _run([node, "--experimental-websocket", "tests/js/integration.mjs", api_server], 60)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["early"] == "early"  # sent while connecting, written on open
    assert out["echo"] == {"a": [1, 2]}
    assert out["add"] == 5
    assert out["validation"]["code"] == "validation_error"
    assert out["validation"]["detail"] == [
        {"path": "$.data.x", "message": "Expected `int`, got `str`"}
    ]
    assert out["unknown"] == {
        "code": "unknown_event",
        "message": "no handler for event 'nope'",
        "detail": {"event": "nope"},
    }
    assert out["refused"] == {
        "code": "forbidden",
        "message": "not today",
        "detail": {"why": "testing"},
    }
    assert out["timeout"]["code"] == "timeout"
    assert out["push"] == "hello all"
    assert out["items"] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert out["restart"]["state"] == "reconnecting"
    assert out["restart"]["code"] == 1012
    assert out["restart"]["attempt"] == 1
    assert 0 <= out["restart"]["delay"] <= 50
    assert out["closeRequest"]["code"] == "disconnected"
    assert out["queued"] == "queued"  # made while reconnecting, answered after
    assert out["final"]["state"] == "closed"
    assert out["final"]["code"] == 4001
    assert out["afterClose"] == "closed"
    assert out["queueFull"] == "queue_full"


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def test_client_path_serves_the_client_and_its_types(api_server: ServerURL) -> None:
    base = api_server.replace("ws://", "http://")
    js = await anyio.to_thread.run_sync(_get, base + "/wsgate.js")
    assert js[0] == 200
    assert js[1]["content-type"] == "text/javascript; charset=utf-8"
    assert js[2] == client_source("wsgate.js")
    assert b"export function connect(" in js[2]
    dts = await anyio.to_thread.run_sync(_get, base + "/wsgate.d.ts")
    assert dts[0] == 200
    assert dts[2] == client_source("wsgate.d.ts")
    assert b"export interface EventSpec" in dts[2]
    etag = js[1]["etag"]
    again = await anyio.to_thread.run_sync(_get, base + "/wsgate.js", {"If-None-Match": etag})
    assert again[0] == 304 and again[2] == b""
    post = await anyio.to_thread.run_sync(lambda: _get(base + "/wsgate.js", method="POST"))
    assert post[0] == 405
    below = await anyio.to_thread.run_sync(_get, base + "/wsgate.js/x")
    assert below[0] == 404


async def _http_get(app: App, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


async def test_client_path_is_off_by_default_and_can_be_moved() -> None:
    assert (await _http_get(App(), "/wsgate.js"))[0] == 404
    moved = App(client_path="/static/client.js")
    status, headers, body = await _http_get(moved, "/static/client.js")
    assert (status, headers[b"content-type"]) == (200, b"text/javascript; charset=utf-8")
    assert body == client_source("wsgate.js")
    assert (await _http_get(moved, "/static/client.d.ts"))[2] == client_source("wsgate.d.ts")
    assert (await _http_get(moved, "/wsgate.js"))[0] == 404


@pytest.mark.parametrize(
    ("path", "message"),
    [("wsgate.js", "absolute URL path"), ("/wsgate", "must end with '.js'")],
)
def test_client_path_must_be_an_absolute_js_path(path: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=r"App\(client_path=\.\.\.\).*" + message):
        App(client_path=path)


def test_client_reconnects_after_a_server_restart(server_kind: str) -> None:
    """The server process is stopped and started again on the same port: the client goes
    to "reconnecting", retries within its backoff, and the frames made meanwhile are sent
    on the new connection."""
    _require_node()
    log_dir = Path(tempfile.mkdtemp(prefix="wsgate-restart-"))
    server = ServerProcess(server_kind, "apps.client_js:app", log_dir, graceful_timeout=1)
    url = server.start()
    script = NodeScript("--experimental-websocket", "tests/js/restart.mjs", url)
    try:
        out = script.run(
            {"stop-server": server.stop, "start-server": lambda: server.start(port=url.port)}
        )
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    assert out["before"] == "before"
    assert out["lost"]["state"] == "reconnecting"
    assert out["lost"]["attempt"] == 1
    assert out["sendQueued"] is False
    assert out["back"]["state"] == "open"
    assert out["during"] == "during"
    assert out["heard"] == "hello again"
    assert out["attempts"] >= 1
    assert all(0 <= d <= 500 for d in out["delays"]), out["delays"]
    assert out["final"] == "closed"
