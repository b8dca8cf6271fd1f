"""How a :class:`~wsgate.Presence` spans workers through Redis/Valkey (the layout and
the protocol are documented in :mod:`wsgate.presence`).

:class:`RedisPresenceStore` holds the client, the pub/sub link of the groups with local
subscribers (:class:`~wsgate.broadcast._redis_link.PubSubLink`), the scripts that change
a group's entries and publish the change, and the housekeeping task: heartbeat, retries
of failed writes, removal of dead workers' entries.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from coredis.tokens import PureToken

from ._presence_base import PresenceUnavailableError, Record
from .broadcast._redis_client import REDIS_ERRORS, open_client, redact
from .broadcast._redis_link import PubSubLink
from .broadcast._redis_stats import RedisStats

if TYPE_CHECKING:
    import coredis
    from coredis.commands.script import Script

    from .presence import Presence, _Local, _Watch

__all__ = ["RedisPresenceStore", "parse_message"]

logger = logging.getLogger("wsgate.presence")

# KEYS: the group's entries hash, keys hash, and the writing worker's refs set.
# ARGV[1]: the group's channel. Every change is PUBLISHed as one message.
_COMMON = """
local function keyof(v)
  local c = string.find(v, ':', 1, true)
  return string.sub(v, c + 1, c + tonumber(string.sub(v, 1, c - 1)))
end
local function rec(op, ref, v) return op .. ref .. ' ' .. #v .. ':' .. v end
local function drop_key(k)
  if redis.call('HINCRBY', KEYS[2], k, -1) <= 0 then redis.call('HDEL', KEYS[2], k) end
