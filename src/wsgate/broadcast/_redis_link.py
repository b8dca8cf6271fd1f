"""The pub/sub link: this worker's one connection to Redis pub/sub.

:class:`PubSubLink` opens the connection, reconnects with a capped, jittered exponential
backoff, keeps this worker subscribed to exactly the channels of the groups that have
local members (one task sends every SUBSCRIBE and UNSUBSCRIBE), lets a new member wait
for Redis's acknowledgement, and drains coredis's unbounded buffer into a callback as
fast as messages arrive. :attr:`PubSubLink.up` says whether broadcasts can be sent.

It knows nothing of members, payloads or counts: what to subscribe to, what to do with
a message and what to write once connected come in through the constructor.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from coredis.patterns.pubsub import PubSub

from ._redis_client import REDIS_ERRORS, redact
from ._redis_stats import RedisStats

if TYPE_CHECKING:
    import coredis

__all__ = ["PubSubLink", "channel_prefix", "reconnect_delay"]

logger = logging.getLogger("wsgate.broadcast.redis")


def channel_prefix(prefix: str) -> str:
    """What the channel of every group starts with (``{prefix}:g:``)."""
    return f"{prefix}:g:"


def reconnect_delay(
    attempt: int, cap: float, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds to wait before reconnection attempt ``attempt + 1`` (``attempt`` counts from
    0, the first failure)."""
    # Exponential backoff from 50 ms, capped, with jitter (workers do not stampede).
    delay: float = min(cap, 0.05 * 2 ** min(attempt, 30))
    return delay * uniform(0.5, 1.0)


