"""Socket.IO v5 on top of the Engine.IO endpoint: namespaces, events, acknowledgements
both ways, rooms (on the App's BroadcastGroup), connection state recovery."""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import anyio

from .. import status
from ..broadcast import BroadcastGroup
from ..broadcast.memory import build_message
from ..datastructures import Address, Headers, QueryParams, State
from ..errors import WebSocketDisconnect, WebSocketError
from ..queues import Offer
from ..relay import WakeRelay
from . import cluster
from .adapter import MessageType
from .cluster import NamespaceCluster, RemoteSocket
from .engine_session import EngineSession, Reply, new_id
from .handlers import ArgumentError, EventHandler
from .socketio_protocol import (
    SocketIODecoder,
    SocketIOPacket,
    SocketIOPacketType,
    SocketIOProtocolError,
    encode_reply,
    message_frames,
    to_wire_args,
)

if TYPE_CHECKING:
    from ..di import Container

__all__ = ["SocketIOConnection", "SocketIOEndpoint", "SocketIOObserver", "SocketIOServer"]


logger = logging.getLogger("wsgate.socketio")

T = SocketIOPacketType
RECOVERABLE = frozenset(
    {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }
)
#: The event of an ``@on_socketio_event`` handler that gets the events without a handler
#: of their own (their name first).
CATCH_ALL = "*"
#: Frames a connection may queue while its "connect" handler runs.
PRE_CONNECT_LIMIT = 1024


def _error(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail}}


class SocketIOObserver(Protocol):
    """What an endpoint tells an observer (the admin UI's instrumentation,
    :mod:`wsgate.socketio.admin`) as it happens. The synchronous methods only count;
    the asynchronous ones may emit. None of them may raise."""

    def engine_opened(self, session: EngineSession) -> None:
        """An Engine.IO session was opened."""

    def engine_closed(self, session: EngineSession, reason: str) -> None:
        """An Engine.IO session ended."""

    def frames_in(self, data: str | bytes) -> None:
        """An Engine.IO message arrived."""

    def frames_out(self, frames: list[str | bytes], count: int) -> None:
        """``frames`` went to ``count`` clients."""

    async def connected(self, conn: SocketIOConnection) -> None:
        """``conn`` is connected to its namespace."""

    async def disconnected(self, conn: SocketIOConnection, reason: str) -> None:
        """``conn`` left (its rooms are still in ``conn.rooms``)."""

    async def room_changed(self, conn: SocketIOConnection, room: str, joined: bool) -> None:
        """``conn`` joined (or left) ``room``."""

    async def event_received(self, conn: SocketIOConnection, data: list[Any]) -> None:
        """``conn`` sent an EVENT: ``[name, *args]``."""

    async def event_sent(
        self,
        ns: Namespace,
        data: list[Any],
        room: str | None,
        skip: SocketIOConnection | frozenset[SocketIOConnection] | None,
    ) -> None:
        """An EVENT (``[name, *args]``) went to ``room`` of ``ns`` (None: all) but
        ``skip``; a single connection's own emit has its sid as ``room``."""


@dataclass(slots=True)
class _Saved:
    sid: str
    rooms: tuple[str, ...]
    state: State
    until: float


#: Acknowledgement ids of broadcasts: one id for every client of one broadcast, so the
#: packet is encoded once; far above the ids a connection's own calls use.
_broadcast_ack_ids = itertools.count(1 << 30)


class _AckSink(list[Any]):
    """Stands in for a call's result slot: hands each client's acknowledgement on."""

    def __init__(self, callback: Callable[[list[Any]], None]) -> None:
        super().__init__()
        self._callback = callback

    def append(self, values: Any) -> None:
        self._callback(values)


