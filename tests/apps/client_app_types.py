"""Types shared by the client test apps (tests/apps/client_app.py, client_js.py)."""

from __future__ import annotations

from apps.gateways import CloseRequest, Point
from wsgate import WebSocketError

__all__ = ["CloseRequest", "Forbidden", "Point"]


class Forbidden(WebSocketError):
    """A refusal with its own error code, for the clients to surface."""

    code = "forbidden"
