"""Member counts across workers, kept in Redis.

One hash per group, ``{prefix}:m:{group}``, with one field per worker id holding that
worker's local count, and one heartbeat key per worker, ``{prefix}:w:{worker id}``, with a
TTL refreshed every third of it. :class:`MemberCounts` writes this worker's changed
counts (serialised, absolute values), registers the worker after every (re)connect,
removes its counts and heartbeat at shutdown, adds up every worker's count (removing the
entries of workers whose heartbeat expired), and runs the housekeeping task that beats
the heartbeat and retries failed writes.

It knows nothing of the pub/sub connection: the local counts and whether Redis can be
written to come in through the constructor.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import anyio
from coredis.tokens import PureToken

from ._redis_client import REDIS_ERRORS
from ._redis_stats import RedisStats

if TYPE_CHECKING:
    import coredis

__all__ = ["MemberCounts", "heartbeat_key", "members_key"]

logger = logging.getLogger("wsgate.broadcast.redis")


def members_key(prefix: str, group: str) -> str:
    """The hash of ``group``'s member count per worker."""
    return f"{prefix}:m:{group}"


def heartbeat_key(prefix: str, worker_hex: str) -> str:
    """The heartbeat key of a worker (it expires when the worker stops beating)."""
    return f"{prefix}:w:{worker_hex}"


# Removes the fields of workers whose heartbeat key is gone (checked atomically, so a
# worker that has just come back is not removed). KEYS: the hash, then heartbeat keys;
# ARGV: the matching worker ids.
_CLEANUP_SCRIPT = """
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i - 1])
  end
end
return removed
"""


