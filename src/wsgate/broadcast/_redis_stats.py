"""The counters of a Redis broadcast group (:attr:`RedisBroadcastGroup.redis_stats`), in
a module of their own so that the link and the member counts that update them need not
import :mod:`wsgate.broadcast.redis`, which imports them."""

from __future__ import annotations

from ..datastructures import Counters

__all__ = ["RedisStats"]


class RedisStats(Counters):
    """Counters of a :class:`~wsgate.broadcast.redis.RedisBroadcastGroup`'s traffic with Redis."""

    __slots__ = (
        "count_write_failures",
        "ignored",
        "link_failures",
        "publish_failures",
        "published",
        "received",
        "reconnects",
    )
    #: Messages PUBLISHed.
    published: int
    #: Broadcasts that raised BroadcastUnavailableError (link down or PUBLISH failed).
    publish_failures: int
    #: Messages received from other workers and delivered to local members.
    received: int
    #: Messages received that were not ours to deliver (foreign or newer format) or
    #: could not be delivered (logged).
    ignored: int
    #: Times the pub/sub connection was lost or could not be opened.
    link_failures: int
    #: Times the pub/sub connection was re-established after a failure.
    reconnects: int
    #: Failed writes of member counts or heartbeats (retried in the background).
    count_write_failures: int
