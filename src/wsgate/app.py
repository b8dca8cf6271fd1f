"""The ASGI application: lifespan, routing of WebSocket scopes, providers."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict, Unpack

import anyio

from . import status
from .admission import Admission, authorize, refusal_error, refusal_messages
from .asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    has_denial_extension,
    strip_root_path,
)
from .broadcast import BroadcastGroup
from .broker import UsesBroker, is_memory, resolve_broker
from .connection import Connection
from .datastructures import State
from .dependencies import ConnectionDependencies, analyse_dependencies
from .di import Container
from .errors import (
    ConfigurationError,
    WebSocketDisconnect,
    WebSocketError,
    WebSocketRouteNotFoundError,
)
from .frames import DEFAULT_MAX_JSON_DEPTH
from .history import History
from .limits import Limits
from .plan import GatewayPlan, compile_gateway
from .plugins import AppSetup, plugins
from .presence import Presence
from .queues import Overflow
from .routing import Router
from .session import Session, SessionConfig
from .state import Event, Phase, Receiver, truncate_reason
from .stats import Stats
from .websocket import WebSocket, WebSocketState

__all__ = ["App", "AppConfig"]

logger = logging.getLogger("wsgate")

Hook = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class AppConfig:
    """Runtime limits, set through :class:`App` keyword arguments of the same names
    (``App(gateways=[...], outbound_queue=512)``); the defaults live here only."""

    #: Frames a connection may have queued for sending before senders wait (or, for
    #: broadcasts, before the overflow policy applies).
    outbound_queue: int = 256
    #: Frames received but not yet handled before the reader stops reading (TCP
    #: backpressure on the client).
    inbound_queue: int = 64
    #: What a broadcast does to a member whose outbox is full.
    overflow: Overflow = Overflow.CLOSE
    #: Seconds the handlers of a connection whose peer left may still run to handle frames
    #: received before it left; then they are cancelled.
    disconnect_grace: float = 1.0
    #: Seconds an ``@on_disconnect`` hook may run.
    disconnect_timeout: float = 5.0
    #: Seconds shutdown waits for connections to close and their hooks to finish.
    shutdown_timeout: float = 10.0
    #: Streams (async-generator handlers) that may run at once on one connection; a
    #: request for one more is answered with a ``too_many_streams`` error frame.
    max_streams: int = 64
    #: A connection's dispatcher and writer tasks stop after this many seconds (up to
    #: twice as many) without work, and start again with the next frame; None keeps them.
    idle_tasks_after: float | None = 30.0
    #: The largest frame a client may send, in bytes; a bigger one closes the connection
    #: with 1009 before it is decoded. (Servers have their own, larger limits: hypercorn
    #: and uvicorn 16 MiB by default.)
    max_frame_bytes: int = 1 << 20
    #: ``(frames, per_seconds)``: a token bucket per connection. A frame over it is
    #: dropped and answered with a ``rate_limited`` error frame; a client that goes on
    #: sending a whole bucket's worth more is closed with 1008. None: no limit.
    rate_limit: tuple[int, float] | None = None
    #: Close a connection with 1001 ("idle") when no frame arrived for this many
    #: seconds (detected within a quarter more). None: never. A client that only
    #: listens must then send something (an application-level ping) now and then.
    idle_timeout: float | None = None
    #: Origins whose pages may open a WebSocket: None (same origin as the ``Host``
    #: header), a list of ``"https://app.example.com"`` / ``"https://*.example.com"``
    #: entries, or ``"*"`` (every origin: unsafe for cookie-authenticated apps).
    #: Handshakes without an ``Origin`` header (non-browser clients) are allowed.
    allowed_origins: str | Sequence[str] | None = None
    #: Compare the Origin with ``X-Forwarded-Host`` instead of ``Host`` (only behind a
    #: proxy that sets it and strips what clients send).
    trust_forwarded_host: bool = False
    #: Connections (handshakes included) this process serves at once; None: no limit.
    max_connections: int | None = None
    #: Connections one client address (``scope["client"][0]``) may hold at once; None:
    #: no limit.
    max_connections_per_client: int | None = None
    #: Seconds guards, per-connection dependencies and ``@on_connect`` may take before the
    #: handshake is accepted; then it is refused with 503 / 1013 (checked about four times
    #: per period, at least once a second, by a sweep in the app's lifespan). None: no
    #: bound.
    handshake_timeout: float | None = 10.0
    #: How deeply a client frame's JSON may nest arrays and objects (the envelope counts
    #: as one level); a deeper frame is answered with ``invalid_frame`` before it is parsed.
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    def __post_init__(self) -> None:
        if self.outbound_queue < 1 or self.inbound_queue < 1:
            raise ConfigurationError("outbound_queue and inbound_queue must be >= 1")
        if not isinstance(self.overflow, Overflow):
            raise ConfigurationError(
                f"overflow must be an Overflow member, not {self.overflow!r}"
            )
        if self.max_streams < 0:
            raise ConfigurationError("max_streams must be >= 0")
        if self.max_frame_bytes < 1:
            raise ConfigurationError("max_frame_bytes must be >= 1")
        if self.rate_limit is not None:
            frames, per = self.rate_limit
            if frames < 1 or per <= 0:
                raise ConfigurationError(
                    f"rate_limit=(frames, per_seconds) needs frames >= 1 and per_seconds > 0, "
                    f"not {self.rate_limit!r}"
                )
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigurationError("idle_timeout must be > 0 seconds (or None)")
        if not isinstance(self.max_json_depth, int) or self.max_json_depth < 1:
            raise ConfigurationError(
                f"max_json_depth must be an int >= 1 (levels of nested arrays and objects a "
                f"frame may hold, the envelope being one), not {self.max_json_depth!r}"
            )
        for name in ("max_connections", "max_connections_per_client"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"{name} must be an int >= 1 or None, not {value!r}")
        if self.handshake_timeout is not None and not self.handshake_timeout > 0:
            raise ConfigurationError(
                f"handshake_timeout must be > 0 seconds or None, not {self.handshake_timeout!r}"
            )


class AppOptions(TypedDict, total=False):
    """The keyword arguments of :class:`App` that set :class:`AppConfig` fields."""

    outbound_queue: int
    inbound_queue: int
    overflow: Overflow
    disconnect_grace: float
    disconnect_timeout: float
    shutdown_timeout: float
    max_streams: int
    idle_tasks_after: float | None
    max_frame_bytes: int
    rate_limit: tuple[int, float] | None
    idle_timeout: float | None
    allowed_origins: str | Sequence[str] | None
    trust_forwarded_host: bool
    max_connections: int | None
    max_connections_per_client: int | None
    handshake_timeout: float | None
    max_json_depth: int


_OPTION_NAMES = frozenset(f.name for f in fields(AppConfig))


class App:
    """An ASGI 3 application serving ``@ws_controller`` gateways.

    ::

        app = App(gateways=[ChatGateway], providers=[Rooms])

    ``providers`` are app-wide singletons injected by type: classes (built once) or
    instances. A default :class:`~wsgate.BroadcastGroup` (with ``history``, if given) and
    a default :class:`~wsgate.Presence` (who is online in each group) are provided unless
    one is given. ``broker`` is
    where they meet across worker processes (:mod:`wsgate.broker`): a Redis/Valkey URL,
    ``memory://``, or None to read ``WSGATE_BROKER_URL`` (without it, the process).
    ``http`` is an ASGI app that receives every HTTP request (else 404);
    ``client_path="/wsgate.js"`` serves the browser client there (and its types at
    ``/wsgate.d.ts``) before it. ``on_startup``
    and ``on_shutdown`` hooks (sync or async callables) run in the lifespan; providers that
    are async context managers are entered at startup and exited at shutdown. At lifespan
    shutdown every connection still open is closed with 1001 and its ``@on_disconnect``
    hook awaited. (hypercorn and uvicorn end open connections themselves before the
    lifespan shutdown when they stop on a signal; :func:`wsgate.serve` closes them with
    1001 first.)

    ``guards`` run before every gateway's own guards and ``@on_connect``;
    ``dependencies`` are per-connection dependency functions (see
    :mod:`wsgate.dependencies`). A handshake whose ``Origin`` is not allowed
    (``allowed_origins``) or that would exceed ``max_connections`` /
    ``max_connections_per_client`` is refused before any gateway code runs.

    Every gateway is compiled here: a mistake in a gateway, a guard, a dependency or an
    option raises :class:`~wsgate.errors.ConfigurationError` now, not on the first
    connection.

    ``docs_path="/docs"`` serves the AsyncAPI document of the gateways at
    ``/docs/asyncapi.json`` and a readable page of it at ``/docs`` (off by default).
    """

    def __init__(
        self,
        gateways: Sequence[type] = (),
        *,
        providers: Iterable[Any] = (),
        guards: Iterable[Callable[..., Any]] = (),
        dependencies: Iterable[Callable[..., Any]] = (),
        http: ASGIApp | None = None,
        on_startup: Iterable[Hook] = (),
        on_shutdown: Iterable[Hook] = (),
        docs_path: str | None = None,
        client_path: str | None = None,
        broker: str | None = None,
        history: History | None = None,
        **options: Unpack[AppOptions],
    ) -> None:
        if isinstance(gateways, type):
            raise ConfigurationError("App(gateways=...) takes a list of gateway classes")
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise ConfigurationError(
                f"App() got unknown options {sorted(unknown)}; the options are "
                f"{sorted(_OPTION_NAMES)}"
            )
        #: The runtime limits (see :class:`AppConfig`).
        self.config = cfg = AppConfig(**options)
        frames, per = cfg.rate_limit or (0, 1.0)
        self._limits = Limits(cfg.max_frame_bytes, frames, per)
        self._session_config = SessionConfig(cfg.max_json_depth, cfg.max_streams)
        #: App-wide state, also reachable as ``ws.app_state``: the user's data bag.
        #: (``.state`` is the user's bag on every public wsgate object; a lifecycle is
        #: ``connection_state``.)
        self.state = State()
        #: Connection counters: opened, open, dropped frames, slow-consumer closes.
        self.stats = Stats()
        # The plug-ins (wsgate.plugins: Socket.IO, the browser client, the docs, the
        # AsyncAPI document) take their controllers and add providers, gateways, mounts.
        setup = AppSetup(
            gateways, providers, {"docs_path": docs_path, "client_path": client_path}
        )
        for plugin in plugins():
            plugin(setup)
        #: Where the App's groups, history and presence meet across processes (see
        #: :mod:`wsgate.broker`): ``memory://`` keeps them in the process.
        self.broker = resolve_broker(broker)
        self.container = Container(
            setup.providers, defaults=[BroadcastGroup(history=history), Presence()]
        )
        if not is_memory(self.broker):
            for provider in self.container.instances():
                if isinstance(provider, UsesBroker):
                    provider.use_broker(self.broker)
        gateways = setup.gateways(self.container)
        self._describe = setup.describer
        self._admission = Admission(
            allowed_origins=cfg.allowed_origins,
            trust_forwarded_host=cfg.trust_forwarded_host,
            max_connections=cfg.max_connections,
            max_connections_per_client=cfg.max_connections_per_client,
            stats=self.stats,
            # e.g. a Socket.IO endpoint with cors_allowed_origins checks Origin itself.
            own_origin_policy=setup.own_origin_paths,
        )
        setup.admission_built(self._admission)  # e.g. Engine.IO polling sessions count
        if callable(guards):
            raise ConfigurationError("App(guards=...) takes a list of functions")
        app_guards = tuple(guards)
        deps = analyse_dependencies(dependencies, self.container)
        self.plans: tuple[GatewayPlan, ...] = tuple(
            compile_gateway(g, self.container, guards=app_guards, dependencies=deps)
            for g in gateways
        )
        self.router: Router[GatewayPlan] = Router([(p.template, p) for p in self.plans])
        self.http = http
        #: HTTP endpoints wsgate serves itself (Engine.IO polling, docs, the browser
        #: client, metrics), by path prefix; tried in order before ``http``.
        self._http_mounts: list[tuple[str, ASGIApp]] = []
        self._on_startup = list(on_startup)
        self._on_shutdown = list(on_shutdown)
        # Background loops of wsgate's own endpoints (the metrics snapshot writer), run
        # between the lifespan startup and shutdown and cancelled at shutdown.
        self._serving_tasks: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._connections: dict[WebSocket, Connection] = {}
        # Handshakes bounded by handshake_timeout: their deadlines, and those past it.
        self._handshakes: dict[Connection, float] = {}
        self._expired: set[Connection] = set()
        self._drained: anyio.Event | None = None
        self._closing = False
        self._closing_with = (status.WS_1001_GOING_AWAY, "server shutting down")
        self._broadcasters: tuple[BroadcastGroup, ...] = tuple(
            p for p in self.container.instances() if isinstance(p, BroadcastGroup)
        )
        # Providers told when a connection ends (groups, presence): connection_ended(ws).
        self._connection_scoped: tuple[Any, ...] = tuple(
            p for p in self.container.instances() if hasattr(p, "connection_ended")
        )
        setup.built(self)  # the plug-ins' HTTP mounts

    # -- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            admitted = await self._admit(scope, receive, send)
            if admitted is not None:
                await self._run(*admitted)
        elif kind == "http":
            mounted = self._http_mount(scope)
            if mounted is not None:
                await mounted(scope, receive, send)
            elif self.http is not None:
                await self.http(scope, receive, send)
            else:
                await _not_found(send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def mount_http(self, prefix: str, endpoint: ASGIApp) -> None:
        """Serve HTTP requests whose path (below ``root_path``) is ``prefix`` or starts
        with ``prefix + "/"`` with ``endpoint``, before the ``http`` fallback. Used by
        wsgate's own HTTP endpoints; the first matching prefix wins."""
        self._http_mounts.append((prefix.rstrip("/") or "/", endpoint))

    def _http_mount(self, scope: Scope) -> ASGIApp | None:
        if not self._http_mounts:
            return None
        path = strip_root_path(scope)
        for prefix, endpoint in self._http_mounts:
            if path == prefix or path.startswith(prefix + "/") or prefix == "/":
                return endpoint
        return None

    def asyncapi(self) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of the gateways, as a JSON-ready dict (see
        :func:`wsgate.asyncapi.asyncapi_document`)."""
        if self._describe is None:
            raise ConfigurationError(
                "no AsyncAPI plug-in is registered: import wsgate (or wsgate.asyncapi) "
                "before building the App"
            )
        return self._describe(self)

    @property
    def broadcasters(self) -> tuple[BroadcastGroup, ...]:
        """Every BroadcastGroup provider; each connection is removed from all of them."""
        return self._broadcasters

    @property
    def connections(self) -> frozenset[WebSocket]:
        """The connections being served right now."""
        return frozenset(self._connections)

    def add_lifespan(
        self,
        *,
        startup: Callable[[], Any] | None = None,
        shutdown: Callable[[], Any] | None = None,
        serve: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """Add to the App's lifespan after it was built (the constructor's
        ``on_startup``/``on_shutdown`` otherwise): ``startup`` runs after the startup
        hooks given so far, ``shutdown`` after the shutdown hooks (sync or async, as
        those), and ``serve`` runs in a task from the end of startup until shutdown,
        when it is cancelled (a background loop: a snapshot writer, a monitor)."""
        if startup is not None:
            self._on_startup.append(startup)
        if shutdown is not None:
            self._on_shutdown.append(shutdown)
        if serve is not None:
            self._serving_tasks.append(serve)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        # Served again after a shutdown (an embedded server restarted): accept again.
        self._closing = False
        self._closing_with = (status.WS_1001_GOING_AWAY, "server shutting down")
        self._drained = None
        async with contextlib.AsyncExitStack() as stack:
            try:
                for provider in self.container.instances():
                    if hasattr(provider, "__aenter__") and hasattr(provider, "__aexit__"):
                        await stack.enter_async_context(provider)
                for hook in self._on_startup:
                    await _call(hook)
            except Exception as exc:
                logger.exception("wsgate startup failed")
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            async with anyio.create_task_group() as tg:
                if self.config.idle_tasks_after:
                    tg.start_soon(self._retire_idle_tasks, self.config.idle_tasks_after)
                if self.config.idle_timeout:
                    tg.start_soon(self._close_idle, self.config.idle_timeout)
                if self.config.handshake_timeout is not None:
                    tg.start_soon(self._expire_handshakes, self.config.handshake_timeout)
                for task in self._serving_tasks:
                    tg.start_soon(task)
                message = await receive()
                tg.cancel_scope.cancel()
            await self.shutdown()
            for hook in self._on_shutdown:
                try:
                    await _call(hook)
                except Exception:
                    logger.exception("wsgate shutdown hook %r failed", hook)
        await send({"type": "lifespan.shutdown.complete"})

    async def _retire_idle_tasks(self, after: float) -> None:
        # Every connection's dispatcher and writer that waited a whole period with nothing
        # to do stops (a connection that goes quiet costs one task again).
        while True:
            await anyio.sleep(after / 2)
            self._retire_idle_tasks_once()

    async def _expire_handshakes(self, timeout: float) -> None:
        # One sweep for every handshake (a timer per handshake costs more than the rest of
        # the handshake checks together): a handshake still not accepted past its deadline
        # has its connection's tasks cancelled, and _run refuses it.
        interval = min(timeout / 4, 1.0)
        while True:
            await anyio.sleep(interval)
            self._expire_handshakes_once()

    def _expire_handshakes_once(self) -> None:
        now = anyio.current_time()
        pending = self._handshakes
        for conn, deadline in list(pending.items()):
            if conn.lifecycle.phase is not Phase.CONNECTING:
                del pending[conn]  # accepted (an owning @on_connect goes on) or refused
            elif now >= deadline:
                del pending[conn]
                self._expired.add(conn)
                conn.cancel()

    def _retire_idle_tasks_once(self) -> None:
        # A function of its own, so no connection stays referenced between two sweeps.
        for conn in list(self._connections.values()):
            conn.retire_idle_tasks()

    async def _close_idle(self, timeout: float) -> None:
        # Connections that received nothing for ``timeout`` seconds are closed with 1001.
        while True:
            await anyio.sleep(timeout / 4)
            self._close_idle_once(anyio.current_time(), timeout)

    def _close_idle_once(self, now: float, timeout: float) -> None:
        for conn in list(self._connections.values()):
            conn.close_if_idle(now, timeout)

    async def shutdown(
        self, code: int = status.WS_1001_GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Close every open connection with ``code`` and ``reason`` (1001 by default;
        ``wsgate run`` drains with 1012, service restart) and wait (up to
        ``shutdown_timeout``) for their ``@on_disconnect`` hooks; handshakes still in
        ``@on_connect`` are refused with the same code. Called by the lifespan shutdown
        (and by :func:`wsgate.serve` before it stops)."""
        if not self._closing:
            self._closing_with = (code, reason)
        self._closing = True
        if not self._connections:
            return
        self._drained = anyio.Event()
        for conn in list(self._connections.values()):
            conn.close_nowait(code, reason)
        with anyio.move_on_after(self.config.shutdown_timeout):
            await self._drained.wait()

    # -- connections -----------------------------------------------------------------

    async def _admit(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[GatewayPlan, Connection, WebSocket] | None:
        """The WebSocket handshake up to the gateway: Origin, connection limits, route.
        Refuses and returns None, or returns the connection to run (whose admission
        :meth:`_run` then releases). Its coroutine ends before the connection runs:
        each level of coroutine stays alive, and is resumed through, for as long as the
        connection lives."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return None
        refusal = self._admission.admit(scope)  # Origin, connection limits
        if refusal is not None:
            for m in refusal:
                await send(m)
            return None
        try:
            path = strip_root_path(scope)
            try:
                route, params = self.router.resolve(path)
            except WebSocketRouteNotFoundError as exc:
                for m in refusal_messages(scope, exc):
                    await send(m)
                self._admission.release(scope)
                return None
            plan = route.target
            cfg = self.config
            meta = plan.meta
            conn = Connection(
                receive,
                send,
                outbound_size=meta.outbound_queue or cfg.outbound_queue,
                inbound_size=cfg.inbound_queue,
                policy=meta.overflow or cfg.overflow,
                stats=self.stats,
                grace=cfg.disconnect_grace,
                owner=not plan.has_message_handlers,
                path=path,
                limits=self._limits,
            )
            ws = WebSocket(scope, conn, app=self, path_template=plan.template, path_params=params)
        except BaseException:
            self._admission.release(scope)
            raise
        return plan, conn, ws

    async def _run(self, plan: GatewayPlan, conn: Connection, ws: WebSocket) -> None:
        stats = self.stats
        stats.connections_total += 1
        stats.connections_open += 1
        self._connections[ws] = conn
        try:
            deps = ConnectionDependencies(plan) if plan.dependencies else None
            try:
                session = Session(
                    plan, self._session_config, conn, ws, None if deps is None else deps.values
                )
            except Exception as exc:
                logger.exception("could not build gateway %s for %s", plan.name, ws.path)
                await _refuse(conn, ws, exc)
                return
            try:
                # ``async with conn``, spelled out: the statement would keep a bound
                # ``__aexit__`` alive for as long as the connection lives.
                await conn.__aenter__()
                try:
                    # The handshake's coroutine ends before the serving starts, so it is
                    # not one more level resumed through while the connection lives.
                    if await self._open(plan, session, conn, ws, deps):
                        await conn.serve(session)
                except BaseException as exc:
                    if not await conn.__aexit__(type(exc), exc, exc.__traceback__):
                        raise
                else:
                    await conn.__aexit__(None, None, None)
                if self._expired and conn in self._expired:
                    await self._handshake_timed_out(conn, ws)
            except* Exception as failure:
                # A task of the connection (reader, dispatcher, writer, stream) failed in
                # wsgate itself (user code is contained where it runs): only this
                # connection ends, and the server never sees the exception.
                await self._runtime_failed(conn, ws, failure)
            finally:
                if self._expired:
                    self._expired.discard(conn)
                conn.lifecycle.handle(Event.ENDED)
                with anyio.CancelScope(shield=True):
                    for provider in self._connection_scoped:
                        await provider.connection_ended(ws)
                    if conn.lifecycle.accepted and plan.on_disconnect is not None:
                        await self._on_disconnect(plan, session)
                    if deps is not None:
                        with anyio.move_on_after(self.config.disconnect_timeout):
                            await deps.aclose()
        except Exception as exc:  # wsgate's own failure after the task group (cleanup)
            await self._runtime_failed(conn, ws, exc)
        finally:
            del self._connections[ws]
            stats.connections_open -= 1
            if self._drained is not None and not self._connections:
                self._drained.set()
            self._admission.release(ws.scope)

    async def _on_disconnect(self, plan: GatewayPlan, session: Session) -> None:
        hook = plan.on_disconnect
        assert hook is not None
        with anyio.move_on_after(self.config.disconnect_timeout) as scope:
            try:
                await session.call_hook(hook)
            except Exception:
                logger.exception("@on_disconnect hook %s failed", hook.qualname)
        if scope.cancelled_caught:
            logger.error(
                "@on_disconnect hook %s ran past %.1fs and was cancelled",
                hook.qualname,
                self.config.disconnect_timeout,
            )

    async def _open(
        self,
        plan: GatewayPlan,
        session: Session,
        conn: Connection,
        ws: WebSocket,
        deps: ConnectionDependencies | None,
    ) -> bool:
        """Guards, dependencies, @on_connect, within handshake_timeout: True if the
        runtime is to serve the connection now."""
        timeout = self.config.handshake_timeout
        if timeout is None or (plan.on_connect is None and not plan.guards and deps is None):
            serve = await self._handshake(plan, session, conn, ws, deps)
        else:
            # Guards, dependencies and @on_connect get ``timeout`` seconds to accept or
            # refuse (checked by _expire_handshakes); an owning @on_connect that accepted
            # then keeps the connection for as long as it lasts.
            self._handshakes[conn] = anyio.current_time() + timeout
            try:
                serve = await self._handshake(plan, session, conn, ws, deps)
            finally:
                self._handshakes.pop(conn, None)
        return serve

    async def _handshake_timed_out(self, conn: Connection, ws: WebSocket) -> None:
        if conn.lifecycle.phase is not Phase.CONNECTING:
            return
        logger.warning(
            "handshake on %s took more than handshake_timeout=%.1fs; refused",
            ws.path,
            self.config.handshake_timeout,
        )
        await _refuse(
            conn,
            ws,
            refusal_error(
                "handshake_timeout",
                "the server took too long to accept the connection; try again later",
                http_status=503,
                close_code=status.WS_1013_TRY_AGAIN_LATER,
            ),
            expired=True,
        )

    async def _handshake(
        self,
        plan: GatewayPlan,
        session: Session,
        conn: Connection,
        ws: WebSocket,
        deps: ConnectionDependencies | None,
    ) -> bool:
        """Guards, dependencies, @on_connect, accept; True if the runtime should now
        serve the connection's frames."""
        if plan.guards or deps is not None:
            try:
                if not await authorize(plan, session, deps):
                    return False  # a guard answered the handshake itself (ws.deny)
            except WebSocketError as exc:
                self.stats.refused_guard += 1
                await _refuse(conn, ws, exc)
                return False
            except Exception as exc:
                await _refuse(conn, ws, exc, what="a guard or per-connection dependency")
                return False
        if plan.on_connect is not None:
            try:
                if conn.lifecycle.owner:
                    # An owning @on_connect is the connection's consumer: when the peer
                    # leaves, it gets the grace period to finish the frames already read.
                    async with conn.consuming():
                        await session.call_hook(plan.on_connect)
                else:
                    await session.call_hook(plan.on_connect)
            except WebSocketDisconnect as exc:
                if conn.lifecycle.peer_left:
                    return False  # the peer left: the normal end of an owning handler
                if ws.connection_state is WebSocketState.CONNECTING:
                    await _refuse(conn, ws, exc)
                else:
                    await ws.close(exc.close_code or status.WS_1011_INTERNAL_ERROR, exc.reason)
                return False
            except Exception as exc:
                if ws.connection_state is WebSocketState.CONNECTING:
                    await _refuse(conn, ws, exc)
                elif ws.connection_state is WebSocketState.CONNECTED:
                    await self._owner_failed(plan, session, ws, exc)
                return False
        st = ws.connection_state
        if st is WebSocketState.DISCONNECTED:
            return False
        if st is WebSocketState.CONNECTED and conn.lifecycle.receiver is Receiver.OWNER:
            # @on_connect accepted and owned the connection; it returned: we're done.
            conn.handle_nowait(Event.OWNER_RETURNED)
            return False
        if st is WebSocketState.CONNECTING:
            if self._closing:
                # Shutdown began while @on_connect ran: don't accept a new connection.
                await ws.close(*self._closing_with)
                return False
            conn.lifecycle.dispatch_after_handshake()  # @on_connect did not take it
            await ws.accept()
        return True

    async def _runtime_failed(self, conn: Connection, ws: WebSocket, exc: BaseException) -> None:
        """Contain an exception raised by wsgate itself (a handler's exception never gets
        here: it is answered with ``internal_error``). Logged once, with the path; the
        connection is closed with 1011 (or, before accept, refused with HTTP 500); nothing
        reaches the server."""
        self.stats.internal_errors += 1
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # the task group's wrapping: log the failure itself
        logger.error(
            "wsgate runtime error on %s; closing the connection with 1011", ws.path, exc_info=exc
        )
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.config.disconnect_timeout):
            if conn.lifecycle.phase is Phase.CONNECTING and has_denial_extension(ws.scope):
                with contextlib.suppress(Exception):  # the transport may be gone as well
                    await conn.send_refusal(
                        refusal_messages(ws.scope, _internal_error()),
                        status.WS_1011_INTERNAL_ERROR,
                        "internal error",
                    )
                return
            await conn.abort(status.WS_1011_INTERNAL_ERROR, "internal error")

    async def _owner_failed(
        self, plan: GatewayPlan, session: Session, ws: WebSocket, exc: Exception
    ) -> None:
        if isinstance(exc, WebSocketError) and exc.close_code is not None:
            await ws.close(exc.close_code, exc.message)
            return
        logger.error("@on_connect %s failed on %s", plan.name, ws.path, exc_info=exc)
        if plan.on_error is not None:
            try:
                await session.call_hook(plan.on_error, exc)
            except Exception:
                logger.exception("@on_error hook of %s failed", plan.name)
        await ws.close(status.WS_1011_INTERNAL_ERROR, "internal error")




