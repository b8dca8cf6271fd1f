"""Engine.IO v4 over ASGI: the per-path endpoint (HTTP long-polling, WebSocket, the
upgrade between them) around the sans-I/O :class:`EngineIOSession`.

An :class:`EngineIOEndpoint` keeps its sessions in a table keyed by sid. The WebSocket
transport runs inside the App's runtime as a generated gateway whose ``@on_connect``
owns the connection, so frames leave through the connection's bounded outbox with its
overflow policy. The polling transport is served by an HTTP mount: a GET takes what the
session has queued (waiting for something if nothing is), a POST carries the client's
packets. Work for the application (Socket.IO packets, Engine.IO messages) runs in one
task per session, in arrival order, inside the WebSocket's task group or, for sessions
that started with polling, the endpoint's own task group (started in the App's lifespan).
"""

from __future__ import annotations

import base64
import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import anyio
import msgspec
from anyio.abc import TaskGroup

from ..connection import CLOSED, DROPPED, QUEUED, SLOW
from ..datastructures import Address, Headers, QueryParams, State
from ..errors import WebSocketDisconnect, WebSocketStateError
from ..websocket import WebSocket, WebSocketState
from .controllers import EngineOptions
from .engineio_protocol import (
    EngineIOPacketType,
    EngineIOProtocolError,
    decode_packet,
    decode_payload,
    encode_payload,
)
from .engineio_state import (
    EngineIOSession,
    EngineIOSessionState,
    MessageReceived,
    SessionClosed,
    Upgraded,
    UpgradeFailed,
)

__all__ = ["EngineIOEndpoint", "EngineSession"]

logger = logging.getLogger("wsgate.socketio")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Work = Callable[[], Awaitable[None]]

#: Engine.IO error codes and messages (as the reference server answers them).
UNKNOWN_TRANSPORT = 0
UNKNOWN_SID = 1
BAD_HANDSHAKE_METHOD = 2
BAD_REQUEST = 3
FORBIDDEN = 4
UNSUPPORTED_PROTOCOL_VERSION = 5
ERROR_MESSAGES = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}
#: Seconds an upgrading WebSocket may take to send its probe and upgrade packets.
UPGRADE_TIMEOUT = 10.0
#: Frames a polling session may have queued before a broadcast closes it as a slow
#: consumer (a direct send waits for room instead).
POLLING_QUEUE = 1024
#: Seconds a session's handler task waits for more work before it stops.
RUNNER_LINGER = 1.0
#: Seconds the on-close callback (Socket.IO disconnect handlers) may run.
CLOSE_TIMEOUT = 5.0