@dataclass(slots=True)
class Namespace:
    """One ``@socketio_controller`` class serving one namespace of a path."""

    name: str
    cls: type
    handlers: dict[str, EventHandler]
    container: Container
    rooms: BroadcastGroup
    group_prefix: str
    recovery: float | None
    #: The constructor's arguments, resolved once at startup (providers are singletons).
    ctor_kwargs: dict[str, Any] = field(default_factory=dict)
    saved: dict[str, _Saved] = field(default_factory=dict)
    #: (offset, room or None, skipped rooms and sids or None, data, emitted at)
    log: deque[tuple[str, str | None, frozenset[str] | None, list[Any], float]] = field(
        default_factory=deque
    )
    #: The namespace's part in a cluster (None: this process only).
    cluster: NamespaceCluster | None = None
    #: ``@on_server_side_event`` methods by event, and the instance that runs them.
    server_events: dict[str, list[str]] = field(default_factory=dict)
    server_instance: Any = None

    def group(self, room: str | None) -> str:
        """The BroadcastGroup name of ``room`` (None: every connection)."""
        if room is None:
            return "sio*" + self.group_prefix
        return "sio" + self.group_prefix + "|" + room

    def deliver_with_ack(
        self,
        data: list[Any],
        rooms: list[str],
        except_: list[str],
        on_ack: Callable[[Any], None],
    ) -> tuple[int, Callable[[], None]]:
        """Send the EVENT (encoded once) with one acknowledgement id to this process's
        connections of ``rooms`` minus ``except_``; ``on_ack`` gets each client's first
        argument. Returns how many clients were asked and a function that forgets the
        acknowledgements still pending."""
        ack_id = next(_broadcast_ack_ids)
        targets = cluster.local_sockets(self, rooms, except_)
        sink = _AckSink(lambda values: on_ack(values[0] if values else None))
        for conn in targets:
            conn._acks[ack_id] = (anyio.Event(), sink)  # noqa: SLF001
        packet = SocketIOPacket(T.EVENT, self.name, data, ack_id)
        messages = [build_message(f, False) for f in message_frames(packet)]
        count = 0
        for conn in targets:
            for message in messages:
                if conn.offer(message) in (Offer.CLOSED, Offer.SLOW):
                    conn._acks.pop(ack_id, None)  # noqa: SLF001
                    break
            else:
                count += 1

        def forget() -> None:
            for conn in targets:
                conn._acks.pop(ack_id, None)  # noqa: SLF001

        return count, forget

    def prune(self, now: float) -> None:
        """Forget recovery data older than the window."""
        assert self.recovery is not None
        log = self.log
        while log and log[0][4] + self.recovery < now:
            log.popleft()
        for pid in [p for p, s in self.saved.items() if s.until < now]:
            del self.saved[pid]


