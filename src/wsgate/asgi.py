"""ASGI types, declared once for every module of wsgate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from . import status

__all__ = [
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "denial_messages",
    "has_denial_extension",
    "strip_root_path",
]

#: An ASGI message (``{"type": "websocket.send", "text": ...}`` and the like).
Message = dict[str, Any]
#: An ASGI connection scope.
Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def strip_root_path(scope: Scope) -> str:
    """The scope's path below its ``root_path`` (``"/"`` at least)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def has_denial_extension(scope: Scope) -> bool:
    """True if the server can answer a WebSocket handshake with an HTTP response."""
    return "websocket.http.response" in scope.get("extensions", {})


def denial_messages(
    scope: Scope,
    status_code: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    close_code: int = status.WS_1008_POLICY_VIOLATION,
) -> list[Message]:
    """The ASGI messages that refuse a handshake with an HTTP response: the
    ``websocket.http.response`` extension where the server offers it, else a close
    before accept with ``close_code`` (which servers turn into HTTP 403)."""
    if not has_denial_extension(scope):
        return [{"type": "websocket.close", "code": close_code}]
    pairs = list(headers or ())
    if not any(k.lower() == b"content-length" for k, _ in pairs):
        pairs.append((b"content-length", str(len(body)).encode()))
    return [
        {"type": "websocket.http.response.start", "status": status_code, "headers": pairs},
        {"type": "websocket.http.response.body", "body": body, "more_body": False},
    ]