class MemberCounts:
    """This worker's member counts in Redis, for one start of a
    :class:`~wsgate.broadcast.redis.RedisBroadcastGroup`.

    :param client: The group's client.
    :param worker_hex: This worker's id (the field of its counts, the name of its heartbeat).
    :param member_count: This worker's count of a group.
    :param groups: The groups that have local members.
    :param writable: Whether Redis can be written to now (the group runs and its pub/sub
        link is up); writes wait for it, the next (re)connect rewrites everything.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        prefix: str,
        worker_hex: str,
        heartbeat_ttl: float,
        stats: RedisStats,
        member_count: Callable[[str], int],
        groups: Callable[[], Iterable[str]],
        writable: Callable[[], bool],
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._worker_hex = worker_hex
        self._heartbeat_ttl = heartbeat_ttl
        self._stats = stats
        self._member_count = member_count
        self._groups = groups
        self._writable = writable
        # Member counts to write to Redis, serialised by a lock.
        self._dirty: set[str] = set(groups())
        self._written: set[str] = set()
        self._lock = anyio.Lock()
        self._housekeeping_wake = anyio.Event()

    def _members_key(self, group: str) -> str:
        return members_key(self._prefix, group)

    # -- changes -----------------------------------------------------------------------------

    def mark_changed(self, group: str) -> None:
        """Note that the local count of ``group`` changed (written at the next flush)."""
        self._dirty.add(group)

    def write_soon(self, group: str) -> None:
        """Note that the local count of ``group`` changed and have the housekeeping task
        write it, without waiting (for sync callers)."""
        self._dirty.add(group)
        self._poke_housekeeping()

    def _poke_housekeeping(self) -> None:
        self._housekeeping_wake.set()

    async def flush(self) -> None:
        """Write this worker's count of every changed group (serialised; absolute values).

        Raises what the client raises; the groups stay marked then.
        """
        async with self._lock:
            if not self._dirty or not self._writable():
                return
            groups, self._dirty = self._dirty, set()
            counts = {g: self._member_count(g) for g in groups}
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for group, n in counts.items():
                        if n:
                            pipe.hset(self._members_key(group), {self._worker_hex: n})
                        else:
                            pipe.hdel(self._members_key(group), [self._worker_hex])
            except BaseException:
                self._dirty |= groups
                raise
            for group, n in counts.items():
                if n:
                    self._written.add(group)
                else:
                    self._written.discard(group)

    async def flush_or_retry_later(self) -> None:
        """:meth:`flush`; if Redis fails, count it and leave the write to housekeeping."""
        try:
            await self.flush()
        except REDIS_ERRORS as exc:
            self._stats.count_write_failures += 1
            logger.debug("could not write member counts: %r", exc)
            self._poke_housekeeping()

    # -- this worker ---------------------------------------------------------------------

    async def _set_heartbeat(self, *, only_if_exists: bool) -> bool:
        value = f"{socket.gethostname()}:{os.getpid()}"
        ms = int(self._heartbeat_ttl * 1000)
        key = heartbeat_key(self._prefix, self._worker_hex)
        if only_if_exists:
            return bool(await self._client.set(key, value, px=ms, condition=PureToken.XX))
        return bool(await self._client.set(key, value, px=ms))

    async def register(self) -> None:
        """Heartbeat, then every local count: after a (re)connect Redis may have lost them."""
        await self._set_heartbeat(only_if_exists=False)
        self._dirty |= set(self._groups()) | self._written
        await self.flush()

    async def register_or_retry_later(self) -> None:
        """:meth:`register`; if Redis fails, count it, log it and leave it to housekeeping."""
        try:
            await self.register()
        except REDIS_ERRORS as exc:
            # Broadcasts work without it; the housekeeping task retries.
            self._stats.count_write_failures += 1
            logger.warning("could not write this worker's heartbeat and counts: %r", exc)
            self._poke_housekeeping()

    async def unregister(self) -> None:
        """Remove this worker's counts and heartbeat from Redis (logged if that fails)."""
        groups = self._written | set(self._groups())
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for group in groups:
                    pipe.hdel(self._members_key(group), [self._worker_hex])
                pipe.delete([heartbeat_key(self._prefix, self._worker_hex)])
        except REDIS_ERRORS as exc:
            logger.warning("could not remove this worker's counts from Redis: %r", exc)
        self._written.clear()

    # -- every worker ----------------------------------------------------------------------

    async def total(self, group: str, local: int) -> int:
        """``local`` plus the counts of ``group`` that other live workers wrote; removes
        the entries of workers whose heartbeat expired. Raises what the client raises."""
        client = self._client
        key = self._members_key(group)
        fields = await client.hgetall(key)
        others: dict[str, int] = {}
        for field, value in fields.items():
            worker = field.decode(errors="replace")
            if worker != self._worker_hex:
                try:
                    others[worker] = int(value)
                except ValueError:
                    continue
        if not others:
            return local
        workers = list(others)
        alive = await client.mget([heartbeat_key(self._prefix, w) for w in workers])
        stale = [w for w, hb in zip(workers, alive, strict=True) if hb is None]
        if stale:
            await client.eval(
                _CLEANUP_SCRIPT,
                keys=[key, *(heartbeat_key(self._prefix, w) for w in stale)],
                args=stale,
            )
        return local + sum(n for w, n in others.items() if w not in stale)

    # -- housekeeping ----------------------------------------------------------------------

    async def run_housekeeping(self) -> None:
        """Beat the heartbeat every third of its TTL and write changed counts, until
        cancelled; failed writes are retried."""
        interval = self._heartbeat_ttl / 3
        next_beat = anyio.current_time() + interval
        while True:
            with anyio.move_on_after(max(0.0, next_beat - anyio.current_time())):
                await self._housekeeping_wake.wait()
            self._housekeeping_wake = anyio.Event()
            if not self._writable():
                next_beat = anyio.current_time() + interval
                continue
            try:
                if anyio.current_time() >= next_beat:
                    next_beat = anyio.current_time() + interval
                    if not await self._set_heartbeat(only_if_exists=True):
                        # Expired (a long pause) or lost: others may have dropped our counts.
                        await self.register()
                await self.flush()
            except REDIS_ERRORS as exc:
                self._stats.count_write_failures += 1
                logger.debug("could not write heartbeat or member counts: %r", exc)
                # Retried at the next beat, or rewritten when the connection is back.
                next_beat = min(next_beat, anyio.current_time() + 1.0)
            except Exception:
                logger.exception("wsgate Redis housekeeping failed")
                next_beat = anyio.current_time() + interval
