"""wsgate: WebSocket gateways on AnyIO structured concurrency.

::

    from wsgate import App, Json, WebSocket, on_message, ws_controller

    @ws_controller("/echo")
    class Echo:
        @on_message("echo")
        async def echo(self, body: Json[dict[str, object]]) -> dict[str, object]:
            return body

    app = App(gateways=[Echo])
"""

from . import status
from .app import App
from .broadcast import BroadcastGroup
from .datastructures import Headers, QueryParams, State
from .di import injectable
from .errors import (
    ConfigurationError,
    DecoratorUsageError,
    WebSocketDisconnect,
    WebSocketError,
    WebSocketForbiddenError,
    WebSocketRouteNotFoundError,
    WebSocketStateError,
    WebSocketValidationError,
)
from .frames import Frame
from .gateway import on_connect, on_disconnect, on_error, on_message, ws_controller
from .history import History, Position, Publication
from .params import Header, HeaderParam, Json, Query, QueryParam
from .presence import Presence
from .queues import Overflow
from .server import serve
from .websocket import WebSocket, WebSocketState

# The built-in plug-ins (wsgate.plugins) register themselves with every App when
# imported, in this order: the order of their HTTP mounts.
# isort: off
from . import static as _static  # noqa: F401
from .socketio import install as _socketio  # noqa: F401
from . import docs as _docs, asyncapi as _asyncapi  # noqa: F401
# isort: on

__all__ = [
    "App",
    "BroadcastGroup",
    "ConfigurationError",
    "DecoratorUsageError",
    "Frame",
    "Header",
    "HeaderParam",
    "Headers",
    "History",
    "Json",
    "Overflow",
    "Position",
    "Presence",
    "Publication",
    "Query",
    "QueryParam",
    "QueryParams",
    "State",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketError",
    "WebSocketForbiddenError",
    "WebSocketRouteNotFoundError",
    "WebSocketState",
    "WebSocketStateError",
    "WebSocketValidationError",
    "injectable",
    "on_connect",
    "on_disconnect",
    "on_error",
    "on_message",
    "serve",
    "status",
    "ws_controller",
]

__version__ = "0.1.0"