end
local function put(out, ref, v)
  local old = redis.call('HGET', KEYS[1], ref)
  if old == v then return end
  if old then
    drop_key(keyof(old))
    out[#out + 1] = rec('-', ref, old)
  end
  redis.call('HSET', KEYS[1], ref, v)
  redis.call('HINCRBY', KEYS[2], keyof(v), 1)
  redis.call('SADD', KEYS[3], ref)
  out[#out + 1] = rec('+', ref, v)
end
local function del(out, ref)
  redis.call('SREM', KEYS[3], ref)
  local old = redis.call('HGET', KEYS[1], ref)
  if not old then return end
  redis.call('HDEL', KEYS[1], ref)
  drop_key(keyof(old))
  out[#out + 1] = rec('-', ref, old)
end
local function publish(out)
  if #out > 0 then redis.call('PUBLISH', ARGV[1], 'P1\\n' .. table.concat(out)) end
  return #out
end
"""

# ARGV[2], ARGV[3], ...: (ref, value) pairs; an empty value removes the entry.
_WRITE = (
    _COMMON
    + """
local out = {}
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] ~= '' then put(out, ARGV[i], ARGV[i + 1]) else del(out, ARGV[i]) end
end
return publish(out)
"""
)

#: The most entries one write script changes (a longer script blocks the server longer).
MAX_BATCH = 500

# Make the worker's entries in the group exactly ARGV[2], ARGV[3], ... (ref, value pairs):
# how a worker writes its entries again, and how a dead worker's entries are removed.
_SYNC = (
    _COMMON
    + """
local wanted = {}
for i = 2, #ARGV, 2 do wanted[ARGV[i]] = ARGV[i + 1] end
local out = {}
for _, ref in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not wanted[ref] then del(out, ref) end
end
for i = 2, #ARGV, 2 do put(out, ARGV[i], ARGV[i + 1]) end
return publish(out)
"""
)

# KEYS[1]: the entries hash; ARGV: the channel, the marker. The entries, with the marker
# published at the same instant: changes received before it are in the answer.
_SNAPSHOT = """
local entries = redis.call('HGETALL', KEYS[1])
redis.call('PUBLISH', ARGV[1], 'M' .. ARGV[2])
return entries
"""


def parse_message(data: bytes) -> list[Record] | bytes | None:
    """A message of a group's channel: its records, a marker's token (bytes), or None
    (not ours)."""
    if data[:1] == b"M":
        return data[1:]
    if not data.startswith(b"P1\n"):
        return None
    records: list[Record] = []
    i = 3
    end = len(data)
    while i < end:
        op = data[i : i + 1]
        space = data.index(b" ", i)
        colon = data.index(b":", space)
        n = int(data[space + 1 : colon])
        start = colon + 1
        records.append(
            ("+" if op == b"+" else "-", data[i + 1 : space].decode(), data[start : start + n])
        )
        i = start + n
    return records


def _pairs(result: object) -> dict[str, bytes]:
    if isinstance(result, dict):
        items = list(result.items())
    elif isinstance(result, list | tuple):
        items = list(zip(result[::2], result[1::2], strict=True))
    else:
        raise TypeError(f"unexpected answer from the presence snapshot script: {result!r}")
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v if isinstance(v, bytes) else str(v).encode()
        )
        for k, v in items
    }


class _Batch:
    """The entries of one group waiting to be written (in order of their first change)."""

    __slots__ = ("done", "numbers", "running")

    def __init__(self) -> None:
        self.numbers: dict[int, None] = {}
        # Set once the script that carries the entries waiting now is answered.
        self.done = anyio.Event()
        self.running = False


class RedisPresenceStore:
    """A :class:`~wsgate.Presence`'s entries and changes in one Redis/Valkey server."""

    def __init__(
        self,
        presence: Presence,
        url: str,
        local: _Local,
        *,
        received: Callable[[str, Sequence[Record]], None],
        marker_received: Callable[[str, bytes], None],
        apply_snapshot: Callable[[str, _Watch, dict[str, bytes]], None],
    ) -> None:
        self._p = presence
        self._local = local
        self._received = received
        self._marker_received = marker_received
        self._apply_snapshot = apply_snapshot
        self.url = url
        prefix = presence.prefix
        self._base = f"{prefix}:presence"
        self._channel_prefix = f"{prefix}:presence:"
        #: Counters of the pub/sub link.
        self.link_stats = RedisStats()
        self.worker_id = ""
        self._client: coredis.Redis[bytes] | None = None
        self._link: PubSubLink | None = None
        self._scripts: tuple[Script[bytes], Script[bytes], Script[bytes]] | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._running = False
        # Groups this worker id is registered in (its groups set), and groups whose
        # write failed (written again by the housekeeping task).
        self._registered: set[str] = set()
        self._dirty: set[str] = set()
        self._locks: dict[str, anyio.Lock] = {}
        self._batches: dict[str, _Batch] = {}
        self._wake = anyio.Event()
        self._ever_connected = False

    def describe(self) -> str:
        return f"broker={redact(self.url)!r}"

    # -- keys ------------------------------------------------------------------------------

    def _group_key(self, group: str, what: str) -> str:
        return f"{self._base}:{{{group}}}:{what}"

    def _refs_key(self, group: str, worker: str) -> str:
        return self._group_key(group, f"w:{worker}")

    def _heartbeat_key(self, worker: str) -> str:
        return f"{self._base}:worker:{worker}"

    def _groups_key(self, worker: str) -> str:
        return f"{self._base}:worker:{worker}:groups"

    @property
    def _workers_key(self) -> str:
        return f"{self._base}:workers"

    def channel(self, group: str) -> str:
        return self._channel_prefix + group

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self._p.heartbeat_interval * 3000))

    # -- lifespan -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the client (before :meth:`start`; :meth:`close` closes it)."""
        p = self._p
        client = open_client(
            self.url, connect_timeout=p.connect_timeout, command_timeout=p.command_timeout
        )
        await client.__aenter__()
        self._client = client

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Start the pub/sub link and the housekeeping in ``tg``, and wait up to
        ``connect_timeout`` for the connection."""
        p = self._p
        self.worker_id = secrets.token_hex(8)
        self._registered = set()
        self._ever_connected = False
        client = self._ready_client()
        self._scripts = (
            client.register_script(_WRITE),
            client.register_script(_SYNC),
            client.register_script(_SNAPSHOT),
        )
        link = self._link = PubSubLink(
            client,
            url=self.url,
            channel_prefix=self._channel_prefix,
            command_timeout=p.command_timeout,
            heartbeat_ttl=p.heartbeat_interval * 3,
            reconnect_max_delay=min(5.0, p.heartbeat_interval),
            stats=self.link_stats,
            wanted=lambda: set(self._local.watches) if self._running else set(),
            has_members=lambda group: group in self._local.watches,
            on_message=self._message,
            on_connected=self._connected,
        )
        self._tg = tg
        self._running = True
        tg.start_soon(link.run)
        tg.start_soon(self._housekeeping)
        with anyio.move_on_after(p.connect_timeout):
            await link.wait_ready()
        if not link.up:
            self._running = False
            raise PresenceUnavailableError(
                f"could not connect to Redis at {redact(self.url)} within "
                f"{p.connect_timeout:g}s: {link.last_error!r}"
            )

    async def stop(self) -> None:
        """Remove this worker's entries, heartbeat and registration, and unsubscribe;
        the caller then cancels the tasks and calls :meth:`close`."""
        link = self._link
        if not self._running:
            return
        self._running = False
        if link is not None and link.up:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._p.command_timeout):
                try:
                    await self._unregister()
                except REDIS_ERRORS as exc:
                    logger.warning("could not remove this worker's presence entries: %r", exc)
        if link is not None:
            await link.shut_down()

    async def close(self) -> None:
        """Close the client (once the tasks are cancelled)."""
        self._running = False
        await self._close_client()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # (No shield: the client's pool holds a task group entered before any scope
            # opened here.)
            await client.__aexit__(None, None, None)

    async def _unregister(self) -> None:
        worker = self.worker_id
        groups = self._registered | set(self._local.entries)
        for group in groups:
            await self._sync(group, worker, [])
        self._count()
        async with self._ready_client().pipeline(transaction=False) as pipe:
            pipe.delete([self._heartbeat_key(worker), self._groups_key(worker)])
            pipe.srem(self._workers_key, [worker])
        self._registered.clear()

    # -- commands --------------------------------------------------------------------------

    def _ready_client(self) -> coredis.Redis[bytes]:
        client = self._client
        if client is None:
            raise PresenceUnavailableError(
                f"{self._p!r} is not running (the App starts it at lifespan startup)"
            )
        return client

    def _count(self) -> None:
        """Count one round trip."""
        self._p.stats.commands += 1

    def _lock(self, group: str) -> anyio.Lock:
        lock = self._locks.get(group)
        if lock is None:
            lock = self._locks[group] = anyio.Lock()
        return lock

    def _release_lock(self, group: str, lock: anyio.Lock) -> None:
        if (
            not lock.locked()
            and not lock.statistics().tasks_waiting
            and group not in self._local.entries
        ):
            if self._locks.get(group) is lock:
                del self._locks[group]

    async def write(self, group: str, number: int) -> None:
        """Make this worker's entry ``number`` in ``group`` in Redis what it is locally.

        Writes to one group are sent one script at a time, in order, by a task of their
        own; the entries changed meanwhile go together in the next script (so concurrent
        changes cost one round trip per batch, not one each). Returns once the script
        that carries this change is answered; a failure is counted, logged and retried
        by the housekeeping task."""
        if not self._running or self._tg is None:
            raise RuntimeError(
                f"{self._p!r} is not running (the App starts it at lifespan startup)"
            )
        batch = self._batches.get(group)
        if batch is None:
            batch = self._batches[group] = _Batch()
        batch.numbers[number] = None
        done = batch.done
        if not batch.running:
            batch.running = True
            self._tg.start_soon(self._send_writes, group, batch)
        await done.wait()

    async def _send_writes(self, group: str, batch: _Batch) -> None:
        try:
            while batch.numbers:
                numbers = list(batch.numbers)[:MAX_BATCH]
                for n in numbers:
                    del batch.numbers[n]
                done = batch.done
                if not batch.numbers:
                    batch.done = anyio.Event()
                lock = self._lock(group)
                try:
                    async with lock:
                        await self._write(group, numbers)
                except REDIS_ERRORS as exc:
                    self._p.stats.write_failures += 1
                    logger.debug("could not write presence of %r: %r", group, exc)
                    self.mark_dirty(group)
                finally:
                    self._release_lock(group, lock)
                    if done is not batch.done:
                        done.set()
        finally:
            batch.running = False
            batch.done.set()  # (also when cancelled at shutdown: nobody waits forever)
            if self._batches.get(group) is batch and not batch.numbers:
                del self._batches[group]

    async def _write(self, group: str, numbers: list[int]) -> None:
        client = self._ready_client()
        assert self._scripts is not None
        worker = self.worker_id
        local = self._local.entries.get(group, {})
        if group not in self._registered and local:
            self._count()
            await client.sadd(self._groups_key(worker), [group])
            self._registered.add(group)
        args: list[str | bytes] = [self.channel(group)]
        for number in numbers:
            args += [f"{worker}:{number}", local.get(number, b"")]
        self._count()
        await self._scripts[0](
            keys=[
                self._group_key(group, "entries"),
                self._group_key(group, "keys"),
                self._refs_key(group, worker),
            ],
            args=args,
            client=client,
        )

    async def _sync(self, group: str, worker: str, entries: list[tuple[str, bytes]]) -> int:
        """Make ``worker``'s entries in ``group`` exactly ``entries``; the number of
        changes published."""
        client = self._ready_client()
        assert self._scripts is not None
        args: list[str | bytes] = [self.channel(group)]
        for ref, value in entries:
            args += [ref, value]
        self._count()
        changed: object = await self._scripts[1](
            keys=[
                self._group_key(group, "entries"),
                self._group_key(group, "keys"),
                self._refs_key(group, worker),
            ],
            args=args,
            client=client,
        )
        return int(changed) if isinstance(changed, int) else 0

    async def _sync_own(self, group: str) -> None:
        worker = self.worker_id
        local = self._local.entries.get(group, {})
        if group not in self._registered and local:
            self._count()
            await self._ready_client().sadd(self._groups_key(worker), [group])
            self._registered.add(group)
        await self._sync(group, worker, [(f"{worker}:{n}", v) for n, v in local.items()])

    def mark_dirty(self, group: str) -> None:
        """Have ``group``'s entries of this worker written again in the background."""
        self._dirty.add(group)
        self._wake.set()

    # -- reads -----------------------------------------------------------------------------

    async def values(self, group: str) -> list[bytes]:
        try:
            self._count()
            return list(await self._ready_client().hvals(self._group_key(group, "entries")))
        except REDIS_ERRORS as exc:
            raise PresenceUnavailableError(
                f"could not read presence group {group!r} from Redis at {redact(self.url)}: {exc!r}"
            ) from exc

    async def count(self, group: str) -> int:
        try:
            self._count()
            return int(await self._ready_client().hlen(self._group_key(group, "keys")))
        except REDIS_ERRORS as exc:
            raise PresenceUnavailableError(
                f"could not count presence group {group!r} in Redis at {redact(self.url)}: {exc!r}"
            ) from exc

    # -- mirrors of groups with local subscribers -----------------------------------------

    def unwatched(self) -> None:
        """A group lost its last local subscriber: UNSUBSCRIBE (in the background)."""
        if self._link is not None:
            self._link.reconcile_soon()

    async def load(self, group: str, w: _Watch) -> None:
        """SUBSCRIBE to ``group``'s channel, read its entries (with a marker), and apply
        them (see the module doc of :mod:`wsgate.presence`)."""
        link = self._link
        if link is None or not link.up:
            raise PresenceUnavailableError(
                f"Redis at {redact(self.url)} is unreachable (reconnecting); cannot read "
                f"presence group {group!r}"
                + (f": {link.last_error!r}" if link is not None and link.last_error else "")
            )
        link.reconcile_soon()
        await link.wait_subscribed(group)
        token = secrets.token_hex(8).encode()
        w.token = token
        w.marker_seen = False
        w.snapshot_applied = False
        w.buffer = []
        assert self._scripts is not None
        try:
            self._count()
            result: object = await self._scripts[2](
                keys=[self._group_key(group, "entries")],
                args=[self.channel(group), token],
                client=self._ready_client(),
            )
        except REDIS_ERRORS as exc:
            if w.token == token:
                w.token = None
            raise PresenceUnavailableError(
                f"could not read presence group {group!r} from Redis at {redact(self.url)}: {exc!r}"
            ) from exc
        if self._local.watches.get(group) is not w or w.token != token:
            return  # unsubscribed meanwhile, or read again (after a reconnect)
        self._apply_snapshot(group, w, _pairs(result))

    async def _reload(self, group: str, w: _Watch) -> None:
        try:
            await self.load(group, w)
        except PresenceUnavailableError as exc:
            logger.warning("could not read presence group %r again: %r", group, exc)

    def _message(self, group: str, data: bytes) -> None:
        parsed = parse_message(data)
        if parsed is None:
            self.link_stats.ignored += 1
        elif isinstance(parsed, bytes):
            self._marker_received(group, parsed)
        else:
            self.link_stats.received += 1
            self._received(group, parsed)

    # -- this worker ---------------------------------------------------------------------

    async def _connected(self) -> None:
        """The pub/sub link is (again) up: register, write this worker's entries, and
        read the mirrored groups again (a diff for their subscribers)."""
        try:
            await self._register()
        except REDIS_ERRORS as exc:
            logger.warning("could not register this worker's presence in Redis: %r", exc)
            self._dirty |= set(self._local.entries)
            self._wake.set()
        if self._ever_connected and self._tg is not None:
            for group, w in list(self._local.watches.items()):
                self._tg.start_soon(self._reload, group, w)
        self._ever_connected = True

    async def _beat_if_alive(self, client: Any) -> bool:
        """Refresh this worker's heartbeat if it still has one; if it expired (a long
        pause, or a broker that lost it), register again under a new id and say so."""
        self._count()
        alive = await client.set(
            self._heartbeat_key(self.worker_id),
            self._beat(),
            px=self._ttl_ms,
            condition=PureToken.XX,
        )
        if not alive:
            await self._renew()
        return bool(alive)

    async def _register(self) -> None:
        client = self._ready_client()
        if self._ever_connected:
            if not await self._beat_if_alive(client):
                return
        else:
            await self._beat_now(client)
        for group in list(self._local.entries):
            await self._sync_own(group)
        self._dirty.clear()

    def _beat(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    async def _beat_now(self, client: coredis.Redis[bytes]) -> None:
        self._count()
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(self._heartbeat_key(self.worker_id), self._beat(), px=self._ttl_ms)
            pipe.sadd(self._workers_key, [self.worker_id])

    async def _renew(self) -> None:
        """Our heartbeat expired (others may be removing our entries): write them again
        under a new id, then remove what is left under the old one."""
        old, old_groups = self.worker_id, self._registered | set(self._local.entries)
        self.worker_id = secrets.token_hex(8)
        self._registered = set()
        logger.warning(
            "this worker's presence heartbeat had expired; writing its entries again as %s",
            self.worker_id,
        )
        client = self._ready_client()
        await self._beat_now(client)
        for group in list(self._local.entries):
            await self._sync_own(group)
        self._dirty.clear()
        await self._remove_worker(old, old_groups)

    async def _remove_worker(self, worker: str, groups: set[str] | None = None) -> int:
        """Remove every entry of ``worker`` (publishing the leaves); how many."""
        client = self._ready_client()
        if groups is None:
            self._count()
            groups = {g.decode() for g in await client.smembers(self._groups_key(worker))}
        removed = 0
        for group in groups:
            removed += await self._sync(group, worker, [])
        self._count()
        async with client.pipeline(transaction=False) as pipe:
            pipe.delete([self._groups_key(worker)])
            pipe.srem(self._workers_key, [worker])
        return removed

    async def _remove_dead_workers(self) -> None:
        client = self._ready_client()
        self._count()
        workers = [w.decode() for w in await client.smembers(self._workers_key)]
        others = [w for w in workers if w != self.worker_id]
        if not others:
            return
        self._count()
        async with client.pipeline(transaction=False) as pipe:
            checks = [pipe.exists([self._heartbeat_key(w)]) for w in others]
        for worker, check in zip(others, checks, strict=True):
            if await check:
                continue
            removed = await self._remove_worker(worker)
            self._p.stats.workers_cleaned += 1
            self._p.stats.entries_cleaned += removed
            logger.warning(
                "removed %d presence entries of worker %s (its heartbeat expired)", removed, worker
            )

    async def _housekeeping(self) -> None:
        """Every heartbeat interval: beat, write failed groups again, remove dead workers."""
        interval = self._p.heartbeat_interval
        next_beat = anyio.current_time() + interval
        while True:
            with anyio.move_on_after(max(0.0, next_beat - anyio.current_time())):
                await self._wake.wait()
            self._wake = anyio.Event()
            link = self._link
            if not self._running or link is None or not link.up or not self._ever_connected:
                next_beat = anyio.current_time() + interval
                continue
            try:
                if anyio.current_time() >= next_beat:
                    next_beat = anyio.current_time() + interval
                    await self._beat_if_alive(self._ready_client())
                    await self._remove_dead_workers()
                dirty, self._dirty = self._dirty, set()
                try:
                    for group in dirty:
                        lock = self._lock(group)
                        async with lock:
                            await self._sync_own(group)
                        self._release_lock(group, lock)
                        dirty = dirty - {group}
                finally:
                    self._dirty |= dirty
            except REDIS_ERRORS as exc:
                self._p.stats.write_failures += 1
                logger.debug("presence housekeeping failed: %r", exc)
                next_beat = min(next_beat, anyio.current_time() + min(1.0, interval))
            except Exception:
                logger.exception("wsgate presence housekeeping failed")
                next_beat = anyio.current_time() + interval
