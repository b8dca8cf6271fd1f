"""Broadcast groups shared by every worker through Redis/Valkey pub/sub.

::

    from wsgate.broadcast.redis import RedisBroadcastGroup

    app = App(gateways=[ChatGateway], providers=[RedisBroadcastGroup("redis://localhost:6379")])

:class:`RedisBroadcastGroup` has the API of :class:`~wsgate.BroadcastGroup`; a broadcast
reaches the members of the group in every worker (process or machine) that uses the same
Redis and ``prefix``.

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

import logging
import uuid
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio

from .. import status
from ..asgi import Message
from ..errors import WebSocketError
from . import _wire
from ._redis_client import REDIS_ERRORS, open_client, redact
from ._redis_counts import MemberCounts
from ._redis_link import PubSubLink, channel_prefix
from ._redis_stats import RedisStats
from .memory import BroadcastGroup, Subscriber

if TYPE_CHECKING:
    import coredis

__all__ = ["BroadcastUnavailableError", "RedisBroadcastGroup", "RedisStats"]

logger = logging.getLogger("wsgate.broadcast.redis")

# One idea per module; this one composes the others and speaks for the group:
# _redis_client.py  the coredis client, the errors it raises, the URL as logs show it
# _redis_link.py    PubSubLink: the pub/sub connection, reconnects, SUBSCRIBE/UNSUBSCRIBE
# _redis_counts.py  MemberCounts: counts per worker, heartbeat, cleanup, housekeeping
# _wire.py          the payload of a broadcast, sans I/O

# -- errors and counters ------------------------------------------------------------------


class BroadcastUnavailableError(WebSocketError):
    """Redis cannot be reached, so the broadcast was not sent to anyone.

    Raised by :meth:`RedisBroadcastGroup.broadcast` while this worker's connection to
    Redis is down (it reconnects by itself) or when the PUBLISH fails, and by
    :meth:`RedisBroadcastGroup.total_member_count` when Redis does not answer. Raised
    out of a message handler, it answers the frame with a ``broadcast_unavailable``
    error; the connection stays open. Raised out of ``@on_connect``, it refuses the
    handshake with HTTP 503 (or a close with 1013, try again later).
    """

    code = "broadcast_unavailable"
    http_status = 503
    default_close_code = status.WS_1013_TRY_AGAIN_LATER


class RedisBroadcastGroup(BroadcastGroup):
    """A :class:`~wsgate.BroadcastGroup` whose groups span every worker that uses the same
    Redis/Valkey server and ``prefix``.

    Register an instance as a provider; the App connects it at lifespan startup and closes
    it at shutdown (startup fails with :class:`BroadcastUnavailableError` if Redis cannot
    be reached within ``connect_timeout``). :meth:`member_count`, :meth:`members` and
    :meth:`groups` describe this worker; :meth:`total_member_count` counts every worker.
    See the module documentation for the design and the failure behaviour.

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
    ) -> None:
        super().__init__()
        if not prefix:
            raise ValueError("RedisBroadcastGroup(prefix=...) must not be empty")
        if heartbeat_ttl < 1:
            raise ValueError("heartbeat_ttl must be at least 1 second")
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.heartbeat_ttl = heartbeat_ttl
        self.reconnect_max_delay = reconnect_max_delay
        #: Counters of the traffic with Redis.
        self.redis_stats = RedisStats()
        self._channel_prefix = channel_prefix(prefix)
        # Set while running (between __aenter__ and __aexit__); the link and the counts
        # are made anew at each start and stay, stopped, after the last one.
        self._worker_id = b""
        self._worker_hex = ""
        self._client: coredis.Redis[bytes] | None = None
        self._link: PubSubLink | None = None
        self._counts: MemberCounts | None = None
        self._stacks: tuple[AsyncExitStack, AsyncExitStack] | None = None
        self._running = False

    def __repr__(self) -> str:
        return f"RedisBroadcastGroup({redact(self.url)!r}, prefix={self.prefix!r})"

    # -- public state --------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """True while this worker is connected to Redis and broadcasts can be sent."""
        return self._running and self._link is not None and self._link.up

    @property
    def worker_id(self) -> str:
        """This worker's id in Redis (hex; new each time the group is started)."""
        return self._worker_hex

    def channel(self, group: str) -> str:
        """The Redis channel that carries ``group``."""
        return self._channel_prefix + group

    # -- lifespan ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect to Redis and start the pub/sub reader and the heartbeat.

        Waits up to ``connect_timeout`` for the first connection, then raises
        :class:`BroadcastUnavailableError`.
        """
        if self._running:
            raise RuntimeError(f"{self!r} is already running; one App may enter it at a time")
        self._worker_id = uuid.uuid4().bytes
        self._worker_hex = self._worker_id.hex()
        client_stack = AsyncExitStack()
        task_stack = AsyncExitStack()
        try:
            client = open_client(
                self.url,
                connect_timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
            )
            # Each run's counts are written only while that run's link is up.
            counts = self._counts = MemberCounts(
                client,
                prefix=self.prefix,
                worker_hex=self._worker_hex,
                heartbeat_ttl=self.heartbeat_ttl,
                stats=self.redis_stats,
                member_count=self.member_count,
                groups=self.groups,
                writable=lambda: self._running and link.up,
            )
            link = self._link = PubSubLink(
                client,
                url=self.url,
                channel_prefix=self._channel_prefix,
                command_timeout=self.command_timeout,
                heartbeat_ttl=self.heartbeat_ttl,
                reconnect_max_delay=self.reconnect_max_delay,
                stats=self.redis_stats,
                wanted=self._wanted,
                has_members=lambda group: group in self._groups,
                on_message=self._received,
                on_connected=counts.register_or_retry_later,
            )
            await client_stack.enter_async_context(client)
            self._client = client
            tg = await task_stack.enter_async_context(anyio.create_task_group())
            task_stack.callback(tg.cancel_scope.cancel)
            self._running = True
            tg.start_soon(link.run)
            tg.start_soon(counts.run_housekeeping)
            with anyio.move_on_after(self.connect_timeout):
                await link.wait_ready()
            if not link.up:
                raise BroadcastUnavailableError(
                    f"could not connect to Redis at {redact(self.url)} within "
                    f"{self.connect_timeout:g}s: {link.last_error!r}"
                )
        except BaseException:
            # (The stacks hold task groups: closing them inside a new cancel scope would
            # break the nesting of scopes, so no shield here.)
            self._running = False
            try:
                await task_stack.aclose()
            finally:
                self._client = None
                await client_stack.aclose()
            raise
        self._stacks = (task_stack, client_stack)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the tasks, remove this worker's counts and heartbeat from Redis, close.

        Members still subscribed stay members of this (now local-only, unavailable)
        group; broadcasts raise :class:`BroadcastUnavailableError`.
        """
        stacks = self._stacks
        link, counts = self._link, self._counts
        if stacks is None or link is None or counts is None:
            return
        self._stacks = None
        task_stack, client_stack = stacks
        self._running = False
        was_up = await link.shut_down()
        try:
            await task_stack.aclose()  # the pub/sub connection unsubscribes as it closes
        finally:
            try:
                if was_up:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(self.command_timeout):
                        await counts.unregister()
            finally:
                self._client = None
                await client_stack.aclose()

    # -- what the link asks of the group ---------------------------------------------------

    def _wanted(self) -> set[str]:
        return set(self._groups) if self._running else set()

    def _received(self, group: str, data: bytes) -> None:
        decoded = _wire.decode(data)
        if decoded is None:
            self.redis_stats.ignored += 1
            return
        if decoded.origin == self._worker_id:
            return  # our own broadcast: already delivered locally
        self.redis_stats.received += 1
        self.deliver_local(group, decoded.message, decoded.exclude)

    # -- hooks of BroadcastGroup ----------------------------------------------------------------

    async def _group_opened(self, group: str) -> None:
        if self._counts is not None:
            self._counts.mark_changed(group)
        if self._link is not None:
            await self._link.wait_subscribed(group)

    def _group_closed(self, group: str) -> None:
        # Sync (it runs inside fan-outs too): the reconciler task sends the UNSUBSCRIBE.
        if self._link is not None:
            self._link.reconcile_soon()

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

    async def _publish(self, group: str, message: Message, exclude: Subscriber | None) -> int:
        client = self._client
        link = self._link
        if client is None or link is None or not self._running:
            self.redis_stats.publish_failures += 1
            raise BroadcastUnavailableError(
                f"{self!r} is not running: the App starts it at lifespan startup (is the "
                "ASGI server's lifespan support turned off?)"
            )
        if not link.up:
            self.redis_stats.publish_failures += 1
            raise BroadcastUnavailableError(
                f"Redis at {redact(self.url)} is unreachable (reconnecting); the broadcast "
                f"to {group!r} was not sent: {link.last_error!r}"
            )
        try:
            await client.publish(self.channel(group), self._encode(message, exclude))
        except REDIS_ERRORS as exc:
            self.redis_stats.publish_failures += 1
            raise BroadcastUnavailableError(
                f"PUBLISH to Redis at {redact(self.url)} failed; the broadcast to {group!r} "
                f"was not delivered: {exc!r}"
            ) from exc
        self.redis_stats.published += 1
        return self.deliver_local(group, message, exclude)

    def _encode(self, message: Message, exclude: Subscriber | None) -> bytes:
        return _wire.encode(message, self._worker_id, exclude)

    # -- membership ----------------------------------------------------------------------------

    async def subscribe(self, group: str, ws: Subscriber) -> None:
        """Add ``ws`` to ``group``. Idempotent.

        The first local member of a group makes this worker SUBSCRIBE to the group's
        channel. This returns once Redis acknowledged that and this worker's member count
        is written (or after ``command_timeout``), so broadcasts from any worker reach
        ``ws`` and :meth:`total_member_count` counts it. While Redis is unreachable it
        returns at once; the subscription is made when the connection is back.
        """
        g = self._groups.get(group)
        if g is not None and ws in g.members:
            return
        await super().subscribe(group, ws)
        counts, link = self._counts, self._link
        if counts is None or link is None:
            return
        counts.mark_changed(group)
        if not link.up:
            return
        # Also when another member opened the group and its SUBSCRIBE is still pending.
        await link.wait_subscribed(group)
        counts = self._counts  # (the group may have been restarted meanwhile)
        assert counts is not None
        with anyio.move_on_after(self.command_timeout):
            await counts.flush_or_retry_later()

    def _remove(self, group: str, ws: Subscriber) -> None:
        # Every removal passes here, including slow consumers dropped during a fan-out
        # (sync code): the count is written by the housekeeping task, without waiting.
        g = self._groups.get(group)
        if g is not None and ws in g.members and self._counts is not None:
            self._counts.write_soon(group)
        super()._remove(group, ws)

    # -- member counts ---------------------------------------------------------------------------

    async def total_member_count(self, group: str) -> int:
        """How many members ``group`` has in every worker.

        This worker's count is exact; other workers' counts are as they last wrote them
        (each writes at once on every change). Workers whose heartbeat expired are not
        counted and their entries are removed. Raises :class:`BroadcastUnavailableError` if
        Redis does not answer.
        """
        local = self.member_count(group)
        counts = self._counts
        if self._client is None or counts is None or not self._running:
            raise BroadcastUnavailableError(
                f"{self!r} is not running (the App starts it at lifespan startup)"
            )
        try:
            return await counts.total(group, local)
        except REDIS_ERRORS as exc:
            raise BroadcastUnavailableError(
                f"could not read member counts from Redis at {redact(self.url)}: {exc!r}"
            ) from exc
