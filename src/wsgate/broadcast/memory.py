"""The in-process broadcast group: encode once, enqueue to every member without waiting."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Protocol, Self, TypeAlias

from ..asgi import Message
from ..datastructures import Counters
from ..encoding import encode
from ..queues import Offer
from ..relay import WakeRelay
from ..websocket import WebSocket

__all__ = ["BroadcastGroup", "GroupStats", "Member", "Subscriber"]


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
    __slots__ = ("members", "stats")

    def __init__(self) -> None:
        self.members: dict[Subscriber, Member] = {}
        self.stats = GroupStats()


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
    :meth:`unsubscribe_all` when a connection ends.

    Subclass it and register the subclass as a provider to give it a name of your own;
    every ``BroadcastGroup`` parameter then receives that instance.
    """

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}
        self._memberships: dict[Subscriber, set[str]] = {}
        #: Totals over every group, including groups that no longer exist.
        self.stats = GroupStats()
        # Wakes the members' writers a few at a time; chosen with the first broadcast,
        # on the backend that runs it (None: not used on this backend).
        self._relay: WakeRelay | None = None
        self._relay_chosen = False

    # -- lifespan (the App enters every provider that is an async context manager) -----

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    # -- hooks for distributed backends ------------------------------------------------

    async def _group_opened(self, group: str) -> None:
        """Called when this process gets its first member of ``group``."""

    def _group_closed(self, group: str) -> None:
        """Called (without awaiting) when this process's last member of ``group`` leaves."""

    async def _publish(self, group: str, message: Message, exclude: Subscriber | None) -> int:
        """Deliver an encoded message; the in-process group delivers locally."""
        return self.deliver_local(group, message, exclude)

    # -- membership ---------------------------------------------------------------------

    async def subscribe(self, group: str, ws: Subscriber) -> None:
        """Add ``ws`` to ``group``. Idempotent.

        A connection may subscribe in ``@on_connect`` before it is accepted; frames
        broadcast meanwhile are delivered once it is.
        """
        g = self._groups.get(group)
        created = g is None
        if g is None:
            g = self._groups[group] = _Group()
        if ws in g.members:
            return
        # A WebSocket is reached through its runtime connection; any other member (a
        # Socket.IO connection) offers frames itself.
        g.members[ws] = ws.runtime if isinstance(ws, WebSocket) else ws
        self._memberships.setdefault(ws, set()).add(group)
        if created:
            await self._group_opened(group)

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

    def _remove(self, group: str, ws: Subscriber) -> None:
        g = self._groups.get(group)
        if g is None or g.members.pop(ws, None) is None:
            return
        if not g.members:
            del self._groups[group]
            self._group_closed(group)

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
        member. Returns the number of frames enqueued (in this process).
        """
        return await self._publish(group, build_message(message, as_bytes), exclude)

    def deliver_local(self, group: str, message: Message, exclude: Any = None) -> int:
        """Enqueue an already-encoded ASGI message to this process's members of ``group``.

        ``exclude`` is a WebSocket or a predicate-free identity to skip. Members that are
        gone or closed as slow consumers are removed from every group at once.
        """
        g = self._groups.get(group)
        if g is None:
            return 0
        sent = 0
        dropped = 0
        gone: list[Subscriber] | None = None
        if not self._relay_chosen:
            self._relay = WakeRelay.for_backend()
            self._relay_chosen = True
        relay = self._relay
        for ws, conn in g.members.items():
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
        g.stats.delivered += sent
        self.stats.delivered += sent
        if dropped:
            g.stats.dropped += dropped
            self.stats.dropped += dropped
        if gone:
            for ws in gone:
                self._remove_all(ws)
        return sent

    # -- introspection (this process) ------------------------------------------------------

    def groups(self) -> list[str]:
        """Names of the groups that have members in this process."""
        return list(self._groups)

    def members(self, group: str) -> list[Subscriber]:
        """This process's members of ``group``."""
        g = self._groups.get(group)
        return list(g.members) if g is not None else []

    def member_count(self, group: str) -> int:
        """How many members ``group`` has in this process."""
        g = self._groups.get(group)
        return len(g.members) if g is not None else 0

    def group_stats(self, group: str) -> GroupStats:
        """Counters of ``group`` (a fresh zeroed object if the group does not exist)."""
        g = self._groups.get(group)
        return g.stats if g is not None else GroupStats()

    def groups_of(self, ws: Subscriber) -> Iterable[str]:
        """The groups ``ws`` belongs to."""
        return tuple(self._memberships.get(ws, ()))
