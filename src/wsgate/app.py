"""The ASGI application: lifespan, routing of WebSocket scopes, providers."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from . import status
from .broadcast import BroadcastGroup
from .connection import Overflow, Stats
from .datastructures import State
from .di import Container
from .dispatch import GatewayPlan, Session, compile_gateway
from .encoding import encode
from .errors import ConfigurationError, WebSocketDisconnect, WebSocketError
from .routing import Router
from .socketio.install import SocketIOSetup, split_controllers
from .websocket import WebSocket, WebSocketState, truncate_reason

__all__ = ["App", "AppConfig"]

logger = logging.getLogger("wsgate")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Hook = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class AppConfig:
    """Runtime limits, set through :class:`App` keyword arguments."""

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


class App:
    """An ASGI 3 application serving ``@ws_controller`` gateways.

    ::

        app = App(gateways=[ChatGateway], providers=[Rooms])

    ``providers`` are app-wide singletons injected by type: classes (built once) or
    instances. A default :class:`~wsgate.BroadcastGroup` is provided unless one is given.
    ``http`` is an ASGI app that receives every HTTP request (else 404). ``on_startup``
    and ``on_shutdown`` hooks (sync or async callables) run in the lifespan; providers that
    are async context managers are entered at startup and exited at shutdown. At lifespan
    shutdown every connection still open is closed with 1001 and its ``@on_disconnect``
    hook awaited. (hypercorn and uvicorn end open connections themselves before the
    lifespan shutdown when they stop on a signal; :func:`wsgate.serve` closes them with
    1001 first.)

    Every gateway is compiled here: a mistake in a gateway raises
    :class:`~wsgate.errors.ConfigurationError` now, not on the first connection.
    """

    def __init__(
        self,
        gateways: Sequence[type] = (),
        *,
        providers: Iterable[Any] = (),
        http: ASGIApp | None = None,
        on_startup: Iterable[Hook] = (),
        on_shutdown: Iterable[Hook] = (),
        outbound_queue: int = 256,
        inbound_queue: int = 64,
        overflow: Overflow = Overflow.CLOSE,
        disconnect_grace: float = 1.0,
        disconnect_timeout: float = 5.0,
        shutdown_timeout: float = 10.0,
        idle_tasks_after: float | None = 30.0,
        max_streams: int = 64,
    ) -> None:
        if isinstance(gateways, type):
            raise ConfigurationError("App(gateways=...) takes a list of gateway classes")
        if outbound_queue < 1 or inbound_queue < 1:
            raise ConfigurationError("outbound_queue and inbound_queue must be >= 1")
        if not isinstance(overflow, Overflow):
            raise ConfigurationError(f"overflow must be an Overflow member, not {overflow!r}")
        self.config = AppConfig(
            outbound_queue,
            inbound_queue,
            overflow,
            disconnect_grace,
            disconnect_timeout,
            shutdown_timeout,
            max_streams,
            idle_tasks_after,
        )
        #: App-wide state, also reachable as ``ws.app_state``.
        self.state = State()
        #: Connection counters: opened, open, dropped frames, slow-consumer closes.
        self.stats = Stats()
        # Socket.IO / Engine.IO controllers become generated gateways, HTTP mounts and
        # providers of their own (wsgate.socketio).
        gateways, sio_controllers = split_controllers(gateways)
        sio = SocketIOSetup(sio_controllers) if sio_controllers else None
        if sio is not None:
            providers = [*providers, *sio.providers]
        self.container = Container(providers, defaults=[BroadcastGroup()])
        if sio is not None:
            sio.install(self.container)
            gateways = [*gateways, *sio.gateways()]
        self.plans: tuple[GatewayPlan, ...] = tuple(
            compile_gateway(g, self.container) for g in gateways
        )
        self.router: Router[GatewayPlan] = Router([(p.template, p) for p in self.plans])
        self.http = http
        #: HTTP endpoints wsgate serves itself (Engine.IO polling, docs, the browser
        #: client, metrics), by path prefix; tried in order before ``http``.
        self._http_mounts: list[tuple[str, ASGIApp]] = []
        if sio is not None:
            sio.mount(self)
        self._on_startup = list(on_startup)
        self._on_shutdown = list(on_shutdown)
        self._connections: set[WebSocket] = set()
        self._drained: anyio.Event | None = None
        self._closing = False
        self._broadcasters: tuple[BroadcastGroup, ...] = tuple(
            p for p in self.container.instances() if isinstance(p, BroadcastGroup)
        )

    # -- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
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
        path: str = scope.get("path", "/")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        for prefix, endpoint in self._http_mounts:
            if path == prefix or path.startswith(prefix + "/") or prefix == "/":
                return endpoint
        return None

    @property
    def broadcasters(self) -> tuple[BroadcastGroup, ...]:
        """Every BroadcastGroup provider; each connection is removed from all of them."""
        return self._broadcasters

    @property
    def connections(self) -> frozenset[WebSocket]:
        """The connections being served right now."""
        return frozenset(self._connections)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
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

    def _retire_idle_tasks_once(self) -> None:
        # A function of its own, so no connection stays referenced between two sweeps.
        for ws in list(self._connections):
            ws._conn.retire_idle_tasks()

    async def shutdown(self) -> None:
        """Close every open connection with 1001 and wait (up to ``shutdown_timeout``) for
        their ``@on_disconnect`` hooks; handshakes still in ``@on_connect`` are refused.
        Called by the lifespan shutdown (and by :func:`wsgate.serve` before it stops)."""
        self._closing = True
        if not self._connections:
            return
        self._drained = anyio.Event()
        for ws in list(self._connections):
            if ws.connection_state is WebSocketState.CONNECTED:
                ws._server_closed(status.WS_1001_GOING_AWAY, "server shutting down")
                ws._conn.close_nowait(
                    status.WS_1001_GOING_AWAY, "server shutting down", discard=False
                )
        with anyio.move_on_after(self.config.shutdown_timeout):
            await self._drained.wait()

    # -- connections -----------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        path: str = scope.get("path", "/")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        match = self.router.match(path)
        if match is None:
            body = encode(
                {"error": {"code": "not_found", "message": f"no WebSocket endpoint at {path!r}"}}
            )
            if "websocket.http.response" in scope.get("extensions", {}):
                await _http_response(send, 404, body)
            else:
                await send({"type": "websocket.close", "code": status.WS_1008_POLICY_VIOLATION})
            return
        route, params = match
        plan = route.target
        ws = WebSocket(
            scope,
            receive,
            send,
            app=self,
            path_template=plan.template,
            path_params=params,
            outbound_queue=plan.meta.outbound_queue,
            overflow=plan.meta.overflow,
        )
        self.stats.connections_total += 1
        self.stats.connections_open += 1
        self._connections.add(ws)
        try:
            await self._run(plan, ws)
        finally:
            self._connections.discard(ws)
            self.stats.connections_open -= 1
            if self._drained is not None and not self._connections:
                self._drained.set()

    async def _run(self, plan: GatewayPlan, ws: WebSocket) -> None:
        try:
            session = Session(plan, self, ws)
        except Exception as exc:
            logger.exception("could not build gateway %s for %s", plan.name, ws.path)
            await _refuse(ws, exc)
            return
        try:
            async with anyio.create_task_group() as tg:
                ws._conn.tg = tg
                await self._serve(plan, session, ws)
        finally:
            ws._conn.outbox.finish(discard=True)
            with anyio.CancelScope(shield=True):
                for group in self.broadcasters:
                    await group.unsubscribe_all(ws)
                if ws._accepted and plan.on_disconnect is not None:
                    if ws.close_code is None:
                        ws._server_closed(status.WS_1006_ABNORMAL_CLOSURE, "")
                    with anyio.move_on_after(self.config.disconnect_timeout) as scope:
                        try:
                            await session.call_hook(plan.on_disconnect)
                        except Exception:
                            logger.exception(
                                "@on_disconnect hook %s failed", plan.on_disconnect.qualname
                            )
                    if scope.cancelled_caught:
                        logger.error(
                            "@on_disconnect hook %s ran past %.1fs and was cancelled",
                            plan.on_disconnect.qualname,
                            self.config.disconnect_timeout,
                        )

    async def _serve(self, plan: GatewayPlan, session: Session, ws: WebSocket) -> None:
        conn = ws._conn
        # A gateway without @on_message handlers may own the connection from @on_connect:
        # if it accepts, a reader task feeds its receive_*() calls.
        owner = conn.reader_on_accept = not plan.has_message_handlers
        if plan.on_connect is not None:
            # While an owning @on_connect runs, it is the connection's consumer: when the
            # peer leaves, it gets the grace period to finish the frames already read.
            conn.consumer_running = owner
            try:
                await session.call_hook(plan.on_connect)
            except WebSocketDisconnect as exc:
                if ws.connection_state is WebSocketState.DISCONNECTED:
                    return  # the peer left: the normal end of an owning handler
                if ws.connection_state is WebSocketState.CONNECTING:
                    await _refuse(ws, exc)
                else:
                    await ws.close(exc.close_code or status.WS_1011_INTERNAL_ERROR, exc.reason)
                return
            except Exception as exc:
                if ws.connection_state is WebSocketState.CONNECTING:
                    await _refuse(ws, exc)
                elif ws.connection_state is WebSocketState.CONNECTED:
                    await self._owner_failed(plan, session, ws, exc)
                return
            finally:
                if owner:
                    conn.consumer_finished()
        st = ws.connection_state
        if st is WebSocketState.DISCONNECTED:
            return
        if st is WebSocketState.CONNECTED and conn.reader_task:
            # @on_connect accepted and owned the connection; it returned: we're done.
            await ws.close(status.WS_1000_NORMAL_CLOSURE)
            return
        if st is WebSocketState.CONNECTING:
            if self._closing:
                # Shutdown began while @on_connect ran: don't accept a new connection.
                await ws.close(status.WS_1001_GOING_AWAY, "server shutting down")
                return
            conn.reader_on_accept = False
            await ws.accept()
        # From here the runtime owns the receive side: this task reads, a dispatcher
        # task (started with the first frame) handles.
        ws._runtime_receives = True
        conn.consumer = session.dispatch
        conn.consumer_retires = plan.meta.concurrency == 1
        await conn.read_loop()

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


async def _refuse(ws: WebSocket, exc: BaseException) -> None:
    """Refuse a handshake after ``@on_connect`` raised ``exc``.

    With the denial extension: the error's ``http_status`` (403 for a WebSocketError) or
    500 with a JSON body. Without it: accept, then close with the error's close code
    (1008 by default, 1011 for unexpected errors) so the client can read code and reason.
    """
    if isinstance(exc, WebSocketError):
        code = exc.close_code or exc.default_close_code
        http_status = exc.http_status
        err = {"code": exc.code, "message": exc.message, "detail": exc.detail}
        reason = exc.message
    else:
        logger.error("@on_connect failed on %s; refusing with 1011", ws.path, exc_info=exc)
        code, http_status = status.WS_1011_INTERNAL_ERROR, 500
        err = {"code": "internal_error", "message": "internal server error", "detail": None}
        reason = "internal error"
    ws._server_closed(code, reason)
    send = ws._conn.send
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await _http_response(send, http_status, encode({"error": err}))
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": truncate_reason(reason)})


async def _http_response(send: Send, status_code: int, body: bytes) -> None:
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


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
