"""Turning ``@socketio_controller`` / ``@engineio_controller`` classes into what the App
serves: one Engine.IO endpoint per path, reached by a generated WebSocket gateway and an
HTTP mount, and the providers (``SocketIOServer``, the runtime entered at lifespan).

A plug-in (:mod:`wsgate.plugins`), registered when this module is imported: it takes the
controllers out of ``App(gateways=[...])``, so the App itself knows nothing of Socket.IO."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio.abc import TaskGroup

from ..broadcast import BroadcastGroup
from ..errors import ConfigurationError
from ..gateway import on_connect, ws_controller
from ..plugins import AppSetup, register
from ..websocket import WebSocket
from .adapter import RedisStreamsAdapter
from .cluster import NamespaceCluster, SocketIOCluster
from .controllers import (
    EngineIOMeta,
    EngineOptions,
    SocketIOMeta,
    controller_meta,
    server_side_events,
)
from .engine import EngineIOEndpoint
from .engine_hooks import EngineHooks
from .engine_session import EngineIOConnection, EngineSession
from .handlers import EventHandler, compile_engineio, compile_events
from .server import Namespace, SocketIOConnection, SocketIOEndpoint, SocketIOServer

if TYPE_CHECKING:
    from ..admission import Admission
    from ..app import App
    from ..di import Container

__all__ = ["EngineIORuntime", "SocketIOSetup", "split_controllers"]

logger = logging.getLogger("wsgate.socketio")


class EngineIORuntime:
    """Entered with the App's lifespan: runs the endpoints' task groups (polling
    sessions' handlers, heartbeats of polling sessions) and closes every session at
    shutdown."""

    def __init__(self) -> None:
        self.endpoints: list[EngineIOEndpoint] = []
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        for ep in self.endpoints:
            ep.tg = tg
            ep.reset_backend()
            tg.start_soon(ep.sweep)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg = self._tg
        if tg is None:
            return
        with anyio.CancelScope(shield=True):
            for ep in self.endpoints:
                await ep.close_all()
        for ep in self.endpoints:
            ep.tg = None
        self._tg = None
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)


class _EngineIOApp:
    """The Engine.IO application of an ``@engineio_controller`` class."""

    def __init__(
        self, cls: type, handler: EventHandler | None, ctor_kwargs: dict[str, Any]
    ) -> None:
        self.cls = cls
        self.handler = handler
        self.ctor_kwargs = ctor_kwargs

    def on_open(self, session: EngineSession) -> None:
        conn = EngineIOConnection(session)
        instance = self.cls(**self.ctor_kwargs)
        session.bind((conn, instance))

    def on_message(self, session: EngineSession, data: str | bytes) -> None:
        handler = self.handler
        if handler is None:
            return
        conn, instance = session.app_data
        session.submit(lambda: handler.call(instance, conn, [data]))

    def on_timer(self, session: EngineSession) -> None:
        return None

    async def on_close(self, session: EngineSession, reason: str) -> None:
        return None


def _gateway(endpoint: EngineIOEndpoint) -> type:
    """A gateway class at the endpoint's path whose @on_connect owns the WebSocket."""

    async def serve(self: Any, ws: WebSocket) -> None:
        await endpoint.serve_websocket(ws)

    cls = type(
        f"EngineIOGateway[{endpoint.path}]",
        (),
        {
            "serve": on_connect(serve),
            "__doc__": f"Engine.IO WebSocket transport at {endpoint.path}",
        },
    )
    return ws_controller(endpoint.path)(cls)


def split_controllers(gateways: Sequence[type]) -> tuple[list[type], list[type]]:
    """``(ordinary gateways, Socket.IO / Engine.IO controllers)``."""
    plain: list[type] = []
    sio: list[type] = []
    for g in gateways:
        (sio if controller_meta(g) is not None else plain).append(g)
    return plain, sio


class SocketIOSetup:
    """What App.__init__ needs for the Socket.IO / Engine.IO controllers it was given:
    ``providers`` to add before its container is built, ``gateways`` to compile with
    the others, and :meth:`install` once the container exists."""

    def __init__(self, controllers: Sequence[type]) -> None:
        self.controllers = list(controllers)
        self.runtime = EngineIORuntime()
        has_sio = any(isinstance(controller_meta(c), SocketIOMeta) for c in controllers)
        self.server = SocketIOServer() if has_sio else None
        self.cluster = SocketIOCluster() if has_sio else None
        # Group by path and check that classes sharing a path agree on engine options.
        self.by_path: dict[str, list[tuple[type, SocketIOMeta | EngineIOMeta]]] = {}
        for cls in controllers:
            meta = controller_meta(cls)
            assert meta is not None
            self.by_path.setdefault(meta.path, []).append((cls, meta))
        for path, entries in self.by_path.items():
            kinds = {type(m) for _, m in entries}
            names = ", ".join(c.__qualname__ for c, _ in entries)
            if len(kinds) > 1 or (EngineIOMeta in kinds and len(entries) > 1):
                raise ConfigurationError(
                    f"{names} are all mounted at {path!r}; an @engineio_controller needs a "
                    "path of its own"
                )
            engines = {m.engine for _, m in entries}
            if len(engines) > 1:
                raise ConfigurationError(
                    f"{names} share the Socket.IO path {path!r} but not its Engine.IO "
                    "options (ping_interval_ms, ping_timeout_ms, max_payload_bytes, "
                    "cors_allowed_origins); give them the same values"
                )
            timeouts = {m.connect_timeout_ms for _, m in entries if isinstance(m, SocketIOMeta)}
            if len(timeouts) > 1:
                raise ConfigurationError(
                    f"{names} share the Socket.IO path {path!r} but not connect_timeout_ms"
                )
            adapters = {m.adapter for _, m in entries if isinstance(m, SocketIOMeta)}
            if len(adapters) > 1:
                raise ConfigurationError(
                    f"{names} share the Socket.IO path {path!r} but not its adapter; give "
                    "them the same RedisStreamsAdapter(...) (or none)"
                )
            spaces = [m.namespace for _, m in entries if isinstance(m, SocketIOMeta)]
            dupes = {n for n in spaces if spaces.count(n) > 1}
            if dupes:
                raise ConfigurationError(
                    f"{names}: namespace {sorted(dupes)[0]!r} at {path!r} is served twice"
                )
        self.endpoints: list[EngineIOEndpoint] = []

    @property
    def providers(self) -> list[Any]:
        """Provider instances the App registers."""
        # The cluster first: entered before the runtime, it is left after it (sessions
        # closed at shutdown are kept for recovery through it).
        return [p for p in (self.cluster, self.runtime, self.server) if p is not None]

    def gateways(self) -> list[type]:
        """Build the endpoints (after :meth:`install` has the container) and return
        their generated gateways."""
        return [_gateway(ep) for ep in self.endpoints]

    def install(self, container: Container) -> None:
        """Compile every controller (handlers, providers) into its endpoint."""
        rooms = container.get(BroadcastGroup)
        for path, entries in self.by_path.items():
            first = entries[0][1]
            options: EngineOptions = first.engine
            if isinstance(first, EngineIOMeta):
                cls = entries[0][0]
                handler = compile_engineio(cls, EngineIOConnection, container)
                app: Any = _EngineIOApp(cls, handler, container.resolve_kwargs(cls))
                # The hooks run on the instance the session's messages go to.
                hooks = EngineHooks.compile([(cls, app.ctor_kwargs)], container, shared=True)
            else:
                namespaces = {}
                hooks = EngineHooks.compile(
                    [(cls, container.resolve_kwargs(cls)) for cls, _ in entries], container
                )
                assert isinstance(first, SocketIOMeta) and self.cluster is not None
                adapter = first.adapter
                if adapter is None and self.cluster.broker is not None:
                    adapter = RedisStreamsAdapter()
                link = None
                if adapter is not None:
                    names = ", ".join(c.__qualname__ for c, _ in entries)
                    link = self.cluster.link(adapter, names)
                for cls, meta in entries:
                    assert isinstance(meta, SocketIOMeta)
                    ns = namespaces[meta.namespace] = Namespace(
                        meta.namespace,
                        cls,
                        compile_events(cls, SocketIOConnection, container),
                        container,
                        rooms if link is None else self.cluster.rooms,
                        f"|{path}|{meta.namespace}",
                        meta.recovery_ms / 1000 if meta.recovery_ms else None,
                        container.resolve_kwargs(cls),  # a missing provider fails now
                    )
                    ns.server_events = server_side_events(cls)
                    if link is not None:
                        ns.cluster = NamespaceCluster(link, ns)
                app = SocketIOEndpoint(path, namespaces, first.connect_timeout_ms / 1000)
                assert self.server is not None
                self.server.add_endpoint(app)
            endpoint = EngineIOEndpoint(path, options, app)
            endpoint.hooks = hooks
            self.endpoints.append(endpoint)
            self.runtime.endpoints.append(endpoint)

    def mount(self, app: App) -> None:
        """Serve the endpoints' polling transport through the App's HTTP mounts."""
        for ep in self.endpoints:
            app.mount_http(ep.path, ep)

    def use_admission(self, admission: Admission) -> None:
        """Count the endpoints' long-polling sessions against the App's connection
        limits (their WebSockets are admitted by the App itself)."""
        for ep in self.endpoints:
            ep.admission = admission

    def own_origin_paths(self) -> list[str]:
        """The paths whose endpoints check ``Origin`` themselves (``cors_allowed_origins``
        given)."""
        return [
            path
            for path, entries in self.by_path.items()
            if entries[0][1].engine.cors_allowed_origins is not None
        ]

    def build(self, container: Container) -> list[type]:
        """:meth:`install` with ``container``, then the generated gateways."""
        self.install(container)
        return self.gateways()


def plugin(setup: AppSetup) -> None:
    """The Socket.IO / Engine.IO plug-in: takes the controllers out of the App's gateways
    and adds their providers, generated gateways and polling mounts."""
    controllers = setup.take_gateways(lambda g: controller_meta(g) is not None)
    if not controllers:
        return
    sio = SocketIOSetup(controllers)
    setup.provide(*sio.providers)
    for path in sio.own_origin_paths():
        setup.checks_own_origin(path)
    setup.add_gateways(sio.build)
    setup.on_admission(sio.use_admission)
    setup.on_built(sio.mount)


register("socketio", plugin)
