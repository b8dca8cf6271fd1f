"""Broadcast wake-ups passed from writer to writer: :class:`WakeRelay`."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, ClassVar

from sniffio import current_async_library

from ._wait import plain_waits

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["WakeRelay"]


class WakeRelay:
    """The writers that broadcasts have to run, given their turn a few at a time (on trio).

    On trio, running every member's writer at once puts a thousand sends in flight
    together (each send through the server passes two checkpoints), and what each holds
    meanwhile (the server's coroutines, events and buffers) outlives the collections its
    allocations trigger: the garbage collector promotes and re-scans tens of thousands
    of objects per broadcast, measured as most of the fan-out's cost over a plain send
    loop. So a broadcast queues the members whose writer has to run (one that waits, one
    retired after idling, one that never ran: every member on the first broadcast), and
    at most ``lanes`` of them get their turn at a time: each writer passes the turn on at
    its first step, before it sends, so about as few sends are in flight as a send loop
    has, and a writer that then blocks on a client that stopped reading has already
    passed the turn on. A writer that finishes with its outbox refilled while others are
    queued goes to the back of the queue (:meth:`requeue`) instead of sending on, so a
    steady stream of broadcasts never keeps every writer running at once. One relay
    serves every broadcast of a group (its queue is long-lived, so the collector's young
    collections do not rescan it).

    On asyncio a send that does not block completes without a task switch, so waking
    everyone at once costs nothing extra, and :meth:`for_backend` gives None there (and
    on the plain path, ``WSGATE_PLAIN_WAITS=1``).

    The connection side is :meth:`Connection.relay_wake
    <wsgate.connection.Connection.relay_wake>`: it wakes or starts the writer and
    returns True, or returns False when the writer has nothing to do (the relay then
    tries the next one).
    """

    __slots__ = ("_active", "_conns", "_lanes")

    #: Writers given their turn at a time, by backend (measured: 1-4 lanes keep the
    #: collector's work at a quarter of waking all at once with 1,000 members on
    #: hypercorn's trio worker; 16 lanes at half).
    LANES: ClassVar[dict[str, int]] = {"trio": 4}

    def __init__(self, lanes: int) -> None:
        self._conns: deque[Connection] = deque()
        self._lanes = lanes
        self._active = 0  # writers given their turn that have not passed it on yet

    @classmethod
    def for_backend(cls) -> WakeRelay | None:
        """A relay for the running backend, or None where waking every writer at once
        is as cheap (and on the plain path)."""
        if plain_waits():
            return None
        lanes = cls.LANES.get(current_async_library())
        return cls(lanes) if lanes else None

    def __len__(self) -> int:
        """The writers queued for their turn."""
        return len(self._conns)

    def add(self, conn: Connection) -> None:
        """Queue ``conn``'s writer for a turn; :meth:`start` then gives the turns."""
        self._conns.append(conn)

    def start(self) -> None:
        """Give turns up to the number of lanes (a broadcaster calls this once its
        frames are queued)."""
        while self._active < self._lanes and self._wake_next():
            self._active += 1

    def requeue(self, conn: Connection) -> bool:
        """A writer finished with more to send: True if others are queued, and then
        ``conn`` is queued behind them (its writer waits for its turn); False if nobody
        is, and the writer goes on."""
        if not self._conns:
            return False
        self._conns.append(conn)
        self.start()  # lanes are full whenever writers are queued; this keeps it so
        return True

    def pass_on(self) -> bool:
        """A writer's turn is over (it is about to send): give the next queued writer
        its turn; False if none is left."""
        self._active -= 1
        if self._wake_next():
            self._active += 1
            return True
        return False

    def _wake_next(self) -> bool:
        conns = self._conns
        while conns:
            if conns.popleft().relay_wake(self):
                return True
        return False