def new_id() -> str:
    """A random URL-safe id (sids, pids)."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode("ascii")


class EngineIOApplication(Protocol):
    """What an endpoint drives: Socket.IO, or a plain Engine.IO controller."""

    def on_open(self, session: EngineSession) -> None:
        """A session opened (its open packet is queued)."""

    def on_message(self, session: EngineSession, data: str | bytes) -> None:
        """A message arrived; called in arrival order, never concurrently. Long work
        goes through ``session.submit``."""

    def on_timer(self, session: EngineSession) -> None:
        """``session.timer`` passed."""

    async def on_close(self, session: EngineSession, reason: str) -> None:
        """The session ended (called once, shielded, for a bounded time)."""


class EngineSession:
    """The I/O side of one Engine.IO session: its transports, its work queue, its close.

    Not public: Socket.IO connections and :class:`EngineIOConnection` wrap it.
    """

    __slots__ = (
        "__weakref__",
        "_finished",
        "_poll_noop",
        "_poll_wake",
        "_room",
        "_runner",
        "_work",
        "_work_wake",
        "app_data",
        "endpoint",
        "loop_scope",
        "machine",
        "polling",
        "posting",
        "scope",
        "state",
        "tg",
        "timer",
        "ws",
        "ws_home",
    )

    def __init__(self, endpoint: EngineIOEndpoint, transport: str, scope: Mapping[str, Any]):
        opts = endpoint.options
        self.endpoint = endpoint
        self.scope = scope
        self.ws: WebSocket | None = None
        #: Cancelled when the session closes, to end the WebSocket's receive loop.
        self.loop_scope: anyio.CancelScope | None = None
        self.ws_home = transport == "websocket"
        self.tg: TaskGroup | None = None
        self.timer: float | None = None
        self.state = State()
        self.app_data: Any = None
        self.polling = False
        self.posting = False
        self._poll_wake: anyio.Event | None = None
        self._poll_noop = False
        self._room: anyio.Event | None = None
        self._work: list[Work] = []
        self._work_wake: anyio.Event | None = None
        self._runner = False
        self._finished: anyio.Event | None = None
        sid = new_id()
        while sid in endpoint.sessions:
            sid = new_id()  # pragma: no cover - 120 random bits
        self.machine = EngineIOSession(
            sid,
            transport,
            ping_interval=opts.ping_interval_ms / 1000,
            ping_timeout=opts.ping_timeout_ms / 1000,
            max_payload=opts.max_payload_bytes,
            capacity=POLLING_QUEUE,
            now=anyio.current_time(),
            on_output=self._on_output,
        )

    # -- facts ---------------------------------------------------------------------------

    @property
    def sid(self) -> str:
        """The Engine.IO session id."""
        return self.machine.sid

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``."""
        return self.machine.transport

    @property
    def open(self) -> bool:
        """True until the session is closed."""
        return self.machine.state is EngineIOSessionState.OPEN

    def next_deadline(self) -> float | None:
        """The next moment :meth:`tick` has something to do."""
        d = self.machine.next_deadline()
        t = self.timer
        if t is None:
            return d
        return t if d is None else min(d, t)

    # -- output --------------------------------------------------------------------------

    def _ws_active(self) -> WebSocket | None:
        ws = self.ws
        if ws is not None and not self.machine.upgrading and self.transport == "websocket":
            return ws
        return None

    def _on_output(self) -> None:
        ws = self._ws_active()
        if ws is not None:
            for frame in self.machine.take_outgoing():
                ws.send_nowait(_asgi(frame))
            return
        ev = self._poll_wake
        if ev is not None:
            self._poll_wake = None
            ev.set()

    async def send_frames(self, frames: list[str | bytes]) -> None:
        """Send encoded Engine.IO frames, waiting while the transport's queue is full.
        Frames for a closed session are dropped."""
        ws = self._ws_active()
        if ws is not None:
            if ws.connection_state is not WebSocketState.CONNECTED:
                return
            try:
                for frame in frames:
                    await ws.send(_asgi(frame))
            except (WebSocketDisconnect, WebSocketStateError):
                return
            return
        machine = self.machine
        for i, frame in enumerate(frames):
            while not machine.offer(frame):
                if not self.open:
                    return
                room = self._room = anyio.Event()
                await room.wait()
                if self._ws_active() is not None:
                    await self.send_frames(frames[i:])  # upgraded meanwhile
                    return

    def offer(self, message: Message) -> int:
        """The broadcast path: queue an ASGI send message without waiting. A polling
        session whose queue is full is closed as a slow consumer."""
        if not self.open:
            return CLOSED
        ws = self._ws_active()
        if ws is not None:
            return QUEUED if ws.send_nowait(message) else DROPPED
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes", b"")
        if self.machine.offer(frame):
            return QUEUED
        self.close("slow consumer")
        return SLOW

    def _taken(self) -> None:
        room = self._room
        if room is not None:
            self._room = None
            room.set()

    # -- work ----------------------------------------------------------------------------

    def submit(self, work: Work) -> None:
        """Run ``work`` after the work submitted before it (one task per session)."""
        self._work.append(work)
        wake = self._work_wake
        if wake is not None:
            self._work_wake = None
            wake.set()
        elif not self._runner and self.tg is not None:
            self._runner = True
            self.tg.start_soon(self._run_work)

    async def _run_work(self) -> None:
        # The runner stays a moment after the queue empties, so a busy client does not
        # pay a task start per event; an idle one costs no task.
        try:
            while True:
                await self.run_pending()
                wake = self._work_wake = anyio.Event()
                with anyio.move_on_after(RUNNER_LINGER):
                    await wake.wait()
                if not self._work:
                    return
        finally:
            self._work_wake = None
            self._runner = False

    async def run_pending(self) -> None:
        """Run the queued work now (the runner task, or a request without a lifespan)."""
        while self._work:
            # Taken as a batch (a list, not a deque: an idle session keeps no block).
            batch, self._work = self._work, []
            for item in batch:
                try:
                    await item()
                except Exception:
                    logger.exception("Engine.IO session %s: a handler failed", self.sid)

    # -- input ---------------------------------------------------------------------------

    def handle(self, events: list[Any]) -> None:
        """Act on the machine's events."""
        app = self.endpoint.app
        for ev in events:
            if isinstance(ev, MessageReceived):
                app.on_message(self, ev.data)
            elif isinstance(ev, SessionClosed):
                self._closed(ev.reason)

    def tick(self, now: float) -> None:
        """Heartbeats and the application's timer."""
        self.handle(self.machine.tick(now))
        t = self.timer
        if t is not None and now >= t and self.open:
            self.timer = None
            self.endpoint.app.on_timer(self)

    def close(self, reason: str = "forced close") -> None:
        """Close the session from the server: the close packet goes out, then the
        transport closes and the application's on_close runs."""
        self.handle(self.machine.close(reason))

    def _closed(self, reason: str) -> None:
        # The machine is closed: wake a waiting poll, close the WebSocket, and have the
        # application's on_close run where the session lives.
        self._on_output()
        ev = self._poll_wake
        if ev is not None:
            self._poll_wake = None
            ev.set()
        self._taken()
        if self.loop_scope is not None:
            self.loop_scope.cancel()  # the WebSocket's loop closes it, after the close packet
        if self.ws_home:
            return  # the WebSocket's loop runs finish() in its finally
        if self.endpoint.tg is not None:
            self.endpoint.tg.start_soon(self.finish, reason)
        else:
            self.endpoint.orphans.append((self, reason))

    async def finish(self, reason: str) -> None:
        """Run the application's on_close once (shielded, bounded) and forget the
        session."""
        if self._finished is not None:
            await self._finished.wait()
            return
        self._finished = anyio.Event()
        try:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(CLOSE_TIMEOUT):
                    try:
                        await self.endpoint.app.on_close(self, reason)
                    except Exception:
                        logger.exception("Engine.IO session %s: on close failed", self.sid)
        finally:
            self.endpoint.sessions.pop(self.sid, None)
            self._finished.set()


