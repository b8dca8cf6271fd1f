"""The per-connection runtime: one task group, bounded queues, one reader, one sender.

::

    ASGI receive --reader--> handler (inline) ----------------> reply --> ASGI send
                        \\--> Inbox (bounded) --dispatcher--> handler     (one sender
    ws.send_* / broadcasts --> Outbox (bounded) --writer-----------------> at a time)

Reading: exactly one task calls ASGI ``receive`` at a time. A frame that arrives while
nothing else is being handled is handled by the reader itself; if its handler suspends,
a new reader task takes over reading at once and the task that received the frame
finishes it and becomes the dispatcher, which handles what the new reader queues in the
inbox, in arrival order. So a handler that completes without suspending costs no task
wake-up, and one that waits never delays reading (or noticing that the peer left).

Sending: one sender at a time calls ASGI ``send``. A reply is written directly by the
task that produced it when nothing is queued and no send is in flight; otherwise it
joins the outbox, which the writer task drains (all that is queued at each wake-up). A
send that can wait (a handler replying) waits while the outbox is full; a send that
must not wait (a broadcast) calls :meth:`Connection.offer`, which never blocks and
applies the connection's :class:`Overflow` policy. On hypercorn's trio worker an ASGI
``send`` to a client that stopped reading blocks and cannot be cancelled: only that
client's own connection is ever stuck there.

The lifecycle (accepted, closing, peer left, who reads) is the sans-I/O
:class:`~wsgate.state.ConnectionState`; this module only does the I/O around it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from . import status
from ._wait import signal_class
from .asgi import Message, Receive, Send
from .errors import WebSocketDisconnect, WebSocketStateError
from .frames import encode_error
from .inline import Resume
from .limits import IdleWatch, Limits, RateVerdict, over_size
from .outcome import CloseAfter
from .queues import Inbox, Offer, Outbox, Overflow
from .scheduling import TaskFlags
from .state import Action, ConnectionState, Event, Phase, Receiver
from .stats import Stats

if TYPE_CHECKING:
    from .outcome import Outcome
    from .relay import WakeRelay
    from .session import Session

__all__ = ["Connection"]

logger = logging.getLogger("wsgate")


_DEFAULT_LIMITS = Limits(1 << 20)


class Connection:
    """The runtime of one connection: its lifecycle state, queues and tasks.

    Built by :class:`~wsgate.App` for each WebSocket scope; the
    :class:`~wsgate.WebSocket` handed to handlers is a facade over it. Not public API.
    """

    __slots__ = (
        "_bucket",
        "_idle",
        "_limits",
        "_on_open",
        "_receive",
        "_send",
        "_tasks",
        "_session",
        "_tg",
        "_writer_wake",
        "grace",
        "inbox",
        "outbox",
        "path",
        "policy",
        "received",
        "lifecycle",
        "stats",
    )

    def __init__(
        self,
        receive: Receive,
        send: Send,
        *,
        outbound_size: int,
        inbound_size: int,
        policy: Overflow,
        stats: Stats,
        grace: float,
        owner: bool = False,
        path: str = "",
        limits: Limits | None = None,
    ) -> None:
        self._receive = receive
        self._send = send
        self.lifecycle = ConnectionState(owner=owner)
        signal = signal_class()
        self.outbox = Outbox(outbound_size, signal)
        self.inbox = Inbox(inbound_size, signal)
        self.policy = policy
        self.stats = stats
        self.grace = grace
        #: The request path (for log lines).
        self.path = path
        self._tg: TaskGroup | None = None
        self._session: Session | None = None
        # Who runs: at most one writer, at most one sequential dispatcher, one sender.
        self._tasks = TaskFlags()
        self._writer_wake = signal()
        #: Frames received so far (the App's idle sweep compares it between two looks).
        self.received = 0
        self._limits = limits = limits or _DEFAULT_LIMITS
        self._bucket = limits.bucket()
        self._idle: IdleWatch | None = None  # made at the idle sweep's first look
        # Work waiting for the accept (when_open); dropped if the handshake is refused.
        self._on_open: list[Callable[[], Coroutine[Any, Any, Any]]] | None = None

    # -- the task group ------------------------------------------------------------------

    async def __aenter__(self) -> Connection:
        """Open the connection's task group: every task of this connection (reader,
        writer, dispatcher, streams) runs inside it and is cancelled when it ends. (A
        context manager of its own rather than a generator-based one: an idle
        connection keeps its frames alive, so each one counts.)"""
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            dropped = self.outbox.discard()
            if dropped:
                self.stats.dropped_frames += dropped

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the connection's task group."""
        tg = self._tg
        if tg is None:
            raise RuntimeError("the connection is not running")
        tg.start_soon(fn, *args)

    def cancel(self) -> None:
        """Cancel every task of this connection."""
        tg = self._tg
        if tg is not None:
            tg.cancel_scope.cancel()

    # -- handshake -----------------------------------------------------------------------

    async def accept(self, message: Message) -> None:
        """Send the accept message; from now on frames flow both ways."""
        if self.lifecycle.phase is not Phase.CONNECTING:
            self.lifecycle.handle(Event.HANDSHAKE_ACCEPTED)  # raises, naming the state
        await self._send(message)
        self._carry_out(Event.HANDSHAKE_ACCEPTED, self.lifecycle.handle(Event.HANDSHAKE_ACCEPTED))
        waiting, self._on_open = self._on_open, None
        if waiting:
            for fn in waiting:
                self.spawn(fn)

    def when_open(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run ``fn()`` in the connection's task group once the handshake is accepted: at
        once if it is open, never if it is refused or closed."""
        phase = self.lifecycle.phase
        if phase is Phase.OPEN:
            self.spawn(fn)
        elif phase is Phase.CONNECTING:
            if self._on_open is None:
                self._on_open = []
            self._on_open.append(fn)

    async def send_refusal(
        self, messages: list[Message], code: int, reason: str, *, expired: bool = False
    ) -> None:
        """Refuse the handshake with ``messages`` (a close, or an HTTP denial); with
        ``expired``, because it overran ``handshake_timeout``."""
        event = Event.HANDSHAKE_EXPIRED if expired else Event.HANDSHAKE_REFUSED
        self._carry_out(event, self.lifecycle.handle(event, code, reason))
        for message in messages:
            await self._send(message)

    # -- receiving -------------------------------------------------------------------------

    async def receive(self) -> Message | None:
        """The next frame for a handler that reads (``@on_connect``, or an owning
        gateway's handler); None once the peer has left and everything it sent was
        taken. Raises WebSocketStateError where reading is the runtime's job."""
        state = self.lifecycle
        state.check_receive()
        if state.receiver is Receiver.HANDSHAKE:
            # Inside @on_connect: read straight from ASGI.
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._peer_left(message)
                return None
            return message
        inbox = self.inbox
        while True:
            queued = inbox.get_nowait()
            if queued is not None:
                return queued
            if state.peer_left:
                return None
            await inbox.arrived.wait()

    @asynccontextmanager
    async def consuming(self) -> AsyncIterator[None]:
        """Mark a consumer of this connection's frames as running: when the peer leaves,
        the reader waits for it (up to ``grace``) before cancelling the connection."""
        tasks = self._tasks
        tasks.consumer_started()
        try:
            yield
        finally:
            tasks.consumer_done()

    def serve(self, session: Session) -> Coroutine[Any, Any, None]:
        """Read and dispatch frames through ``session`` until the connection ends (await
        the result; the read loop's own coroutine, so no frame stands between)."""
        self.lifecycle.hand_receive_to(Receiver.RUNTIME)
        self._session = session
        return self._read_loop()

    async def _read_loop(self) -> None:
        """Receive until the peer leaves, then end the connection.

        Frames already received are still handled, for at most ``grace`` seconds; then
        the connection's task group is cancelled, so no handler keeps running for a
        client that is gone.
        """
        tasks = self._tasks
        receive = self._receive
        inbox = self.inbox
        session = self._session
        inline = session is not None and session.sequential
        rate_limited = self._bucket is not None
        quick_max = self._limits.quick_max
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    self.received += 1
                    text = message.get("text")
                    size = len(text) if text is not None else len(message.get("bytes") or b"")
                    if size > quick_max and self._too_large(message):
                        continue
                    if rate_limited and not self._take_token():
                        continue
                    if inline and not tasks.dispatcher_active:
                        assert session is not None
                        if not await self._handle_inline(session, message):
                            return  # this task became the dispatcher; another one reads
                        continue
                    await inbox.put(message)
                    if session is not None and not tasks.dispatcher_active:
                        self._start_dispatcher()
                elif kind == "websocket.disconnect":
                    self._peer_left(message)
                    break
            if tasks.consumers and self.grace > 0:
                done = tasks.consumers_done = anyio.Event()
                with anyio.move_on_after(self.grace):
                    await done.wait()
        except anyio.get_cancelled_exc_class():
            # The connection is being torn down (by us or by the server): it is over,
            # so nothing may queue frames or start tasks in its closing task group.
            self.lifecycle.handle(Event.ENDED)
            raise
        self.cancel()

    def read_directly(self) -> Receive:
        """For an owning ``@on_connect`` that runs its own read loop (the Engine.IO
        transport), before accept: no reader task is started, the caller reads ASGI
        ``receive`` itself (returned) and passes every message to :meth:`admit`. Raises
        WebSocketStateError once the receive side was handed over."""
        self.lifecycle.hand_receive_to(Receiver.OWNER)
        return self._receive

    def admit(self, message: Message) -> bool:
        """A message read after :meth:`read_directly`: True for a frame to handle; False
        for one over the limits (``max_frame_bytes``, ``rate``: handled as the reader
        handles them) and for the peer's leaving (then ``state.peer_left``)."""
        kind = message["type"]
        if kind == "websocket.receive":
            self.received += 1
            text = message.get("text")
            size = len(text) if text is not None else len(message.get("bytes") or b"")
            if size > self._limits.quick_max and self._too_large(message):
                return False
            return self._bucket is None or self._take_token()
        if kind == "websocket.disconnect":
            self._peer_left(message)
        return False

    def _too_large(self, message: Message) -> bool:
        """Close with 1009 (message too big) if ``message`` is over ``max_frame_bytes``;
        the frame is never decoded."""
        limit = self._limits.max_frame_bytes
        if not over_size(message, limit):
            return False
        if self.lifecycle.phase is Phase.OPEN:
            logger.info("frame over %d bytes on %s; closing with 1009", limit, self.path)
        self.handle_nowait(Event.FRAME_TOO_LARGE)
        return True

    def _take_token(self) -> bool:
        """The rate limit, a token bucket: False (and a ``rate_limited`` error frame) for
        a frame over it; a client that goes on sending a whole bucket's worth of frames
        after that is closed with 1008."""
        bucket = self._bucket
        assert bucket is not None
        verdict = bucket.take(anyio.current_time())
        if verdict is RateVerdict.PASS:
            return True
        self.stats.rate_limited_frames += 1
        if verdict is RateVerdict.CLOSE:
            self.handle_nowait(Event.RATE_EXCEEDED)
        elif verdict is RateVerdict.WARN:
            limits = self._limits
            message = (
                f"over the rate limit of {limits.rate} frames per {limits.per:g} s; "
                "this frame was dropped"
            )
            self.offer(
                {
                    "type": "websocket.send",
                    "text": encode_error(None, "rate_limited", message).decode(),
                }
            )
        return False

    async def _handle_inline(self, session: Session, message: Message) -> bool:
        """Handle ``message`` in the reader's own task. If the handler suspends, start a
        new reader, finish the frame here and go on as the dispatcher; returns False
        then (this task no longer reads)."""
        coro = session.handle(message)
        try:
            first = coro.send(None)
        except StopIteration as done:
            outcome = done.value
            if outcome is not None:
                await self.answer(outcome)
            return True
        # The handler waits for something: reading must go on without this task.
        self._tasks.dispatcher_started()
        self.spawn(self._read_loop)
        try:
            outcome = await Resume(coro, first)
            if outcome is not None:
                await self.answer(outcome)
            await self._dispatch(session)
        finally:
            self._tasks.dispatcher_done()
        return False

    def _start_dispatcher(self) -> None:
        self._tasks.dispatcher_started()
        session = self._session
        assert session is not None
        self.spawn(self._run_dispatcher, session)

    async def _run_dispatcher(self, session: Session) -> None:
        try:
            if session.sequential:
                await self._dispatch(session)
            else:
                await self._dispatch_concurrently(session, session.concurrency)
        finally:
            self._tasks.dispatcher_done()

    async def _dispatch(self, session: Session) -> None:
        """Handle queued frames in arrival order until the inbox is empty; the reader
        then handles frames inline again."""
        inbox = self.inbox
        handle = session.handle
        while True:
            message = inbox.get_nowait()
            if message is None:
                return
            outcome = await handle(message)
            if outcome is not None:
                await self.answer(outcome)

    async def _dispatch_concurrently(self, session: Session, n: int) -> None:
        inbox = self.inbox
        sem = anyio.Semaphore(n)

        async def run(message: Message) -> None:
            try:
                outcome = await session.handle(message)
                if outcome is not None:
                    await self.answer(outcome)
            finally:
                sem.release()

        while True:
            message = inbox.get_nowait()
            if message is None:
                if self.lifecycle.peer_left:
                    break
                await inbox.arrived.wait()
                continue
            await sem.acquire()
            self.spawn(run, message)
        for _ in range(n):
            await sem.acquire()

    def _peer_left(self, message: Message) -> None:
        self.handle_nowait(
            Event.PEER_CLOSED,
            message.get("code", status.WS_1005_NO_STATUS_RECEIVED),
            message.get("reason") or "",
        )

    # -- sending -----------------------------------------------------------------------------

    async def send(self, message: Message, *, direct: bool = False) -> None:
        """Send ``message``: :meth:`offer`'s twin that waits instead of applying the
        overflow policy. Queued for the writer, waiting only while the outbox is full (so
        a handler pushing to a client that stopped reading is held back by the outbox's
        bound, never by the transport). With ``direct``, written by the calling task
        itself when nothing is queued and no send is in flight (a reply then costs no
        task switch; the caller accepts waiting on the transport). Raises
        WebSocketDisconnect / WebSocketStateError if the connection is not open (or stops
        being open while waiting, or the transport fails)."""
        state = self.lifecycle
        if state.phase is not Phase.OPEN:
            raise state.error("send")
        outbox = self.outbox
        if direct and not (self._tasks.sending or outbox or outbox.inflight):
            # Written here, not in a helper: every level of coroutine is resumed
            # through at each of the send's checkpoints.
            self._tasks.sending = True
            try:
                await self._send(message)
            except Exception as exc:
                self._transport_failed(exc)
                raise state.error("send") from None
            finally:
                self._tasks.sending = False
            if outbox:
                self._kick_writer()
            return
        while outbox.full:
            await outbox.room.wait()
            if state.phase is not Phase.OPEN:
                raise state.error("send")
        outbox.append(message)
        self._kick_writer()

    async def send_reply(self, payload: bytes | str) -> None:
        """Send an encoded reply or error frame as a text frame, directly when nothing is
        queued (``send(..., direct=True)``). Dropped quietly if the connection is no
        longer open (the client left mid-request, a handler closed it, shutdown)."""
        if self.lifecycle.phase is not Phase.OPEN:
            return
        text = payload if isinstance(payload, str) else payload.decode()
        try:
            await self.send({"type": "websocket.send", "text": text}, direct=True)
        except (WebSocketDisconnect, WebSocketStateError):
            if self.lifecycle.phase is Phase.OPEN:
                raise

    async def answer(self, outcome: Outcome) -> None:
        """Carry out what :meth:`Session.handle <wsgate.session.Session.handle>` decided
        for a frame: send the reply or error frame, close after it, or start a stream."""
        if outcome is None:
            return
        if isinstance(outcome, bytes):
            await self.send_reply(outcome)
            return
        if outcome.frame is not None:
            await self.send_reply(outcome.frame)
        if isinstance(outcome, CloseAfter):
            await self.close(outcome.code, outcome.reason)
        else:
            self.spawn(outcome.run)

    def _transport_failed(self, exc: BaseException) -> None:
        # The transport is gone (servers raise OSError subclasses or their own errors
        # for a send after the client left): end the connection.
        logger.debug("send failed on %s: %r", self.path, exc)
        self.handle_nowait(Event.TRANSPORT_FAILED)

    def _kick_writer(self) -> None:
        """Something was queued: wake the writer, or start one (once accepted)."""
        if self._tasks.writer_active:
            self._writer_wake.set()
        elif not self._tasks.sending and self.lifecycle.accepted and self._tg is not None:
            self._tasks.writer_active = True
            self._tg.start_soon(self._writer)

    async def _writer(self) -> None:
        tasks = self._tasks
        outbox = self.outbox
        state = self.lifecycle
        send = self._send
        last_relay: WakeRelay | None = None  # the relay that gave this writer its turn
        try:
            while True:
                relay = tasks.relay
                if relay is not None:  # a relay's turn: pass it on before sending
                    tasks.relay = None
                    relay.pass_on()
                    last_relay = relay
                if not outbox or tasks.sending:
                    if state.phase is Phase.CLOSED or tasks.writer_idle < 0:
                        return
                    await self._writer_wake.wait()
                    continue
                tasks.writer_idle = 0
                batch = outbox.take()
                i = 0
                # By index: an iterator would be one more object alive across each
                # send, a thousand of them at once in a fan-out.
                while i < len(batch):
                    message = batch[i]
                    i += 1
                    if outbox.inflight <= 0:
                        break  # discarded while sending
                    tasks.sending = True
                    try:
                        await send(message)
                    except Exception as exc:
                        self._transport_failed(exc)
                        return
                    finally:
                        tasks.sending = False
                    outbox.sent_one()
                    if message["type"] == "websocket.close":
                        self.handle_nowait(Event.CLOSE_SENT)
                        return
                outbox.done(batch)
                if outbox and last_relay is not None and not tasks.relay_queued:
                    # Refilled while sending: behind the writers already queued, if any.
                    tasks.relay_queued = True
                    if last_relay.requeue(self):
                        if tasks.relay_queued:  # else the turn came and went already
                            await self._writer_wake.wait()
                    else:
                        tasks.relay_queued = False
        finally:
            tasks.writer_active = False
            tasks.writer_idle = 0
            relay = tasks.relay
            if relay is not None:  # given a turn, then cancelled before passing it on
                tasks.relay = None
                relay.pass_on()

    def relay_wake(self, relay: WakeRelay) -> bool:
        """``relay`` gives this connection's writer its turn: wake it, or start it if it
        is not running (it passes the turn on at its first step). False if it has
        nothing to do: it is running and will find its frames, an earlier turn took
        them, or the connection is closed."""
        self._tasks.relay_queued = False
        if not self.outbox or self._tasks.relay is not None:
            return False
        if self._tasks.writer_active:
            if not self._writer_wake.waiting:
                return False
            self._tasks.relay = relay
            self._writer_wake.set()
            return True
        tg = self._tg
        if self._tasks.sending or tg is None or self.lifecycle.phase is not Phase.OPEN:
            return False  # a direct send kicks the writer when it is done
        self._tasks.relay = relay
        self._tasks.writer_active = True
        tg.start_soon(self._writer)
        return True

    def close_if_idle(self, now: float, timeout: float) -> bool:
        """Called periodically with the time: close with 1001 ("idle") if no frame
        arrived for ``timeout`` seconds (counted from the first look after the last
        frame, so the bound is ``timeout`` plus the period between looks)."""
        watch = self._idle
        if watch is None:
            watch = self._idle = IdleWatch()
        if not watch.idle(self.received, now, timeout) or self.lifecycle.phase is not Phase.OPEN:
            return False
        self.handle_nowait(Event.IDLE)
        return True

    def retire_idle_tasks(self) -> None:
        """Stop the writer if it has waited, with nothing arriving, since the previous
        call; it starts again with the next frame. Called periodically by the App, so a
        connection that goes quiet costs one task again."""
        if (
            not self._tasks.writer_active
            or not self._writer_wake.waiting
            or self._tasks.relay_queued
        ):
            self._tasks.writer_idle = 0
            return
        if self._tasks.writer_idle > 0:
            self._tasks.writer_idle = -1
            self._writer_wake.set()
        else:
            self._tasks.writer_idle = 1

    # -- closing and fan-out -----------------------------------------------------------------

    async def close(self, code: int, reason: str) -> None:
        """Close; idempotent. Before accept this refuses the handshake with the close;
        after it, what is queued is sent first, then the close frame."""
        await self._carry_out_async(Event.SERVER_CLOSE, code, reason)

    def close_nowait(self, code: int, reason: str) -> None:
        """Close an accepted connection without waiting: the close frame is queued
        behind what is queued; the writer sends it, then cancels the connection's
        tasks. Does nothing before the accept or once closing."""
        if self.lifecycle.phase is Phase.OPEN:
            self.handle_nowait(Event.SERVER_CLOSE, code, reason)

    # -- carrying out the state machine's decisions ---------------------------------

    def handle_nowait(self, event: Event, code: int | None = None, reason: str = "") -> None:
        """Feed ``event`` to the lifecycle machine and carry out its actions. Only for
        events whose actions need no I/O of the calling task (all but the handshake's
        and :meth:`abort`'s)."""
        self._carry_out(event, self.lifecycle.handle(event, code, reason))

    async def _carry_out_async(self, event: Event, code: int, reason: str) -> None:
        actions = self.lifecycle.handle(event, code, reason)
        if Action.SEND_CLOSE in actions:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        self._carry_out(event, actions)

    def _carry_out(self, event: Event, actions: tuple[Action, ...]) -> None:
        for action in actions:
            if action is Action.QUEUE_CLOSE:
                outbox = self.outbox
                outbox.room.set()  # senders waiting for room see the connection closing
                state = self.lifecycle
                outbox.append(
                    {
                        "type": "websocket.close",
                        "code": state.close_code,
                        "reason": state.close_reason,
                    }
                )
                self._kick_writer()
            elif action is Action.DISCARD_OUTBOX:
                dropped = self.outbox.discard()
                if dropped:
                    self.stats.dropped_frames += dropped
            elif action is Action.WAKE_WAITERS:
                self.inbox.arrived.set()
                self.outbox.room.set()
                self._writer_wake.set()  # the writer sees the connection closed and ends
            elif action is Action.CANCEL_TASKS:
                self.cancel()
            elif action is Action.COUNT:
                self.stats.count(event)
            elif action is Action.START_READER:
                self.spawn(self._read_loop)
            elif action is Action.FLUSH:
                if self.outbox:
                    self._kick_writer()
            # SEND_ACCEPT, SEND_REFUSAL and SEND_CLOSE are the calling task's own I/O.

    async def abort(self, code: int, reason: str) -> None:
        """Close after the connection's tasks failed: answer a pending handshake, or send
        the close frame directly (no writer is left to send it). Errors are ignored: the
        transport may be gone too."""
        actions = self.lifecycle.handle(Event.ABORT, code, reason)
        if Action.SEND_CLOSE in actions and not self._tasks.sending:
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def offer(self, message: Message, relay: WakeRelay | None = None) -> Offer:
        """Enqueue without waiting (the fan-out path); on a full outbox apply the
        overflow policy. Before accept, frames are queued (and sent once accepted); a
        full outbox then drops the frame rather than closing a handshake nobody has
        answered yet. With ``relay``, a writer that waits or is not running is queued in
        the relay, which wakes or starts it in turn (see :class:`~wsgate.relay.WakeRelay`)."""
        phase = self.lifecycle.phase
        if phase > Phase.OPEN:
            return Offer.CLOSED
        result = self.outbox.offer(message, self.policy)
        if result is Offer.QUEUED:
            if phase is Phase.OPEN:
                if relay is None:
                    self._kick_writer()
                elif not (self._tasks.relay_queued or self._tasks.relay is not None) and (
                    self._writer_wake.waiting
                    if self._tasks.writer_active
                    else not self._tasks.sending
                ):
                    # The writer waits, or is not running: it runs when the relay gives
                    # it its turn (a running writer finds the frame by itself).
                    self._tasks.relay_queued = True
                    relay.add(self)
            return result
        self.stats.dropped_frames += 1
        if result is not Offer.SLOW:
            if phase is Phase.OPEN:
                self._kick_writer()
            return result
        if phase is Phase.CONNECTING:
            return Offer.DROPPED
        code = (
            status.WS_1008_POLICY_VIOLATION
            if self.policy is Overflow.CLOSE_POLICY
            else status.WS_1013_TRY_AGAIN_LATER
        )
        self.handle_nowait(Event.SLOW_CONSUMER, code, "slow consumer")
        return Offer.SLOW