class SocketIOConnection:
    """One client connected to one namespace (a "socket" in Socket.IO's words).

    Handlers receive it as their first parameter. ``emit`` sends an event, ``call``
    sends one and awaits the client's acknowledgement, ``join``/``leave`` manage rooms,
    ``disconnect`` ends the client's connection.
    """

    __slots__ = (
        "__weakref__",
        "_ack_head",
        "_acks",
        "_buffer",
        "_client",
        "_connected",
        "_gone",
        "_issued",
        "_next_ack",
        "_ns",
        "_rooms",
        "auth",
        "data",
        "instance",
        "namespace",
        "pid",
        "recovered",
        "sid",
        "state",
    )

    def __init__(self, client: _Client, ns: Namespace, auth: Any) -> None:
        self._client = client
        self._ns = ns
        self.namespace = ns.name
        # An ACK frame's head before its id: Engine.IO MESSAGE, Socket.IO ACK, namespace.
        self._ack_head = "43" if ns.name == "/" else f"43{ns.name},"
        #: The CONNECT packet's payload (the client's ``auth``), or None.
        self.auth: Any = auth
        self.sid = new_id()
        self.pid: str | None = new_id() if ns.recovery is not None else None
        #: True if this connection took over the state of one that was cut off.
        self.recovered = False
        self.state = State()
        #: A value other servers of the cluster see (``fetch_sockets``) and recovery
        #: restores; anything msgspec encodes. ``{}`` at first, as in Node.
        self.data: Any = {}
        self._issued = time.time()
        self.instance: Any = None
        self._rooms: set[str] = set()
        self._acks: dict[int, tuple[anyio.Event, list[Any]]] = {}
        self._next_ack = 1  # as python-socketio; the official protocol suite expects 1
        self._connected = False
        self._gone = False
        self._buffer: list[dict[str, Any]] | None = []

    def __repr__(self) -> str:
        return f"<SocketIOConnection {self.namespace} {self.sid}>"

    # -- facts -------------------------------------------------------------------------

    @property
    def scope(self) -> Mapping[str, Any]:
        """The ASGI scope of the request that opened the Engine.IO session."""
        return self._client.session.scope

    @property
    def headers(self) -> Headers:
        """Headers of the request that opened the session."""
        return Headers.from_scope(self.scope)

    @property
    def query_params(self) -> QueryParams:
        """Query parameters of the request that opened the session."""
        return QueryParams.from_scope(self.scope)

    @property
    def client(self) -> Address | None:
        """The peer's ``(host, port)``, if the server gives it."""
        c = self.scope.get("client")
        return Address(c[0], c[1]) if c else None

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``."""
        return self._client.session.transport

    @property
    def engine_sid(self) -> str:
        """The Engine.IO session's id (Node's ``socket.conn.id``): one per client
        connection, shared by its namespaces."""
        return str(self._client.session.sid)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in (its own sid among them)."""
        return frozenset(self._rooms)

    @property
    def connected(self) -> bool:
        """True from the CONNECT until the connection ends."""
        return self._connected and not self._gone

    @property
    def disconnected(self) -> bool:
        """True once the connection has ended (Node's ``socket.disconnected``)."""
        return self._gone

    @property
    def handshake(self) -> dict[str, Any]:
        """The handshake as Node's ``socket.handshake`` describes it: ``headers``,
        ``time``, ``address``, ``xdomain``, ``secure``, ``issued`` (ms), ``url``,
        ``query`` and ``auth``."""
        scope = self.scope
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", ()):
            headers[key.decode("latin-1")] = value.decode("latin-1")
        qs = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        issued = self._issued
        return {
            "headers": headers,
            "time": time.strftime("%a %b %d %Y %H:%M:%S GMT+0000", time.gmtime(issued)),
            "address": client[0] if client else "",
            "xdomain": "origin" in headers,
            "secure": scope.get("scheme") in ("https", "wss"),
            "issued": int(issued * 1000),
            "url": scope.get("path", "") + ("?" + qs if qs else ""),
            "query": dict(self.query_params.items()),
            "auth": self.auth if isinstance(self.auth, dict) else {},
        }

    # -- the broadcast member protocol ---------------------------------------------------

    def offer(self, message: dict[str, Any], relay: WakeRelay | None = None) -> Offer:
        """Queue an encoded broadcast frame without waiting (BroadcastGroup member;
        ``relay`` wakes the WebSocket's writer a few at a time, see
        :class:`~wsgate.relay.WakeRelay`)."""
        buf = self._buffer
        if buf is not None:
            if len(buf) >= PRE_CONNECT_LIMIT:
                return Offer.DROPPED
            buf.append(message)
            return Offer.QUEUED
        return self._client.session.offer(message, relay)

    # -- sending -------------------------------------------------------------------------

    async def _send(self, packet: SocketIOPacket) -> None:
        frames = message_frames(packet)
        buf = self._buffer
        if buf is not None:
            for f in frames:
                buf.append(
                    {"type": "websocket.send", "text": f}
                    if isinstance(f, str)
                    else {"type": "websocket.send", "bytes": f}
                )
            return
        observer = self._client.endpoint.observer
        if observer is not None:
            observer.frames_out(frames, 1)
        await self._client.session.send_frames(frames)

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to this client (bytes anywhere become binary
        attachments; Structs and dataclasses are converted). Dropped once the
        connection has ended. Raises ``TypeError`` for a value that cannot be encoded."""
        if self._gone:
            return
        data = [event, *to_wire_args(list(args))]
        if self._ns.recovery is not None and self._connected:
            await self._client.endpoint.broadcast(self._ns, data, self.sid, None)
            return
        observer = self._client.endpoint.observer
        if observer is not None:
            await observer.event_sent(self._ns, data, self.sid, None)
        await self._send(SocketIOPacket(T.EVENT, self.namespace, data))

    async def call(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        """Send ``event`` and wait for the client's acknowledgement: its single argument,
        a tuple of several, or None for none.

        Raises ``TimeoutError`` if it does not come within ``timeout`` seconds and
        :class:`~wsgate.WebSocketDisconnect` if the connection ends first.
        """
        if self._gone:
            raise WebSocketDisconnect(
                status.WS_1000_NORMAL_CLOSURE, "the Socket.IO connection has ended"
            )
        ack_id = self._next_ack
        self._next_ack += 1
        done = anyio.Event()
        slot: list[Any] = []
        self._acks[ack_id] = (done, slot)
        try:
            data = [event, *to_wire_args(list(args))]
            observer = self._client.endpoint.observer
            if observer is not None:
                await observer.event_sent(self._ns, data, self.sid, None)
            await self._send(SocketIOPacket(T.EVENT, self.namespace, data, ack_id))
            with anyio.fail_after(timeout):
                await done.wait()
        finally:
            self._acks.pop(ack_id, None)
        if not slot:
            raise WebSocketDisconnect(
                status.WS_1000_NORMAL_CLOSURE, "the Socket.IO connection ended before the ack"
            )
        values = slot[0]
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def _ack_received(self, ack_id: int | None, values: list[Any]) -> None:
        entry = self._acks.pop(ack_id, None) if ack_id is not None else None
        if entry is not None:
            entry[1].append(values)
            entry[0].set()

    def _ack_reply(self, ack_id: int, result: Any) -> Reply | None:
        """The ACK's frames, for the task that ran the handler to send (None: buffered
        until the connection is in)."""
        values = list(result) if isinstance(result, tuple) else [result]
        frames = encode_reply(f"{self._ack_head}{ack_id}", values) or message_frames(
            SocketIOPacket(T.ACK, self.namespace, to_wire_args(values), ack_id)
        )
        buf = self._buffer
        if buf is None:
            return Reply(frames)
        for f in frames:
            buf.append(
                {"type": "websocket.send", "text": f}
                if isinstance(f, str)
                else {"type": "websocket.send", "bytes": f}
            )
        return None

    # -- rooms ---------------------------------------------------------------------------

    async def join(self, room: str) -> None:
        """Join ``room`` (idempotent)."""
        if self._gone or room in self._rooms:
            return
        self._rooms.add(room)
        await self._ns.rooms.subscribe(self._ns.group(room), self)
        observer = self._client.endpoint.observer
        if observer is not None:
            await observer.room_changed(self, room, True)

    async def leave(self, room: str) -> None:
        """Leave ``room`` (safe if not a member)."""
        if room not in self._rooms:
            return
        self._rooms.discard(room)
        await self._ns.rooms.unsubscribe(self._ns.group(room), self)
        observer = self._client.endpoint.observer
        if observer is not None:
            await observer.room_changed(self, room, False)

    async def disconnect(self, close: bool = True) -> None:
        """Disconnect the client: a DISCONNECT packet for each of its namespaces, then
        the Engine.IO close, as the reference server's ``disconnect(true)`` does. With
        ``close=False``, this namespace only (``disconnect(false)``): its DISCONNECT
        packet, and the client's other namespaces and its connection stay."""
        client = self._client
        if not close:
            if self._connected and not self._gone:
                await self._send(SocketIOPacket(T.DISCONNECT, self.namespace))
            await client.drop(self, "server namespace disconnect")
            return
        for conn in list(client.sockets.values()):
            if conn._connected and not conn._gone:  # noqa: SLF001
                await conn._send(SocketIOPacket(T.DISCONNECT, conn.namespace))  # noqa: SLF001
            await client.drop(conn, "server namespace disconnect")
        client.session.close("forced server close")


