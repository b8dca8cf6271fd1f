"""wsgate's Socket.IO server with connection state recovery, for a cluster: run it with
``WSGATE_BROKER_URL`` set (the App's broker: Socket.IO then uses ``RedisStreamsAdapter``
on it) in two or more workers.

``join`` puts the connection in a room; ``burst`` emits ``n`` ``tick`` packets
(``{"s": i, "p": "xx..."}``, about 64 bytes each) to a room one after the other and
acknowledges with ``n`` once the last was sent. Sessions are kept two minutes after an
unexpected disconnect; pings every 2 minutes (no measured window sees one).

A connection's outbox holds 2,048 frames (``outbound_queue``; 256 by default), more than
a whole burst of 1,000: the other worker reads the stream in batches of 100 entries and
queues each batch at once, and on a loaded machine a member's writer can fall more than
256 frames behind, when the default policy closes it as a slow consumer (1013). The
benchmark measures delivery, not that policy.
"""

from __future__ import annotations

from wsgate import App
from wsgate.socketio import (
    SocketIOConnection,
    SocketIOServer,
    on_socketio_event,
    socketio_controller,
)

__all__ = ["app"]

PAD = "x" * 40


@socketio_controller("/socket.io", recovery_ms=120_000, ping_interval_ms=120_000)
class Recovery:
    def __init__(self, sio: SocketIOServer) -> None:
        self.sio = sio

    @on_socketio_event("join")
    async def join(self, conn: SocketIOConnection, room: str) -> None:
        await conn.join(room)

    @on_socketio_event("burst")
    async def burst(self, conn: SocketIOConnection, room: str, n: int) -> int:
        for i in range(n):
            await self.sio.emit("tick", {"s": i, "p": PAD}, room=room)
        return n


app = App(gateways=[Recovery], outbound_queue=2048)
