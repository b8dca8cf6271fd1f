"""Who runs on one connection: the runtime's task flags, in one small object.

A connection runs at most one writer task, at most one sequential dispatcher, and one
sender at a time; the tasks that consume its frames (dispatchers, an owning handler)
are waited for, up to the grace period, when the peer leaves. These are the flags that
say which of those is running, and the rules that combine them. No I/O: the runtime
(:mod:`wsgate.connection`) starts and wakes the tasks these flags call for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from .relay import WakeRelay

__all__ = ["TaskFlags"]


class TaskFlags:
    """The reader/dispatcher/writer flags of one connection."""

    __slots__ = (
        "consumers",
        "consumers_done",
        "dispatcher_active",
        "relay",
        "relay_queued",
        "sending",
        "writer_active",
        "writer_idle",
    )

    def __init__(self) -> None:
        #: A writer task is running (waiting for frames or sending).
        self.writer_active = False
        #: Sweeps the writer waited through with nothing to do (-1: retire it).
        self.writer_idle = 0
        #: The relay that gave the writer its turn, to pass on when it runs.
        self.relay: WakeRelay | None = None
        #: The writer waits in a relay's queue for its turn.
        self.relay_queued = False
        #: A task is inside ASGI ``send`` right now (one sender at a time).
        self.sending = False
        #: A dispatcher handles queued frames in order (the reader queues, not handles).
        self.dispatcher_active = False
        #: Tasks consuming the connection's frames, waited for when the peer leaves.
        self.consumers = 0
        #: Set when the last consumer is done, while the reader waits for that.
        self.consumers_done: anyio.Event | None = None

    def consumer_started(self) -> None:
        """A consumer of the connection's frames began."""
        self.consumers += 1

    def consumer_done(self) -> None:
        """A consumer ended; the last one releases a reader waiting for them."""
        self.consumers -= 1
        if not self.consumers and self.consumers_done is not None:
            self.consumers_done.set()

    def dispatcher_started(self) -> None:
        """A dispatcher (also a consumer) began."""
        self.dispatcher_active = True
        self.consumers += 1

    def dispatcher_done(self) -> None:
        """The dispatcher ended: the reader handles frames inline again."""
        self.dispatcher_active = False
        self.consumer_done()
