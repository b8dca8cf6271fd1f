"""Broadcast wake-ups passed from writer to writer: :class:`WakeRelay`."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from sniffio import current_async_library

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["WakeRelay"]


class WakeRelay:
    """The writers that broadcasts have to wake, woken a few at a time (on trio).

    On trio, waking every member's writer at once puts a thousand sends in flight
    together (each send through the server passes two checkpoints), and what each holds
    meanwhile (the server's coroutines, events and buffers) outlives the collections its
    allocations trigger: the garbage collector promotes and re-scans tens of thousands
    of objects per broadcast, measured as most of the fan-out's cost over a plain send
    loop. So a broadcast queues the members whose writer waits here, and at most
    ``lanes`` of them are awake at a time: each woken writer wakes the next one before it
    sends, so about as few sends are in flight as a send loop has, and a writer that then
    blocks on a client that stopped reading has already passed the relay on. One relay
    serves every broadcast of a group (its queue is long-lived, so the collector's young
    collections do not rescan it). On asyncio a send that does not block completes
    without a task switch, so waking everyone at once costs nothing extra, and
    :meth:`for_backend` gives None there.
    """

    __slots__ = ("_active", "_conns", "_lanes", "_next")

    #: Writers awake at a time, by backend (measured: 1-4 lanes keep the collector's work
    #: at a quarter of waking all at once with 1,000 members on hypercorn's trio worker;
    #: 16 lanes at half).
    LANES: ClassVar[dict[str, int]] = {"trio": 4}

    def __init__(self, lanes: int) -> None:
        self._conns: list[Connection] = []
        self._next = 0
        self._lanes = lanes
        self._active = 0  # writers woken and not yet passed on

    @classmethod
    def for_backend(cls) -> WakeRelay | None:
        """A relay for the running backend, or None where waking every writer at once
        is as cheap."""
        lanes = cls.LANES.get(current_async_library())
        return cls(lanes) if lanes else None

    def __len__(self) -> int:
        return len(self._conns) - self._next

    def add(self, conn: Connection) -> None:
        self._conns.append(conn)

    def start(self) -> None:
        """Wake writers up to the number of lanes (a broadcaster calls this once its
        frames are queued)."""
        while self._active < self._lanes and self._wake_next():
            self._active += 1

    def pass_on(self) -> bool:
        """A woken writer's turn is over: wake the next one that is waiting; False if
        none is left."""
        self._active -= 1
        if self._wake_next():
            self._active += 1
            return True
        return False

    def _wake_next(self) -> bool:
        conns = self._conns
        i = self._next
        n = len(conns)
        while i < n:
            conn = conns[i]
            i += 1
            if conn.relay_wake(self):
                self._next = i
                return True
        self._next = 0
        conns.clear()
        return False
