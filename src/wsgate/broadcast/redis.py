"""Broadcast groups shared by every worker through Redis/Valkey pub/sub.

::

    from wsgate.broadcast.redis import RedisBroadcastGroup

    app = App(gateways=[ChatGateway], providers=[RedisBroadcastGroup("redis://localhost:6379")])

:class:`RedisBroadcastGroup` has the API of :class:`~wsgate.BroadcastGroup`; a broadcast
reaches the members of the group in every worker (process or machine) that uses the same
Redis and ``prefix``. Most applications do not need it: ``App(broker=url)`` (or
``WSGATE_BROKER_URL``, or ``wsgate run --workers N``) makes the App's default
``BroadcastGroup`` and provider subclasses without a URL work the same way.

How it works
------------
- **One channel per group**, ``{prefix}:g:{group}``. A worker is subscribed to it only
  while it has local members of the group: SUBSCRIBE when the first local member joins
  (``subscribe()`` returns once Redis acknowledged it), UNSUBSCRIBE when the last one
  leaves. One connection per worker carries every subscription; a single task applies
  the changes, so SUBSCRIBE/UNSUBSCRIBE of one group never reorder.
- **A broadcast** is encoded once (the ASGI message every member shares), PUBLISHed once,
  then delivered at once to this worker's members. Every other worker with members
  receives it on its subscription and delivers it to its members; a worker skips the
  copies it published itself, so each member gets each message exactly once. A sender
  that awaits each broadcast keeps its order everywhere: one PUBLISH after the other
  and one subscriber connection per worker.
- **Payload**: one byte ``version << 4 | flags`` (bit 0: binary frame, bit 1: an
  excluded connection follows), the 16-byte id of the publishing worker (random, drawn
  when the worker starts the group, so forked workers differ), then, when a
  member is excluded, its 16-byte connection id, then the frame's bytes (UTF-8 text for a
  text frame). That is 17 or 33 bytes over the payload. Messages with another version or
  too short are ignored and counted in :attr:`RedisBroadcastGroup.redis_stats`.
- **Connection ids** for ``exclude``: each WebSocket gets, on first use, an 8-byte
  random process token plus an 8-byte counter (kept in a weak mapping; the token is
  renewed in a forked child). A worker that receives a message whose excluded id belongs
  to its own process skips that member; no other process can have it.
- **History** (``history=History(...)``): a group's frames are kept in a stream, and
  each publish is one script that takes the next offset, appends to the stream and
  PUBLISHes (see :mod:`wsgate.broadcast._redis_history`); the payload then carries the
  frame's offset in decimal after the ids, and a newline.
- **Member counts across workers** (:meth:`RedisBroadcastGroup.total_member_count`): a hash
  ``{prefix}:m:{group}`` with one field per worker id holding its local count, and a
  heartbeat key ``{prefix}:w:{worker id}`` with a TTL refreshed every third of it. Counts
  of workers whose heartbeat expired are ignored and removed.

Failures
--------
While this worker's pub/sub connection to Redis is down (and before the App's lifespan
started it), :meth:`~RedisBroadcastGroup.broadcast` raises
:class:`BroadcastUnavailableError` and delivers nothing, not even locally; so does a
failed PUBLISH. The error is a :class:`~wsgate.WebSocketError`: raised out of a message
handler it answers that frame with a ``broadcast_unavailable`` error and the connection
stays open. The worker reconnects with exponential backoff (capped at
``reconnect_max_delay``), subscribes again to every group that still has local members,
and rewrites its heartbeat and counts (a restarted Redis has lost them). Subscribing and
leaving never fail because of Redis: they take effect on Redis once it is back.
Pub/sub delivers at most once: messages published while a worker is reconnecting do not
reach that worker's members. Counters: :attr:`RedisBroadcastGroup.redis_stats`.

Requires ``coredis`` (``pip install 'wsgate[redis]'``); it runs on trio and asyncio. One
Redis/Valkey server (or a primary behind Sentinel or a proxy); not Redis Cluster.
"""

from __future__ import annotations

from typing import Any

from ..history import History
from ._redis_client import redact
from ._redis_stats import RedisStats
from ._redis_transport import RedisTransport
from .errors import BroadcastUnavailableError
from .memory import BroadcastGroup, Subscriber

__all__ = ["BroadcastUnavailableError", "RedisBroadcastGroup", "RedisStats"]

# One idea per module; _redis_transport.py composes the others for a group:
# _redis_client.py   the coredis client, the errors it raises, the URL as logs show it
# _redis_link.py     PubSubLink: the pub/sub connection, reconnects, SUBSCRIBE/UNSUBSCRIBE
# _redis_counts.py   MemberCounts: counts per worker, heartbeat, cleanup, housekeeping
# _redis_history.py  RedisHistory: the stream and meta hash of each group, the scripts
# _wire.py           the payload of a broadcast, sans I/O


