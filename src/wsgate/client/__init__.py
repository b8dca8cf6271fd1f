"""A Python client for wsgate's wire protocol, on AnyIO (trio or asyncio).

::

    from wsgate.client import connect

    async with connect("ws://127.0.0.1:8000/chat/lobby?user=bot") as conn:
        members = await conn.request("who")
        await conn.send_event("chat.send", {"text": "hello"})
        async for push in conn.events("chat.message"):
            print(push.data)

Needs the ``client`` extra (``pip install 'wsgate[client]'``: httpx-ws, which speaks
WebSocket over httpx and wsproto on AnyIO).
"""

try:
    import httpx_ws as _httpx_ws  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("wsgate.client needs httpx-ws: pip install 'wsgate[client]'") from exc

from .connection import ClientStats, Connection, ConnectionState, connect
from .errors import (
    ClientError,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    DataValidationError,
    RequestError,
)
from .policy import ReconnectPolicy
from .subscription import Push, Stream, Subscription

__all__ = [
    "ClientError",
    "ClientStats",
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "ConnectionLost",
    "ConnectionState",
    "DataValidationError",
    "Push",
    "ReconnectPolicy",
    "RequestError",
    "Stream",
    "Subscription",
    "connect",
]
