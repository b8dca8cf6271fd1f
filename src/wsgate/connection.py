"""The per-connection runtime: one task group, a reader, a writer, bounded channels.

::

    ASGI receive --reader--> inbound channel (bounded) --> dispatcher / handlers
    ws.send_* / broadcasts --> Outbox (bounded) --writer--> ASGI send

The reader is the only caller of ``receive`` and the writer the only caller of ``send``
once a connection is accepted. A send that can wait (a handler replying) waits while the
outbox is full; a send that must not wait (a broadcast) calls :meth:`Outbox.offer`,
which never blocks and applies the connection's :class:`Overflow` policy. The writer
drains everything queued on each wake-up. On hypercorn's trio worker an ASGI ``send`` to
a client that stopped reading blocks and cannot be cancelled: only this one writer is
ever stuck there; nothing else awaits it.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import status

if TYPE_CHECKING:
    from .websocket import WebSocket

__all__ = ["Overflow", "Outbox", "Connection", "Stats"]

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


class Stats:
    """Counters an operator can read: ``app.stats``. Every drop and slow-consumer close is
    counted here (and per group in :class:`~wsgate.BroadcastGroup`)."""

    __slots__ = ("connections_open", "connections_total", "dropped_frames", "slow_consumer_closes")

    def __init__(self) -> None:
        self.connections_total = 0
        self.connections_open = 0
        self.dropped_frames = 0
        self.slow_consumer_closes = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"Stats({self.as_dict()!r})"


# Outcomes of Outbox.try_put / Connection.offer
QUEUED = 1
DROPPED = 0
CLOSED = -1  # the connection was already closing
SLOW = -2  # the outbox was full and the policy closed this consumer


class Outbox:
    """A bounded FIFO of ASGI send messages with one consumer, the writer task.

    :meth:`put` waits while full; :meth:`offer` never waits. Once :meth:`finish` is called
    (the connection is closing) nothing more is accepted, and the writer stops after it
    has sent what is queued.
    """

    __slots__ = ("_queue", "_room", "_writer_wake", "capacity", "dropped", "finished")

    def __init__(self, capacity: int) -> None:
        self._queue: deque[Message] = deque()
        self.capacity = capacity
        self._writer_wake: anyio.Event | None = None
        self._room: anyio.Event | None = None
        self.finished = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    def _wake_writer(self) -> None:
        ev = self._writer_wake
        if ev is not None:
            self._writer_wake = None
            ev.set()

    def append(self, message: Message) -> None:
        """Queue ``message`` past the capacity (used for the final close frame)."""
        self._queue.append(message)
        self._wake_writer()

    async def put(self, message: Message) -> bool:
        """Queue ``message``, waiting while the outbox is full. False if finished."""
        while len(self._queue) >= self.capacity and not self.finished:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()
        if self.finished:
            return False
        self._queue.append(message)
        self._wake_writer()
        return True

    def try_put(self, message: Message, policy: Overflow) -> int:
        """Queue without waiting; on a full outbox apply ``policy``.

        Returns QUEUED, DROPPED (the new frame was dropped) or CLOSED (the policy says
        close the consumer; the caller closes it).
        """
        if self.finished:
            return CLOSED
        q = self._queue
        if len(q) < self.capacity:
            q.append(message)
            self._wake_writer()
            return QUEUED
        if policy is Overflow.DROP_NEWEST:
            self.dropped += 1
            return DROPPED
        if policy is Overflow.DROP_OLDEST:
            q.popleft()
            q.append(message)
            self.dropped += 1
            self._wake_writer()
            return QUEUED
        return CLOSED

    def finish(self, discard: bool) -> int:
        """Accept nothing more; with ``discard`` drop what is queued. Returns frames dropped."""
        self.finished = True
        dropped = 0
        if discard:
            dropped = len(self._queue)
            self._queue.clear()
        self._wake_writer()
        room = self._room
        if room is not None:
            self._room = None
            room.set()
        return dropped

    async def next(self) -> Message | None:
        """The next message for the writer, or None once finished and empty."""
        q = self._queue
        while not q:
            if self.finished:
                return None
            ev = self._writer_wake = anyio.Event()
            await ev.wait()
        message = q.popleft()
        room = self._room
        if room is not None and len(q) < self.capacity:
            self._room = None
            room.set()
        return message


class Connection:
    """The runtime state of one accepted connection: its task group, channels and tasks.

    Created by :class:`~wsgate.App` for each WebSocket scope. Not part of the public API:
    handlers use the :class:`~wsgate.WebSocket` facade.
    """

    __slots__ = (
        "dispatch_done",
        "grace",
        "inbound_recv",
        "inbound_send",
        "inbound_size",
        "outbox",
        "peer_left",
        "policy",
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
        self.outbox = Outbox(outbound_size)
        self.policy = policy
        self.inbound_send: MemoryObjectSendStream[Message] | None = None
        self.inbound_recv: MemoryObjectReceiveStream[Message] | None = None
        self.inbound_size = inbound_size
        self.stats = stats
        self.peer_left = False
        self.dispatch_done: anyio.Event | None = None
        self.grace = grace

    def start(self) -> None:
        """Start the reader and writer in the connection's task group (after accept)."""
        assert self.tg is not None
        self.inbound_send, self.inbound_recv = anyio.create_memory_object_stream[Message](
            self.inbound_size
        )
        self.tg.start_soon(self._reader)
        self.tg.start_soon(self._writer)

    async def _reader(self) -> None:
        receive = self.receive
        assert self.inbound_send is not None
        inbound = self.inbound_send
        ws = self.ws
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    await inbound.send(message)
                elif kind == "websocket.disconnect":
                    ws._peer_closed(message.get("code", 1005), message.get("reason") or "")
                    break
        finally:
            inbound.close()
        # The peer is gone: nothing more can be sent. Frames already received are still
        # handled, for at most ``grace`` seconds, then every handler is cancelled.
        self.peer_left = True
        dropped = self.outbox.finish(discard=True)
        if dropped:
            self.stats.dropped_frames += dropped
        done = self.dispatch_done
        if done is not None and self.grace > 0:
            with anyio.move_on_after(self.grace):
                await done.wait()
        assert self.tg is not None
        self.tg.cancel_scope.cancel()

    async def _writer(self) -> None:
        send = self.send
        outbox = self.outbox
        while True:
            message = await outbox.next()
            if message is None:
                return
            try:
                await send(message)
            except Exception as exc:
                # The transport is gone (servers raise OSError subclasses or their own
                # errors for a send after the client left): end the connection.
                logger.debug("send failed on %s: %r", self.ws.path, exc)
                outbox.finish(discard=True)
                self.ws._peer_closed(1006, "")
                assert self.tg is not None
                self.tg.cancel_scope.cancel()
                return
            if message["type"] == "websocket.close":
                outbox.finish(discard=True)
                assert self.tg is not None
                self.tg.cancel_scope.cancel()
                return

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
        outbox.append({"type": "websocket.close", "code": code, "reason": reason})

    def offer(self, message: Message) -> int:
        """Non-blocking enqueue for fan-out; applies the overflow policy. See Outbox.try_put."""
        outbox = self.outbox
        result = outbox.try_put(message, self.policy)
        if result == QUEUED:
            return QUEUED
        if result == DROPPED:
            self.stats.dropped_frames += 1
            return DROPPED
        if outbox.finished:
            return CLOSED
        # Slow consumer: close it; what it had queued is dropped.
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