#: What an emit leaves out: a connection, a room (a sid is a room too), or an iterable of
#: connections and rooms, as ``except`` in Node.
Skip: TypeAlias = SocketIOConnection | str | Iterable[SocketIOConnection | str] | None


class _Client:
    """The Socket.IO side of one Engine.IO session."""

    __slots__ = ("decoder", "endpoint", "leaving", "session", "sockets")

    def __init__(self, endpoint: SocketIOEndpoint, session: EngineSession) -> None:
        self.endpoint = endpoint
        self.session = session
        self.decoder = SocketIODecoder()
        self.sockets: dict[str, SocketIOConnection] = {}
        #: Connections whose client sent DISCONNECT, until their hook has run.
        self.leaving: dict[SocketIOConnection, str] = {}

    async def send(self, packet: SocketIOPacket) -> None:
        await self.session.send_frames(message_frames(packet))

    async def drop(self, conn: SocketIOConnection, reason: str) -> None:
        """End one namespace connection: rooms, pending calls, recovery, hook."""
        self.leaving.pop(conn, None)
        if conn._gone:  # noqa: SLF001
            return
        conn._gone = True  # noqa: SLF001
        if self.sockets.get(conn.namespace) is conn:
            del self.sockets[conn.namespace]
        ns = conn._ns  # noqa: SLF001
        was_connected = conn._connected  # noqa: SLF001
        await ns.rooms.unsubscribe_all(conn)
        for done, _ in list(conn._acks.values()):  # noqa: SLF001
            done.set()
        if not was_connected:
            return
        observer = self.endpoint.observer
        if observer is not None:
            await observer.disconnected(conn, reason)
        if ns.recovery is not None and conn.pid is not None and reason in RECOVERABLE:
            if ns.cluster is not None:
                try:
                    await ns.cluster.persist(conn)
                except Exception:
                    logger.exception("could not keep Socket.IO session %s for recovery", conn.sid)
                return await self._disconnected(conn, ns, reason)
            now = time.monotonic()
            ns.prune(now)
            ns.saved[conn.pid] = _Saved(conn.sid, tuple(conn._rooms), conn.state, now + ns.recovery)  # noqa: SLF001
        await self._disconnected(conn, ns, reason)

    async def _disconnected(self, conn: SocketIOConnection, ns: Namespace, reason: str) -> None:
        handler = ns.handlers.get("disconnect")
        if handler is not None:
            try:
                await handler.call(conn.instance, conn, [reason])
            except Exception:
                logger.exception("Socket.IO disconnect handler %s failed", handler.qualname)


