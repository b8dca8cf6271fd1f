"""The bounded queues of a connection and the outcomes of a non-blocking enqueue.

Plain data structures with no I/O of their own: :class:`Outbox` (frames to send, drained by
the connection's writer) and :class:`Inbox` (frames received, taken by the dispatcher or an
owning handler). Who may append, and what happens when a queue is full, is decided by
:class:`~wsgate.connection.Connection`; :class:`Overflow` names the policies and
:class:`Offer` the outcomes.
"""

from __future__ import annotations

import enum
from collections import deque

from ._wait import Signal
from .asgi import Message

__all__ = ["Inbox", "Offer", "Outbox", "Overflow"]


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


class Offer(enum.Enum):
    """The outcome of a non-blocking enqueue (:meth:`Connection.offer`)."""

    #: Queued.
    QUEUED = "queued"
    #: Queued, after dropping the oldest queued frame (``Overflow.DROP_OLDEST``).
    REPLACED = "replaced"
    #: The outbox was full and the new frame was dropped.
    DROPPED = "dropped"
    #: The connection is closing or closed; nothing was queued.
    CLOSED = "closed"
    #: The outbox was full and the policy closed this slow consumer (what it had queued
    #: is dropped).
    SLOW = "slow"


class Outbox:
    """The frames queued for one connection's writer, bounded by ``capacity``.

    A plain bounded queue: producers append, the writer takes everything at each
    wake-up (frames it holds but has not sent yet still count against the capacity).
    Who may append is the connection's business, not the queue's.
    """

    __slots__ = ("_queue", "_spare", "capacity", "inflight", "room")

    def __init__(self, capacity: int, signal: type[Signal]) -> None:
        # Two lists used in turn: the writer sends from one while producers fill the
        # other, so taking a batch allocates nothing. Built with the first frame: an
        # idle connection keeps none.
        self._queue: list[Message] | None = None
        self._spare: list[Message] | None = None
        self.capacity = capacity
        #: Frames taken by the writer and not sent yet.
        self.inflight = 0
        #: Wakes a producer waiting for room.
        self.room = signal()

    def __len__(self) -> int:
        q = self._queue
        return (len(q) if q else 0) + self.inflight

    def __bool__(self) -> bool:
        return bool(self._queue)

    @property
    def full(self) -> bool:
        q = self._queue
        return (len(q) if q else 0) + self.inflight >= self.capacity

    def append(self, message: Message) -> None:
        q = self._queue
        if q is None:
            q = self._queue = []
        q.append(message)

    def offer(self, message: Message, policy: Overflow) -> Offer:
        """Queue ``message`` if there is room; on a full outbox apply ``policy``:
        QUEUED, REPLACED, DROPPED, or SLOW (the policy says close; the caller closes)."""
        q = self._queue
        if q is None:
            q = self._queue = []
        if len(q) + self.inflight < self.capacity:
            q.append(message)
            return Offer.QUEUED
        if policy is Overflow.DROP_NEWEST or (policy is Overflow.DROP_OLDEST and not q):
            return Offer.DROPPED
        if policy is Overflow.DROP_OLDEST:
            del q[0]
            q.append(message)
            return Offer.REPLACED
        return Offer.SLOW

    def take(self) -> list[Message]:
        """Everything queued (now in flight); hand the list back with :meth:`done`."""
        batch = self._queue
        if batch is None:
            batch = []
        self._queue = self._spare
        self._spare = batch
        self.inflight = len(batch)
        return batch

    def done(self, batch: list[Message]) -> None:
        """The writer is through with ``batch`` (sent, or abandoned)."""
        batch.clear()
        self.inflight = 0

    def sent_one(self) -> None:
        if self.inflight > 0:
            self.inflight -= 1
        if self.room.waiting and not self.full:
            self.room.set()

    def discard(self) -> int:
        """Drop everything queued and in flight; returns how many frames were dropped."""
        q = self._queue
        dropped = (len(q) if q else 0) + self.inflight
        if q:
            q.clear()
        self.inflight = 0
        self.room.set()
        return dropped


class Inbox:
    """Frames received and not yet handled; bounded: the reader waits while it is full,
    which stops reading from the socket (TCP backpressure on the client)."""

    __slots__ = ("_queue", "arrived", "capacity", "room")

    def __init__(self, capacity: int, signal: type[Signal]) -> None:
        # Built with the first frame: an idle connection keeps no deque (about 600 bytes).
        self._queue: deque[Message] | None = None
        self.capacity = capacity
        #: Wakes the consumer waiting for a frame.
        self.arrived = signal()
        #: Wakes the reader waiting for room. The same signal: consumers wait only on
        #: an empty inbox and the reader only on a full one, so a wake-up is never
        #: meant for the other side (and every wait re-checks its condition).
        self.room = self.arrived

    def __len__(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    async def put(self, message: Message) -> None:
        """Queue a received frame, waiting while the inbox is full."""
        q = self._queue
        if q is None:
            q = self._queue = deque()
        while len(q) >= self.capacity:
            await self.room.wait()
        q.append(message)
        self.arrived.set()

    def get_nowait(self) -> Message | None:
        """The next frame, or None if there is none right now."""
        q = self._queue
        if not q:
            return None
        message = q.popleft()
        self.room.set()
        return message