class RedisBroadcastGroup(BroadcastGroup):
    """A :class:`~wsgate.BroadcastGroup` whose groups span every worker that uses the same
    Redis/Valkey server and ``prefix``.

    Register an instance as a provider; the App connects it at lifespan startup and closes
    it at shutdown (startup fails with :class:`BroadcastUnavailableError` if Redis cannot
    be reached within ``connect_timeout``). :meth:`member_count`, :meth:`members` and
    :meth:`groups` describe this worker; :meth:`total_member_count` counts every worker.
    It keeps its URL whatever the App's broker is. See the module documentation for the
    design and the failure behaviour.

    :param url: ``redis://[[user]:password@]host:port[/db]``, ``rediss://`` or ``unix://``.
    :param prefix: Prefix of every channel and key this group uses.
    :param connect_timeout: Seconds to connect to Redis (also how long startup waits for
        the first connection).
    :param command_timeout: Seconds to wait for an answer from Redis (PUBLISH,
        subscription acknowledgements, counts).
    :param heartbeat_ttl: Seconds after which the counts of a worker that stopped
        refreshing its heartbeat are ignored.
    :param reconnect_max_delay: Cap, in seconds, of the exponential backoff between
        reconnection attempts (which starts at 50 ms).
    :param history: Keep the last frames of each group (see :class:`~wsgate.History`).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wsgate",
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        heartbeat_ttl: float = 15.0,
        reconnect_max_delay: float = 5.0,
        history: History | None = None,
    ) -> None:
        super().__init__(history=history)
        if not prefix:
            raise ValueError("RedisBroadcastGroup(prefix=...) must not be empty")
        if heartbeat_ttl < 1:
            raise ValueError("heartbeat_ttl must be at least 1 second")
        self._redis = RedisTransport(
            self,
            url,
            prefix=prefix,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            heartbeat_ttl=heartbeat_ttl,
            reconnect_max_delay=reconnect_max_delay,
        )
        self._transport = self._redis

    def __repr__(self) -> str:
        return f"RedisBroadcastGroup({redact(self.url)!r}, prefix={self.prefix!r})"

    # -- public state --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The Redis/Valkey URL."""
        return self._redis.url

    @property
    def prefix(self) -> str:
        """The prefix of every channel and key."""
        return self._redis.prefix

    @property
    def connect_timeout(self) -> float:
        """Seconds to connect to Redis."""
        return self._redis.connect_timeout

    @property
    def command_timeout(self) -> float:
        """Seconds to wait for an answer from Redis."""
        return self._redis.command_timeout

    @property
    def heartbeat_ttl(self) -> float:
        """Seconds after which a silent worker's counts are ignored."""
        return self._redis.heartbeat_ttl

    @property
    def reconnect_max_delay(self) -> float:
        """Cap of the reconnection backoff, in seconds."""
        return self._redis.reconnect_max_delay

    @property
    def redis_stats(self) -> RedisStats:
        """Counters of the traffic with Redis."""
        return self._redis.stats

    @property
    def worker_id(self) -> str:
        """This worker's id in Redis (hex; new each time the group is started)."""
        return self._redis.worker_hex

    def channel(self, group: str) -> str:
        """The Redis channel that carries ``group``."""
        return self._redis.channel(group)

    def use_broker(self, url: str) -> None:
        """A RedisBroadcastGroup keeps its own URL: the App's broker is not used."""

    async def broadcast(
        self,
        group: str,
        message: Any,
        as_bytes: bool = False,
        exclude: Subscriber | None = None,
    ) -> int:
        """Send ``message`` to every member of ``group`` in every worker, except ``exclude``.

        Encodes once (``str``: text frame, ``bytes``: binary frame, anything else JSON,
        binary with ``as_bytes=True``), PUBLISHes once, then enqueues to this worker's
        members without waiting for any of them; other workers deliver their copy when it
        arrives. Broadcasts awaited one after the other reach every member in that order.

        Returns the number of frames enqueued **in this process** (other workers' members
        are not counted). Raises :class:`BroadcastUnavailableError`, without delivering
        to this worker's members, while Redis is unreachable or if the PUBLISH fails.
        A PUBLISH that failed after it was sent (a timeout, a connection lost while
        waiting for the reply) or a broadcast cancelled while waiting for Redis may still
        have reached other workers: retrying it can deliver it there twice.
        """
        return await super().broadcast(group, message, as_bytes, exclude)
