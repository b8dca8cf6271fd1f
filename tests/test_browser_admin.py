"""The official Socket.IO Admin UI in a real browser: its static build from the npm
package ``@socket.io/admin-ui`` (``ui/dist``, served by tests/apps/socketio_admin.py)
in Debian's Chromium, driven by playwright-core from node (tests/browser/admin_ui.mjs),
against a wsgate server with ``instrument()`` under hypercorn's trio and asyncio
workers. A socket.io-client socket connects; the UI refuses a wrong password, logs in
with the right one, shows the server, the socket with its transport and rooms, makes it
join a room, and its "disconnect" button disconnects the socket. Screenshots go to
.artifacts/browser/admin-ui-<server>/.

Marked ``browser`` and left out of the default run (``nox -s browser`` runs it; it needs
/usr/bin/chromium, ``apt-get install chromium``, or WSGATE_CHROMIUM, and ``npm ci``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from apps.socketio_admin import PASSWORD, UI_DIST, USERNAME
from node_script import NodeScript
from servers import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".artifacts" / "browser"
CHROMIUM = os.environ.get("WSGATE_CHROMIUM", "/usr/bin/chromium")

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
    for needed in (ROOT / "node_modules" / "playwright-core", UI_DIST / "index.html"):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: run `npm ci`")


@pytest.mark.parametrize("kind", [f"hypercorn-{b}" for b in BACKENDS])
def test_admin_ui_in_chromium_shows_and_disconnects_a_socket(kind: str) -> None:
    shots = ARTIFACTS / f"admin-ui-{kind}"
    shutil.rmtree(shots, ignore_errors=True)
    log_dir = Path(tempfile.mkdtemp(prefix="wsgate-admin-ui-"))
    server = ServerProcess(kind, "apps.socketio_admin:app", log_dir, graceful_timeout=1)
    url = server.start()
    try:
        result = NodeScript(
            "tests/browser/admin_ui.mjs",
            url.replace("ws://", "http://"),
            str(shots),
            USERNAME,
            PASSWORD,
            step_timeout=90.0,
        ).run({})
    finally:
        server.stop()
    server_log = url.log()
    shutil.rmtree(log_dir, ignore_errors=True)

    assert result["consoleErrors"] == []
    assert result["refused"] is True
    # The servers page: id, hostname, pid, uptime, clients, last ping, status.
    row = result["serverRow"]
    assert row[0] == "wsgate-test" and row[-1].lower() == "healthy", row
    # The sockets page: the socket's id, address and transport (upgraded from polling).
    assert result["socketRow"] == [result["sid"], "127.0.0.1", "WebSocket"]
    assert result["transportShown"] == "WebSocket"
    assert result["rooms"] == [result["sid"], "lobby"]
    # The UI's "Join a room" on the socket's page: the socket is in it, on the server.
    assert result["roomsOnServer"] == sorted([result["sid"], "kitchen", "lobby"])
    # The UI's disconnect button: the client was told by the server, and the UI saw it.
    assert result["disconnectReason"] == "io server disconnect"
    assert result["gone"] is True
    assert "admin UI login refused (invalid credentials)" in server_log
    assert not re.search(r'File ".*/wsgate/', server_log), server_log
    for name in ("1-dashboard.png", "2-servers.png", "3-sockets.png", "4-socket.png"):
        assert (shots / name).stat().st_size > 1000
