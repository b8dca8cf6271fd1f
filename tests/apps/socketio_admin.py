"""A Socket.IO app with the admin UI's namespace (:func:`wsgate.socketio.instrument`).

Served by tests/test_socketio_admin.py (python-socketio clients speaking the admin
protocol) and tests/test_browser_admin.py (the UI's own build in Chromium, served here
at ``/admin-ui/`` from node_modules/@socket.io/admin-ui/ui/dist).

Four apps: ``app`` (development mode, the credentials below, server id
``wsgate-test``), ``read_only_app`` (development mode, read-only), ``production_app``
(production mode, no login) and ``cluster_app`` (development mode, each worker named by
its default ``hostname#pid``: for ``wsgate run --workers 2`` with a broker).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from wsgate import App
from wsgate.asgi import Receive, Scope, Send
from wsgate.socketio import SocketIOConnection, instrument, on_socketio_event, socketio_controller

USERNAME = "admin"
PASSWORD = "s3cret-for-tests"
UI_DIST = (
    Path(__file__).resolve().parents[2] / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
)


@socketio_controller("/socket.io", namespace="/")
class Chat:
    """Joins the room named in the client's auth and keeps its ``data`` in ``conn.data``;
    echoes and shouts."""

    @on_socketio_event("connect")
    async def connect(self, conn: SocketIOConnection) -> None:
        auth = conn.auth if isinstance(conn.auth, dict) else {}
        room = auth.get("room")
        if isinstance(room, str):
            await conn.join(room)
        data = auth.get("data")
        if isinstance(data, dict):
            conn.data = data

    @on_socketio_event("echo")
    async def echo(self, conn: SocketIOConnection, value: Any) -> Any:
        return value

    @on_socketio_event("rooms")
    async def rooms(self, conn: SocketIOConnection) -> list[str]:
        return sorted(conn.rooms)

    @on_socketio_event("hello")
    async def hello(self, conn: SocketIOConnection, name: str) -> None:
        await conn.emit("hello-back", f"hello {name}")


@socketio_controller("/socket.io", namespace="/other")
class Other:
    """A second namespace, so the UI has more than one to list."""


async def serve_ui(scope: Scope, receive: Receive, send: Send) -> None:
    """The admin UI's static build under ``/admin-ui/``; 404 elsewhere."""
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    file: Path | None = None
    if path.startswith("/admin-ui/"):
        rel = path[len("/admin-ui/") :] or "index.html"
        candidate = (UI_DIST / rel).resolve()
        if candidate.is_file() and UI_DIST.resolve() in candidate.parents:
            file = candidate
    if file is None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    body = file.read_bytes()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", kind.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build(**options: Any) -> App:
    """The app with ``instrument(app, **options)``."""
    built = App(gateways=[Chat, Other], http=serve_ui)
    instrument(built, **options)
    return built


CREDENTIALS = {"username": USERNAME, "password": PASSWORD}
app = build(auth=CREDENTIALS, server_id="wsgate-test")
read_only_app = build(auth=CREDENTIALS, read_only=True)
production_app = build(auth=False, mode="production")
cluster_app = build(auth=CREDENTIALS)
