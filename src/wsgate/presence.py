"""Presence: who is online in a group, across every worker.

::

    @ws_controller("/rooms/{room}")
    class Room:
        def __init__(self, presence: Presence) -> None:
            self.presence = presence

        @on_connect
        async def join(self, ws: WebSocket, room: str, user: Query[str]) -> None:
            await self.presence.subscribe(ws, room)   # presence.state, then presence.diff
            await self.presence.track(ws, room, user, {"status": "here"})

The App provides a :class:`Presence` (``presence: Presence`` in a gateway's constructor
receives it). Each (connection, group) pair is one *entry* under a *key* (a user with two
tabs is one key with two entries) with a JSON *meta*; a connection's entries are removed
when it closes. :meth:`Presence.list` and :meth:`Presence.count` read every worker's
entries; a subscriber receives ``presence.state`` at once, then ``presence.diff`` events,
at most one per group every ``diff_interval`` seconds::

    {"event": "presence.state", "data": {"group": "lobby", "entries": {"ann": [{}]}}}
    {"event": "presence.diff", "data": {"group": "lobby",
        "joins": {"bob": [{"status": "here"}]}, "leaves": {"ann": [{}]}}}

A diff holds the net change over its interval: an entry that joined and left within it is
in neither; an entry whose meta changed leaves with its old meta and joins with its new
one. A client keeps ``{key: [meta, ...]}``: it appends the metas of ``joins`` and removes,
for each meta of ``leaves``, one occurrence equal to it (JSON equality).

**In-process** (no broker): the entries live in this process; diffs are delivered to the
subscribers directly.

**Across workers** (the App's Redis/Valkey broker, ``App(broker=...)`` or
``WSGATE_BROKER_URL``, or ``Presence(url)``): every entry has an internal reference
``<worker id>:<connection number>`` (the wire shows only keys and metas). Every key of a
group carries the group as its hash tag, so that one group lives in one slot::

    {prefix}:presence:{<group>}:entries      hash  ref -> "<len(key)>:<key><meta JSON>"
    {prefix}:presence:{<group>}:keys         hash  key -> number of entries
    {prefix}:presence:{<group>}:w:<worker>   set   the refs of that worker's entries
    {prefix}:presence:worker:<worker>        string, the heartbeat (TTL 3 x heartbeat_interval)
    {prefix}:presence:worker:<worker>:groups set   the groups the worker has entries in
    {prefix}:presence:workers                set   every worker id with a heartbeat
    channel {prefix}:presence:<group>        the group's changes

Every change is one Lua script over the group's keys that also PUBLISHes the change
(``P1\\n`` and records ``+<ref> <len>:<value>`` or ``-<ref> <len>:<value>``) on the
group's channel, so the entries and the published changes never disagree. A worker sends
one group's writes one script at a time, in order; the entries changed while a script is
on its way go together in the next one (up to 500).
:meth:`Presence.count` is one ``HLEN`` of the keys hash; :meth:`Presence.list` one
``HVALS``.

A worker subscribes to the channel of a group only while it has local subscribers of it,
and keeps a mirror of such a group's entries: it SUBSCRIBEs, then reads the entries with a
script that also publishes a marker; changes received before the marker are already in
what it read, changes after it are applied. Local subscribers get the mirror as their
``presence.state`` and the batched changes as ``presence.diff`` (encoded once per group).
After a reconnect the worker reads every mirrored group again and sends the difference
as a diff.

Every ``heartbeat_interval`` a worker refreshes its heartbeat, retries the writes that
failed, and removes the entries of workers whose heartbeat expired (a worker killed
without shutting down): their entries are gone, and their subscribers told, within three
heartbeat intervals of their last beat plus one interval. When its own heartbeat is found
gone (a long pause, or a broker restart that lost everything), a worker takes a new id and
writes its entries again; at shutdown it removes them.
"""

from __future__ import annotations

import builtins
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc
import msgspec

from ._presence_base import PresenceUnavailableError, Record
from .asgi import Message
from .broadcast.memory import Member, Subscriber
from .broker import is_memory
from .datastructures import Counters
from .encoding import encode
from .queues import Offer
from .websocket import WebSocket

if TYPE_CHECKING:
    from ._presence_redis import RedisPresenceStore
    from .broadcast._redis_stats import RedisStats

__all__ = ["Presence", "PresenceStats", "PresenceUnavailableError"]

