"""The per-connection runtime: one task group, a reader, a writer, bounded channels.

::

    ASGI receive --reader--> Inbox (bounded) --dispatcher--> handlers
    ws.send_* / broadcasts --> Outbox (bounded) --writer--> ASGI send

The reader is the only caller of ``receive`` and the writer the only caller of ``send``
once a connection is accepted. A send that can wait (a handler replying) waits while the
outbox is full; a send that must not wait (a broadcast) calls :meth:`Connection.offer`,
which never blocks and applies the connection's :class:`Overflow` policy. The writer
takes everything queued at each wake-up. On hypercorn's trio worker an ASGI ``send`` to
a client that stopped reading blocks and cannot be cancelled: only this one writer is
ever stuck there; nothing else awaits it.

The reader of a gateway with ``@on_message`` handlers is the connection's own ASGI task;
the dispatcher and the writer are started in the connection's task group when the first
frame arrives and when the first frame is queued for sending, so an idle connection
costs one task, like a bare ASGI app, and a busy one three.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from . import status
from .datastructures import Counters

if TYPE_CHECKING:
    from .websocket import WebSocket

__all__ = ["Connection", "Inbox", "Outbox", "Overflow", "Stats"]

logger = logging.getLogger("wsgate")

Message = dict[str, Any]


class Overflow(enum.Enum):
    """What a non-blocking enqueue (a broadcast) does when a member's outbox is full."""

    #: Close the slow consumer with 1013 (try again later) and drop what it had queued.
    CLOSE = "close"
    #: Close the slow consumer with 1008 (policy violation).
    CLOSE_POLICY = "close_policy"
    #: Drop the new frame; the consumer keeps the older ones.
    DROP_NEWEST = "drop_newest"
    #: Drop the oldest queued frame to make room for the new one.
    DROP_OLDEST = "drop_oldest"


class Stats(Counters):
    """Counters an operator can read: ``app.stats``. Every drop and slow-consumer close is
    counted here (and per group in :class:`~wsgate.BroadcastGroup`), and so is every frame
    answered with ``invalid_frame`` and every connection closed with 1011 because wsgate
    itself failed."""

    __slots__ = (
        "connections_open",
        "connections_total",
        "dropped_frames",
        "internal_errors",
        "invalid_frames",
        "slow_consumer_closes",
    )
    connections_total: int
    connections_open: int
    dropped_frames: int
    slow_consumer_closes: int
    #: Client frames answered with an ``invalid_frame`` error.
    invalid_frames: int
    #: Connections closed with 1011 because the runtime itself failed (not a handler).
    internal_errors: int


# Outcomes of Connection.offer
QUEUED = 1
DROPPED = 0
CLOSED = -1  # the connection was already closing
SLOW = -2  # the outbox was full and the policy closed this consumer
REPLACED = 2  # queued after dropping the oldest queued frame (Overflow.DROP_OLDEST)


def event_class() -> Callable[[], anyio.Event]:
    """The running backend's Event class, to build events without anyio looking up the
    backend each time (about half the cost of ``anyio.Event()``); falls back to
    ``anyio.Event`` if the class cannot be built directly."""
    cls = type(anyio.Event())
    try:
        if isinstance(cls(), anyio.Event):
            return cls
    except Exception:  # pragma: no cover - depends on anyio's internals
        pass
    return anyio.Event  # pragma: no cover


class _Waitable:
    """One task waits on ``_wake``; :meth:`_notify` wakes it. :meth:`retire_if_idle`
    asks a task that has waited since the previous call, with nothing arriving, to stop
    (it is started again when work arrives)."""

    __slots__ = ("_arrived", "_event", "_seen", "_wake", "retire")
    _event: Callable[[], anyio.Event]
    _wake: anyio.Event | None
    _arrived: int
    _seen: int
    retire: bool

    def _notify(self) -> None:
        ev = self._wake
        if ev is not None:
            self._wake = None
            ev.set()

    def retire_if_idle(self) -> bool:
        """Called periodically; True if the waiting task was asked to stop."""
        idle = self._wake is not None and self._arrived == self._seen
        self._seen = self._arrived
        if idle:
            self.retire = True
            self._notify()
        return idle


