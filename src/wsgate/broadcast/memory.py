"""The broadcast group: encode once, enqueue to every member without waiting; in the
process, or across workers through the App's broker; with history and recovery."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeAlias

import anyio

from ..asgi import Message
from ..broker import is_memory
from ..datastructures import Counters
from ..encoding import encode
from ..history import History, MemoryHistory, Position, Publication
from ..queues import Offer
from ..relay import WakeRelay
from ..websocket import WebSocket
from . import _recovery

if TYPE_CHECKING:
    from ._redis_stats import RedisStats
    from ._redis_transport import RedisTransport

__all__ = ["BroadcastGroup", "GroupStats", "Member", "Subscriber"]

logger = logging.getLogger("wsgate.broadcast")


class Member(Protocol):
    """What a group delivers to: anything that takes an encoded frame without waiting.

    Implemented by the runtime connection under every WebSocket (``ws.runtime``) and
    by Socket.IO's :class:`~wsgate.socketio.SocketIOConnection`. ``offer`` never blocks:
    it queues the frame or applies the member's overflow policy, and says which
    (:class:`~wsgate.queues.Offer`); ``relay``, when given, wakes the member's writer a
    few at a time (:class:`~wsgate.relay.WakeRelay`).
    """

    def offer(self, message: Message, relay: WakeRelay | None = None) -> Offer:
        """Queue ``message`` without waiting; the outcome says whether it was queued,
        dropped, replaced an older frame, closed the member as a slow consumer, or
        found it closed."""
        ...


#: What subscribes to a group: a WebSocket (delivered to through its runtime
#: connection) or any other :class:`Member`.
Subscriber: TypeAlias = WebSocket | Member


class GroupStats(Counters):
    """Counters for one group (and, on the BroadcastGroup itself, for all of them)."""

    __slots__ = ("delivered", "dropped", "slow_consumer_closes")
    delivered: int
    dropped: int
    slow_consumer_closes: int


class _Group:
    __slots__ = ("catching_up", "members", "stats")

    def __init__(self) -> None:
        self.members: dict[Subscriber, Member] = {}
        self.stats = GroupStats()
        # Members being replayed what they missed: the live frames (offset, message)
        # that arrive meanwhile, delivered after the replay without duplicates.
        self.catching_up: dict[Subscriber, list[tuple[int, Message]]] | None = None


def build_message(message: Any, as_bytes: bool) -> Message:
    """Encode ``message`` once into the ASGI send message every member will share."""
    if isinstance(message, str) and not as_bytes:
        return {"type": "websocket.send", "text": message}
    if isinstance(message, bytes | bytearray | memoryview):
        return {"type": "websocket.send", "bytes": bytes(message)}
    payload = encode(message)
    if as_bytes:
        return {"type": "websocket.send", "bytes": payload}
    return {"type": "websocket.send", "text": payload.decode()}


class BroadcastGroup:
    """Named groups of connections; a broadcast encodes once and fans out through each
    member's outbox without awaiting any member.

    Groups are created on first subscribe and removed when their last member leaves. A
    member whose outbox is full gets its connection's overflow policy (by default it is
    closed with 1013 and removed from every group). The runtime calls
    :meth:`connection_ended` when a connection ends.

    **Across workers.** Registered as a provider without a URL of its own (the App's
    default group, or a subclass of yours), the group uses the App's broker
    (``App(broker=...)``, ``WSGATE_BROKER_URL``, or the Valkey ``wsgate run --workers N``
    starts): with a Redis/Valkey broker a broadcast reaches the group's members in every
    worker. :class:`~wsgate.broadcast.redis.RedisBroadcastGroup` takes a URL of its own.

    **History.** With ``history=History(size, ttl)`` every broadcast to a group gets the
    next offset, is kept in the group's history and carries its position on the wire;
    :meth:`history` and :meth:`position` read it, and a client that reconnects with the
    last position it saw is replayed what it missed when it is subscribed again (see
    :mod:`wsgate.history`). Such groups broadcast JSON objects.

    Subclass it and register the subclass as a provider to give it a name of your own;
    every ``BroadcastGroup`` parameter then receives that instance.

    :param history: Keep the last frames of each group (None: no history).
    """

    def __init__(self, *, history: History | None = None) -> None:
        if history is not None and not isinstance(history, History):
            raise TypeError(
                f"{type(self).__name__}(history=...) takes a wsgate.History, "
                f"not {type(history).__name__}"
            )
        self._groups: dict[str, _Group] = {}
        self._memberships: dict[Subscriber, set[str]] = {}
        #: Totals over every group, including groups that no longer exist.
        self.stats = GroupStats()
        #: The history kept for every group (None: none).
        self.history_config = history
        self._memory_history = (
            MemoryHistory(history, anyio.current_time) if history is not None else None
        )
        # What each connection presented to recover (group -> (offset, epoch)); a group
        # is recovered once per connection.
        self._recovery: weakref.WeakKeyDictionary[WebSocket, dict[str, tuple[int, str]]] = (
            weakref.WeakKeyDictionary()
        )
        # Across workers (set by a broker URL); None: this process only.
        self._transport: RedisTransport | None = None
        # Wakes the members' writers a few at a time; chosen with the first broadcast,
        # on the backend that runs it (None: not used on this backend).
        self._relay: WakeRelay | None = None
        self._relay_chosen = False

    # -- the broker ----------------------------------------------------------------------

    def use_broker(self, url: str) -> None:
        """Meet other workers through the broker at ``url`` (called by the App with its
        broker, before the lifespan starts). A group that already has a broker keeps
        it; ``memory://`` keeps the group in the process."""
        if self._transport is not None or is_memory(url):
            return
        from ._redis_transport import RedisTransport  # needs coredis: wsgate[redis]

        self._transport = RedisTransport(self, url)

    @property
    def broker_url(self) -> str | None:
        """The URL of the broker this group spans workers through (None: in-process)."""
        return self._transport.url if self._transport is not None else None

    @property
    def redis_stats(self) -> RedisStats | None:
        """Counters of the traffic with the broker (None in-process)."""
        return self._transport.stats if self._transport is not None else None

    @property
    def available(self) -> bool:
        """True when broadcasts can be sent: always in-process; across workers, while the
        connection to the broker is up."""
        return self._transport.available if self._transport is not None else True

    # -- lifespan (the App enters every provider that is an async context manager) -----

    async def __aenter__(self) -> Self:
        """Connect to the broker (if any); see
        :class:`~wsgate.broadcast.redis.RedisBroadcastGroup` for what that does."""
        if self._transport is not None:
            await self._transport.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._transport is not None:
            await self._transport.stop()

    # -- membership ---------------------------------------------------------------------

    async def subscribe(self, group: str, ws: Subscriber) -> None:
        """Add ``ws`` to ``group``. Idempotent.

        A connection may subscribe in ``@on_connect`` before it is accepted; frames
        broadcast meanwhile are delivered once it is. Across workers, this returns once
        the broker acknowledged the subscription (or after its command timeout), so
        broadcasts from any worker reach ``ws``. A connection that presented a position
        in ``group`` (a client reconnecting) is replayed what it missed, then gets the
        live frames, without a gap or a duplicate, and is told whether it recovered.
        """
        g = self._groups.get(group)
        if g is not None and (ws in g.members or (g.catching_up and ws in g.catching_up)):
            return
        created = g is None
        if g is None:
            g = self._groups[group] = _Group()
        recover = self._recovery_wanted(group, ws)
        if recover is not None:
            # Live frames are held for it from now on; the replay runs once it is open.
            if g.catching_up is None:
                g.catching_up = {}
            g.catching_up[ws] = []
        else:
            # A WebSocket is reached through its runtime connection; any other member (a
            # Socket.IO connection) offers frames itself.
            g.members[ws] = ws.runtime if isinstance(ws, WebSocket) else ws
        self._memberships.setdefault(ws, set()).add(group)
        transport = self._transport
        if transport is not None:
            await transport.member_added(group, created)
        if recover is not None:
            assert isinstance(ws, WebSocket)
            offset, epoch = recover
            ws.runtime.when_open(lambda: self._catch_up(group, ws, offset, epoch))

    async def unsubscribe(self, group: str, ws: Subscriber) -> None:
        """Remove ``ws`` from ``group``. Safe to call if it is not a member."""
        self._remove(group, ws)
        groups = self._memberships.get(ws)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._memberships[ws]

    async def unsubscribe_all(self, ws: Subscriber) -> None:
        """Remove ``ws`` from every group it is in."""
        self._remove_all(ws)

    async def connection_ended(self, ws: WebSocket) -> None:
        """The runtime's call when a connection ends: :meth:`unsubscribe_all` (a
        subclass that overrides that sees every connection leave)."""
        await self.unsubscribe_all(ws)

    def _remove(self, group: str, ws: Subscriber) -> None:
        g = self._groups.get(group)
        if g is None:
            return
        if g.members.pop(ws, None) is None:
            if not g.catching_up or g.catching_up.pop(ws, None) is None:
                return
        if self._transport is not None:
            self._transport.member_removed(group)
        if not g.members and not g.catching_up:
            del self._groups[group]
            if self._transport is not None:
                self._transport.group_closed(group)

    def _remove_all(self, ws: Subscriber) -> None:
        for group in self._memberships.pop(ws, ()):
            self._remove(group, ws)

    # -- sending ------------------------------------------------------------------------

    async def broadcast(
        self,
        group: str,
        message: Any,
        as_bytes: bool = False,
        exclude: Subscriber | None = None,
    ) -> int:
        """Send ``message`` to every member of ``group`` except ``exclude``.

        ``str`` is sent as a text frame, ``bytes`` as a binary frame, anything else is
        JSON-encoded once (as a binary frame with ``as_bytes=True``). Never waits for a
        member. Returns the number of frames enqueued in this process.

        With history, the message must be a JSON object (a dict, a msgspec Struct, or a
        ``str`` holding one; a ``ValueError`` says so otherwise): it is recorded with
        the next offset and sent with its position.

        Across workers, the broker gets it once and every other worker delivers it to
        its members; broadcasts awaited one after the other reach every member in that
        order. Raises :class:`~wsgate.broadcast.redis.BroadcastUnavailableError`,
        without delivering to anyone, while the broker is unreachable.
        """
        built = build_message(message, as_bytes)
        transport = self._transport
        if self.history_config is None:
            if transport is not None:
                await transport.publish(group, built, exclude)
            return self.deliver_local(group, built, exclude)
        text = _recovery.json_object_text(built, type(self).__name__, isinstance(message, str))
        prefix = _recovery.position_prefix(text, group)
        if transport is not None:
            offset, epoch = await transport.publish_history(
                group, prefix, exclude, self.history_config
            )
        else:
            assert self._memory_history is not None
            pos = self._memory_history.append(group, prefix, _recovery.with_position)
            offset, epoch = pos.offset, pos.epoch
        framed = _recovery.with_position(prefix, offset, epoch)
        return self.deliver_local(
            group, {"type": "websocket.send", "text": framed}, exclude, offset
        )

    def deliver_local(
        self, group: str, message: Message, exclude: Any = None, offset: int = 0
    ) -> int:
        """Enqueue an already-encoded ASGI message to this process's members of ``group``.

        ``exclude`` is a member to skip (or a ``frozenset`` of them); ``offset`` the
        frame's offset in the group's history (0: none). Members that are gone or closed
        as slow consumers are removed from every group at once.
        """
        g = self._groups.get(group)
        if g is None:
            return 0
        members: Iterable[tuple[Subscriber, Member]] = g.members.items()
        many: frozenset[Any] | None = None
        if type(exclude) is frozenset:
            # Several to skip: filtered here, so the fan-out loop stays one identity test.
            many = exclude
            members = [(ws, conn) for ws, conn in members if ws not in many]
            exclude = None
        sent = 0
        dropped = 0
        gone: list[Subscriber] | None = None
        if not self._relay_chosen:
            self._relay = WakeRelay.for_backend()
            self._relay_chosen = True
        relay = self._relay
        for ws, conn in members:
            if ws is exclude:
                continue
            result = conn.offer(message, relay)
            if result is Offer.QUEUED:
                sent += 1
            elif result is Offer.DROPPED:
                dropped += 1
            elif result is Offer.REPLACED:
                sent += 1
                dropped += 1
            else:
                if result is Offer.SLOW:
                    g.stats.slow_consumer_closes += 1
                    self.stats.slow_consumer_closes += 1
                    dropped += 1
                if gone is None:
                    gone = []
                gone.append(ws)
        if relay is not None and len(relay):  # writers left waiting for it
            relay.start()
        if g.catching_up:
            for ws, held in g.catching_up.items():
                if ws is not exclude and (many is None or ws not in many):
                    held.append((offset, message))
        g.stats.delivered += sent
        self.stats.delivered += sent
        if dropped:
            g.stats.dropped += dropped
            self.stats.dropped += dropped
        if gone:
            for ws in gone:
                self._remove_all(ws)
        return sent

    # -- history and recovery --------------------------------------------------------------

    def _require_history(self, what: str) -> History:
        if self.history_config is None:
            raise RuntimeError(
                f"{type(self).__name__}.{what}() needs history: construct it with "
                "history=History(size=..., ttl=...) (App(history=...) for the App's "
                "default group)"
            )
        return self.history_config

    async def history(self, group: str, limit: int = 50) -> list[Publication]:
        """The last ``limit`` frames broadcast to ``group``, oldest first, as
        :class:`~wsgate.Publication` objects (``.offset``, ``.message``: the value as
        broadcast, decoded). Across workers, read from the broker."""
        self._require_history("history")
        if self._transport is not None:
            frames = await self._transport.last(group, limit)
        else:
            assert self._memory_history is not None
            frames = self._memory_history.last(group, limit)
        return [Publication(offset, _recovery.message_of(text)) for offset, text in frames]

    async def position(self, group: str) -> Position:
        """The current epoch of ``group``'s history and the offset of its last frame."""
        self._require_history("position")
        if self._transport is not None:
            return await self._transport.position(group)
        assert self._memory_history is not None
        return self._memory_history.position(group)

    def _recovery_wanted(self, group: str, ws: Subscriber) -> tuple[int, str] | None:
        if self.history_config is None or not isinstance(ws, WebSocket):
            return None
        wanted = self._recovery.get(ws)
        if wanted is None:
            wanted = self._recovery[ws] = _recovery.presented(ws)
        return wanted.pop(group, None)

    async def _catch_up(self, group: str, ws: WebSocket, offset: int, epoch: str) -> None:
        """Replay to ``ws`` what it missed in ``group`` since ``(offset, epoch)``, then the
        live frames held meanwhile, then make it a live member."""
        conn = ws.runtime
        try:
            if self._transport is not None:
                found = await self._transport.since(group, offset, epoch)
            else:
                assert self._memory_history is not None
                found = self._memory_history.since(group, offset, epoch)
            here, frames = found
            recovered = frames is not None
            last = offset if recovered else here.offset
            replayed = 0
            for frame_offset, text in frames or ():
                await conn.send({"type": "websocket.send", "text": text})
                last = frame_offset
                replayed += 1
            while True:
                g = self._groups.get(group)
                if g is None or not g.catching_up or ws not in g.catching_up:
                    return  # it left the group (or closed) meanwhile
                held = g.catching_up[ws]
                if not held:
                    # Nothing held and no await since the check: it becomes live now.
                    del g.catching_up[ws]
                    g.members[ws] = conn
                    break
                g.catching_up[ws] = []
                for frame_offset, message in held:
                    if frame_offset > last:
                        await conn.send(message)
                        last = frame_offset
                        replayed += recovered
            here_epoch = here.epoch
            await conn.send(_recovery.recovery_frame(group, recovered, replayed, last, here_epoch))
        except Exception as exc:
            # The client left (the send failed) or the broker failed: it stays a member
            # if it can, live, and the client is told it did not recover.
            logger.debug("recovery of %r for %s failed: %r", group, conn.path, exc)
            g = self._groups.get(group)
            if g is not None and g.catching_up and g.catching_up.pop(ws, None) is not None:
                g.members[ws] = conn

    # -- introspection ------------------------------------------------------------------

    def groups(self) -> list[str]:
        """Names of the groups that have members in this process."""
        return list(self._groups)

    def members(self, group: str) -> list[Subscriber]:
        """This process's members of ``group``."""
        g = self._groups.get(group)
        if g is None:
            return []
        return [*g.members, *(g.catching_up or ())]

    def member_count(self, group: str) -> int:
        """How many members ``group`` has in this process."""
        g = self._groups.get(group)
        return len(g.members) + len(g.catching_up or ()) if g is not None else 0

    async def total_member_count(self, group: str) -> int:
        """How many members ``group`` has in every worker (this process's count when the
        group is in-process). Across workers, other workers' counts are as they last
        wrote them; raises :class:`~wsgate.broadcast.redis.BroadcastUnavailableError`
        if the broker does not answer."""
        local = self.member_count(group)
        if self._transport is None:
            return local
        return await self._transport.total_member_count(group, local)

    def group_stats(self, group: str) -> GroupStats:
        """Counters of ``group`` (a fresh zeroed object if the group does not exist)."""
        g = self._groups.get(group)
        return g.stats if g is not None else GroupStats()

    def groups_of(self, ws: Subscriber) -> Iterable[str]:
        """The groups ``ws`` belongs to."""
        return tuple(self._memberships.get(ws, ()))