def _asgi(frame: str | bytes) -> Message:
    if isinstance(frame, str):
        return {"type": "websocket.send", "text": frame}
    return {"type": "websocket.send", "bytes": frame}


class EngineIOEndpoint:
    """One Engine.IO path: its sessions, its HTTP (polling) ASGI app and its WebSocket
    handler."""

    def __init__(self, path: str, options: EngineOptions, app: EngineIOApplication) -> None:
        self.path = path
        self.options = options
        self.app = app
        self.sessions: dict[str, EngineSession] = {}
        #: Started by the App's lifespan: polling sessions' work and the heartbeat sweep.
        self.tg: TaskGroup | None = None
        #: Sessions closed while no task group runs (no lifespan); finished inline.
        self.orphans: list[tuple[EngineSession, str]] = []
        self._sweep_period = max(
            0.02, min(1.0, options.ping_interval_ms / 4000, options.ping_timeout_ms / 4000)
        )

    # -- checks shared by both transports --------------------------------------------------

    def _origin_allowed(self, headers: Headers) -> bool:
        allowed = self.options.cors_allowed_origins
        origin = headers.get("origin")
        if not isinstance(allowed, tuple) or origin is None:
            return True
        return origin in allowed

    def _check(self, query: QueryParams, headers: Headers) -> tuple[int, str] | None:
        if query.get("EIO") != "4":
            return UNSUPPORTED_PROTOCOL_VERSION, ""
        if query.get("transport") not in ("polling", "websocket"):
            return UNKNOWN_TRANSPORT, ""
        if not self._origin_allowed(headers):
            return FORBIDDEN, ""
        return None

    def _cors_headers(self, headers: Headers) -> list[tuple[bytes, bytes]]:
        allowed = self.options.cors_allowed_origins
        if allowed is None:
            return []
        origin = headers.get("origin")
        if allowed == "*" and origin is None:
            return [(b"access-control-allow-origin", b"*")]
        if origin is None or (isinstance(allowed, tuple) and origin not in allowed):
            return []
        if allowed != "*" and not isinstance(allowed, tuple) and origin != allowed:
            return []
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]

    # -- HTTP long-polling -------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._finish_orphans_later()
        headers = Headers.from_scope(scope)
        query = QueryParams.from_scope(scope)
        cors = self._cors_headers(headers)
        method = scope.get("method", "GET")
        if method == "OPTIONS":
            extra = [
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-max-age", b"86400"),
            ]
            wanted = headers.get("access-control-request-headers")
            if wanted:
                extra.append((b"access-control-allow-headers", wanted.encode("latin-1")))
            await _respond(send, 204, b"", None, cors + extra if cors else [])
            return
        err = self._check(query, headers)
        sid = query.get("sid")
        if err is None and sid is None:
            if method != "GET":
                err = (BAD_HANDSHAKE_METHOD, "")
            elif query.get("transport") == "websocket":
                err = (BAD_REQUEST, "")
        session = None
        if err is None and sid is not None:
            session = self.sessions.get(sid)
            if session is None:
                err = (UNKNOWN_SID, "")
            elif query.get("transport") != "polling" or session.transport != "polling":
                err = (BAD_REQUEST, "")
        if err is not None:
            await _error(send, err[0], cors)
            return
        if session is None:
            session = self._open(scope, "polling")
            session.tg = self.tg
            await _respond(send, 200, self._take(session), _TEXT, cors)
            return
        if method == "GET":
            await self._poll(session, receive, send, cors)
        elif method == "POST":
            await self._post(session, scope, receive, send, cors)
        else:
            await _respond(send, 500, b"", None, cors)
        if self.tg is None:
            await self._finish_orphans()

    def _open(self, scope: Mapping[str, Any], transport: str) -> EngineSession:
        session = EngineSession(self, transport, scope)
        self.sessions[session.sid] = session
        self.app.on_open(session)
        return session

    def _take(self, session: EngineSession) -> bytes:
        frames = session.machine.take_outgoing()
        if len(frames) > 1 and frames[-1] == "1" and not session.open:
            # The server's close packet goes in a poll of its own, as the reference
            # server sends it: the client handles what came before it first (a
            # Socket.IO DISCONNECT, for instance) instead of seeing a transport close.
            session.machine.outgoing.append(frames.pop())
        session._taken()
        return encode_payload(frames).encode()

    async def _poll(
        self, session: EngineSession, receive: Receive, send: Send, cors: list[Any]
    ) -> None:
        if session.polling:
            # A second GET while one is pending: the reference server closes the session.
            session.handle(session.machine.transport_closed("transport error"))
            await _respond(send, 400, b"", None, cors)
            return
        machine = session.machine
        if machine.outgoing or not session.open or session._poll_noop:
            session._poll_noop = False
            await _respond(send, 200, self._take(session) or b"6", _TEXT, cors)
            return
        session.polling = True
        gone = False
        try:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    # A client that drops a pending poll ends the session (the frames
                    # would otherwise be taken by a request nobody reads).
                    nonlocal gone
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    gone = True
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                while not machine.outgoing and session.open and not session._poll_noop:
                    ev = session._poll_wake = anyio.Event()
                    deadline = session.next_deadline()
                    with anyio.move_on_at(math.inf if deadline is None else deadline):
                        await ev.wait()
                    session.tick(anyio.current_time())
                tg.cancel_scope.cancel()
        finally:
            session.polling = False
        if gone:
            session.handle(machine.transport_closed("transport error"))
            return
        session._poll_noop = False
        body = self._take(session)
        if not body:
            body = b"6" if session.open else b"1"
        await _respond(send, 200, body, _TEXT, cors)

    async def _post(
        self, session: EngineSession, scope: Scope, receive: Receive, send: Send, cors: list[Any]
    ) -> None:
        if session.posting:
            session.handle(session.machine.transport_closed("transport error"))
            await _respond(send, 400, b"", None, cors)
            return
        headers = Headers.from_scope(scope)
        if headers.get("content-type") == "application/octet-stream":
            session.handle(session.machine.transport_closed("transport error"))
            await _respond(send, 400, b"", None, cors)
            return
        session.posting = True
        try:
            limit = self.options.max_payload_bytes
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    session.handle(session.machine.transport_closed("transport error"))
                    return
                body = message.get("body", b"")
                size += len(body)
                if size > limit:
                    session.handle(session.machine.transport_closed("transport error"))
                    await _respond(send, 413, b"", None, cors)
                    return
                chunks.append(body)
                if not message.get("more_body", False):
                    break
        finally:
            session.posting = False
        machine = session.machine
        now = anyio.current_time()
        try:
            packets = decode_payload(b"".join(chunks).decode("utf-8"))
        except (EngineIOProtocolError, UnicodeDecodeError):
            session.handle(machine.protocol_error())
            packets = []
        for packet in packets:
            session.handle(machine.receive(packet, now))
            if not session.open:
                break
        if session.tg is None:
            await session.run_pending()
        await _respond(send, 200, b"ok", b"text/html", cors)

    # -- WebSocket -------------------------------------------------------------------------

    async def serve_websocket(self, ws: WebSocket) -> None:
        """Serve one WebSocket at this path: a new session, or the upgrade of a polling
        session (``sid`` in the query)."""
        self._finish_orphans_later()
        query = ws.query_params
        err = self._check(query, ws.headers)
        sid = query.get("sid")
        session = None
        if err is None and sid is not None:
            session = self.sessions.get(sid)
            if session is None:
                err = (UNKNOWN_SID, "")
            elif not session.machine.can_upgrade() or query.get("transport") != "websocket":
                err = (BAD_REQUEST, "")
        elif err is None and query.get("transport") != "websocket":
            err = (BAD_REQUEST, "")
        if err is not None:
            code = err[0]
            body = msgspec.json.encode({"code": code, "message": ERROR_MESSAGES[code]})
            await ws.deny(
                403 if code == FORBIDDEN else 400, body, {"content-type": "application/json"}
            )
            return
        await ws.accept()
        if session is not None:
            await self._upgrade(session, ws)
            return
        session = self._open(ws.scope, "websocket")
        session.ws = ws
        if self.tg is not None:
            # Handlers run in the endpoint's task group (one task group less per
            # connection); they end on their own once the session is closed.
            session.tg = self.tg
            await self._serve_session(session, ws)
            return
        async with anyio.create_task_group() as tg:
            session.tg = tg
            await self._serve_session(session, ws)
            tg.cancel_scope.cancel()

    async def _serve_session(self, session: EngineSession, ws: WebSocket) -> None:
        reason = "transport close"
        try:
            session._on_output()  # the open packet, and whatever on_open queued
            await self._run_loop(session, ws)
        finally:
            with anyio.CancelScope(shield=True):
                if session.open:
                    session.machine.transport_closed(reason)
                await session.finish(session.machine.close_reason or reason)

    async def _run_loop(self, session: EngineSession, ws: WebSocket) -> None:
        try:
            with anyio.CancelScope() as scope:
                session.loop_scope = scope
                if session.open:
                    await self._ws_loop(session, ws)
        finally:
            session.loop_scope = None
            with anyio.CancelScope(shield=True):
                await ws.close(1000)

    async def _ws_loop(self, session: EngineSession, ws: WebSocket) -> None:
        machine = session.machine
        limit = self.options.max_payload_bytes
        while session.open:
            deadline = session.next_deadline()
            message = None
            try:
                with anyio.move_on_at(math.inf if deadline is None else deadline):
                    message = await ws.receive()
            except WebSocketDisconnect:
                session.handle(machine.transport_closed("transport close"))
                return
            except WebSocketStateError:
                if session.open:
                    session.handle(machine.transport_closed("transport close"))
                return
            now = anyio.current_time()
            if message is None:
                session.tick(now)
                continue
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            if len(frame) > limit:
                # The reference server's WebSocket closes with 1009 (message too big).
                await ws.close(1009, "Max payload size exceeded")
                session.handle(machine.transport_closed("transport error"))
                return
            try:
                packet = decode_packet(frame)
            except EngineIOProtocolError:
                session.handle(machine.protocol_error())
                return
            session.handle(machine.receive(packet, now))

    async def _upgrade(self, session: EngineSession, ws: WebSocket) -> None:
        machine = session.machine
        machine.start_upgrade()
        try:
            with anyio.fail_after(UPGRADE_TIMEOUT):
                while True:
                    message = await ws.receive()
                    text = message.get("text")
                    try:
                        packet = decode_packet(text if text is not None else message["bytes"])
                    except (EngineIOProtocolError, KeyError):
                        machine.abandon_upgrade()
                        await ws.close(1000)
                        return
                    frames, events = machine.upgrade_packet(packet)
                    for frame in frames:
                        await ws.send_text(str(frame))
                    if frames:
                        # Probe answered: release the pending poll so the client can
                        # pause polling and send the upgrade packet.
                        session._poll_noop = True
                        session._on_output()
                    if any(isinstance(e, UpgradeFailed) for e in events):
                        await ws.close(1000)
                        return
                    if any(isinstance(e, Upgraded) for e in events):
                        break
        except (TimeoutError, WebSocketDisconnect, WebSocketStateError):
            if machine.upgrading:
                machine.abandon_upgrade()
            return
        session.ws = ws
        session._poll_noop = True
        session._on_output()  # flush what was queued for polling during the upgrade
        try:
            await self._run_loop(session, ws)
        finally:
            if session.open:
                session.handle(machine.transport_closed("transport close"))

    # -- background ------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Heartbeats and timers of polling sessions with no poll pending (a pending
        poll ticks its own session); runs in the App's lifespan."""
        while True:
            await anyio.sleep(self._sweep_period)
            now = anyio.current_time()
            for session in list(self.sessions.values()):
                if session.ws is None and not session.polling and session.open:
                    session.tick(now)

    def _finish_orphans_later(self) -> None:
        if self.orphans and self.tg is not None:
            for session, reason in self.orphans:
                self.tg.start_soon(session.finish, reason)
            self.orphans.clear()

    async def _finish_orphans(self) -> None:
        while self.orphans:
            session, reason = self.orphans.pop()
            await session.finish(reason)

    async def close_all(self, reason: str = "server shutting down") -> None:
        """Close every session (lifespan shutdown) and wait for their on-close."""
        for session in list(self.sessions.values()):
            if session.open:
                session.close(reason)
        with anyio.move_on_after(CLOSE_TIMEOUT):
            for session in list(self.sessions.values()):
                if not session.ws_home:
                    await session.finish(reason)


