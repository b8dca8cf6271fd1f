"""The wsgate exception hierarchy.

Errors that happen while a connection is live derive from :class:`WebSocketError`.
Mistakes in how gateways are declared are found at startup and raise
:class:`ConfigurationError` (or its subclass :class:`DecoratorUsageError`), naming the
class, the method and the parameter at fault.
"""

from __future__ import annotations

from typing import Any

from . import status

__all__ = [
    "ConfigurationError",
    "DecoratorUsageError",
    "WebSocketDisconnect",
    "WebSocketError",
    "WebSocketForbiddenError",
    "WebSocketRouteNotFoundError",
    "WebSocketStateError",
    "WebSocketValidationError",
]


class WebSocketError(Exception):
    """Base class for WebSocket-layer errors.

    Raise it from ``@on_connect`` to refuse a connection (HTTP 403 with a JSON body where
    the server supports the denial extension, else a close with ``close_code``), or from a
    message handler to answer the frame with an error frame whose ``code`` is
    :attr:`code`.
    """

    #: The ``code`` field of the error frame sent to the client.
    code: str = "error"
    #: The HTTP status of a refused handshake (raised from ``@on_connect``) where the
    #: server supports the denial extension.
    http_status: int = 403
    #: The close code of a refused handshake where it does not, unless ``close_code``
    #: is given.
    default_close_code: int = status.WS_1008_POLICY_VIOLATION

    def __init__(
        self,
        message: str = "",
        close_code: int | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.close_code = close_code
        self.detail = detail


class WebSocketDisconnect(WebSocketError):
    """The connection is over: the peer closed it, or it was closed before this call.

    Raised by ``receive*`` when the peer closes, and by ``send*`` on a connection the peer
    already left. The runtime treats it as the normal end of a connection.
    """

    code = "disconnected"

    def __init__(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))
        #: The close code the connection ended with.
        self.close_code: int = code
        #: The close reason, possibly empty.
        self.reason = reason


class WebSocketForbiddenError(WebSocketError):
    """A guard refused: raised by wsgate when a guard returns ``False`` (a guard may
    raise it, or any :class:`WebSocketError`, itself).

    At the handshake: HTTP 403 with a JSON body (a close with 1008 where the server has
    no denial extension). For a frame: a ``forbidden`` error frame answering its id.
    """

    code = "forbidden"


class WebSocketStateError(WebSocketError, RuntimeError):
    """An operation that makes no sense in the connection's current state.

    For example sending before ``accept()``, accepting twice, or calling ``receive()`` in a
    gateway whose ``@on_message`` handlers let the runtime own the receive side.
    """

    code = "invalid_state"


class WebSocketValidationError(WebSocketError):
    """An inbound frame (or a query/header/path value) failed validation.

    :attr:`errors` lists each failure as ``{"path": "$.data.text", "message": ...}``. The
    runtime answers with a ``validation_error`` frame and keeps the connection open.
    """

    code = "validation_error"

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        self.errors: list[dict[str, str]] = errors or []
        super().__init__(message, close_code=status.WS_1008_POLICY_VIOLATION, detail=self.errors)


class WebSocketRouteNotFoundError(WebSocketError, LookupError):
    """The handshake path matches no registered ``@ws_controller``.

    The App answers such a handshake with HTTP 404 (a close before accept where the
    server has no denial extension); the test client raises it to the caller.
    """

    code = "not_found"
    http_status = 404


class ConfigurationError(Exception):
    """A gateway, handler or provider is declared in a way wsgate cannot run.

    Raised when the :class:`~wsgate.App` is built, never while serving; the message names
    the class, the method and the parameter, and says how to fix it.
    """


class DecoratorUsageError(ConfigurationError, TypeError):
    """A wsgate decorator was applied the wrong way (for example ``@ws_controller``
    without parentheses)."""
