"""Engine.IO connect and disconnect hooks: ``@on_engineio_connect`` and
``@on_engineio_disconnect`` methods of the controllers at one path, called once per
Engine.IO session (either transport), as ``io.engine.on("connection")`` and the raw
socket's ``"close"`` event are in Node.

The hooks of a class run on one instance of it per session (built as the session opens,
with the constructor's providers; for an ``@engineio_controller`` the instance that
receives the session's messages), so the connect hook may keep what the disconnect hook
needs on ``self``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..errors import ConfigurationError, DecoratorUsageError
from .engine_session import EngineIOConnection, EngineSession
from .handlers import EventHandler, compile_method, methods

if TYPE_CHECKING:
    from ..di import Container

__all__ = ["EngineHooks", "on_engineio_connect", "on_engineio_disconnect"]

logger = logging.getLogger("wsgate.socketio")

F = TypeVar("F", bound=Callable[..., Any])

CONNECT_ATTR = "__wsgate_engineio_connect__"
DISCONNECT_ATTR = "__wsgate_engineio_disconnect__"


def _mark(fn: F, attr: str, name: str) -> F:
    target = fn.__func__ if isinstance(fn, staticmethod | classmethod) else fn
    if not callable(target):
        raise DecoratorUsageError(f"@{name} decorates methods, not {fn!r}")
    setattr(target, attr, True)
    return fn


def on_engineio_connect(fn: F) -> F:
    """Call this method once per Engine.IO session, as it opens (over long-polling or
    WebSocket, before the client's first message is handled): ``(self, conn:
    EngineIOConnection)``, providers by type after it. ``conn.sid`` is the session id,
    ``conn.transport`` the transport it opened with, ``conn.scope`` / ``conn.headers``
    the opening request. On a ``@socketio_controller`` or an ``@engineio_controller``
    class; a refused handshake never reaches it."""
    return _mark(fn, CONNECT_ATTR, "on_engineio_connect")


def on_engineio_disconnect(fn: F) -> F:
    """Call this method once per Engine.IO session, when it has ended, after the
    Socket.IO disconnect handlers: ``(self, conn: EngineIOConnection, reason: str)``.
    ``reason`` is the Engine.IO close reason (``"transport close"``, ``"transport
    error"``, ``"ping timeout"``, ``"forced close"``, ``"server shutting down"``,
    ``"parse error"``...), ``conn.transport`` the transport the session ended on."""
    return _mark(fn, DISCONNECT_ATTR, "on_engineio_disconnect")


@dataclass(frozen=True, slots=True)
class _Hooked:
    cls: type
    ctor_kwargs: dict[str, Any]
    connect: EventHandler | None
    disconnect: EventHandler | None


def _find(cls: type, attr: str, what: str, container: Container) -> EventHandler | None:
    found = [name for name, fn in methods(cls) if getattr(fn, attr, False)]
    if len(found) > 1:
        raise ConfigurationError(
            f"{cls.__qualname__}: several @{what} methods ({', '.join(found)}); keep one"
        )
    if not found:
        return None
    return compile_method(cls, found[0], what, EngineIOConnection, container)


class EngineHooks:
    """The Engine.IO hooks of one endpoint (None from :meth:`compile` when it has none).

    :param shared: For an ``@engineio_controller`` path: the hooks run on the instance
        and connection its application made for the session (``session.app_data``).
    """

    def __init__(self, hooked: Sequence[_Hooked], *, shared: bool = False) -> None:
        self._hooked = tuple(hooked)
        self._shared = shared
        #: The connection and the instances of each open session, by sid.
        self._live: dict[str, _Live] = {}

    @classmethod
    def compile(
        cls,
        classes: Sequence[tuple[type, dict[str, Any]]],
        container: Container,
        *,
        shared: bool = False,
    ) -> EngineHooks | None:
        """The hooks of ``classes`` (each with its constructor's arguments). Raises
        :class:`~wsgate.errors.ConfigurationError` for a hook it cannot call."""
        hooked = []
        for klass, kwargs in classes:
            connect = _find(klass, CONNECT_ATTR, "on_engineio_connect", container)
            disconnect = _find(klass, DISCONNECT_ATTR, "on_engineio_disconnect", container)
            if connect is not None or disconnect is not None:
                hooked.append(_Hooked(klass, kwargs, connect, disconnect))
        return cls(hooked, shared=shared) if hooked else None

    def opened(self, session: EngineSession) -> None:
        """The session opened: its connect hooks run first in its work queue."""
        if self._shared:
            conn, instance = session.app_data
            instances = [instance]
        else:
            conn = EngineIOConnection(session)
            instances = [h.cls(**h.ctor_kwargs) for h in self._hooked]
        live = _Live(conn, instances)
        self._live[session.sid] = live

        async def connected() -> None:
            await self._connect(live)

        session.submit(connected)

    async def _connect(self, live: _Live) -> None:
        if live.started:
            return
        live.started = True
        try:
            for hooked, instance in zip(self._hooked, live.instances, strict=True):
                if hooked.connect is not None:
                    try:
                        await hooked.connect.call(instance, live.conn, [])
                    except Exception:
                        logger.exception(
                            "Engine.IO connect hook %s failed", hooked.connect.qualname
                        )
        finally:
            live.done.set()

    async def closed(self, session: EngineSession, reason: str) -> None:
        """The session ended (called once): its disconnect hooks, after its connect
        hooks (run now if the session ended before they started)."""
        live = self._live.pop(session.sid, None)
        if live is None:
            return
        await self._connect(live)
        await live.done.wait()
        for hooked, instance in zip(self._hooked, live.instances, strict=True):
            if hooked.disconnect is not None:
                try:
                    await hooked.disconnect.call(instance, live.conn, [reason])
                except Exception:
                    logger.exception(
                        "Engine.IO disconnect hook %s failed", hooked.disconnect.qualname
                    )


class _Live:
    """An open session's connection and hook instances."""

    __slots__ = ("conn", "done", "instances", "started")

    def __init__(self, conn: EngineIOConnection, instances: list[Any]) -> None:
        self.conn = conn
        self.instances = instances
        self.started = False
        self.done = anyio.Event()
