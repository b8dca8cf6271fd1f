"""The exceptions of the Python client.

Every one derives from :class:`ClientError`; the ones about the connection also derive
from the builtin :class:`ConnectionError`, so ``except ConnectionError`` catches them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ClientError",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionLost",
    "DataValidationError",
    "RequestError",
]


class ClientError(Exception):
    """Base class of every error the wsgate client raises."""


class ConnectError(ClientError, ConnectionError):
    """The WebSocket handshake failed.

    ``status`` is the HTTP status of a refused handshake (``None`` when the server could
    not be reached; the cause is chained). When the server refused with wsgate's JSON body
    ``{"error": {"code", "message", "detail"}}`` (a ``WebSocketError`` raised in
    ``@on_connect``), ``code``, ``message`` and ``detail`` carry it; ``body`` is the raw
    response body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: bytes = b"",
        code: str | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.code = code
        self.detail = detail


class RequestError(ClientError):
    """The server answered a request with an error frame.

    ``code`` is the error code (``"validation_error"``, ``"unknown_event"``,
    ``"internal_error"``, or the ``code`` of the ``WebSocketError`` the handler raised),
    ``message`` its text and ``detail`` its detail (for ``validation_error`` a list of
    ``{"path", "message"}``). The connection stays open.
    """

    def __init__(self, event: str, code: str, message: str, detail: Any = None) -> None:
        super().__init__(
            f"{event!r} failed with {code}: {message}"
            if message
            else f"{event!r} failed with {code}"
        )
        self.event = event
        self.code = code
        self.message = message
        self.detail = detail


class DataValidationError(ClientError, ValueError):
    """A reply's or a push's ``data`` does not match the type it was to be decoded into.

    ``event`` names the frame, ``expected`` is the type, ``data`` the raw JSON received;
    the :class:`msgspec.ValidationError` (which names the failing path) is chained.
    Fix the type given as ``type=`` or the server's handler so that they agree.
    """

    def __init__(self, event: str, expected: Any, data: bytes, reason: str) -> None:
        name = getattr(expected, "__name__", None) or repr(expected)
        super().__init__(f"the data of {event!r} does not match {name}: {reason}")
        self.event = event
        self.expected = expected
        self.data = data


class ConnectionLost(ClientError, ConnectionError):
    """The connection ended while a request was waiting for its reply (or while a stream
    was running).

    The request is not resent after a reconnect: the server may or may not have handled
    it. ``code`` and ``reason`` are the close code and reason (``1006`` when the
    connection ended without a close frame).
    """

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ConnectionClosed(ClientError, ConnectionError):
    """The connection is closed for good: closed by the program, closed by the server
    with a code that forbids reconnecting (1000, 1008, 4000-4999), refused by the
    server, or the reconnect policy gave up.

    ``code`` and ``reason`` are the last close code and reason (``None`` / ``""`` when the
    connection was closed without one).
    """

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