class Outbox(_Waitable):
    """The frames queued for one connection's writer; bounded by ``capacity``.

    Producers append; the writer takes the whole list at each wake-up (frames it holds
    but has not sent yet still count against the capacity). Once :meth:`finish` is called
    nothing more is accepted but the final close frame.
    """

    __slots__ = (
        "_abandon",
        "_conn",
        "_inflight",
        "_queue",
        "_room",
        "capacity",
        "finished",
        "started",
        "writer_running",
    )

    def __init__(self, capacity: int, conn: Connection, event: Callable[[], anyio.Event]) -> None:
        self._event = event
        self._queue: list[Message] = []
        self.capacity = capacity
        self._inflight = 0
        self._wake: anyio.Event | None = None
        self._arrived = self._seen = 0
        self.retire = False
        self._room: anyio.Event | None = None
        self.finished = False
        self._abandon = False
        self._conn = conn
        #: True once the handshake was accepted: before, frames wait for the accept.
        self.started = False
        self.writer_running = False

    def __len__(self) -> int:
        return len(self._queue) + self._inflight

    def _push(self, message: Message) -> None:
        self._queue.append(message)
        self._arrived += 1
        if self._wake is not None:
            self._notify()
        elif not self.writer_running and self.started:
            self._conn.start_writer()

    def start(self) -> None:
        """The handshake is accepted: the writer may send (and sends what is queued)."""
        self.started = True
        if self._queue and not self.writer_running:
            self._conn.start_writer()

    def put_nowait(self, message: Message) -> bool:
        """Queue ``message`` if there is room (and the outbox is open); False otherwise."""
        if self.finished or len(self._queue) + self._inflight >= self.capacity:
            return False
        self._push(message)
        return True

    async def put(self, message: Message) -> bool:
        """Queue ``message``, waiting while the outbox is full. False if finished."""
        while len(self._queue) + self._inflight >= self.capacity and not self.finished:
            if self._room is None:
                self._room = self._event()
            await self._room.wait()
        if self.finished:
            return False
        self._push(message)
        return True

    def try_put(self, message: Message, policy: Overflow) -> int:
        """Queue without waiting; on a full outbox apply ``policy``.

        Returns QUEUED, REPLACED (queued, the oldest frame dropped), DROPPED (the new
        frame dropped), CLOSED (the outbox is finished) or SLOW (the policy says close
        this consumer; the caller closes it).
        """
        if self.finished:
            return CLOSED
        q = self._queue
        if len(q) + self._inflight < self.capacity:
            self._push(message)
            return QUEUED
        if policy is Overflow.DROP_NEWEST or (policy is Overflow.DROP_OLDEST and not q):
            return DROPPED
        if policy is Overflow.DROP_OLDEST:
            del q[0]
            q.append(message)
            return REPLACED
        return SLOW

    def finish(self, discard: bool) -> int:
        """Accept nothing more; with ``discard`` drop what is queued (and what the writer
        holds unsent). Returns the number of frames dropped."""
        self.finished = True
        dropped = 0
        if discard:
            dropped = len(self._queue) + self._inflight
            self._queue = []
            self._abandon = True
        self._notify()
        room = self._room
        if room is not None:
            self._room = None
            room.set()
        return dropped

    def _sent_one(self) -> None:
        self._inflight -= 1
        room = self._room
        if room is not None and len(self._queue) + self._inflight < self.capacity:
            self._room = None
            room.set()

    async def take(self) -> list[Message] | None:
        """Everything queued, waiting while there is nothing; None once finished and
        drained, or when the writer was idle long enough to retire."""
        while not self._queue:
            if self.finished or self.retire:
                self.retire = False
                return None
            ev = self._wake = self._event()
            await ev.wait()
        batch = self._queue
        self._queue = []
        self._inflight = len(batch)
        self._abandon = False
        return batch


