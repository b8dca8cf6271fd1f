"""wsgate's Socket.IO server with connection state recovery, for a cluster: run it with
``WSGATE_BROKER_URL`` set (the App's broker: Socket.IO then uses ``RedisStreamsAdapter``
on it) in two or more workers.

``join`` puts the connection in a room; ``burst`` emits ``n`` ``tick`` packets
(``{"s": i, "p": "xx..."}``, about 64 bytes each) to a room one after the other and
acknowledges with ``n`` once the last was sent. Sessions are kept two minutes after an
unexpected disconnect; pings every 2 minutes (no measured window sees one).
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


app = App(gateways=[Recovery])
