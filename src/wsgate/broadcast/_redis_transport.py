"""How a :class:`~wsgate.BroadcastGroup` spans workers through Redis/Valkey.

:class:`RedisTransport` is what a group with a broker URL holds (the App's default group
and provider subclasses through ``App(broker=...)``, or a
:class:`~wsgate.broadcast.redis.RedisBroadcastGroup` with a URL of its own). It composes
the pub/sub link (:mod:`._redis_link`), the member counts (:mod:`._redis_counts`) and the
history (:mod:`._redis_history`), and delivers what other workers publish through the
group's :meth:`~wsgate.BroadcastGroup.deliver_local`. The design is documented in
:mod:`wsgate.broadcast.redis`.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio

from ..asgi import Message
from ..history import History, Position
from . import _wire
from ._redis_client import REDIS_ERRORS, open_client, redact
from ._redis_counts import MemberCounts
from ._redis_history import RedisHistory
from ._redis_link import PubSubLink, channel_prefix
from ._redis_stats import RedisStats
from .errors import BroadcastUnavailableError

if TYPE_CHECKING:
    import coredis

    from .memory import BroadcastGroup, Subscriber

__all__ = ["RedisTransport"]

logger = logging.getLogger("wsgate.broadcast.redis")


class RedisTransport:
    """One group's link to the other workers through one Redis/Valkey server.

    :param host: The group whose members this worker delivers to.
    :param url: ``redis://``, ``rediss://`` or ``unix://``.
    :param prefix: Prefix of every channel and key.
    :param connect_timeout: Seconds to connect (also how long startup waits).
    :param command_timeout: Seconds to wait for an answer.
    :param heartbeat_ttl: Seconds after which a silent worker's counts are ignored.
    :param reconnect_max_delay: Cap of the reconnection backoff, in seconds.
    """

    def __init__(
        self,
        host: BroadcastGroup,
        url: str,
        *,
        prefix: str = "wsgate",
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        heartbeat_ttl: float = 15.0,
        reconnect_max_delay: float = 5.0,
    ) -> None:
        if not prefix:
            raise ValueError("the broker prefix must not be empty")
        if heartbeat_ttl < 1:
            raise ValueError("heartbeat_ttl must be at least 1 second")
        self._host = host
        self.url = url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.heartbeat_ttl = heartbeat_ttl
        self.reconnect_max_delay = reconnect_max_delay
        #: Counters of the traffic with Redis.
        self.stats = RedisStats()
        self._channel_prefix = channel_prefix(prefix)
        self._history = RedisHistory(prefix)
        # Set while running (between start and stop); the link and the counts are made
        # anew at each start and stay, stopped, after the last one.
        self.worker_id = b""
        self.worker_hex = ""
        self._client: coredis.Redis[bytes] | None = None
        self._link: PubSubLink | None = None
        self._counts: MemberCounts | None = None
        self._stacks: tuple[AsyncExitStack, AsyncExitStack] | None = None
        self._running = False

    def __repr__(self) -> str:
        return f"{type(self._host).__name__}(broker={redact(self.url)!r}, prefix={self.prefix!r})"

    @property
    def available(self) -> bool:
        """True while this worker is connected and broadcasts can be sent."""
        return self._running and self._link is not None and self._link.up

    def channel(self, group: str) -> str:
        """The channel that carries ``group``."""
        return self._channel_prefix + group

    # -- lifespan ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and start the pub/sub reader and the heartbeat; waits up to
        ``connect_timeout`` for the first connection, then raises
        :class:`BroadcastUnavailableError`."""
        if self._running:
            raise RuntimeError(f"{self!r} is already running; one App may enter it at a time")
        host = self._host
        self.worker_id = uuid.uuid4().bytes
        self.worker_hex = self.worker_id.hex()
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
                worker_hex=self.worker_hex,
                heartbeat_ttl=self.heartbeat_ttl,
                stats=self.stats,
                member_count=host.member_count,
                groups=host.groups,
                writable=lambda: self._running and link.up,
            )
            link = self._link = PubSubLink(
                client,
                url=self.url,
                channel_prefix=self._channel_prefix,
                command_timeout=self.command_timeout,
                heartbeat_ttl=self.heartbeat_ttl,
                reconnect_max_delay=self.reconnect_max_delay,
                stats=self.stats,
                wanted=self._wanted,
                has_members=lambda group: bool(host.member_count(group)),
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

    async def stop(self) -> None:
        """Stop the tasks, remove this worker's counts and heartbeat, close."""
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

    # -- what the link asks --------------------------------------------------------------

    def _wanted(self) -> set[str]:
        return set(self._host.groups()) if self._running else set()

    def _received(self, group: str, data: bytes) -> None:
        decoded = _wire.decode(data)
        if decoded is None:
            self.stats.ignored += 1
            return
        if decoded.origin == self.worker_id:
            return  # our own broadcast: already delivered locally
        self.stats.received += 1
        self._host.deliver_local(group, decoded.message, decoded.exclude, decoded.offset)

    # -- membership ----------------------------------------------------------------------

    async def member_added(self, group: str, created: bool) -> None:
        """A member joined ``group`` here: SUBSCRIBE when it is the first, and return
        once Redis acknowledged that and this worker's count is written (or after
        ``command_timeout``); at once while Redis is unreachable."""
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

    def member_removed(self, group: str) -> None:
        """A member left ``group`` here (also from inside a fan-out: no waiting)."""
        if self._counts is not None:
            self._counts.write_soon(group)

    def group_closed(self, group: str) -> None:
        """The last local member left: the reconciler sends the UNSUBSCRIBE."""
        if self._link is not None:
            self._link.reconcile_soon()

    # -- publishing ----------------------------------------------------------------------

    def _ready_client(self, group: str) -> coredis.Redis[bytes]:
        client, link = self._client, self._link
        if client is None or link is None or not self._running:
            self.stats.publish_failures += 1
            raise BroadcastUnavailableError(
                f"{self!r} is not running: the App starts it at lifespan startup (is the "
                "ASGI server's lifespan support turned off?)"
            )
        if not link.up:
            self.stats.publish_failures += 1
            raise BroadcastUnavailableError(
                f"Redis at {redact(self.url)} is unreachable (reconnecting); the broadcast "
                f"to {group!r} was not sent: {link.last_error!r}"
            )
        return client

    async def publish(self, group: str, message: Message, exclude: Subscriber | None) -> None:
        """PUBLISH an encoded message once; raises :class:`BroadcastUnavailableError`."""
        client = self._ready_client(group)
        try:
            await client.publish(
                self.channel(group), _wire.encode(message, self.worker_id, exclude)
            )
        except REDIS_ERRORS as exc:
            self.stats.publish_failures += 1
            raise BroadcastUnavailableError(
                f"PUBLISH to Redis at {redact(self.url)} failed; the broadcast to {group!r} "
                f"was not delivered: {exc!r}"
            ) from exc
        self.stats.published += 1

    async def publish_history(
        self, group: str, prefix: str, exclude: Subscriber | None, config: History
    ) -> tuple[int, str]:
        """Append the frame to ``group``'s history and PUBLISH it, in one script (a frame
        is never live without being in the history, or the other way round); its offset
        and epoch."""
        client = self._ready_client(group)
        head = _wire.header(self.worker_id, exclude, history=True)
        try:
            offset, epoch = await self._history.publish(
                client, group, self.channel(group), head, prefix, config
            )
        except REDIS_ERRORS as exc:
            self.stats.publish_failures += 1
            raise BroadcastUnavailableError(
                f"publishing to Redis at {redact(self.url)} failed; the broadcast to "
                f"{group!r} was not delivered: {exc!r}"
            ) from exc
        self.stats.published += 1
        return offset, epoch

    # -- reading history -----------------------------------------------------------------

    def _ttl(self) -> float:
        config = self._host.history_config
        return config.ttl if config is not None else 300.0

    def _client_for_read(self) -> coredis.Redis[bytes]:
        if self._client is None or not self._running:
            raise BroadcastUnavailableError(
                f"{self!r} is not running (the App starts it at lifespan startup)"
            )
        return self._client

    async def position(self, group: str) -> Position:
        """The epoch and last offset of ``group``'s history."""
        try:
            client = self._client_for_read()
            return await self._history.position(client, group, self._ttl())
        except REDIS_ERRORS as exc:
            raise BroadcastUnavailableError(
                f"could not read the history of {group!r} from {redact(self.url)}: {exc!r}"
            ) from exc

    async def last(self, group: str, limit: int) -> list[tuple[int, str]]:
        """The last ``limit`` frames of ``group``, oldest first."""
        try:
            return await self._history.last(self._client_for_read(), group, limit)
        except REDIS_ERRORS as exc:
            raise BroadcastUnavailableError(
                f"could not read the history of {group!r} from {redact(self.url)}: {exc!r}"
            ) from exc

    async def since(
        self, group: str, offset: int, epoch: str
    ) -> tuple[Position, list[tuple[int, str]] | None]:
        """The current position, and the frames after ``(offset, epoch)`` (None if they
        cannot all be given)."""
        client = self._client_for_read()
        return await self._history.since(client, group, offset, epoch, self._ttl())

    # -- counts --------------------------------------------------------------------------

    async def total_member_count(self, group: str, local: int) -> int:
        """``group``'s members in every worker (this one's count is ``local``)."""
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