class Inbox(_Waitable):
    """Frames received and not yet handled; bounded: the reader waits while it is full,
    which stops reading from the socket (TCP backpressure on the client)."""

    __slots__ = ("_queue", "_room", "capacity", "closed")

    def __init__(self, capacity: int, event: Callable[[], anyio.Event]) -> None:
        self._event = event
        self._queue: deque[Message] | None = None
        self.capacity = capacity
        self._wake: anyio.Event | None = None
        self._arrived = self._seen = 0
        self.retire = False
        self._room: anyio.Event | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    async def put(self, message: Message) -> None:
        """Queue a received frame, waiting while the inbox is full."""
        q = self._queue
        if q is None:
            q = self._queue = deque()
        while len(q) >= self.capacity:
            room = self._room = self._event()
            await room.wait()
        q.append(message)
        self._arrived += 1
        self._notify()

    def get_nowait(self) -> Message | None:
        """The next frame, or None if there is none right now."""
        q = self._queue
        if not q:
            return None
        message = q.popleft()
        room = self._room
        if room is not None:
            self._room = None
            room.set()
        return message

    async def wait(self) -> None:
        """Wait until a frame arrives or the inbox is closed."""
        if self._queue or self.closed:
            return
        ev = self._wake = self._event()
        await ev.wait()

    async def get(self) -> Message | None:
        """The next frame, waiting for one; None once closed and empty."""
        while True:
            message = self.get_nowait()
            if message is not None:
                return message
            if self.closed:
                return None
            await self.wait()

    def close(self) -> None:
        """No more frames will come (the peer left)."""
        self.closed = True
        self._notify()