logger = logging.getLogger("wsgate.presence")


class PresenceStats(Counters):
    """Counters of a :class:`Presence` (``presence.stats``)."""

    __slots__ = (
        "commands",
        "diffs",
        "dropped",
        "entries_cleaned",
        "workers_cleaned",
        "write_failures",
    )
    #: Round trips to the broker (a script, a command or a pipeline counts one).
    commands: int
    #: ``presence.diff`` frames encoded (one per group per flush, whatever the number of
    #: subscribers).
    diffs: int
    #: Presence frames a subscriber's full outbox dropped.
    dropped: int
    #: Entries of dead workers removed by this worker.
    entries_cleaned: int
    #: Dead workers whose entries this worker removed.
    workers_cleaned: int
    #: Writes to the broker that failed (retried in the background).
    write_failures: int


# -- entries ------------------------------------------------------------------------------


def entry_value(key: str, meta_json: bytes) -> bytes:
    """An entry as stored: ``<len(key) in bytes>:<key><meta JSON>``."""
    kb = key.encode()
    return b"%d:%s%s" % (len(kb), kb, meta_json)


def split_value(value: bytes) -> tuple[str, bytes]:
    """``(key, meta JSON)`` of a stored entry."""
    colon = value.index(b":")
    n = int(value[:colon])
    start = colon + 1
    return value[start : start + n].decode(), value[start + n :]


def group_entries(values: Iterable[bytes]) -> dict[str, list[msgspec.Raw]]:
    """``{key: [meta, ...]}`` of stored entries, the metas kept encoded."""
    out: dict[str, list[msgspec.Raw]] = {}
    for value in values:
        key, meta = split_value(value)
        out.setdefault(key, []).append(msgspec.Raw(meta))
    return out


def _decoded(entries: dict[str, list[msgspec.Raw]]) -> dict[str, list[Any]]:
    return {k: [msgspec.json.decode(m) for m in metas] for k, metas in entries.items()}


class _Watch:
    """A group with local subscribers: a mirror of its entries and the pending diff."""

    __slots__ = (
        "before",
        "buffer",
        "flush_pending",
        "last_flush",
        "live",
        "loaded",
        "entries",
        "failed",
        "marker_seen",
        "snapshot_applied",
        "token",
        "waiting",
    )

    def __init__(self) -> None:
        # Subscribers that got the state and get the diffs.
        self.live: dict[Subscriber, Member] = {}
        # Subscribers waiting for the first read of the entries.
        self.waiting: dict[Subscriber, Member] = {}
        self.entries: dict[str, bytes] = {}
        # Entries changed since the last diff: ref -> value before (None: absent).
        self.before: dict[str, bytes | None] = {}
        self.flush_pending = False
        self.last_flush = -math.inf
        self.loaded = anyio.Event()
        # The first read of the entries failed: the subscribers waiting for it fail too.
        self.failed = False
        # A read of the entries through the broker in progress (see the module doc).
        self.token: bytes | None = None
        self.marker_seen = False
        self.snapshot_applied = False
        self.buffer: list[Sequence[Record]] = []

    def flushed_view(self) -> Iterable[bytes]:
        """The entries as the live subscribers know them (without the pending diff)."""
        if not self.before:
            return self.entries.values()
        view = dict(self.entries)
        for ref, old in self.before.items():
            if old is None:
                view.pop(ref, None)
            else:
                view[ref] = old
        return view.values()


class _Local:
    """This process's side of a :class:`Presence`, as its Redis store reads it."""

    __slots__ = ("entries", "watches")

    def __init__(self) -> None:
        # This worker's entries: group -> {connection number: value}.
        self.entries: dict[str, dict[int, bytes]] = {}
        # Groups with local subscribers.
        self.watches: dict[str, _Watch] = {}


class _MemoryStore:
    """The entries of every group, in this process."""

    def __init__(self, presence: Presence) -> None:
        self._presence = presence
        self.groups: dict[str, dict[str, bytes]] = {}
        self.keys: dict[str, Counter[str]] = {}

    def put(self, group: str, ref: str, value: bytes | None) -> None:
        entries = self.groups.setdefault(group, {})
        keys = self.keys.setdefault(group, Counter())
        old = entries.get(ref)
        records: list[Record] = []
        if old != value:
            if old is not None:
                del entries[ref]
                key = split_value(old)[0]
                keys[key] -= 1
                if keys[key] <= 0:
                    del keys[key]
                records.append(("-", ref, old))
            if value is not None:
                entries[ref] = value
                keys[split_value(value)[0]] += 1
                records.append(("+", ref, value))
        if not entries:
            del self.groups[group]
            del self.keys[group]
        if records:
            self._presence._received(group, records)  # noqa: SLF001