class SocketIOEndpoint:
    """The Engine.IO application of one Socket.IO path: its namespaces."""

    def __init__(self, path: str, namespaces: dict[str, Namespace], connect_timeout: float):
        self.path = path
        self.namespaces = namespaces
        self.connect_timeout = connect_timeout
        #: Told of connections, rooms and events (see :class:`SocketIOObserver`).
        self.observer: SocketIOObserver | None = None

    # -- EngineIOApplication -------------------------------------------------------------

    def on_open(self, session: EngineSession) -> None:
        session.bind(_Client(self, session))
        session.set_timer(anyio.current_time() + self.connect_timeout)
        if self.observer is not None:
            self.observer.engine_opened(session)

    def on_timer(self, session: EngineSession) -> None:
        client: _Client = session.app_data
        if not client.sockets:
            session.close("forced close")

    async def on_close(self, session: EngineSession, reason: str) -> None:
        client: _Client = session.app_data
        for conn, why in list(client.leaving.items()):
            await client.drop(conn, why)
        for conn in list(client.sockets.values()):
            await client.drop(conn, reason)
        if self.observer is not None:
            self.observer.engine_closed(session, reason)

    def on_message(self, session: EngineSession, data: str | bytes) -> None:
        client: _Client = session.app_data
        if self.observer is not None:
            self.observer.frames_in(data)
        try:
            packet = client.decoder.feed(data)
        except SocketIOProtocolError as exc:
            logger.debug("Socket.IO session %s: %s", session.sid, exc)
            session.close("parse error")
            return
        if packet is None:
            return
        ns_name = packet.namespace
        conn = client.sockets.get(ns_name)
        kind = packet.type
        if kind is T.CONNECT:
            if conn is not None:
                session.close("forced close")  # a second CONNECT: the reference closes
                return
            ns = self.namespaces.get(ns_name)
            if ns is None:
                error = SocketIOPacket(T.CONNECT_ERROR, ns_name, {"message": "Invalid namespace"})
                session.submit(lambda: client.send(error))
                return
            auth = packet.data
            conn = SocketIOConnection(client, ns, auth)
            client.sockets[ns_name] = conn
            session.submit(lambda: self._connect(client, conn))
            return
        if conn is None or kind is T.CONNECT_ERROR:
            session.close("forced close")
            return
        if kind is T.ACK:
            conn._ack_received(packet.id, packet.data)  # noqa: SLF001
        elif kind is T.EVENT:
            session.submit(lambda: self._event(conn, packet))
        elif kind is T.DISCONNECT:
            reason = "client namespace disconnect"
            del client.sockets[ns_name]
            client.leaving[conn] = reason
            session.submit(lambda: client.drop(conn, reason))

    # -- work ------------------------------------------------------------------------------

    async def _connect(self, client: _Client, conn: SocketIOConnection) -> Reply | None:
        ns = conn._ns  # noqa: SLF001
        auth = conn.auth if isinstance(conn.auth, dict) else {}
        missed: list[list[Any]] = []
        if ns.recovery is not None:
            pid, offset = auth.get("pid"), auth.get("offset")
            if isinstance(pid, str) and isinstance(offset, str):
                missed_or_none = (
                    await self._restore_cluster(ns, conn, pid, offset)
                    if ns.cluster is not None
                    else self._restore(ns, conn, pid, offset)
                )
                if missed_or_none is not None:
                    missed = missed_or_none
        try:
            conn.instance = ns.cls(**ns.ctor_kwargs)
            await conn.join(conn.sid)
            await ns.rooms.subscribe(ns.group(None), conn)
            for room in list(conn._rooms):  # noqa: SLF001
                await ns.rooms.subscribe(ns.group(room), conn)
            handler = ns.handlers.get("connect")
            if handler is not None:
                await handler.call(conn.instance, conn, [])
        except Exception as exc:
            if isinstance(exc, WebSocketError):
                data = {"message": exc.message or "refused", "data": exc.detail}
            else:
                logger.exception("Socket.IO connect handler of %s failed", ns.cls.__qualname__)
                data = {"message": "internal server error"}
            conn._buffer = None  # noqa: SLF001
            await client.drop(conn, "server namespace disconnect")
            await client.send(SocketIOPacket(T.CONNECT_ERROR, ns.name, data))
            return None
        if conn._gone or not client.session.open:  # noqa: SLF001
            return None
        payload: dict[str, Any] = {"sid": conn.sid}
        if conn.pid is not None:
            payload["pid"] = conn.pid
        frames = message_frames(SocketIOPacket(T.CONNECT, ns.name, payload))
        client.session.set_timer(None)
        conn._connected = True  # noqa: SLF001
        if self.observer is not None:
            await self.observer.connected(conn)
            if conn._gone or not client.session.open:  # noqa: SLF001
                return None
        buffered, conn._buffer = conn._buffer or [], None  # noqa: SLF001
        for missed_data in missed:
            frames += message_frames(SocketIOPacket(T.EVENT, ns.name, missed_data))
        for message in buffered:
            frame = message.get("text")
            frames.append(frame if frame is not None else message["bytes"])
        # Written, in this order, by the task that ran this work as soon as it returns
        # (the reader itself, if nothing here suspended).
        return Reply(frames)

    async def _restore_cluster(
        self, ns: Namespace, conn: SocketIOConnection, pid: str, offset: str
    ) -> list[list[Any]] | None:
        assert ns.cluster is not None
        try:
            found = await ns.cluster.restore(pid, offset)
        except Exception:
            logger.exception("could not restore Socket.IO session %s", pid)
            return None
        if found is None:
            return None
        conn.sid = found.sid
        conn.pid = pid
        conn.data = found.data
        conn.recovered = True
        conn._rooms = set(found.rooms)  # noqa: SLF001
        return found.missed

    def _restore(
        self, ns: Namespace, conn: SocketIOConnection, pid: str, offset: str
    ) -> list[list[Any]] | None:
        assert ns.recovery is not None
        ns.prune(time.monotonic())
        saved = ns.saved.get(pid)
        if saved is None:
            return None
        log = list(ns.log)
        index = next((i for i, entry in enumerate(log) if entry[0] == offset), None)
        if index is None:
            return None
        del ns.saved[pid]
        rooms = set(saved.rooms)  # its own sid among them
        missed = [
            data
            for _, room, skip, data, _ in log[index + 1 :]
            if (room is None or room in rooms) and (skip is None or skip.isdisjoint(rooms))
        ]
        conn.sid = saved.sid
        conn.pid = pid
        conn.state = saved.state
        conn.recovered = True
        conn._rooms = rooms  # noqa: SLF001
        return missed

    async def _event(self, conn: SocketIOConnection, packet: SocketIOPacket) -> Reply | None:
        if conn._gone:  # noqa: SLF001
            return None
        data = packet.data
        event, args = data[0], data[1:]
        ns = conn._ns  # noqa: SLF001
        if self.observer is not None:
            await self.observer.event_received(conn, data)
        handler = ns.handlers.get(event) if isinstance(event, str) else None
        ack_id = packet.id
        if handler is None:
            handler = ns.handlers.get(CATCH_ALL) if isinstance(event, str) else None
            if handler is None:
                logger.debug("Socket.IO %s: no handler for event %r", ns.name, event)
                return None
            args = data  # the catch-all takes the event's name first, as onAny
        try:
            result = await handler.call(conn.instance, conn, args)
        except ArgumentError as exc:
            if ack_id is not None:
                return conn._ack_reply(ack_id, _error("validation_error", exc.message, exc.detail))  # noqa: SLF001
            logger.warning("Socket.IO event %r on %s: %s", event, ns.name, exc.message)
            return None
        except WebSocketError as exc:
            if ack_id is not None:
                return conn._ack_reply(ack_id, _error(exc.code, exc.message, exc.detail))  # noqa: SLF001
            return None
        except Exception:
            logger.exception("Socket.IO handler %s failed", handler.qualname)
            if ack_id is not None:
                return conn._ack_reply(ack_id, _error("internal_error", "internal server error"))  # noqa: SLF001
            return None
        if ack_id is not None:
            # Sent by the task that ran this (the reader itself when nothing suspended).
            return conn._ack_reply(ack_id, result)  # noqa: SLF001
        return None

    # -- broadcasting ------------------------------------------------------------------------

    async def broadcast(
        self,
        ns: Namespace,
        data: list[Any],
        room: str | None,
        skip: Skip,
        *,
        local: bool = False,
    ) -> int:
        """Encode ``data`` (an EVENT's array) once and hand it to every member of
        ``room`` (None: the whole namespace) except ``skip``, in every worker (``local``:
        in this process only)."""
        excluded, skipped = _resolve_skip(ns, skip, local)
        observer = self.observer
        if observer is not None:
            await observer.event_sent(ns, data, room, excluded)
        if ns.cluster is not None:
            # The other servers apply the skipped rooms and sids themselves (Node's except).
            rooms = [room] if room is not None else []
            if local:
                # Node's io.local: not in the stream, so no offset to recover from.
                frames, sent = cluster.deliver(ns, data, rooms, sorted(skipped or ()))
            else:
                frames, sent = await ns.cluster.broadcast(data, rooms, sorted(skipped or ()))
            if observer is not None:
                observer.frames_out(frames, sent)
            return sent
        if ns.recovery is not None:
            offset = new_id()
            data = [*data, offset]
            now = time.monotonic()
            ns.log.append((offset, room, skipped, data, now))
            if ns.log[0][4] + ns.recovery < now:
                ns.prune(now)
        frames = message_frames(SocketIOPacket(T.EVENT, ns.name, data))
        group = ns.group(room)
        sent = 0
        if isinstance(excluded, frozenset):
            # Several connections, or rooms, resolved in this process (see _resolve_skip).
            for frame in frames:
                message = _message(frame)
                sent = ns.rooms.deliver_local(group, message, excluded)
        elif local:
            for frame in frames:
                sent = ns.rooms.deliver_local(group, _message(frame), excluded)
        else:
            for frame in frames:
                sent = await ns.rooms.broadcast(group, frame, exclude=excluded)
        if observer is not None:
            observer.frames_out(frames, sent)
        return sent


