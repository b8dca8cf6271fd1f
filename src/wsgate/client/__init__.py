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

import warnings as _warnings
from typing import Any as _Any

from .connection import ClientConnection, ClientStats, connect
from .errors import (
    ClientError,
    ConnectError,
    ConnectionClosed,
    ConnectionLost,
    DataValidationError,
    RequestError,
)
from .policy import ReconnectPolicy
from .presence import PresenceView
from .recovery import Recovery
from .state import ClientState
from .subscription import Push, Stream, Subscription

__all__ = [
    "ClientConnection",
    "ClientError",
    "ClientState",
    "ClientStats",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionLost",
    "DataValidationError",
    "PresenceView",
    "Push",
    "ReconnectPolicy",
    "Recovery",
    "RequestError",
    "Stream",
    "Subscription",
    "connect",
]

#: Old names, importable with a DeprecationWarning: they clashed with the server's
#: ``wsgate.connection.Connection`` and ``wsgate.state.ConnectionState``.
_DEPRECATED = {"Connection": "ClientConnection", "ConnectionState": "ClientState"}


def __getattr__(name: str) -> _Any:
    new = _DEPRECATED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _warnings.warn(
        f"wsgate.client.{name} is deprecated; use wsgate.client.{new}",
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]