class Connection:
    """The runtime state of one connection: its task group, inbox, outbox and tasks.

    Created by :class:`~wsgate.App` for each WebSocket scope. Not part of the public API:
    handlers use the :class:`~wsgate.WebSocket` facade.
    """

    __slots__ = (
        "consumer",
        "consumer_done",
        "consumer_running",
        "consumer_retires",
        "grace",
        "inbox",
        "outbox",
        "policy",
        "reader_on_accept",
        "reader_task",
        "receive",
        "send",
        "stats",
        "tg",
        "ws",
    )

    def __init__(
        self,
        ws: WebSocket,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
        *,
        outbound_size: int,
        inbound_size: int,
        policy: Overflow,
        stats: Stats,
        grace: float,
    ) -> None:
        self.ws = ws
        self.receive = receive
        self.send = send
        self.tg: TaskGroup | None = None
        event = event_class()
        self.outbox = Outbox(outbound_size, self, event)
        self.inbox = Inbox(inbound_size, event)
        self.policy = policy
        self.stats = stats
        self.grace = grace
        #: True when a reader task feeds the inbox (gateways that own their connection).
        self.reader_task = False
        #: Start a reader task at accept (set for gateways whose @on_connect owns the
        #: connection; a dispatching gateway's own task reads after @on_connect).
        self.reader_on_accept = False
        #: Started when the first frame arrives (the dispatcher), if set.
        self.consumer: Callable[[], Awaitable[None]] | None = None
        self.consumer_running = False
        #: The dispatcher may stop when idle (sequential dispatch only).
        self.consumer_retires = False
        self.consumer_done: anyio.Event | None = None

    # -- tasks -----------------------------------------------------------------------

    def start_writer(self) -> None:
        """Start the writer task (called when the first frame is queued after accept)."""
        tg = self.tg
        assert tg is not None
        self.outbox.writer_running = True
        tg.start_soon(self._writer)

    def start_reader_task(self) -> None:
        """Read in a task of its own (for gateways whose handler owns the connection)."""
        assert self.tg is not None
        self.reader_task = True
        self.tg.start_soon(self.read_loop)

    async def _run_consumer(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        try:
            await consumer()
        finally:
            self.consumer_finished()

    def consumer_finished(self) -> None:
        """The consumer of the inbox (dispatcher, or an owning handler) has returned."""
        self.consumer_running = False
        done = self.consumer_done
        if done is not None:
            done.set()

    async def read_loop(self) -> None:
        """Receive frames into the inbox until the peer leaves, then end the connection.

        Frames already received are still handled, for at most ``grace`` seconds; then
        the connection's task group is cancelled, so no handler keeps running for a
        client that is gone.
        """
        receive = self.receive
        inbox = self.inbox
        ws = self.ws
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    await inbox.put(message)
                    if self.consumer is not None and not self.consumer_running:
                        self.consumer_running = True
                        assert self.tg is not None
                        self.tg.start_soon(self._run_consumer)
                elif kind == "websocket.disconnect":
                    ws._peer_closed(message.get("code", 1005), message.get("reason") or "")
                    break
        finally:
            inbox.close()
        dropped = self.outbox.finish(discard=True)
        if dropped:
            self.stats.dropped_frames += dropped
        if self.consumer_running and self.grace > 0:
            done = self.consumer_done = anyio.Event()
            with anyio.move_on_after(self.grace):
                await done.wait()
        assert self.tg is not None
        self.tg.cancel_scope.cancel()

    async def _writer(self) -> None:
        send = self.send
        outbox = self.outbox
        try:
            while True:
                batch = await outbox.take()
                if batch is None:
                    return
                for message in batch:
                    if outbox._abandon:
                        break
                    try:
                        await send(message)
                    except Exception as exc:
                        # The transport is gone (servers raise OSError subclasses or their
                        # own errors for a send after the client left): end the connection.
                        logger.debug("send failed on %s: %r", self.ws.path, exc)
                        outbox.finish(discard=True)
                        self.ws._peer_closed(1006, "")
                        self._cancel()
                        return
                    outbox._sent_one()
                    if message["type"] == "websocket.close":
                        outbox.finish(discard=True)
                        self._cancel()
                        return
                outbox._inflight = 0
        finally:
            outbox.writer_running = False

    def retire_idle_tasks(self) -> None:
        """Stop the dispatcher and writer if they have waited, with nothing arriving, since
        the previous call; they start again with the next frame. Called periodically by
        the App, so a connection that goes quiet costs one task again."""
        if self.outbox.writer_running:
            self.outbox.retire_if_idle()
        if self.consumer_running and self.consumer_retires:
            self.inbox.retire_if_idle()

    def _cancel(self) -> None:
        assert self.tg is not None
        self.tg.cancel_scope.cancel()

    # -- closing and fan-out -----------------------------------------------------------

    def close_nowait(self, code: int, reason: str, *, discard: bool) -> None:
        """Queue the close frame behind (or, with ``discard``, instead of) what is queued.

        Never blocks. The writer sends it, then cancels the task group.
        """
        outbox = self.outbox
        if outbox.finished:
            return
        dropped = outbox.finish(discard=discard)
        if dropped:
            self.stats.dropped_frames += dropped
        outbox._push({"type": "websocket.close", "code": code, "reason": reason})

    def offer(self, message: Message) -> int:
        """Non-blocking enqueue for fan-out; applies the overflow policy.

        Returns QUEUED, REPLACED (queued; the oldest frame dropped), DROPPED, CLOSED
        (already closing) or SLOW (closed now as a slow consumer; what it had queued is
        dropped).
        """
        outbox = self.outbox
        result = outbox.try_put(message, self.policy)
        if result == QUEUED or result == CLOSED:
            return result
        if result == DROPPED or result == REPLACED:
            self.stats.dropped_frames += 1
            return result
        if not outbox.started:
            # Not accepted yet: closing would refuse a handshake nobody has answered;
            # drop the frame instead (the client has not seen any of them).
            self.stats.dropped_frames += 1
            return DROPPED
        code = (
            status.WS_1008_POLICY_VIOLATION
            if self.policy is Overflow.CLOSE_POLICY
            else status.WS_1013_TRY_AGAIN_LATER
        )
        self.stats.slow_consumer_closes += 1
        self.stats.dropped_frames += 1
        self.ws._server_closed(code, "slow consumer")
        self.close_nowait(code, "slow consumer", discard=True)
        return SLOW