def _resolve_skip(
    ns: Namespace, skip: Skip, local: bool = False
) -> tuple[SocketIOConnection | frozenset[SocketIOConnection] | None, frozenset[str] | None]:
    """``skip`` as the broadcast applies it: the member to exclude (one connection, which
    works across workers) or the set of this process's connections to exclude (the
    connections given and the members of the rooms given); and the rooms and sids left
    out, for the recovery log (``local``: the broadcast stays in this process)."""
    if skip is None:
        return None, None
    if isinstance(skip, SocketIOConnection):
        return skip, frozenset((skip.sid,))
    items = (skip,) if isinstance(skip, str) else skip
    conns: set[SocketIOConnection] = set()
    names: set[str] = set()
    rooms = False
    for item in items:
        if isinstance(item, SocketIOConnection):
            conns.add(item)
            names.add(item.sid)
        elif isinstance(item, str):
            rooms = True
            names.add(item)
            for member in ns.rooms.members(ns.group(item)):
                if isinstance(member, SocketIOConnection):
                    conns.add(member)
        else:
            raise TypeError(
                "skip takes a SocketIOConnection, a room name or an iterable of them, "
                f"not {type(item).__name__}"
            )
    if not rooms and len(conns) <= 1:
        return (next(iter(conns)) if conns else None), frozenset(names) or None
    if ns.rooms.broker_url is not None and not local:
        raise ValueError(
            "skip with rooms or several connections is resolved in this process, and "
            f"{type(ns.rooms).__name__} delivers across workers: skip one connection, "
            "emit to each room you want instead, or emit with local=True to reach this "
            "process's connections only"
        )
    return frozenset(conns), frozenset(names)


