"""The WebSocket handshake's pieces that need no I/O: the HTTP URL, the request headers,
and what a refusal said."""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx
import msgspec

from ._protocol import ErrorData
from .errors import ConnectError


def http_url(url: str) -> str:
    """The ``http(s)://`` URL httpx opens for a ``ws(s)://`` one; :class:`ValueError`
    for another scheme."""
    scheme, sep, rest = url.partition("://")
    mapped = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(scheme.lower())
    if not sep or mapped is None:
        raise ValueError(f"connect(): expected a ws:// or wss:// URL, got {url!r}")
    return f"{mapped}://{rest}"


def request_headers(headers: dict[str, str], subprotocols: list[str] | None) -> dict[str, str]:
    """The upgrade request's headers: the caller's, then the WebSocket ones."""
    out = {
        **headers,
        "connection": "upgrade",
        "upgrade": "websocket",
        "sec-websocket-key": base64.b64encode(os.urandom(16)).decode(),
        "sec-websocket-version": "13",
    }
    if subprotocols:
        out["sec-websocket-protocol"] = ", ".join(subprotocols)
    return out


class Borrowed:
    """An ``httpx.AsyncClient`` the caller owns: used, not closed."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __aenter__(self) -> httpx.AsyncClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        return None


def refused(status: int, body: bytes) -> ConnectError:
    code: str | None = None
    message = ""
    detail: Any = None
    try:
        error = msgspec.json.decode(body, type=_DenialBody).error
        code, message, detail = error.code, error.message, error.detail
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    text = f"the server refused the handshake with HTTP {status}"
    if code is not None:
        text += f" ({code}: {message})" if message else f" ({code})"
    return ConnectError(text, status=status, body=body, code=code, detail=detail)


class _DenialBody(msgspec.Struct):
    error: ErrorData
