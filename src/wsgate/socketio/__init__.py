"""Socket.IO v5 and Engine.IO v4 servers for wsgate.

::

    from wsgate import App
    from wsgate.socketio import SocketIOConnection, on_socketio_event, socketio_controller

    @socketio_controller("/socket.io")
    class Chat:
        @on_socketio_event("message")
        async def message(self, conn: SocketIOConnection, text: str) -> str:
            await conn.emit("message-back", text)
            return "ok"                       # the acknowledgement

    app = App(gateways=[Chat])

The codecs (:mod:`.engineio_protocol`, :mod:`.socketio_protocol`) and the Engine.IO
session machine (:mod:`.engineio_state`) are sans-I/O; :mod:`.engine` serves them over
ASGI (long-polling and WebSocket) with one :mod:`.engine_session` per client,
:mod:`.server` adds namespaces, acknowledgements, rooms and recovery;
:mod:`.controllers` holds the decorators, :mod:`.handlers` compiles handler signatures
and :mod:`.install` wires it all into the App; :mod:`.admin` (:func:`instrument`) serves
the official admin UI's protocol.
"""

from .adapter import RedisStreamsAdapter
from .admin import instrument
from .cluster import RemoteSocket
from .controllers import (
    engineio_controller,
    on_engineio_message,
    on_server_side_event,
    on_socketio_event,
    socketio_controller,
)
from .engine_hooks import on_engineio_connect, on_engineio_disconnect
from .engine_session import EngineIOConnection
from .server import SocketIOConnection, SocketIOServer

__all__ = [
    "EngineIOConnection",
    "RedisStreamsAdapter",
    "RemoteSocket",
    "SocketIOConnection",
    "SocketIOServer",
    "engineio_controller",
    "instrument",
    "on_engineio_connect",
    "on_engineio_disconnect",
    "on_engineio_message",
    "on_server_side_event",
    "on_socketio_event",
    "socketio_controller",
]