async def _refuse(
    conn: Connection,
    ws: WebSocket,
    exc: BaseException,
    what: str = "@on_connect",
    *,
    expired: bool = False,
) -> None:
    """Refuse a handshake after ``@on_connect`` (or ``what``) raised ``exc``.

    With the denial extension: the error's ``http_status`` (403 for a WebSocketError) or
    500 with a JSON body. Without it: accept, then close with the error's close code
    (1008 by default, 1011 for unexpected errors) so the client can read code and reason.
    """
    if isinstance(exc, WebSocketError):
        err, reason = exc, exc.message
    else:
        logger.error("%s failed on %s; refusing with 1011", what, ws.path, exc_info=exc)
        err, reason = _internal_error(), "internal error"
    code = err.close_code or err.default_close_code
    reason = truncate_reason(reason)
    if has_denial_extension(ws.scope):
        messages = refusal_messages(ws.scope, err)
    else:
        messages = [
            {"type": "websocket.accept"},
            {"type": "websocket.close", "code": code, "reason": reason},
        ]
    await conn.send_refusal(messages, code, reason, expired=expired)


def _internal_error() -> WebSocketError:
    # What a client is told when wsgate or @on_connect failed: nothing of the exception.
    return refusal_error(
        "internal_error",
        "internal server error",
        http_status=500,
        close_code=status.WS_1011_INTERNAL_ERROR,
    )


async def _not_found(send: Send) -> None:
    body = b"Not Found"
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _call(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result
