"""The I/O side of one Engine.IO session: its current transport (a WebSocket or the
long-polling queue), the ordered work of its application, its close; and
:class:`EngineIOConnection`, what ``@engineio_controller`` handlers receive."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from anyio.abc import TaskGroup

from ..asgi import Message
from ..datastructures import Address, Headers, QueryParams, State
from ..errors import WebSocketDisconnect, WebSocketStateError
from ..inline import Resume
from ..queues import Offer
from ..relay import WakeRelay
from ..state import Phase
from ..websocket import WebSocket, WebSocketState
from .engineio_protocol import EngineIOPacketType
from .engineio_state import (
    EngineIOSession,
    MessageReceived,
    SessionClosed,
    SessionPhase,
)

if TYPE_CHECKING:
    from ..admission import Admission
    from .engine import EngineIOEndpoint

__all__ = ["EngineIOApplication", "EngineIOConnection", "EngineSession", "Reply", "new_id"]

logger = logging.getLogger("wsgate.socketio")


class Reply:
    """What a work item may return: frames for its session, sent once it completed by
    the task that ran it (the reader, when it ran the work itself: no task switch)."""

    __slots__ = ("frames",)

    def __init__(self, frames: list[str | bytes]) -> None:
        self.frames = frames


Work = Callable[[], Awaitable[Reply | None]]

#: Frames a polling session may have queued before a broadcast closes it as a slow
#: consumer (a direct send waits for room instead).
POLLING_QUEUE = 1024
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
        "admitted",
        "_inline",
        "dispatching",
        "loop_done",
        "poll_arrival",
        "poll_noop",
        "poll_wake",
        "_room",
        "_runner",
        "_work",
        "_work_wake",
        "_submitted",
        "_seen",
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
        "upgrade_done",
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
        #: The App's admission that counts this long-polling session against its
        #: connection limits, until :meth:`release_slot` (None: not counted here; a
        #: WebSocket is counted by the App).
        self.admitted: Admission | None = None
        self.tg: TaskGroup | None = None
        self.timer: float | None = None
        self.state = State()
        self.app_data: Any = None
        self.polling = False
        self.posting = False
        #: Set to wake the pending poll (frames queued, session closed, upgrade).
        self.poll_wake: anyio.Event | None = None
        #: The pending poll answers at once (with a noop if nothing is queued).
        self.poll_noop = False
        #: Set when a poll arrives (a close packet waiting for the client's racing poll).
        self.poll_arrival: anyio.Event | None = None
        #: Set when the upgrade in progress (if any) has succeeded or failed.
        self.upgrade_done: anyio.Event | None = None
        self._room: anyio.Event | None = None
        self._work: list[Work] = []
        self._work_wake: anyio.Event | None = None
        self._submitted = self._seen = 0
        self._runner = False
        #: The reader runs work in its own task right now.
        self._inline = False
        #: Set once the WebSocket's reading ended, when another task took it over.
        self.loop_done: anyio.Event | None = None
        #: Set once the handler the reader handed off (and the queue after it) is done.
        self.dispatching: anyio.Event | None = None
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
            on_output=self.flush,
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
        return self.machine.phase is not SessionPhase.CLOSED

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

    def flush(self) -> None:
        """Hand queued frames to the WebSocket, or wake the pending poll."""
        ws = self._ws_active()
        if ws is not None:
            for frame in self.machine.take_outgoing():
                ws.send_nowait(_asgi(frame))
            return
        self.wake_poll()

    # -- transitions the endpoint drives (it calls these; it never assigns fields) ------

    def bind(self, app_data: Any) -> None:
        """Keep the application's per-session object (``app_data``)."""
        self.app_data = app_data

    def set_timer(self, deadline: float | None) -> None:
        """Call the application's ``on_timer`` once at ``deadline`` (None: never)."""
        self.timer = deadline

    def run_in(self, tg: TaskGroup | None) -> None:
        """Run the session's handlers in ``tg`` (None: by the request that posts)."""
        self.tg = tg

    def poll_signal(self) -> anyio.Event:
        """A fresh event the pending poll waits on; :meth:`wake_poll` sets it."""
        ev = self.poll_wake = anyio.Event()
        return ev

    def poll_ended(self) -> None:
        """The pending poll is answered (or gave up)."""
        self.polling = False

    def release_poll(self) -> None:
        """The pending poll answers at once, with a noop if nothing is queued."""
        self.poll_noop = True

    def take_noop(self) -> bool:
        """Whether the poll answers at once (see :meth:`release_poll`); clears it."""
        noop, self.poll_noop = self.poll_noop, False
        return noop

    def post_started(self) -> bool:
        """A POST begins; False if one is already being read (a protocol error)."""
        if self.posting:
            return False
        self.posting = True
        return True

    def post_ended(self) -> None:
        """The POST's body is read."""
        self.posting = False

    def expect_poll(self) -> anyio.Event:
        """An event set when the next poll arrives (see :meth:`poll_started`)."""
        arrived = self.poll_arrival = anyio.Event()
        return arrived

    def stop_expecting_poll(self) -> None:
        """No longer wait for a poll to arrive."""
        self.poll_arrival = None

    def begin_upgrade(self) -> anyio.Event:
        """A WebSocket starts taking the session over: marked at once (so a second
        WebSocket finds it taken); the event is set when :meth:`end_upgrade` runs."""
        self.machine.start_upgrade()
        done = self.upgrade_done = anyio.Event()
        return done

    def end_upgrade(self) -> None:
        """The upgrade succeeded or failed: abandon it if it did not complete, release
        whoever waits for it and have a poll held meanwhile look again."""
        if self.machine.upgrading:
            self.machine.abandon_upgrade()
        done, self.upgrade_done = self.upgrade_done, None
        if done is not None:
            done.set()
        self.wake_poll()

    def use_websocket(self, ws: WebSocket, *, upgraded: bool = False) -> None:
        """``ws`` carries the session from now on; ``upgraded``: it took over from
        polling, so a poll still pending answers with a noop."""
        self.ws = ws
        if upgraded:
            self.poll_noop = True
            # The upgrade hands the count over: the WebSocket was admitted (counted) by
            # the App on its own, so the polling session's slot is given back.
            self.release_slot()

    def release_slot(self) -> None:
        """Give back the connection-limit slot this polling session holds (once)."""
        admission = self.admitted
        if admission is not None:
            self.admitted = None
            admission.release(self.scope)

    def reading(self, scope: anyio.CancelScope | None) -> None:
        """The WebSocket's read loop runs in ``scope`` (cancelled when the session
        closes), or no longer (None)."""
        self.loop_scope = scope

    def hand_off(self) -> None:
        """The reader handed a suspended handler to its own task and a new task reads:
        from now on the reading's end and the handler's end are waited for."""
        if self.loop_done is None:
            self.loop_done = anyio.Event()
        self.loop_scope = None
        self.dispatching = anyio.Event()

    def poll_started(self) -> None:
        """A poll is now pending."""
        self.polling = True
        arrival = self.poll_arrival
        if arrival is not None:
            self.poll_arrival = None
            arrival.set()

    def wake_poll(self) -> None:
        """Wake the pending poll, if any, to look at the session again."""
        ev = self.poll_wake
        if ev is not None:
            self.poll_wake = None
            ev.set()

    async def send_frames(self, frames: list[str | bytes]) -> None:
        """Send encoded Engine.IO frames, waiting while the transport's queue is full.
        Frames for a closed session are dropped."""
        ws = self._ws_active()
        if ws is not None:
            if ws.connection_state is not WebSocketState.CONNECTED:
                return
            # Written by this task when nothing is queued (one sender at a time).
            send = ws.runtime.send
            try:
                for frame in frames:
                    await send(_asgi(frame), direct=True)
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

    def offer(self, message: Message, relay: WakeRelay | None = None) -> Offer:
        """The broadcast path: queue an ASGI send message without waiting (over
        WebSocket, the connection's overflow policy applies and ``relay`` wakes its
        writer). A polling session whose queue is full is closed as a slow consumer."""
        if not self.open:
            return Offer.CLOSED
        ws = self._ws_active()
        if ws is not None:
            if ws.runtime.lifecycle.phase is not Phase.OPEN:
                return Offer.DROPPED
            result = ws.runtime.offer(message, relay)
            return result if result is not Offer.CLOSED else Offer.DROPPED
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes", b"")
        if self.machine.offer(frame):
            return Offer.QUEUED
        self.close("slow consumer")
        return Offer.SLOW

    def taken(self) -> None:
        """The pending poll took the queued frames: senders waiting for room go on."""
        room = self._room
        if room is not None:
            self._room = None
            room.set()

    # -- work ----------------------------------------------------------------------------

    def submit(self, work: Work) -> None:
        """Run ``work`` after the work submitted before it (one task per session)."""
        self._work.append(work)
        self._submitted += 1
        wake = self._work_wake
        if wake is not None:
            self._work_wake = None
            wake.set()
        elif not self._runner and self.tg is not None:
            self._runner = True
            self.tg.start_soon(self._run_work)

    async def _run_work(self) -> None:
        # The runner waits for more work until retire_idle_runner() finds it idle (a
        # busy client does not pay a task start per event; an idle one costs no task).
        try:
            while True:
                await self.run_pending()
                if not self.open:
                    return
                wake = self._work_wake = self.endpoint.event()
                await wake.wait()
                if not self._work:
                    return
        finally:
            self._work_wake = None
            self._runner = False

    def retire_idle_runner(self) -> None:
        """Stop the handler task if no work arrived since the previous call (called
        periodically by the endpoint's sweep)."""
        wake = self._work_wake
        if wake is not None and self._submitted == self._seen:
            self._work_wake = None
            wake.set()
        self._seen = self._submitted

    @property
    def busy(self) -> bool:
        """A task is running this session's work: what arrives queues behind it."""
        return self._runner

    async def handle_inline(
        self, events: list[Any] | str | bytes
    ) -> tuple[Coroutine[Any, Any, Any], Any] | None:
        """:meth:`handle` from the reader, which then runs the work that made in its own
        task (:meth:`run_inline`). ``events`` may also be the data of one message the
        machine accepted (:meth:`EngineIOSession.receive_message`), handed to the
        application as is. Returns the work item that suspended, if one did: the session
        stays busy until the caller's :meth:`end_inline`."""
        self._runner = self._inline = True
        pending = None
        try:
            if type(events) is list:
                self.handle(events)
            else:
                self.endpoint.app.on_message(self, events)  # type: ignore[arg-type]
            self._inline = False
            if self._work and self.open:
                pending = await self.run_inline()
        finally:
            self._inline = False
            if pending is None:
                self._runner = False
                self.start_runner()  # left over (the session closed): a task runs it
        return pending

    def end_inline(self) -> None:
        """The work :meth:`handle_inline` left suspended is done (so is the queue)."""
        self._runner = False
        if self.dispatching is not None:
            self.dispatching.set()
        if self._work:
            self.start_runner()  # submitted while ending (on close, for instance)

    def start_runner(self) -> None:
        """Have a task run the queued work."""
        if self._work and not self._runner and self.tg is not None:
            self._runner = True
            self.tg.start_soon(self._run_work)

    async def run_inline(self) -> tuple[Coroutine[Any, Any, Any], Any] | None:
        """Run the queued work in the calling task (the WebSocket's reader): each item
        is started here and, if it completes without suspending, its reply is written
        here too. None once all of it is done; else the started item that suspended and
        what it yielded: the caller finishes it (:meth:`finish_inline`) and the rest of
        the queue in this same task, while another task reads."""
        while self._work:
            batch, self._work = self._work, []
            for i, item in enumerate(batch):
                self._inline = True
                try:
                    coro: Coroutine[Any, Any, Any] = item()  # type: ignore[assignment]
                    first = coro.send(None)
                except StopIteration as done:
                    reply = done.value
                except Exception:
                    logger.exception("Engine.IO session %s: a handler failed", self.sid)
                    continue
                else:
                    self._work = batch[i + 1 :] + self._work
                    return coro, first
                finally:
                    self._inline = False
                if isinstance(reply, Reply):
                    try:
                        await self.send_frames(reply.frames)
                    except BaseException:
                        self._work = batch[i + 1 :] + self._work
                        raise
        return None

    async def finish_inline(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        """Finish a work item :meth:`run_inline` left suspended, then the queue."""
        try:
            reply = await Resume(coro, first)
        except Exception:
            logger.exception("Engine.IO session %s: a handler failed", self.sid)
        else:
            if isinstance(reply, Reply):
                await self.send_frames(reply.frames)
        await self.run_pending()

    async def run_pending(self) -> None:
        """Run the queued work now (the runner task, or a request without a lifespan)."""
        while self._work:
            # Taken as a batch (a list, not a deque: an idle session keeps no block).
            batch, self._work = self._work, []
            for item in batch:
                try:
                    reply = await item()
                except Exception:
                    logger.exception("Engine.IO session %s: a handler failed", self.sid)
                    continue
                if isinstance(reply, Reply):
                    await self.send_frames(reply.frames)

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
        self.release_slot()
        self.flush()
        self.wake_poll()
        self.taken()
        wake = self._work_wake
        if wake is not None:
            self._work_wake = None
            wake.set()  # the idle handler task ends
        if self.loop_scope is not None and not self._inline:
            # The WebSocket's loop closes it, after the close packet (a reader running
            # work itself sees the session closed once that work is done).
            self.loop_scope.cancel()
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
                hooks = self.endpoint.hooks
                if hooks is not None:
                    with anyio.move_on_after(CLOSE_TIMEOUT):
                        await hooks.closed(self, reason)
        finally:
            self.release_slot()
            self.endpoint.sessions.pop(self.sid, None)
            self._finished.set()


def _asgi(frame: str | bytes) -> Message:
    if isinstance(frame, str):
        return {"type": "websocket.send", "text": frame}
    return {"type": "websocket.send", "bytes": frame}


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
