"""The App's counters: :class:`Stats` (``app.stats``)."""

from __future__ import annotations

from .datastructures import Counters
from .state import Event

__all__ = ["Stats"]

#: The counter that an event the state machine counts (``Action.COUNT``) adds to.
_COUNTED = {
    Event.IDLE: "idle_closes",
    Event.FRAME_TOO_LARGE: "frames_too_large",
    Event.RATE_EXCEEDED: "rate_limit_closes",
    Event.SLOW_CONSUMER: "slow_consumer_closes",
    Event.HANDSHAKE_EXPIRED: "handshake_timeouts",
}


class Stats(Counters):
    """Counters an operator can read: ``app.stats``. Every drop and slow-consumer close is
    counted here (and per group in :class:`~wsgate.BroadcastGroup`), and so is every frame
    answered with ``invalid_frame`` and every connection closed with 1011 because wsgate
    itself failed."""

    __slots__ = (
        "connections_open",
        "connections_total",
        "dropped_frames",
        "frames_too_large",
        "idle_closes",
        "internal_errors",
        "invalid_frames",
        "rate_limit_closes",
        "rate_limited_frames",
        "slow_consumer_closes",
        "refused_origin",
        "refused_limit",
        "refused_guard",
        "handshake_timeouts",
        "forbidden_frames",
    )
    #: Connections accepted or refused since startup.
    connections_total: int
    #: Connections being served now (a gauge).
    connections_open: int
    #: Frames dropped on the way out (overflow policies, closes that discard the queue).
    dropped_frames: int
    #: Frames over ``max_frame_bytes`` (each closed its connection with 1009).
    frames_too_large: int
    #: Connections closed by ``idle_timeout``.
    idle_closes: int
    #: Connections closed with 1008 for going on sending over ``rate_limit``.
    rate_limit_closes: int
    #: Frames refused with a ``rate_limited`` error frame.
    rate_limited_frames: int
    #: Broadcast members closed because their outbox was full.
    slow_consumer_closes: int
    #: Handshakes refused because their Origin is not allowed.
    refused_origin: int
    #: Handshakes refused by max_connections or max_connections_per_client.
    refused_limit: int
    #: Handshakes refused by a guard or a per-connection dependency.
    refused_guard: int
    #: Handshakes refused because guards, dependencies and @on_connect overran
    #: handshake_timeout.
    handshake_timeouts: int
    #: Frames refused by an @on_message guard.
    forbidden_frames: int
    #: Client frames answered with an ``invalid_frame`` error.
    invalid_frames: int
    #: Connections closed with 1011 because the runtime itself failed (not a handler).
    internal_errors: int

    def count(self, event: Event) -> None:
        """Count ``event`` (one the state machine marks with ``Action.COUNT``)."""
        name = _COUNTED[event]
        setattr(self, name, getattr(self, name) + 1)
