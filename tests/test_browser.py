"""The chat example in a real browser: Debian's Chromium driven by playwright-core from
node (tests/browser/chat.mjs), against the example under hypercorn's trio and asyncio
workers, and under ``wsgate run --workers 2`` with a Valkey that outlives it. Two pages
chat; the server is stopped and started again on the same port and both pages show it
and recover (what they missed, from the Valkey's history; or, when the history went with
the server, they say so and reload the room); a request times out and an error frame
rejects in the page; screenshots go to .artifacts/browser/<server>/.

Marked ``browser`` and left out of the default run (``nox -s browser`` runs it; it needs
/usr/bin/chromium, ``apt-get install chromium``, or WSGATE_CHROMIUM, and ``npm ci``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_script import NodeScript
from redis_server import RedisServer, require_binary
from servers import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".artifacts" / "browser"
CHROMIUM = os.environ.get("WSGATE_CHROMIUM", "/usr/bin/chromium")
#: Seconds the browser script may take for one step (a reconnect takes up to 5 s).
STEP_TIMEOUT = 60.0

pytestmark = pytest.mark.browser

BACKENDS = [
    b.strip() for b in os.environ.get("WSGATE_BACKENDS", "trio,asyncio").split(",") if b.strip()
]


@pytest.fixture(scope="module", autouse=True)
def browser_available() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (as root), or set "
            "WSGATE_CHROMIUM to a Chromium binary"
        )
    if not (ROOT / "node_modules" / "playwright-core").exists():
        pytest.fail("node_modules/playwright-core is missing: run `npm ci`")


@pytest.fixture
def valkey_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Valkey that outlives the chat server, given to it as WSGATE_BROKER_URL."""
    with RedisServer(require_binary()) as server:
        monkeypatch.setenv("WSGATE_BROKER_URL", server.url)
        yield server.url


CASES = [
    *(pytest.param(f"hypercorn-{b}", "lost", id=f"hypercorn-{b}") for b in BACKENDS),
    pytest.param("wsgate-run-2", "kept", id="wsgate-run-2-valkey"),
]


@pytest.mark.parametrize(("kind", "history"), CASES)
def test_chat_in_chromium_survives_a_server_restart(
    kind: str, history: str, request: pytest.FixtureRequest
) -> None:
    if history == "kept":
        request.getfixturevalue("valkey_url")
    shots = ARTIFACTS / kind
    shutil.rmtree(shots, ignore_errors=True)
    log_dir = Path(tempfile.mkdtemp(prefix="wsgate-browser-"))
    server = ServerProcess(kind, "examples.chat.app:app", log_dir, graceful_timeout=1)
    url = server.start()
    logs = [url.log_path]
    script = NodeScript(
        "tests/browser/chat.mjs",
        url.replace("ws://", "http://"),
        str(shots),
        history,
        step_timeout=STEP_TIMEOUT,
    )
    try:
        result = script.run(
            {
                "stop-server": server.stop,
                "start-server": lambda: logs.append(server.start(port=url.port).log_path),
            }
        )
    finally:
        server.stop()
    server_log = "".join(p.read_text(errors="replace") for p in logs)
    shutil.rmtree(log_dir, ignore_errors=True)

    assert result["consoleErrors"] == []
    # Chatting: ann's own message is confirmed by the server (no longer pending).
    assert result["confirmed"] == {"className": "me", "text": "ann: hello bob"}
    assert result["overflow"]["scrollWidth"] <= result["overflow"]["clientWidth"]
    assert "blank messages are not sent" in result["blankNote"]
    assert result["blankAdded"] == 0
    # The restart: the status says so, a message typed meanwhile is pending, then sent.
    assert re.fullmatch(
        r"reconnecting(?: in \d+\.\d s)?.*\(attempt \d+\)", result["reconnectingStatus"]
    ), result["reconnectingStatus"]
    assert result["pendingWhileDown"] == {
        "className": "me pending",
        "text": "ann: typed while the server was down",
    }
    assert result["pendingAfter"] == "me"
    assert result["timeout"]["name"] == "WsgateError"
    assert result["timeout"]["code"] == "timeout"
    assert result["timeout"]["ms"] >= 290
    assert result["errorFrame"]["isWsgateError"] is True
    assert result["errorFrame"]["code"] == "validation_error"
    assert result["errorFrame"]["detail"][0]["path"] == "$.data.text"
    assert result["afterReload"] == {"room": result["room"], "user": "ann"}
    assert result["online"] == "online: ann, robert"
    # Told of a loss only when there was one.
    told = ["some messages may be missing" in log for log in result["restartLogs"].values()]
    assert told == [history == "lost"] * 2, result["restartLogs"]
    # No error-looking line on a rename, nothing about close codes on the way.
    for page_log in result["logs"].values():
        assert "closed (" not in page_log and "error" not in page_log, page_log
    # The server logged each join and leave with the close code.
    room = result["room"]
    assert f"join path=/chat/{room} user=ann room={room}" in server_log
    assert re.search(rf"leave path=/chat/{room} user=robert room={room} code=\d+", server_log)
    # No error from wsgate or the example. (hypercorn's asyncio worker prints a
    # CancelledError traceback of its own when it stops with an idle keep-alive HTTP
    # connection open: its frames are all in hypercorn and asyncio.)
    assert not re.search(r'File ".*/(wsgate|examples)/', server_log), server_log
    assert not re.search(r"ERROR (wsgate|examples\.chat)", server_log), server_log
    for name in ("1-chatting.png", "2-reconnecting.png", "3-reconnected.png", "4-reloaded.png"):
        assert (shots / name).stat().st_size > 1000
