"""Engine.IO v4 over ASGI: the per-path endpoint (HTTP long-polling, WebSocket, the
upgrade between them) around the sans-I/O :class:`EngineIOSession`.

An :class:`EngineIOEndpoint` keeps its sessions in a table keyed by sid. The WebSocket
transport runs inside the App's runtime as a generated gateway whose ``@on_connect``
owns the connection; its loop reads ASGI ``receive`` itself (the connection still
applies its limits) and runs the application's work for each frame in the same task,
writing the replies directly when nothing is queued (one sender at a time, as the
gateway runtime does); broadcasts go through the connection's bounded outbox with its
overflow policy. A work item that suspends (a ``call()`` waiting for the client's ack)
is finished by the task that started it while a new task reads; what arrives meanwhile
waits for it, in order. The polling transport is served by an HTTP mount: a GET takes
what the session has queued (waiting for something if nothing is), a POST carries the
client's packets; its work runs in one task per session, in arrival order, in the
endpoint's own task group (started in the App's lifespan).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from .. import status
from ..asgi import Message, Receive, Scope, Send
from ..datastructures import Headers, QueryParams
from ..errors import WebSocketDisconnect, WebSocketStateError
from ..state import Phase
from ..websocket import WebSocket
from .controllers import EngineOptions
from .engine_session import CLOSE_TIMEOUT, EngineIOApplication, EngineSession
from .engineio_protocol import (
    EngineIOPacketType,
    EngineIOProtocolError,
    decode_packet,
    decode_payload,
    encode_payload,
)
from .engineio_state import Upgraded, UpgradeFailed

if TYPE_CHECKING:
    from ..admission import Admission
    from .engine_hooks import EngineHooks

__all__ = ["EngineIOEndpoint"]

logger = logging.getLogger("wsgate.socketio")


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
#: Seconds given to a request that may be racing another one of the same client on a
#: second connection: a poll sent with the upgrade packet waits that long for the
#: upgrade to settle (the reference server's upgrade check runs every 100 ms), a close
#: packet that long for the poll sent with it.
POLL_GRACE = 0.1


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
        #: The App's connection limits, which count long-polling sessions (set by the
        #: plug-in; None outside an App).
        self.admission: Admission | None = None
        #: The ``@on_engineio_connect`` / ``@on_engineio_disconnect`` methods, if any.
        self.hooks: EngineHooks | None = None
        self._event: Callable[[], anyio.Event] | None = None
        self._sweep_period = max(
            0.02, min(1.0, options.ping_interval_ms / 4000, options.ping_timeout_ms / 4000)
        )

    def event(self) -> anyio.Event:
        """A new event of the running backend."""
        return anyio.Event()

    def reset_backend(self) -> None:
        """Forget what belongs to the previous event loop (a new lifespan started)."""
        self._event = None

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
        if allowed == "*":
            # As Node's `cors` package answers for "*": any origin, without credentials
            # (a browser then sends no cookies cross-origin).
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
            session = self._live_session(sid)
            if session is None:
                err = (UNKNOWN_SID, "")
            elif query.get("transport") != "polling" or session.transport != "polling":
                err = (BAD_REQUEST, "")
        if err is not None:
            await _error(send, err[0], cors)
            return
        if session is None:
            admission = self.admission
            if admission is not None:
                refused = admission.count(scope)  # max_connections(_per_client)
                if refused is not None:
                    await _refuse(send, refused.message, cors)
                    return
            try:
                session = self._open(scope, "polling")
            except BaseException:
                if admission is not None:
                    admission.release(scope)
                raise
            session.admitted = admission  # released once, when the session ends
            session.run_in(self.tg)
            session.start_runner()  # the connect hooks, if any
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

    def _live_session(self, sid: str) -> EngineSession | None:
        """The session ``sid`` as a request finds it: None once it has ended and has
        nothing left to deliver (the reference server forgets a session as it closes),
        after applying a heartbeat deadline that passed while no poll was pending."""
        session = self.sessions.get(sid)
        if session is None:
            return None
        if session.open and session.ws is None and not session.polling:
            session.tick(anyio.current_time())
        if not session.open and not session.machine.outgoing:
            return None
        return session

    def _open(self, scope: Mapping[str, Any], transport: str) -> EngineSession:
        session = EngineSession(self, transport, scope)
        self.sessions[session.sid] = session
        self.app.on_open(session)
        if self.hooks is not None:
            self.hooks.opened(session)
        return session

    def _take(self, session: EngineSession) -> bytes:
        frames = session.machine.take_outgoing()
        if len(frames) > 1 and frames[-1] == "1" and not session.open:
            # The server's close packet goes in a poll of its own, as the reference
            # server sends it: the client handles what came before it first (a
            # Socket.IO DISCONNECT, for instance) instead of seeing a transport close.
            session.machine.outgoing.append(frames.pop())
        session.taken()
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
        if machine.upgrading:
            # A WebSocket is taking the session over. A client pauses polling before it
            # sends the upgrade packet, so this poll was either on its way before the
            # pause (answered with a noop when the grace ends) or sent after the upgrade
            # packet, which may still be on its way through the WebSocket: refused
            # when the grace ends, after what the WebSocket sent meanwhile (the probe's
            # answer) has reached the client, as with the reference server. A failed
            # upgrade or a closed session answers at once.
            session.poll_started()
            try:
                with anyio.move_on_after(POLL_GRACE):
                    while session.open and (machine.upgrading or session.transport != "polling"):
                        await session.poll_signal().wait()
            finally:
                session.poll_ended()
            if session.transport != "polling":
                await _error(send, BAD_REQUEST, cors)  # as if it came after the upgrade
                return
            if machine.upgrading:
                session.release_poll()
        if session.take_noop() or machine.outgoing or not session.open:
            await _respond(send, 200, self._take(session) or b"6", _TEXT, cors)
            return
        session.poll_started()
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
                while not machine.outgoing and session.open and not session.poll_noop:
                    ev = session.poll_signal()
                    deadline = session.next_deadline()
                    with anyio.move_on_at(math.inf if deadline is None else deadline):
                        await ev.wait()
                    session.tick(anyio.current_time())
                tg.cancel_scope.cancel()
        finally:
            session.poll_ended()
        if gone:
            session.handle(machine.transport_closed("transport error"))
            return
        session.take_noop()
        body = self._take(session)
        if not body:
            # A noop releases the poll when the client itself closed the session (its
            # close packet came in a POST), as the reference server answers; a close
            # packet when the server ended it (ping timeout, transport error).
            client_closed = machine.close_reason == "transport close"
            body = b"6" if session.open or client_closed else b"1"
        await _respond(send, 200, body, _TEXT, cors)

    async def _post(
        self, session: EngineSession, scope: Scope, receive: Receive, send: Send, cors: list[Any]
    ) -> None:
        headers = Headers.from_scope(scope)
        if headers.get("content-type") == "application/octet-stream" or not session.post_started():
            session.handle(session.machine.transport_closed("transport error"))
            await _respond(send, 400, b"", None, cors)
            return
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
            session.post_ended()
        machine = session.machine
        try:
            packets = decode_payload(b"".join(chunks).decode("utf-8"))
        except (EngineIOProtocolError, UnicodeDecodeError):
            session.handle(machine.protocol_error())
            packets = []
        if (
            session.open
            and not session.polling
            and any(p.type is EngineIOPacketType.CLOSE for p in packets)
        ):
            # The client closes with no poll pending: its poll may have been sent at the
            # same time on another connection. Give it a moment to arrive, so that it is
            # released with a noop as when it comes first, rather than refused.
            arrived = session.expect_poll()
            with anyio.move_on_after(POLL_GRACE):
                await arrived.wait()
            session.stop_expecting_poll()
        now = anyio.current_time()
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
        err, session, second = self._websocket_target(ws.scope)
        if err is not None:
            code = err[0]
            body = msgspec.json.encode({"code": code, "message": ERROR_MESSAGES[code]})
            await ws.deny(
                403 if code == FORBIDDEN else 400, body, {"content-type": "application/json"}
            )
            return
        if second:
            # A second WebSocket for a session that is upgrading or has upgraded:
            # accepted, then closed, as the reference server does; the session itself
            # goes on. During an upgrade the close waits for the upgrade to settle, so
            # that what the upgrading WebSocket sends (the probe's answer) reaches the
            # client first, as with the reference server.
            assert session is not None
            done = session.upgrade_done
            if done is not None:
                with anyio.move_on_after(UPGRADE_TIMEOUT):
                    await done.wait()
            await ws.accept()
            await ws.close(status.WS_1000_NORMAL_CLOSURE)
            return
        # This loop reads ASGI itself: no reader task and inbox between (the connection
        # still applies its frame size and rate limits, and learns that the peer left).
        receive = ws.runtime.read_directly()
        if session is not None:
            await self._upgrade(session, ws, receive)  # accepts once marked upgrading
            return
        await ws.accept()
        session = self._open(ws.scope, "websocket")
        session.use_websocket(ws)
        if self.tg is not None:
            # Handlers run in the endpoint's task group (one task group less per
            # connection); they end on their own once the session is closed.
            session.run_in(self.tg)
            session.start_runner()  # the connect hooks, if any
            await self._read(session, ws, receive, True, True)
            return
        async with anyio.create_task_group() as tg:
            session.run_in(tg)
            session.start_runner()
            tg.start_soon(self._heartbeat, session)
            await self._read(session, ws, receive, True, True)
            tg.cancel_scope.cancel()

    def _websocket_target(
        self, scope: Mapping[str, Any]
    ) -> tuple[tuple[int, str] | None, EngineSession | None, bool]:
        """The refusal for a WebSocket request, or the polling session it upgrades (None
        for a new one), and whether it is a second WebSocket for a session that is
        upgrading or has upgraded. The query and headers are parsed here and not kept
        (a connection's frames stay alive as long as it does)."""
        query = QueryParams.from_scope(scope)
        err = self._check(query, Headers.from_scope(scope))
        if err is not None:
            return err, None, False
        websocket = query.get("transport") == "websocket"
        sid = query.get("sid")
        if sid is None:
            return (None if websocket else (BAD_REQUEST, "")), None, False
        session = self._live_session(sid)
        if session is None:
            return (UNKNOWN_SID, ""), None, False
        if not websocket:
            return (BAD_REQUEST, ""), None, False
        if session.open and (
            session.machine.upgrading or (session.transport == "websocket" and not session.ws_home)
        ):
            return None, session, True
        if not session.machine.can_upgrade():
            return (BAD_REQUEST, ""), None, False
        return None, session, False

    async def _read(
        self,
        session: EngineSession,
        ws: WebSocket,
        receive: Receive,
        home: bool,
        opening: bool = False,
        owner: bool = True,
    ) -> None:
        """Read the WebSocket until the session ends, in this task, or, once a handler
        run by the reader suspended, in a new task while this one finishes the handler.
        The gateway's own task (``owner``) then waits for the reading to end; a reader
        task started by a hand-off ends there.

        ``opening``: first write what the session queued (its open packet), directly.
        The task that reads last ends the transport: the WebSocket's close and, for a
        session that started on it (``home``), the application's on_close; for an
        upgraded session, the session's close."""
        handed = False
        try:
            if opening and session.machine.outgoing:
                # Not kept in a local: this frame lives as long as the connection.
                await session.send_frames(session.machine.take_outgoing())
            handed = await self._ws_loop(session, ws, receive, home)
            if handed and owner:
                done = session.loop_done
                assert done is not None
                await done.wait()
        finally:
            if not handed:
                with anyio.CancelScope(shield=True):
                    await self._end(session, ws, home)

    async def _end(self, session: EngineSession, ws: WebSocket, home: bool) -> None:
        session.reading(None)
        reason = "transport close"
        try:
            if home:
                if session.open:
                    session.machine.transport_closed(reason)
                await session.finish(session.machine.close_reason or reason)
            elif session.open:
                session.handle(session.machine.transport_closed(reason))
            busy = session.dispatching
            late = False
            if busy is not None and not busy.is_set():
                # A handler the reader handed off still runs (on_close released a call()
                # waiting for an ack): as a gateway's handlers, it gets the connection's
                # grace period before the close (which ends the connection's tasks).
                with anyio.move_on_after(ws.runtime.grace) as waited:
                    await busy.wait()
                late = waited.cancelled_caught
            await ws.close(status.WS_1000_NORMAL_CLOSURE)
            if late:
                ws.runtime.cancel()
        finally:
            done = session.loop_done
            if done is not None:
                done.set()

    async def _hand_off(
        self,
        session: EngineSession,
        ws: WebSocket,
        receive: Receive,
        home: bool,
        coro: Coroutine[Any, Any, Any],
        first: Any,
    ) -> None:
        # A handler the reader ran suspended (it may wait for what the reader must read,
        # an ack): a new task reads at once, this one finishes the handler, inside the
        # cancel scopes it started in (they must end in the order they began).
        session.hand_off()
        ws.runtime.spawn(self._read, session, ws, receive, home, False, False)
        try:
            await session.finish_inline(coro, first)
        finally:
            session.end_inline()

    async def _ws_loop(
        self, session: EngineSession, ws: WebSocket, receive: Receive, home: bool
    ) -> bool:
        """Receive and handle frames until the session ends (False), or until a handler
        run inline suspends: :meth:`_hand_off` finishes it (inside the cancel scope it
        started in) and this returns True. The scope is the one the session's close
        cancels (``loop_scope``). Heartbeats are ticked from outside (the endpoint's
        sweep, or :meth:`_heartbeat`), so no deadline ever cancels a reply being written
        here, and a reader stuck writing to a client that stopped reading still sees the
        ping timeout close the session."""
        machine = session.machine
        limit = self.options.max_payload_bytes
        current_time = anyio.current_time
        conn = ws.runtime
        admit = conn.admit
        state = conn.lifecycle
        open_ = Phase.OPEN
        with anyio.CancelScope() as scope:
            session.reading(scope)
            while session.open:
                message = await receive()
                if not admit(message) or state.phase is not open_:
                    if state.phase is open_:
                        continue  # dropped by the connection's limits
                    # The peer left, or the connection is closing (a limit closed it).
                    if session.open:
                        session.handle(machine.transport_closed("transport close"))
                    return False
                frame = message.get("text")
                if frame is None:
                    frame = message.get("bytes") or b""
                if len(frame) > limit:
                    # The reference server's WebSocket closes with 1009 (message too big).
                    with anyio.CancelScope(shield=True):
                        await ws.close(status.WS_1009_MESSAGE_TOO_BIG, "Max payload size exceeded")
                    session.handle(machine.transport_closed("transport error"))
                    return False
                if (
                    type(frame) is str
                    and frame[:1] == "4"
                    and not session.busy
                    and not scope.cancel_called
                ):
                    # A message, the traffic: no packet or event objects on its way to
                    # the application (the clock is read only when the heartbeat needs it).
                    if not machine.receive_message(
                        current_time() if machine.awaiting_pong else 0.0
                    ):
                        return False
                    pending = await session.handle_inline(frame[1:])
                    if pending is not None:
                        await self._hand_off(session, ws, receive, home, *pending)
                        return True
                    continue
                try:
                    packet = decode_packet(frame)
                except EngineIOProtocolError:
                    session.handle(machine.protocol_error())
                    return False
                # The clock is read only when the heartbeat needs it.
                timed = machine.awaiting_pong or packet.type is EngineIOPacketType.PONG
                now = current_time() if timed else 0.0
                if session.busy or scope.cancel_called:
                    # A task runs earlier work (or the session is closing): queue.
                    session.handle(machine.receive(packet, now))
                    continue
                # The work this frame makes runs here, in the reader's task: no task
                # switch for a handler that completes without suspending.
                pending = await session.handle_inline(machine.receive(packet, now))
                if pending is not None:
                    await self._hand_off(session, ws, receive, home, *pending)
                    return True
        return False

    async def _heartbeat(self, session: EngineSession) -> None:
        """Tick a WebSocket session's heartbeats and timer where no sweep runs (no App
        lifespan)."""
        while session.open:
            deadline = session.next_deadline()
            await anyio.sleep_until(math.inf if deadline is None else deadline)
            session.tick(anyio.current_time())

    async def _upgrade(self, session: EngineSession, ws: WebSocket, receive: Receive) -> None:
        # Marked before the handshake completes: a second WebSocket for this session,
        # which the client may open as soon as this one is open, finds it taken.
        session.begin_upgrade()
        try:
            await ws.accept()
            upgraded = await self._negotiate_upgrade(session, ws, receive)
        finally:
            session.end_upgrade()
        if not upgraded:
            return
        try:
            session.flush()  # flush what was queued for polling during the upgrade
        finally:
            if self.tg is not None:
                await self._read(session, ws, receive, False)
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._heartbeat, session)
                    await self._read(session, ws, receive, False)
                    tg.cancel_scope.cancel()

    async def _negotiate_upgrade(
        self, session: EngineSession, ws: WebSocket, receive: Receive
    ) -> bool:
        """The probe and the upgrade packet on the new WebSocket; True once it carries
        the session."""
        machine = session.machine
        try:
            with anyio.fail_after(UPGRADE_TIMEOUT):
                while True:
                    message = await _receive_frame(ws, receive)
                    text = message.get("text")
                    try:
                        packet = decode_packet(text if text is not None else message["bytes"])
                    except (EngineIOProtocolError, KeyError):
                        machine.abandon_upgrade()
                        await ws.close(status.WS_1000_NORMAL_CLOSURE)
                        return False
                    frames, events = machine.upgrade_packet(packet)
                    for frame in frames:
                        # Written by this task before the next packet is read (nothing
                        # else is queued on an upgrading WebSocket): the client has the
                        # probe's answer before anything the upgrade packet causes, such
                        # as the answer of a poll held meanwhile.
                        await ws.runtime.send_reply(str(frame))
                    if frames:
                        # Probe answered: release the pending poll so the client can
                        # pause polling and send the upgrade packet.
                        session.release_poll()
                        session.flush()
                    if any(isinstance(e, UpgradeFailed) for e in events):
                        await ws.close(status.WS_1000_NORMAL_CLOSURE)
                        return False
                    if any(isinstance(e, Upgraded) for e in events):
                        break
        except (TimeoutError, WebSocketDisconnect, WebSocketStateError):
            return False
        session.use_websocket(ws, upgraded=True)
        return True

    # -- background ------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Heartbeats and timers of every session but polling ones with a poll pending
        (a pending poll ticks its own session), and idle handler tasks of every session;
        runs in the App's lifespan. (WebSocket sessions are ticked here too, not by a
        deadline in their read loop: a deadline could cancel a reply being written.)"""
        while True:
            await anyio.sleep(self._sweep_period)
            now = anyio.current_time()
            for session in list(self.sessions.values()):
                if session.open and not session.polling:
                    session.tick(now)
                session.retire_idle_runner()

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


async def _receive_frame(ws: WebSocket, receive: Receive) -> Message:
    """The next frame read directly (see ``Connection.read_directly``); raises
    WebSocketDisconnect once the peer left or the connection is closing."""
    conn = ws.runtime
    while True:
        message = await receive()
        admitted = conn.admit(message)
        state = conn.lifecycle
        if state.phase is not Phase.OPEN:
            raise WebSocketDisconnect(
                state.close_code or status.WS_1005_NO_STATUS_RECEIVED, state.close_reason
            )
        if admitted:
            return message


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes | None, extra: list[Any]
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, message: str, cors: list[Any]) -> None:
    """A long-polling handshake over the App's connection limits: HTTP 503, as the App
    refuses a WebSocket, with the Engine.IO error body (code 4 and the reason, as the
    reference server answers a handshake its ``allowRequest`` refused)."""
    body = msgspec.json.encode({"code": FORBIDDEN, "message": message})
    await _respond(send, 503, body, b"application/json", cors)


async def _error(send: Send, code: int, cors: list[Any]) -> None:
    body = msgspec.json.encode({"code": code, "message": ERROR_MESSAGES[code]})
    await _respond(send, 403 if code == FORBIDDEN else 400, body, b"application/json", cors)