# -- the provider -------------------------------------------------------------------------


class Presence:
    """Who is online in each group, across every worker: entries tracked per connection,
    listed and counted across workers, and pushed to subscribers as ``presence.state``
    and batched ``presence.diff`` events. See :mod:`wsgate.presence` for the wire events
    and the Redis layout.

    The App provides one (a gateway asks for ``presence: Presence``); with a
    Redis/Valkey broker (``App(broker=...)``, ``WSGATE_BROKER_URL``, ``wsgate run
    --workers N``) it spans the workers. It is an async context manager: the App enters
    it at lifespan startup.

    :param url: A Redis/Valkey URL of its own (None: the App's broker, else in-process).
    :param prefix: Prefix of every Redis key and channel.
    :param diff_interval: Seconds a group's changes are gathered into one
        ``presence.diff`` (from the first change of a batch): at most one diff per group
        per interval, each at most that late.
    :param heartbeat_interval: Seconds between two heartbeats of this worker; a worker
        silent for three intervals is dead and its entries are removed.
    :param connect_timeout: Seconds to connect at startup.
    :param command_timeout: Seconds to wait for the broker's answer.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "wsgate",
        diff_interval: float = 0.1,
        heartbeat_interval: float = 5.0,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
    ) -> None:
        if not prefix:
            raise ValueError("Presence(prefix=...) must not be empty")
        if diff_interval < 0:
            raise ValueError("Presence(diff_interval=...) must be 0 or more seconds")
        if heartbeat_interval <= 0:
            raise ValueError("Presence(heartbeat_interval=...) must be more than 0 seconds")
        self.prefix = prefix
        self.diff_interval = diff_interval
        self.heartbeat_interval = heartbeat_interval
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        #: Counters (broker round trips, diffs, cleanups).
        self.stats = PresenceStats()
        self._memory = _MemoryStore(self)
        self._redis: RedisPresenceStore | None = None
        # This process's entries: connection -> {group: value}; group -> {number: value}.
        self._numbers: dict[Any, int] = {}
        self._next_number = 0
        self._tracked: dict[Any, dict[str, bytes]] = {}
        self._local = _Local()
        self._subscriptions: dict[Subscriber, set[str]] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        if url is not None and not is_memory(url):
            self.use_broker(url)

    def __repr__(self) -> str:
        where = self._redis.describe() if self._redis is not None else "in-process"
        return f"Presence({where}, prefix={self.prefix!r})"

    # -- the broker ----------------------------------------------------------------------

    def use_broker(self, url: str) -> None:
        """Meet other workers through the Redis/Valkey broker at ``url`` (the App calls
        it with its broker before the lifespan starts). A Presence that already has a
        broker keeps it; ``memory://`` keeps it in the process."""
        if self._redis is not None or is_memory(url):
            return
        if self._tg is not None:
            raise RuntimeError(f"{self!r} is running; give it a broker before starting it")
        from ._presence_redis import RedisPresenceStore  # needs coredis: wsgate[redis]

        self._redis = RedisPresenceStore(
            self,
            url,
            self._local,
            received=self._received,
            marker_received=self._marker_received,
            apply_snapshot=self._apply_snapshot,
        )

    @property
    def broker_url(self) -> str | None:
        """The URL of the broker this presence spans workers through (None: in-process)."""
        return self._redis.url if self._redis is not None else None

    @property
    def redis_stats(self) -> RedisStats | None:
        """Counters of the pub/sub link to the broker (None in-process)."""
        return self._redis.link_stats if self._redis is not None else None

    @property
    def worker_id(self) -> str:
        """This worker's id in the entries' references (``local`` in-process)."""
        return self._redis.worker_id if self._redis is not None else "local"

    # -- lifespan -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start: with a broker, connect (waiting up to ``connect_timeout``) and start
        the heartbeat; raises :class:`PresenceUnavailableError` if it cannot connect."""
        if self._tg is not None:
            raise RuntimeError(f"{self!r} is already running; one App may enter it at a time")
        if self._redis is not None:
            # The client (its pool runs tasks of its own) is entered before the task
            # group and closed after it.
            await self._redis.open()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            if self._redis is not None:
                await self._redis.start(tg)
        except BaseException:
            self._tg = None
            tg.cancel_scope.cancel()
            try:
                await tg.__aexit__(None, None, None)
            finally:
                if self._redis is not None:
                    await self._redis.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop: remove this worker's entries from the broker and stop its tasks."""
        tg, self._tg = self._tg, None
        if tg is None:
            return
        try:
            if self._redis is not None:
                await self._redis.stop()
        finally:
            tg.cancel_scope.cancel()
            try:
                await tg.__aexit__(None, None, None)
            finally:
                if self._redis is not None:
                    await self._redis.close()

    @property
    def running(self) -> bool:
        """Whether it was started (the App starts it at lifespan startup)."""
        return self._tg is not None

    def _require_running(self, what: str) -> None:
        if self._tg is None and (self._redis is not None or what == "subscribe"):
            raise RuntimeError(
                f"Presence.{what}() needs the Presence started: the App starts its providers "
                "at lifespan startup (is the server's lifespan support turned off?); "
                "outside an App, use `async with Presence(...) as presence:`"
            )

    # -- entries ------------------------------------------------------------------------

    def _ref(self, number: int) -> str:
        """The reference of this worker's entry of connection ``number``."""
        return f"{self.worker_id}:{number}"

    async def track(self, ws: Any, group: str, key: str, meta: Any = None) -> None:
        """Make ``ws`` present in ``group`` under ``key`` with ``meta`` (any JSON value;
        None means ``{}``). Tracking the same (connection, group) again replaces its key
        and meta. The entry is removed when the connection ends."""
        _check_group(group)
        if not isinstance(key, str):
            raise TypeError(f"Presence.track() takes a str key, not {type(key).__name__}")
        self._require_running("track")
        value = entry_value(key, encode({} if meta is None else meta))
        number = self._numbers.get(ws)
        if number is None:
            self._next_number += 1
            number = self._numbers[ws] = self._next_number
        self._tracked.setdefault(ws, {})[group] = value
        self._local.entries.setdefault(group, {})[number] = value
        await self._write(group, number)

    async def update(self, ws: Any, group: str, meta: Any) -> None:
        """Replace the meta of ``ws``'s entry in ``group`` (kept under the same key).
        Raises ``LookupError`` if it is not tracked there."""
        value = self._tracked.get(ws, {}).get(group)
        if value is None:
            raise LookupError(
                f"this connection is not tracked in presence group {group!r}: call "
                "Presence.track() first"
            )
        await self.track(ws, group, split_value(value)[0], meta)

    async def untrack(self, ws: Any, group: str) -> None:
        """Remove ``ws``'s entry from ``group`` (nothing if it has none)."""
        groups = self._tracked.get(ws)
        if groups is None or group not in groups:
            return
        del groups[group]
        number = self._numbers[ws]
        if not groups:
            del self._tracked[ws]
            del self._numbers[ws]
        self._forget_local(group, number)
        await self._write(group, number)

    def _forget_local(self, group: str, number: int) -> None:
        entries = self._local.entries.get(group)
        if entries is not None:
            entries.pop(number, None)
            if not entries:
                del self._local.entries[group]

    async def _write(self, group: str, number: int) -> None:
        """Make the broker's entry of (this worker, ``number``) in ``group`` what it is
        locally."""
        value = self._local.entries.get(group, {}).get(number)
        if self._redis is None:
            self._memory.put(group, self._ref(number), value)
        else:
            await self._redis.write(group, number)

    def tracked(self, ws: Any) -> dict[str, str]:
        """The groups ``ws`` is tracked in, and its key in each."""
        return {g: split_value(v)[0] for g, v in self._tracked.get(ws, {}).items()}

    async def list(self, group: str) -> dict[str, list[Any]]:
        """``{key: [meta, ...]}`` of ``group``'s entries in every worker (one broker round
        trip). Raises :class:`PresenceUnavailableError` if the broker does not answer."""
        _check_group(group)
        if self._redis is None:
            return _decoded(group_entries(self._memory.groups.get(group, {}).values()))
        self._require_running("list")
        return _decoded(group_entries(await self._redis.values(group)))

    async def count(self, group: str) -> int:
        """The number of distinct keys present in ``group`` in every worker: one broker
        round trip that transfers no entry. Raises :class:`PresenceUnavailableError` if
        the broker does not answer."""
        _check_group(group)
        if self._redis is None:
            return len(self._memory.keys.get(group, ()))
        self._require_running("count")
        return await self._redis.count(group)

    # -- subscribers ----------------------------------------------------------------------

    async def subscribe(self, ws: Subscriber, group: str) -> None:
        """Send ``ws`` the ``presence.state`` of ``group`` now, then a ``presence.diff``
        whenever entries join or leave (at most one per ``diff_interval``), until it
        unsubscribes or closes. Idempotent. Raises :class:`PresenceUnavailableError` if
        the broker does not answer (``ws`` is not subscribed then)."""
        _check_group(group)
        self._require_running("subscribe")
        w = self._local.watches.get(group)
        if w is not None and (ws in w.live or ws in w.waiting):
            return
        member: Member = ws.runtime if isinstance(ws, WebSocket) else ws
        self._subscriptions.setdefault(ws, set()).add(group)
        if w is None:
            w = self._local.watches[group] = _Watch()
            w.waiting[ws] = member
            if self._redis is None:
                self._apply_snapshot(group, w, dict(self._memory.groups.get(group, {})))
            else:
                try:
                    await self._redis.load(group, w)
                except BaseException:
                    if self._local.watches.get(group) is w and not w.live:
                        w.failed = True
                        self._drop_watch(group, w)
                    raise
        elif not w.loaded.is_set():
            # Another subscriber's read of the entries is in progress: it serves this one.
            w.waiting[ws] = member
            with anyio.move_on_after(self.command_timeout):
                await w.loaded.wait()
            if w.failed or not w.loaded.is_set():
                await self.unsubscribe(ws, group)
                raise PresenceUnavailableError(
                    f"could not read presence group {group!r} from the broker"
                    + (" in time" if not w.failed else "")
                )
        else:
            w.live[ws] = member
            self._send(group, w, {ws: member}, self._state_frame(group, w.flushed_view()))

    async def unsubscribe(self, ws: Subscriber, group: str) -> None:
        """Stop sending ``group``'s presence events to ``ws`` (nothing if not subscribed)."""
        groups = self._subscriptions.get(ws)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._subscriptions[ws]
        self._remove_subscriber(group, ws)

    def _remove_subscriber(self, group: str, ws: Subscriber) -> None:
        w = self._local.watches.get(group)
        if w is None:
            return
        w.live.pop(ws, None)
        w.waiting.pop(ws, None)
        if not w.live and not w.waiting:
            self._drop_watch(group, w)

    def _drop_watch(self, group: str, w: _Watch) -> None:
        for ws in (*w.live, *w.waiting):
            groups = self._subscriptions.get(ws)
            if groups is not None:
                groups.discard(group)
                if not groups:
                    del self._subscriptions[ws]
        w.live.clear()
        w.waiting.clear()
        w.loaded.set()
        if self._local.watches.get(group) is w:
            del self._local.watches[group]
            if self._redis is not None:
                self._redis.unwatched()

    def subscribers(self, group: str) -> builtins.list[Subscriber]:
        """This process's subscribers of ``group``."""
        w = self._local.watches.get(group)
        return [*w.live, *w.waiting] if w is not None else []

    async def connection_ended(self, ws: WebSocket) -> None:
        """The runtime's call when a connection ends: remove its entries (waiting up to
        ``command_timeout`` for the broker; a failed removal is retried in the
        background) and its subscriptions."""
        for group in self._subscriptions.pop(ws, ()):
            self._remove_subscriber(group, ws)
        groups = self._tracked.pop(ws, None)
        number = self._numbers.pop(ws, None)
        if not groups or number is None:
            return
        for group in groups:
            self._forget_local(group, number)
        for group in groups:
            with anyio.move_on_after(self.command_timeout) as scope:
                await self._write(group, number)
            if scope.cancelled_caught and self._redis is not None:
                self._redis.mark_dirty(group)

    # -- diffs --------------------------------------------------------------------------

    def _received(self, group: str, records: Sequence[Record]) -> None:
        """Changes of ``group``'s entries (from the store or the broker's channel)."""
        w = self._local.watches.get(group)
        if w is None:
            return
        if w.token is not None:  # a read of the entries in progress
            if not w.marker_seen:
                return  # before the read: already in it
            if not w.snapshot_applied:
                w.buffer.append(records)
                return
        self._apply(group, w, records)

    def _apply(self, group: str, w: _Watch, records: Sequence[Record]) -> None:
        for op, ref, value in records:
            self._change(group, w, ref, value if op == "+" else None)

    def _change(self, group: str, w: _Watch, ref: str, value: bytes | None) -> None:
        old = w.entries.get(ref)
        if old == value:
            return
        if w.live and ref not in w.before:
            w.before[ref] = old
        if value is None:
            del w.entries[ref]
        else:
            w.entries[ref] = value
        if w.live and not w.flush_pending:
            w.flush_pending = True
            if self._tg is not None:
                self._tg.start_soon(self._flush_later, group, w)

    def _apply_snapshot(self, group: str, w: _Watch, entries: dict[str, bytes]) -> None:
        """The entries as read: replace the mirror (a diff for the live subscribers),
        then serve the subscribers waiting for it."""
        if not w.live:
            w.entries = entries
        else:
            for ref in [r for r in w.entries if r not in entries]:
                self._change(group, w, ref, None)
            for ref, value in entries.items():
                self._change(group, w, ref, value)
        w.snapshot_applied = True
        for records in w.buffer:
            self._apply(group, w, records)
        w.buffer = []
        if w.marker_seen or self._redis is None:
            w.token = None
        if w.waiting:
            waiting, w.waiting = w.waiting, {}
            w.live.update(waiting)
            self._send(group, w, waiting, self._state_frame(group, w.flushed_view()))
        w.loaded.set()

    def _marker_received(self, group: str, token: bytes) -> None:
        """The broker's marker of a read of ``group``'s entries came through the channel."""
        w = self._local.watches.get(group)
        if w is None or w.token != token:
            return
        w.marker_seen = True
        if w.snapshot_applied:
            w.token = None

    async def _flush_later(self, group: str, w: _Watch) -> None:
        # A batch gathers the changes of one whole interval from its first change: a
        # burst of joins makes one diff per interval, never one more for its first
        # change (the price: a lone change is seen ``diff_interval`` later).
        delay = max(self.diff_interval, w.last_flush + self.diff_interval - anyio.current_time())
        if delay > 0:
            await anyio.sleep(delay)
        w.flush_pending = False
        if self._local.watches.get(group) is not w:
            return
        self._flush(group, w)

    def _flush(self, group: str, w: _Watch) -> None:
        """Send the live subscribers of ``group`` the net change since the last diff."""
        changed, w.before = w.before, {}
        joins: list[bytes] = []
        leaves: list[bytes] = []
        for ref, old in changed.items():
            new = w.entries.get(ref)
            if old == new:
                continue
            if old is not None:
                leaves.append(old)
            if new is not None:
                joins.append(new)
        # The same key and meta leaving one entry and joining in another (a worker that
        # wrote its entries again under a new id) is no change on the wire.
        common = Counter(joins) & Counter(leaves)
        if common:
            joins = list((Counter(joins) - common).elements())
            leaves = list((Counter(leaves) - common).elements())
        if not joins and not leaves:
            return
        w.last_flush = anyio.current_time()
        self.stats.diffs += 1
        frame = {
            "event": "presence.diff",
            "data": {
                "group": group,
                "joins": group_entries(joins),
                "leaves": group_entries(leaves),
            },
        }
        self._send(group, w, w.live, frame)

    def _state_frame(self, group: str, values: Iterable[bytes]) -> dict[str, Any]:
        return {
            "event": "presence.state",
            "data": {"group": group, "entries": group_entries(values)},
        }

    def _send(
        self, group: str, w: _Watch, members: dict[Subscriber, Member], frame: dict[str, Any]
    ) -> None:
        message: Message = {"type": "websocket.send", "text": encode(frame).decode()}
        gone: list[Subscriber] = []
        for ws, member in members.items():
            result = member.offer(message)
            if result is Offer.DROPPED or result is Offer.REPLACED:
                self.stats.dropped += 1
            elif result is Offer.CLOSED or result is Offer.SLOW:
                gone.append(ws)
        for ws in gone:
            groups = self._subscriptions.get(ws, set())
            groups.discard(group)
            if not groups:
                self._subscriptions.pop(ws, None)
            self._remove_subscriber(group, ws)


def _check_group(group: str) -> None:
    if not isinstance(group, str) or not group:
        raise ValueError(f"a presence group is a non-empty str, not {group!r}")