def _leaf(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups, for messages."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class PubSubLink:
    """The pub/sub connection of one running :class:`~wsgate.broadcast.redis.RedisBroadcastGroup`
    (one instance per start of the group).

    :param client: The group's client; the link takes a connection from its pool.
    :param channel_prefix: See :func:`channel_prefix`; a group's channel is the prefix
        followed by its name.
    :param wanted: The groups to be subscribed to now (called after every change).
    :param has_members: Whether a group still has local members (a late acknowledgement
        is only worth a warning then).
    :param on_message: Called with the group and the payload of every message received
        on a group's channel. Must not block; an exception is logged and counted.
    :param on_connected: Awaited each time the connection is (re)established, once the
        subscriptions are made and :attr:`up` is true, before the link reports it.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        url: str,
        channel_prefix: str,
        command_timeout: float,
        heartbeat_ttl: float,
        reconnect_max_delay: float,
        stats: RedisStats,
        wanted: Callable[[], set[str]],
        has_members: Callable[[str], bool],
        on_message: Callable[[str, bytes], None],
        on_connected: Callable[[], Awaitable[None]],
    ) -> None:
        self._client = client
        self._url = url
        self._channel_prefix = channel_prefix
        self._channel_prefix_b = channel_prefix.encode()
        self._command_timeout = command_timeout
        self._heartbeat_ttl = heartbeat_ttl
        self._reconnect_max_delay = reconnect_max_delay
        self._stats = stats
        self._wanted = wanted
        self._has_members = has_members
        self._on_message = on_message
        self._on_connected = on_connected
        self._pubsub: PubSub[bytes] | None = None
        self._up = False
        self._ever_up = False
        self._down_since = 0.0
        self._last_error: BaseException | None = None
        self._ready = anyio.Event()
        # Subscriptions on the current pub/sub connection; changed by one task only.
        self._subscribed: set[str] = set()
        self._sub_waiters: dict[str, anyio.Event] = {}
        self._reconcile_wake = anyio.Event()

    # -- state ------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        """True while the connection is established and its subscriptions are made."""
        return self._up

    @property
    def last_error(self) -> BaseException | None:
        """Why the connection was last lost or could not be opened."""
        return self._last_error

    def channel(self, group: str) -> str:
        """The Redis channel that carries ``group``."""
        return self._channel_prefix + group

    async def wait_ready(self) -> None:
        """Wait until the connection is up for the first time."""
        await self._ready.wait()

    # -- subscriptions -------------------------------------------------------------------

    async def wait_subscribed(self, group: str) -> None:
        """Wait (up to ``command_timeout``) until Redis acknowledged our SUBSCRIBE to
        ``group``'s channel; at once if it has, or if Redis is unreachable."""
        if not self._up or group in self._subscribed:
            return
        ev = self._sub_waiters.get(group)
        if ev is None:
            ev = self._sub_waiters[group] = anyio.Event()
        self.reconcile_soon()
        with anyio.move_on_after(self._command_timeout) as scope:
            await ev.wait()
        if scope.cancelled_caught and self._has_members(group):
            logger.warning("Redis did not acknowledge SUBSCRIBE %s in time", self.channel(group))

    def reconcile_soon(self) -> None:
        """Have the subscriptions brought in line with ``wanted()`` (without waiting)."""
        self._reconcile_wake.set()

    async def shut_down(self) -> bool:
        """Report the link down for good, release every waiter, and unsubscribe now,
        while acknowledgements can arrive. Returns whether the link was up. The caller
        then cancels :meth:`run`."""
        was_up = self._up
        self._up = False
        self._wake_waiters()
        pubsub = self._pubsub
        if was_up and pubsub is not None and pubsub.subscribed:
            # Unsubscribe now, while acknowledgements can arrive: closing a subscribed
            # PubSub waits for them until its timeout.
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._command_timeout):
                try:
                    await pubsub.unsubscribe()
                except REDIS_ERRORS:
                    pass
        return was_up

    # -- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the connection up until cancelled: connect, and reconnect after a failure."""
        attempt = 0
        while True:
            try:
                await self._session()
            except Exception as exc:
                was_up = self._up
                self._link_down(_leaf(exc))
                if was_up:
                    attempt = 0
                    self._down_since = anyio.current_time()
                    logger.warning(
                        "lost the Redis pub/sub connection to %s; broadcasts fail until it "
                        "is back; reconnecting: %r",
                        redact(self._url),
                        self._last_error,
                    )
                elif attempt == 0:
                    logger.warning(
                        "cannot connect to Redis at %s: %r", redact(self._url), self._last_error
                    )
                else:
                    logger.debug("reconnect attempt %d failed: %r", attempt, self._last_error)
            delay = reconnect_delay(attempt, self._reconnect_max_delay)
            attempt += 1
            await anyio.sleep(delay)

    def _link_down(self, exc: BaseException) -> None:
        self._pubsub = None
        self._stats.link_failures += 1
        self._last_error = exc
        self._up = False
        self._subscribed.clear()
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._sub_waiters = self._sub_waiters, {}
        for ev in waiters.values():
            ev.set()

    async def _session(self) -> None:
        pubsub: PubSub[bytes] = PubSub(
            self._client.connection_pool,
            ignore_subscribe_messages=True,
            retry_policy=None,  # we reconnect ourselves and resubscribe what is still needed
            subscription_timeout=self._command_timeout,
            unsubscription_timeout=min(1.0, self._command_timeout),
            max_idle_seconds=max(1.0, min(15.0, self._heartbeat_ttl)),
        )
        async with pubsub, anyio.create_task_group() as tg:
            self._pubsub = pubsub
            self._subscribed = set()
            tg.start_soon(self._read_loop, pubsub)
            await self._apply_subscriptions(pubsub)
            self._up = True
            await self._on_connected()
            if self._ever_up:
                self._stats.reconnects += 1
                logger.warning(
                    "reconnected to Redis at %s after %.1fs; resubscribed to %d groups",
                    redact(self._url),
                    anyio.current_time() - self._down_since,
                    len(self._subscribed),
                )
            self._ever_up = True
            self._ready.set()
            # The only task that SUBSCRIBEs and UNSUBSCRIBEs on this connection.
            while True:
                self._reconcile_wake = anyio.Event()
                await self._apply_subscriptions(pubsub)
                if self._subscribed == self._wanted():
                    await self._reconcile_wake.wait()

    async def _apply_subscriptions(self, pubsub: PubSub[bytes]) -> None:
        """Make this connection's subscriptions match the groups with local members."""
        drop = self._subscribed - self._wanted()
        if drop:
            # Forget them first: a member joining meanwhile waits for a new SUBSCRIBE.
            self._subscribed -= drop
            await pubsub.unsubscribe(*(self.channel(g) for g in drop))
        add = self._wanted() - self._subscribed
        if add:
            await pubsub.subscribe(*(self.channel(g) for g in add))
            self._subscribed |= add
            for group in add:
                ev = self._sub_waiters.pop(group, None)
                if ev is not None:
                    ev.set()

    async def _read_loop(self, pubsub: PubSub[bytes]) -> None:
        # Drains coredis's (unbounded) buffer as fast as messages arrive: each one is
        # handed to the members' bounded outboxes without waiting.
        while True:
            message = await pubsub.get_message()
            if message is None or message["type"] != "message":
                continue
            channel = message["channel"]
            data = message["data"]
            if isinstance(channel, bytes) and isinstance(data, bytes):
                try:
                    self._received(channel, data)
                except Exception:
                    self._stats.ignored += 1
                    logger.exception("could not deliver a message from %r", channel)

    def _received(self, channel: bytes, data: bytes) -> None:
        if not channel.startswith(self._channel_prefix_b):
            self._stats.ignored += 1
            return
        group = channel[len(self._channel_prefix_b) :].decode(errors="replace")
        self._on_message(group, data)