def _message(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, str):
        return {"type": "websocket.send", "text": frame}
    return {"type": "websocket.send", "bytes": frame}


class SocketIOServer:
    """Emit to Socket.IO clients from anywhere (a handler, a WebSocket gateway, a
    background task). Injected by type; the App provides it when Socket.IO controllers
    exist.

    ::

        await sio.emit("news", {"title": "..."}, room="lobby", skip=conn)
    """

    def __init__(self, endpoints: Iterable[SocketIOEndpoint] = ()) -> None:
        self._endpoints: list[SocketIOEndpoint] = list(endpoints)

    @property
    def endpoints(self) -> tuple[SocketIOEndpoint, ...]:
        """The Socket.IO paths served, one endpoint each."""
        return tuple(self._endpoints)

    def add_endpoint(self, endpoint: SocketIOEndpoint) -> None:
        """Serve ``endpoint``'s namespaces too (called once per path as the App is built)."""
        self._endpoints.append(endpoint)

    def _namespace(self, namespace: str, path: str | None) -> tuple[SocketIOEndpoint, Namespace]:
        for ep in self._endpoints:
            if path is not None and ep.path != "/" + path.strip("/"):
                continue
            ns = ep.namespaces.get(namespace)
            if ns is not None:
                return ep, ns
        raise LookupError(
            f"no Socket.IO controller serves namespace {namespace!r}"
            + (f" at {path!r}" if path else "")
        )

    async def emit(
        self,
        event: str,
        *args: Any,
        room: str | None = None,
        namespace: str = "/",
        skip: Skip = None,
        path: str | None = None,
        local: bool = False,
    ) -> int:
        """Send ``event`` with ``args`` to every connection of ``room`` (None: of the
        namespace), except ``skip``, on every worker; encoded once. Returns the frames
        enqueued in this process. Never waits for a client. Raises ``LookupError`` for a
        namespace no controller serves (``path`` picks among several Socket.IO paths).

        ``skip`` leaves out a connection, the members of a room (a sid names a
        connection's own room), or every connection and room of an iterable, as
        ``except`` does in Node: ``skip=[conn, "muted"]``. One connection is skipped on
        every worker; rooms and several connections are resolved among this process's
        connections (a ``ValueError`` says so when the rooms span workers).

        ``local=True`` sends to this process's connections only, not through the
        adapter or the broker to the other servers or workers (Node's ``io.local``).
        With an adapter such an event is not in the stream: it carries no offset, and a
        client that recovers elsewhere does not get it again."""
        endpoint, ns = self._namespace(namespace, path)
        data = [event, *to_wire_args(list(args))]
        return await endpoint.broadcast(ns, data, room, skip, local=local)

    def rooms(self, namespace: str = "/", path: str | None = None) -> list[str]:
        """The rooms of ``namespace`` that have members in this process (sids included)."""
        _, ns = self._namespace(namespace, path)
        prefix = ns.group("")
        return [g[len(prefix) :] for g in ns.rooms.groups() if g.startswith(prefix)]

    # -- cluster operations (every server of the cluster with an adapter; this process
    # -- only without one) -------------------------------------------------------------------

    async def fetch_sockets(
        self, *, room: str | None = None, namespace: str = "/", path: str | None = None
    ) -> list[RemoteSocket]:
        """The connections of ``namespace`` (in ``room`` if given) on every server of the
        cluster, as :class:`~wsgate.socketio.RemoteSocket` snapshots. Raises
        ``TimeoutError`` if a server does not answer within the adapter's
        ``heartbeat_timeout_ms``."""
        _, ns = self._namespace(namespace, path)
        rooms = [room] if room is not None else []
        entries: list[Any] = [
            cluster.describe(c) for c in cluster.local_sockets(ns, rooms, (), connected=True)
        ]
        if ns.cluster is not None:
            opts = {"rooms": rooms, "except": [], "flags": {}}
            timeout = ns.cluster.link.config.heartbeat_timeout_ms / 1000
            entries += await ns.cluster.request(MessageType.FETCH_SOCKETS, {"opts": opts}, timeout)
        found = [cluster.remote_socket(e, ns.name, self, path) for e in entries]
        return [s for s in found if s is not None]

    async def sockets_join(
        self,
        rooms: str | Iterable[str],
        *,
        room: str | None = None,
        namespace: str = "/",
        path: str | None = None,
    ) -> None:
        """Make the connections of ``room`` (None: all) join ``rooms``, on every server."""
        await self._sockets_join(rooms, room, namespace, path, True)

    async def sockets_leave(
        self,
        rooms: str | Iterable[str],
        *,
        room: str | None = None,
        namespace: str = "/",
        path: str | None = None,
    ) -> None:
        """Make the connections of ``room`` (None: all) leave ``rooms``, on every server."""
        await self._sockets_join(rooms, room, namespace, path, False)

    async def _sockets_join(
        self,
        rooms: str | Iterable[str],
        room: str | None,
        namespace: str,
        path: str | None,
        join: bool,
    ) -> None:
        _, ns = self._namespace(namespace, path)
        names = cluster.rooms_arg(rooms)
        opts = {"rooms": [room] if room is not None else [], "except": [], "flags": {}}
        if ns.cluster is not None:
            await ns.cluster.sockets_join(names, opts, join)
        else:
            await cluster.join_local(ns, names, opts, join)

    async def disconnect_sockets(
        self,
        *,
        room: str | None = None,
        namespace: str = "/",
        close: bool = False,
        path: str | None = None,
    ) -> None:
        """Disconnect the connections of ``room`` (None: all) from ``namespace`` on every
        server (``close``: end their whole Engine.IO connection)."""
        _, ns = self._namespace(namespace, path)
        opts = {"rooms": [room] if room is not None else [], "except": [], "flags": {}}
        if ns.cluster is not None:
            await ns.cluster.disconnect_sockets(opts, close)
        else:
            await cluster.disconnect_local(ns, opts, close)

    async def server_side_emit(
        self, event: str, *args: Any, namespace: str = "/", path: str | None = None
    ) -> None:
        """Send ``event`` to the ``@on_server_side_event(event)`` methods of the other
        servers of the cluster (not this one; without an adapter, nowhere)."""
        _, ns = self._namespace(namespace, path)
        if ns.cluster is not None:
            await ns.cluster.server_side_emit([event, *to_wire_args(list(args))])

    async def server_side_emit_with_ack(
        self,
        event: str,
        *args: Any,
        namespace: str = "/",
        timeout: float = 5.0,
        path: str | None = None,
    ) -> list[Any]:
        """As :meth:`server_side_emit`, and return the other servers' answers (what
        their handler returned), one per server. Raises ``TimeoutError`` (with
        ``responses``, the answers received) if some server did not answer in time."""
        _, ns = self._namespace(namespace, path)
        if ns.cluster is None:
            return []
        packet = [event, *to_wire_args(list(args))]
        return await ns.cluster.request(MessageType.SERVER_SIDE_EMIT, {"packet": packet}, timeout)

    async def emit_with_ack(
        self,
        event: str,
        *args: Any,
        room: str | None = None,
        namespace: str = "/",
        timeout: float = 5.0,
        path: str | None = None,
        local: bool = False,
    ) -> list[Any]:
        """Send ``event`` to every connection of ``room`` (None: the namespace) on every
        server (``local``: on this one only) and return each client's acknowledgement
        (its first argument), in the order they came. Raises ``TimeoutError`` if some
        did not answer within ``timeout`` seconds; its ``responses`` holds those that
        did."""
        _, ns = self._namespace(namespace, path)
        rooms = [room] if room is not None else []
        data = [event, *to_wire_args(list(args))]
        responses: list[Any] = []
        # Clients asked and servers that said how many; the servers to hear from (-1:
        # not known yet, as a server with no client may answer before it is).
        state = {"expected": 0, "servers": 0, "need": -1}
        done = anyio.Event()

        def check() -> None:
            need = state["need"]
            if 0 <= need <= state["servers"] and len(responses) >= state["expected"]:
                done.set()

        def on_count(count: int) -> None:
            state["expected"] += count
            state["servers"] += 1
            check()

        def on_ack(value: Any) -> None:
            responses.append(value)
            check()

        stop_remote: Any = None
        others = 0
        if ns.cluster is not None and not local:
            others, stop_remote = await ns.cluster.broadcast_with_ack(
                data, rooms, [], timeout, on_count, on_ack
            )
        count, forget = ns.deliver_with_ack(data, rooms, [], on_ack)
        state["need"] = 1 + others
        on_count(count)
        try:
            with anyio.move_on_after(timeout):
                await done.wait()
        finally:
            forget()
            if stop_remote is not None:
                stop_remote()
        if not done.is_set():
            raise cluster.ClusterTimeoutError(
                f"timeout reached: {len(responses)} acknowledgements of "
                f"{state['expected']} clients on {state['servers']}/{state['need']} servers",
                list(responses),
            )
        return list(responses)
