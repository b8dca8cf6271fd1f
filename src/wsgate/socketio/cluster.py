"""Room operations and cluster operations of a Socket.IO namespace.

Locally (one process, no adapter) they act on this process's connections; with a
:class:`~wsgate.socketio.RedisStreamsAdapter` every operation is also sent to the other
servers of the cluster (:class:`NamespaceCluster`), wsgate or Node, in the wire format
of ``socket.io-adapter``'s ``ClusterAdapter``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio

from ..broadcast import BroadcastGroup
from ..broadcast.memory import build_message
from ..queues import Offer
from .adapter import (
    ClusterMessage,
    ClusterUnavailableError,
    MessageType,
    RedisStreamsAdapter,
    StreamsLink,
    new_uid,
)
from .socketio_protocol import SocketIOPacket, SocketIOPacketType, message_frames

if TYPE_CHECKING:
    from .server import Namespace, SocketIOConnection, SocketIOServer

__all__ = [
    "ClusterTimeoutError",
    "MessageType",
    "NamespaceCluster",
    "RemoteSocket",
    "SocketIOCluster",
]

logger = logging.getLogger("wsgate.socketio")

T = SocketIOPacketType
M = MessageType


@dataclass(frozen=True, slots=True)
class Restored:
    """A session found again for a recovering connection (:meth:`NamespaceCluster.restore`)."""

    sid: str
    rooms: list[str]
    data: Any
    #: The EVENTs' arrays its rooms missed, each with its offset as the last element.
    missed: list[list[Any]]


class ClusterTimeoutError(TimeoutError):
    """Some clients or servers did not answer in time; ``responses`` holds the answers
    received before the timeout."""

    def __init__(self, message: str, responses: list[Any]) -> None:
        super().__init__(message)
        #: The answers received before the timeout.
        self.responses = responses


def _opts(rooms: Iterable[str], except_: Iterable[str], **flags: Any) -> dict[str, Any]:
    return {"rooms": list(rooms), "except": list(except_), "flags": flags}


def rooms_arg(rooms: str | Iterable[str]) -> list[str]:
    """A room name or several, as a list."""
    return [rooms] if isinstance(rooms, str) else list(rooms)


# -- this process's connections ------------------------------------------------------------


def local_sockets(
    ns: Namespace, rooms: Iterable[str], except_: Iterable[str], *, connected: bool = False
) -> list[SocketIOConnection]:
    """This process's connections of ``ns`` in any of ``rooms`` (none: all) and in none
    of ``except_`` (Node's ``Adapter.apply``)."""
    group = ns.rooms
    rooms = list(rooms)
    found: dict[Any, None] = {}
    for name in [ns.group(r) for r in rooms] if rooms else [ns.group(None)]:
        found.update(dict.fromkeys(group.members(name)))
    excluded: set[Any] = set()
    for room in except_:
        excluded.update(group.members(ns.group(room)))
    out = []
    for member in found:
        if member in excluded or not hasattr(member, "disconnected"):  # not Socket.IO
            continue
        if member.disconnected or (connected and not member.connected):
            continue
        out.append(member)
    return out


def deliver(
    ns: Namespace, data: list[Any], rooms: list[str], except_: list[str]
) -> tuple[list[str | bytes], int]:
    """Encode the EVENT once and queue it to this process's connections of ``rooms``
    minus ``except_``, without waiting for any (the slow-consumer policy applies).
    Returns the frames and how many connections they were queued to."""
    frames = message_frames(SocketIOPacket(T.EVENT, ns.name, data))
    messages = [build_message(f, False) for f in frames]
    if len(rooms) <= 1:
        # One group: delivered (and accounted) by the BroadcastGroup.
        group = ns.group(rooms[0] if rooms else None)
        excluded: frozenset[Any] | None = None
        if except_:
            excluded = frozenset(m for room in except_ for m in ns.rooms.members(ns.group(room)))
        sent = 0
        for message in messages:
            sent = ns.rooms.deliver_local(group, message, excluded)
        return frames, sent
    sent = 0
    for conn in local_sockets(ns, rooms, except_):
        for message in messages:
            if conn.offer(message) in (Offer.CLOSED, Offer.SLOW):
                break
        else:
            sent += 1
    return frames, sent


async def join_local(ns: Namespace, rooms: list[str], opts: dict[str, Any], join: bool) -> None:
    for conn in local_sockets(ns, opts.get("rooms", ()), opts.get("except", ())):
        for room in rooms:
            await (conn.join(room) if join else conn.leave(room))


async def disconnect_local(ns: Namespace, opts: dict[str, Any], close: bool) -> None:
    for conn in local_sockets(ns, opts.get("rooms", ()), opts.get("except", ())):
        await conn.disconnect(close)


def describe(conn: SocketIOConnection) -> dict[str, Any]:
    """A FETCH_SOCKETS_RESPONSE entry for ``conn``."""
    return {
        "id": conn.sid,
        "handshake": conn.handshake,
        "rooms": sorted(conn.rooms),
        "data": conn.data,
    }


@dataclass(slots=True)
class RemoteSocket:
    """A connection of any server of the cluster, as :meth:`SocketIOServer.fetch_sockets
    <wsgate.socketio.SocketIOServer.fetch_sockets>` returns it (a snapshot; its methods
    act through the cluster, on the connection's own room, as Node's ``RemoteSocket``
    does: ``emit`` is ``sio.emit(..., room=sid)``, ``join`` is
    ``sio.sockets_join(..., room=sid)``, and so on)."""

    #: The Socket.IO id.
    sid: str
    #: Its rooms when fetched (its sid among them).
    rooms: frozenset[str]
    #: Its ``conn.data`` when fetched.
    data: Any
    #: Its handshake as Node describes it: ``headers``, ``query``, ``auth``, ``address``,
    #: ``url``, ``issued`` (ms), ``time``, ``secure``, ``xdomain``.
    handshake: dict[str, Any]
    namespace: str = "/"
    _server: SocketIOServer | None = field(default=None, repr=False)
    _path: str | None = field(default=None, repr=False)

    def _sio(self) -> SocketIOServer:
        assert self._server is not None
        return self._server

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` to this connection, wherever it is, without waiting for it.

        As in Node, where ``remoteSocket.emit()`` is a broadcast to the socket's own
        room: ``sio.emit(event, *args, room=sid)``, one stream entry that the server
        holding the connection delivers (with an offset when recovery is on). Nothing
        comes back; for the client's acknowledgement use :meth:`emit_with_ack`."""
        await self._sio().emit(
            event, *args, room=self.sid, namespace=self.namespace, path=self._path
        )

    async def emit_with_ack(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        """Send ``event`` to this connection, wherever it is, and return its
        acknowledgement (the client's first argument), as Node's
        ``remoteSocket.timeout(ms).emitWithAck(event)``. Raises ``TimeoutError`` if it
        did not answer within ``timeout`` seconds. ``None`` when the connection is gone
        (nobody was asked, as in Node).

        It is :meth:`SocketIOServer.emit_with_ack
        <wsgate.socketio.SocketIOServer.emit_with_ack>` on the connection's own room
        (``room=sid``), which returns the list of answers instead."""
        responses = await self._sio().emit_with_ack(
            event,
            *args,
            room=self.sid,
            namespace=self.namespace,
            timeout=timeout,
            path=self._path,
        )
        return responses[0] if responses else None

    async def join(self, rooms: str | Iterable[str]) -> None:
        """Make it join ``rooms`` (one name or several)."""
        await self._sio().sockets_join(
            rooms, room=self.sid, namespace=self.namespace, path=self._path
        )

    async def leave(self, rooms: str | Iterable[str]) -> None:
        """Make it leave ``rooms`` (one name or several)."""
        await self._sio().sockets_leave(
            rooms, room=self.sid, namespace=self.namespace, path=self._path
        )

    async def disconnect(self, close: bool = False) -> None:
        """Disconnect it from the namespace (``close``: end its whole connection)."""
        await self._sio().disconnect_sockets(
            room=self.sid, namespace=self.namespace, close=close, path=self._path
        )


def remote_socket(
    entry: Any, namespace: str, server: SocketIOServer, path: str | None
) -> RemoteSocket | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None
    rooms = entry.get("rooms")
    hs = entry.get("handshake")
    return RemoteSocket(
        entry["id"],
        frozenset(r for r in rooms if isinstance(r, str))
        if isinstance(rooms, list)
        else frozenset(),
        entry.get("data"),
        hs if isinstance(hs, dict) else {},
        namespace,
        server,
        path,
    )


# -- server-side events -------------------------------------------------------------------


async def call_server_handlers(ns: Namespace, event: str, args: list[Any]) -> tuple[bool, Any]:
    """Run the namespace's ``@on_server_side_event(event)`` methods; (whether there was
    one, the first one's result)."""
    methods = ns.server_events.get(event)
    if not methods:
        return False, None
    if ns.server_instance is None:
        ns.server_instance = ns.cls(**ns.ctor_kwargs)
    first: Any = None
    for i, name in enumerate(methods):
        result = getattr(ns.server_instance, name)(*args)
        if inspect.isawaitable(result):
            result = await result
        if i == 0:
            first = result
    return True, first


# -- the cluster -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Pending:
    expected: int
    responses: list[Any] = field(default_factory=list)
    answered: int = 0
    done: anyio.Event = field(default_factory=anyio.Event)

    def answer(self, values: Iterable[Any]) -> None:
        self.responses.extend(values)
        self.answered += 1
        if self.answered >= self.expected:
            self.done.set()


@dataclass(slots=True)
class _AckPending:
    on_count: Callable[[int], None]
    on_ack: Callable[[Any], None]


class NamespaceCluster:
    """One namespace's part in the cluster: its adapter uid, what it sends, and what it
    does with the other servers' messages."""

    def __init__(self, link: StreamsLink, ns: Namespace) -> None:
        self.link = link
        self.ns = ns
        self.uid = link.add_namespace(ns.name, self.on_message)
        self._requests: dict[str, _Pending] = {}
        self._acks: dict[str, _AckPending] = {}

    def _message(self, type_: MessageType, data: Any = None) -> ClusterMessage:
        return ClusterMessage(int(type_), self.uid, self.ns.name, data)

    # -- sending ---------------------------------------------------------------------------

    async def broadcast(
        self, data: list[Any], rooms: list[str], except_: list[str], *, volatile: bool = False
    ) -> tuple[list[str | bytes], int]:
        """Send the EVENT ``data`` to the other servers (a stream entry), then to this
        process's members; returns the frames and how many local members got them."""
        flags: dict[str, Any] = {"volatile": True} if volatile else {}
        packet = {"type": 2, "data": data, "nsp": self.ns.name}
        message = self._message(
            M.BROADCAST, {"packet": packet, "opts": _opts(rooms, except_, **flags)}
        )
        try:
            offset: str | None = await self.link.add(message)
        except ClusterUnavailableError as exc:
            # As Node: this server's members still get it; the others cannot.
            logger.warning("Socket.IO broadcast not sent to the other servers: %r", exc)
            offset = None
        if self.ns.recovery is not None and not volatile and offset is not None:
            data = [*data, offset]
        return deliver(self.ns, data, rooms, except_)

    async def sockets_join(self, rooms: list[str], opts: dict[str, Any], join: bool) -> None:
        kind = M.SOCKETS_JOIN if join else M.SOCKETS_LEAVE
        await self.link.add(self._message(kind, {"opts": opts, "rooms": rooms}))
        await join_local(self.ns, rooms, opts, join)

    async def server_side_emit(self, packet: list[Any]) -> None:
        """Publish a server-side event (its name, then its arguments) to the other
        servers, without waiting for answers."""
        await self.link.publish(self._message(M.SERVER_SIDE_EMIT, {"packet": packet}))

    async def disconnect_sockets(self, opts: dict[str, Any], close: bool) -> None:
        await self.link.add(self._message(M.DISCONNECT_SOCKETS, {"opts": opts, "close": close}))
        await disconnect_local(self.ns, opts, close)

    async def request(self, type_: MessageType, data: dict[str, Any], timeout: float) -> list[Any]:
        """Publish a request to the other servers and gather their answers (raises
        :class:`ClusterTimeoutError` with those received if some are missing)."""
        expected = await self.link.server_count(self.ns.name) - 1
        if expected <= 0:
            return []
        request_id = new_uid()
        pending = self._requests[request_id] = _Pending(expected)
        try:
            await self.link.publish(self._message(type_, {**data, "requestId": request_id}))
            with anyio.move_on_after(timeout):
                await pending.done.wait()
        finally:
            self._requests.pop(request_id, None)
        if not pending.done.is_set():
            raise ClusterTimeoutError(
                f"timeout reached: only {pending.answered} responses received out of "
                f"{pending.expected}",
                pending.responses,
            )
        return pending.responses

    async def broadcast_with_ack(
        self,
        data: list[Any],
        rooms: list[str],
        except_: list[str],
        timeout: float,
        on_count: Callable[[int], None],
        on_ack: Callable[[Any], None],
    ) -> tuple[int, Callable[[], None]]:
        """Publish the broadcast to the other servers; returns their number and a
        function that stops listening."""
        request_id = new_uid()
        self._acks[request_id] = _AckPending(on_count, on_ack)
        packet = {"type": 2, "data": data, "nsp": self.ns.name}
        opts = _opts(rooms, except_, timeout=int(timeout * 1000))
        servers = await self.link.server_count(self.ns.name) - 1
        await self.link.publish(
            self._message(M.BROADCAST, {"packet": packet, "requestId": request_id, "opts": opts})
        )

        def stop() -> None:
            self._acks.pop(request_id, None)

        return max(servers, 0), stop

    # -- recovery --------------------------------------------------------------------------

    async def persist(self, conn: SocketIOConnection) -> None:
        assert self.ns.recovery is not None and conn.pid is not None
        session = {"sid": conn.sid, "pid": conn.pid, "rooms": sorted(conn.rooms), "data": conn.data}
        try:
            await self.link.persist_session(conn.pid, session, int(self.ns.recovery * 1000))
        except ClusterUnavailableError as exc:
            logger.warning("%s; %s cannot recover", exc, conn.sid)

    async def restore(self, pid: str, offset: str) -> Restored | None:
        """The session ``pid`` kept by any server of the cluster and the EVENTs its
        rooms missed after ``offset`` (each with its offset last), or None if it cannot
        be recovered."""
        try:
            found = await self.link.restore_session(self.ns.name, pid, offset)
        except ClusterUnavailableError as exc:
            logger.warning("%s; a new session instead", exc)
            return None
        if found is None:
            return None
        session, entries = found
        rooms = session.get("rooms")
        sid = session.get("sid")
        if not isinstance(sid, str) or not isinstance(rooms, list):
            return None
        missed = []
        for entry_id, message in entries:
            if message.type != M.BROADCAST or not isinstance(message.data, dict):
                continue
            packet, opts = message.data.get("packet"), message.data.get("opts")
            if not isinstance(packet, dict) or not isinstance(opts, dict):
                continue
            wanted = opts.get("rooms") or []
            unwanted = opts.get("except") or []
            if (not wanted or any(r in wanted for r in rooms)) and not any(
                r in unwanted for r in rooms
            ):
                missed.append([*packet.get("data", []), entry_id])
        return Restored(sid, [str(r) for r in rooms], session.get("data"), missed)

    # -- receiving ---------------------------------------------------------------------------

    async def on_message(self, message: ClusterMessage, offset: str | None) -> None:
        kind = message.type
        data = message.data if isinstance(message.data, dict) else {}
        if kind == M.BROADCAST:
            await self._on_broadcast(message.uid, data, offset)
        elif kind in (M.SOCKETS_JOIN, M.SOCKETS_LEAVE):
            rooms = data.get("rooms")
            if isinstance(rooms, list):
                await join_local(self.ns, rooms, data.get("opts") or {}, kind == M.SOCKETS_JOIN)
        elif kind == M.DISCONNECT_SOCKETS:
            await disconnect_local(self.ns, data.get("opts") or {}, bool(data.get("close")))
        elif kind == M.FETCH_SOCKETS:
            opts = data.get("opts") or {}
            conns = local_sockets(
                self.ns, opts.get("rooms", ()), opts.get("except", ()), connected=True
            )
            answer = {"requestId": data.get("requestId"), "sockets": [describe(c) for c in conns]}
            await self.link.respond(message.uid, self._message(M.FETCH_SOCKETS_RESPONSE, answer))
        elif kind == M.SERVER_SIDE_EMIT:
            self.link.spawn(lambda: self._on_server_side_emit(message.uid, data))
        elif kind in (M.FETCH_SOCKETS_RESPONSE, M.SERVER_SIDE_EMIT_RESPONSE):
            pending = self._requests.get(str(data.get("requestId")))
            if pending is not None:
                if kind == M.FETCH_SOCKETS_RESPONSE:
                    sockets = data.get("sockets")
                    pending.answer(sockets if isinstance(sockets, list) else [])
                else:
                    pending.answer([data.get("packet")])
        elif kind == M.BROADCAST_CLIENT_COUNT:
            ack = self._acks.get(str(data.get("requestId")))
            if ack is not None:
                ack.on_count(int(data.get("clientCount") or 0))
        elif kind == M.BROADCAST_ACK:
            ack = self._acks.get(str(data.get("requestId")))
            if ack is not None:
                ack.on_ack(data.get("packet"))
        # INITIAL_HEARTBEAT, HEARTBEAT, ADAPTER_CLOSE: servers are counted by pub/sub.

    async def _on_broadcast(self, requester: str, data: dict[str, Any], offset: str | None) -> None:
        packet = data.get("packet")
        opts = data.get("opts") or {}
        if not isinstance(packet, dict) or not isinstance(packet.get("data"), list):
            return
        rooms = list(opts.get("rooms") or ())
        except_ = list(opts.get("except") or ())
        flags = opts.get("flags") or {}
        args: list[Any] = packet["data"]
        request_id = data.get("requestId")
        if request_id is None:
            if (
                self.ns.recovery is not None
                and offset is not None
                and packet.get("type") == 2
                and packet.get("id") is None
                and not flags.get("volatile")
            ):
                args = [*args, offset]
            deliver(self.ns, args, rooms, except_)
            return
        link, ns = self.link, self.ns

        def on_ack(value: Any) -> None:
            answer = {"requestId": request_id, "packet": value}
            link.spawn(lambda: link.respond(requester, self._message(M.BROADCAST_ACK, answer)))

        count, forget = ns.deliver_with_ack(args, rooms, except_, on_ack)
        await link.respond(
            requester,
            self._message(
                M.BROADCAST_CLIENT_COUNT, {"requestId": request_id, "clientCount": count}
            ),
        )
        timeout = flags.get("timeout")
        if isinstance(timeout, int | float) and timeout > 0:

            async def expire() -> None:
                await anyio.sleep(timeout / 1000)
                forget()

            link.spawn(expire)

    async def _on_server_side_emit(self, requester: str, data: dict[str, Any]) -> None:
        packet = data.get("packet")
        if not isinstance(packet, list) or not packet or not isinstance(packet[0], str):
            return
        found, result = await call_server_handlers(self.ns, packet[0], packet[1:])
        request_id = data.get("requestId")
        if request_id is not None and found:
            answer = {"requestId": request_id, "packet": result}
            await self.link.respond(requester, self._message(M.SERVER_SIDE_EMIT_RESPONSE, answer))


class SocketIOCluster:
    """The App's adapter links (a provider: the App gives it its broker and enters it
    with its lifespan)."""

    def __init__(self) -> None:
        #: The App's broker URL (None: in-process).
        self.broker: str | None = None
        self.links: dict[tuple[RedisStreamsAdapter, str], StreamsLink] = {}
        #: The rooms of namespaces that use an adapter: this process only, the adapter
        #: carries every operation to the other servers.
        self.rooms = BroadcastGroup()

    def use_broker(self, url: str) -> None:
        """Remember the App's broker (see :class:`~wsgate.broker.UsesBroker`)."""
        self.broker = url

    def link(self, adapter: RedisStreamsAdapter, where: str) -> StreamsLink:
        from ..errors import ConfigurationError

        url = adapter.url or self.broker
        if url is None:
            raise ConfigurationError(
                f"{where}: RedisStreamsAdapter() without a URL uses the App's broker, and "
                "this App has none; give the adapter a URL (RedisStreamsAdapter("
                "'redis://host:6379')) or the App one (App(broker='redis://host:6379') or "
                "WSGATE_BROKER_URL)"
            )
        key = (adapter, url)
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = StreamsLink(adapter, url)
        return link

    async def __aenter__(self) -> Self:
        started: list[StreamsLink] = []
        try:
            for link in self.links.values():
                await link.start()
                started.append(link)
        except BaseException:
            for link in reversed(started):
                await link.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for link in reversed(list(self.links.values())):
            await link.stop()
