"""The Socket.IO and Engine.IO decorators and the metadata they attach."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import DecoratorUsageError

if TYPE_CHECKING:
    from .adapter import RedisStreamsAdapter

__all__ = [
    "EngineIOMeta",
    "SocketIOMeta",
    "engineio_controller",
    "on_engineio_message",
    "on_server_side_event",
    "on_socketio_event",
    "socketio_controller",
]

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])

SOCKETIO_ATTR = "__wsgate_socketio__"
EVENT_ATTR = "__wsgate_socketio_events__"
ENGINEIO_MESSAGE_ATTR = "__wsgate_engineio_message__"
SERVER_EVENT_ATTR = "__wsgate_socketio_server_events__"

Origins = str | Sequence[str] | None


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """What one Engine.IO endpoint is configured with (shared by every controller
    mounted at its path)."""

    ping_interval_ms: int
    ping_timeout_ms: int
    max_payload_bytes: int
    cors_allowed_origins: str | tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class SocketIOMeta:
    """``@socketio_controller`` options."""

    path: str
    namespace: str
    engine: EngineOptions
    connect_timeout_ms: int
    recovery_ms: int | None
    adapter: RedisStreamsAdapter | None = None


@dataclass(frozen=True, slots=True)
class EngineIOMeta:
    """``@engineio_controller`` options."""

    path: str
    engine: EngineOptions


def _origins(value: Origins, where: str) -> str | tuple[str, ...] | None:
    if value is None or isinstance(value, str):
        return value
    origins = tuple(value)
    if not all(isinstance(o, str) for o in origins):
        raise DecoratorUsageError(
            f"{where} cors_allowed_origins must be None, '*' or a list of str"
        )
    return origins


def _engine(
    where: str, ping_interval_ms: int, ping_timeout_ms: int, max_payload_bytes: int, cors: Origins
) -> EngineOptions:
    for name, value in (
        ("ping_interval_ms", ping_interval_ms),
        ("ping_timeout_ms", ping_timeout_ms),
        ("max_payload_bytes", max_payload_bytes),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DecoratorUsageError(f"{where} {name} must be an int >= 1, not {value!r}")
    return EngineOptions(
        ping_interval_ms, ping_timeout_ms, max_payload_bytes, _origins(cors, where)
    )


def _check_path(path: Any, where: str) -> str:
    if isinstance(path, type):
        raise DecoratorUsageError(
            f"{where} was applied to {path.__qualname__} without parentheses; "
            f'write {where}() or {where}("/path")'
        )
    if not isinstance(path, str) or not path.startswith("/") or "{" in path:
        raise DecoratorUsageError(
            f"{where} path must be a fixed path like '/socket.io', not {path!r}"
        )
    return "/" + path.strip("/")


def socketio_controller(
    path: str = "/socket.io",
    *,
    namespace: str = "/",
    ping_interval_ms: int = 25000,
    ping_timeout_ms: int = 20000,
    max_payload_bytes: int = 1_000_000,
    connect_timeout_ms: int = 45000,
    cors_allowed_origins: Origins = None,
    recovery_ms: int | None = None,
    adapter: RedisStreamsAdapter | None = None,
) -> Callable[[C], C]:
    """Mark a class as the Socket.IO v5 handler of ``namespace`` at ``path``.

    Methods marked :func:`on_socketio_event` handle the events; one instance is built per
    Socket.IO connection, its constructor arguments injected by type from the App's
    providers. Several classes may share a path with different namespaces (their engine
    options must then agree). ``recovery_ms`` turns on connection state recovery for that
    long after an unexpected disconnect. ``cors_allowed_origins``: None (no CORS headers,
    no Origin check), ``"*"`` (any origin, answered ``*`` without credentials, as Node's
    ``cors`` package does), or a list of origins (checked on every handshake; each allowed
    origin is echoed with credentials allowed). ``adapter``: a
    :class:`~wsgate.socketio.RedisStreamsAdapter` joining the servers (wsgate or Node)
    that use the same stream into one cluster; by default, the App's broker if it has one
    (controllers sharing a path must agree).

    Raises :class:`~wsgate.errors.DecoratorUsageError` for a bad option.
    """
    where = "@socketio_controller"
    path = _check_path(path, where)
    if not isinstance(namespace, str) or not namespace.startswith("/"):
        raise DecoratorUsageError(f"{where} namespace must start with '/', not {namespace!r}")
    if not isinstance(connect_timeout_ms, int) or connect_timeout_ms < 1:
        raise DecoratorUsageError(f"{where} connect_timeout_ms must be an int >= 1")
    if recovery_ms is not None and (not isinstance(recovery_ms, int) or recovery_ms < 1):
        raise DecoratorUsageError(f"{where} recovery_ms must be None or an int >= 1")
    from .adapter import RedisStreamsAdapter

    if adapter is not None and not isinstance(adapter, RedisStreamsAdapter):
        raise DecoratorUsageError(
            f"{where} adapter must be a RedisStreamsAdapter(...) or None, not {adapter!r}"
        )
    meta = SocketIOMeta(
        path,
        namespace,
        _engine(where, ping_interval_ms, ping_timeout_ms, max_payload_bytes, cors_allowed_origins),
        connect_timeout_ms,
        recovery_ms,
        adapter,
    )
    return _decorator(meta, where)


def engineio_controller(
    path: str = "/engine.io",
    *,
    ping_interval_ms: int = 25000,
    ping_timeout_ms: int = 20000,
    max_payload_bytes: int = 1_000_000,
    cors_allowed_origins: Origins = None,
) -> Callable[[C], C]:
    """Mark a class as a plain Engine.IO v4 endpoint at ``path``: its
    :func:`on_engineio_message` method receives every message (``str`` or ``bytes``).

    One instance is built per Engine.IO connection (constructor injected by type).
    Raises :class:`~wsgate.errors.DecoratorUsageError` for a bad option.
    """
    where = "@engineio_controller"
    path = _check_path(path, where)
    meta = EngineIOMeta(
        path,
        _engine(where, ping_interval_ms, ping_timeout_ms, max_payload_bytes, cors_allowed_origins),
    )
    return _decorator(meta, where)


def _decorator(meta: SocketIOMeta | EngineIOMeta, where: str) -> Callable[[C], C]:
    def decorate(cls: C) -> C:
        if not isinstance(cls, type):
            raise DecoratorUsageError(f"{where} decorates classes, not {cls!r}")
        setattr(cls, SOCKETIO_ATTR, meta)
        return cls

    return decorate


def controller_meta(cls: Any) -> SocketIOMeta | EngineIOMeta | None:
    """The class's own Socket.IO / Engine.IO metadata (never a base class's)."""
    if not isinstance(cls, type):
        return None
    meta = cls.__dict__.get(SOCKETIO_ATTR)
    return meta if isinstance(meta, SocketIOMeta | EngineIOMeta) else None


def _target(obj: Any) -> Any:
    return obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj


def on_socketio_event(event: str) -> Callable[[F], F]:
    """Route the Socket.IO event ``event`` to this method (stack several for several).

    ``"connect"`` runs before the client is told it is connected (raise
    :class:`~wsgate.WebSocketError` to answer CONNECT_ERROR instead); ``"disconnect"``
    receives the reason. Parameters: the connection, then the client's arguments in order
    (annotated ones validated by msgspec), ``*args`` for the rest, providers by type. The
    return value is the acknowledgement (a tuple for several arguments).

    ``"*"`` catches every event of the namespace that has no handler of its own, as
    ``socket.onAny`` does in Node: the event's name comes first, then its arguments
    (``async def any_event(self, conn, event: str, *args)``); its return value is the
    acknowledgement too.
    """
    if not isinstance(event, str) or not event:
        raise DecoratorUsageError(
            '@on_socketio_event needs the event name: write @on_socketio_event("chat")'
        )

    def decorate(fn: F) -> F:
        target = _target(fn)
        if not callable(target):
            raise DecoratorUsageError(f"@on_socketio_event decorates functions, not {fn!r}")
        events: tuple[str, ...] = getattr(target, EVENT_ATTR, ())
        setattr(target, EVENT_ATTR, (*events, event))
        return fn

    return decorate


def on_engineio_message(fn: F) -> F:
    """Mark the method of an ``@engineio_controller`` class that receives each message:
    ``(self, conn: EngineIOConnection, data: str | bytes)``."""
    target = _target(fn)
    if not callable(target):
        raise DecoratorUsageError(f"@on_engineio_message decorates functions, not {fn!r}")
    setattr(target, ENGINEIO_MESSAGE_ATTR, True)
    return fn


def on_server_side_event(event: str) -> Callable[[F], F]:
    """Route the server-to-server event ``event`` (sent by another server of the cluster
    with :meth:`SocketIOServer.server_side_emit <wsgate.socketio.SocketIOServer.server_side_emit>`
    or Node's ``io.serverSideEmit``) to this method of a ``@socketio_controller`` class.

    The method takes the event's arguments (no connection); its return value answers
    ``server_side_emit_with_ack`` (Node's ``serverSideEmitWithAck``). It runs on one
    instance of the class per namespace, built with the constructor's providers.
    """
    if not isinstance(event, str) or not event:
        raise DecoratorUsageError(
            '@on_server_side_event needs the event name: write @on_server_side_event("ping")'
        )

    def decorate(fn: F) -> F:
        target = _target(fn)
        if not callable(target):
            raise DecoratorUsageError(f"@on_server_side_event decorates functions, not {fn!r}")
        events: tuple[str, ...] = getattr(target, SERVER_EVENT_ATTR, ())
        setattr(target, SERVER_EVENT_ATTR, (*events, event))
        return fn

    return decorate


def server_side_events(cls: type) -> dict[str, list[str]]:
    """The ``@on_server_side_event`` methods of ``cls`` by event (method names)."""
    found: dict[str, list[str]] = {}
    for name in dir(cls):
        target = _target(inspect.getattr_static(cls, name, None))
        for event in getattr(target, SERVER_EVENT_ATTR, ()):
            found.setdefault(event, []).append(name)
    return found