_TEXT = b"text/plain; charset=UTF-8"


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes | None, extra: list[Any]
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, code: int, cors: list[Any]) -> None:
    body = msgspec.json.encode({"code": code, "message": ERROR_MESSAGES[code]})
    await _respond(send, 403 if code == FORBIDDEN else 400, body, b"application/json", cors)


class EngineIOConnection:
    """One Engine.IO connection, as an ``@engineio_controller`` handler sees it.

    ``send(data)`` queues a text (``str``) or binary (``bytes``) message, waiting while
    the transport's queue is full; ``close()`` ends the session.
    """

    __slots__ = ("_session",)

    def __init__(self, session: EngineSession) -> None:
        self._session = session

    @property
    def sid(self) -> str:
        """The Engine.IO session id."""
        return self._session.sid

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"`` (changes when the client upgrades)."""
        return self._session.transport

    @property
    def scope(self) -> Mapping[str, Any]:
        """The ASGI scope of the request that opened the session."""
        return self._session.scope

    @property
    def headers(self) -> Headers:
        """Headers of the request that opened the session."""
        return Headers.from_scope(self._session.scope)

    @property
    def query_params(self) -> QueryParams:
        """Query parameters of the request that opened the session."""
        return QueryParams.from_scope(self._session.scope)

    @property
    def client(self) -> Address | None:
        """The peer's ``(host, port)``, if the server gives it."""
        c = self._session.scope.get("client")
        return Address(c[0], c[1]) if c else None

    @property
    def state(self) -> State:
        """Per-connection state."""
        return self._session.state

    @property
    def connected(self) -> bool:
        """True until the session is closed."""
        return self._session.open

    async def send(self, data: str | bytes) -> None:
        """Send a message; dropped silently once the session is closed. Raises
        ``TypeError`` for anything but ``str`` and ``bytes``."""
        if not isinstance(data, str | bytes | bytearray | memoryview):
            raise TypeError(f"send() takes str or bytes, not {type(data).__name__}")
        frame: str | bytes = (
            f"{EngineIOPacketType.MESSAGE.value}{data}" if isinstance(data, str) else bytes(data)
        )
        await self._session.send_frames([frame])

    async def close(self) -> None:
        """Close the session (the client sees a close packet)."""
        self._session.close("forced close")
