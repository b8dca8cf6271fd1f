"""A Socket.IO app with low connection limits (``max_connections=3``,
``max_connections_per_client=2``) and short heartbeats: long-polling sessions count
against them like WebSockets. Served by tests/test_socketio_limits.py."""

from __future__ import annotations

from wsgate import App
from wsgate.socketio import SocketIOConnection, on_socketio_event, socketio_controller

MAX_CONNECTIONS = 3
MAX_PER_CLIENT = 2


@socketio_controller("/socket.io", ping_interval_ms=2500, ping_timeout_ms=500)
class Limited:
    @on_socketio_event("transport")
    async def transport(self, conn: SocketIOConnection) -> str:
        return conn.transport


app = App(
    gateways=[Limited],
    max_connections=MAX_CONNECTIONS,
    max_connections_per_client=MAX_PER_CLIENT,
)
