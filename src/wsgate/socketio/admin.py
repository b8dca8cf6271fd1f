"""The server side of the official Socket.IO Admin UI (``@socket.io/admin-ui``).

::

    from wsgate.socketio import instrument

    app = App(gateways=[Chat])
    instrument(app, auth={"username": "admin", "password": os.environ["SIO_ADMIN_PASSWORD"]})

:func:`instrument` adds the admin namespace (``/admin``) to every Socket.IO path of the
App and speaks the UI's protocol there, as the Node package's ``instrument()`` does:

* on connect: the credentials (``auth``) or a session id the server handed out earlier
  (``"session"``), refused with the error ``"invalid credentials"`` the UI recognises;
  then ``"config"`` (the features: the actions unless ``read_only``, the per-socket
  events in development mode) and, in development mode, ``"all_sockets"``;
* every 2 seconds ``"server_stats"``: this server's id, host, pid, uptime, Engine.IO
  clients (and how many poll), its namespaces with their sockets, and the aggregated
  events (connections, disconnections by reason, Socket.IO packets and bytes in and out)
  of the last period;
* in development mode, as they happen: ``socket_connected`` (the socket with its
  transport, handshake and rooms), ``socket_updated`` (its transport after an upgrade),
  ``socket_disconnected``, ``room_joined``, ``room_left``, ``event_received``,
  ``event_sent``;
* the actions, unless ``read_only``: ``join``, ``leave``, ``_disconnect`` and ``emit``,
  each on the sockets of a namespace or of a room of it (the UI uses a socket's own id).

Across a cluster (several servers on one Redis/Valkey through a
:class:`~wsgate.socketio.RedisStreamsAdapter`, which the App's broker gives every
Socket.IO path by default), a UI connected to any server works on all of them:

* what the monitor emits is a broadcast to the admin namespace, so each server's
  ``server_stats`` and events reach the UI, which lists each server by its ``server_id``;
* ``all_sockets`` holds the sockets of every server (``FETCH_SOCKETS`` per namespace).
  As Node's package does, each socket carries what the UI needs in ``conn.data`` under
  ``"_admin"`` (``{"clientId", "transport"}``), so the sockets of a wsgate server and of
  a Node server instrumented with ``@socket.io/admin-ui`` show on either's UI (the UI
  gets ``data`` without ``"_admin"``);
* the actions are cluster operations (``sockets_join``, ``sockets_leave``,
  ``disconnect_sockets``, ``emit`` to a room): a socket's own id names it wherever it is;
* the session ids handed out after a login are kept in Redis (``SET
  socket.io-admin#<id> true EX 86400``, the keys of Node's ``RedisStore``), so the UI
  logs in again without the password on whichever server it reconnects to. Without an
  adapter they are kept in the process, as Node's default ``InMemoryStore``.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qsl

import anyio

from ..broadcast._redis_client import REDIS_ERRORS, redact
from ..errors import ConfigurationError, WebSocketError
from .adapter import ClusterUnavailableError, MessageType, StreamsLink
from .cluster import ClusterTimeoutError, NamespaceCluster
from .controllers import on_socketio_event
from .engine_session import EngineSession
from .handlers import compile_events
from .server import Namespace, SocketIOConnection, SocketIOEndpoint, SocketIOServer

if TYPE_CHECKING:
    from ..app import App

__all__ = ["AdminMonitor", "instrument"]

logger = logging.getLogger("wsgate.socketio.admin")

#: Seconds between two ``server_stats``, as the Node package.
STATS_INTERVAL = 2.0
#: Session ids handed out to logged-in UIs, kept (most recent first) for reconnects.
MAX_SESSIONS = 1000
#: With an adapter, a session id is the Redis key ``SESSION_KEY_PREFIX + id`` (the keys of
#: Node's ``RedisStore``, whose default prefix is ``socket.io-admin``) ...
SESSION_KEY_PREFIX = "socket.io-admin#"
#: ... kept for this many seconds (``RedisStore``'s default ``sessionDuration``).
SESSION_TTL = 86_400

_FEATURES_ACTIONS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]


def _now() -> str:
    """A timestamp as JavaScript's ``Date`` serialises (ISO 8601, UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_auth(auth: Any) -> dict[str, str] | None:
    if auth is False:
        return None
    if auth is None:
        raise ConfigurationError(
            "instrument() needs credentials for the admin UI: pass "
            "auth={'username': ..., 'password': ...} (read the password from the "
            "environment, not the source), or auth=False to let anyone who reaches the "
            "server watch and act on every socket"
        )
    if not isinstance(auth, Mapping):
        raise ConfigurationError(
            f"instrument(auth=...) takes {{'username': ..., 'password': ...}} or False, not "
            f"{type(auth).__name__}"
        )
    username, password = auth.get("username"), auth.get("password")
    extra = set(auth) - {"username", "password", "type"}
    if not isinstance(username, str) or not isinstance(password, str) or not password or extra:
        raise ConfigurationError(
            "instrument(auth=...) takes exactly {'username': str, 'password': str} (a "
            f"non-empty password); got the keys {sorted(auth)}"
        )
    if auth.get("type", "basic") != "basic":
        raise ConfigurationError("instrument(auth=...): the only auth type is 'basic'")
    if password.startswith(("$2a$", "$2b$", "$2y$")) and len(password) == 60:
        raise ConfigurationError(
            "instrument(auth=...): the password looks like a bcrypt hash (as Node's "
            "instrument() takes); give the password itself, the UI sends it as typed"
        )
    return {"username": username, "password": password}


def _node_date(epoch: float) -> str:
    """``new Date().toString()`` of Node in UTC, as the UI shows a handshake's time."""
    return time.strftime(
        "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", time.gmtime(epoch)
    )


class _Tracked:
    __slots__ = ("conn", "issued", "transport")

    def __init__(self, conn: SocketIOConnection) -> None:
        self.conn = conn
        self.issued = time.time()
        self.transport = conn.transport


class AdminMonitor:
    """The admin UI's view of one Socket.IO endpoint (one path): the observer of its
    namespaces (:class:`~wsgate.socketio.server.SocketIOObserver`) and the handlers of
    its admin namespace. Built by :func:`instrument`."""

    def __init__(
        self,
        endpoint: SocketIOEndpoint,
        engine_sessions: Mapping[str, EngineSession],
        *,
        server: SocketIOServer,
        auth: dict[str, str] | None,
        development: bool,
        read_only: bool,
        namespace: str,
        server_id: str,
    ) -> None:
        self.endpoint = endpoint
        self.sessions = engine_sessions
        #: Runs the actions, on every server of the cluster.
        self.server = server
        self.auth = auth
        self.development = development
        self.read_only = read_only
        self.namespace = namespace
        self.server_id = server_id
        self.hostname = socket.gethostname()
        self.started = time.monotonic()
        self.features = [] if read_only else list(_FEATURES_ACTIONS)
        self.features.append("AGGREGATED_EVENTS")
        if development:
            self.features.append("ALL_EVENTS")
        #: Connected sockets by namespace, then sid (kept in development mode only).
        self.sockets: dict[str, dict[str, _Tracked]] = {}
        self._session_ids: OrderedDict[str, None] = OrderedDict()
        #: (second, type, subType) -> count, since the last server_stats
        self._events: dict[tuple[int, str, str | None], int] = {}
        self.admin: Namespace | None = None  # set by instrument()

    # -- what the UI receives -------------------------------------------------------------

    async def _emit(self, event: str, *args: Any) -> None:
        admin = self.admin
        if admin is None:
            return
        watched = admin.rooms.member_count(admin.group(None)) > 0
        if not watched and admin.rooms.broker_url is None and admin.cluster is None:
            return  # no UI here, and no other server to carry it to
        try:
            await self.endpoint.broadcast(admin, [event, *args], None, None)
        except Exception:
            logger.exception("the admin UI's %r could not be sent", event)

    def _count(self, kind: str, sub: str | None = None, n: int = 1) -> None:
        key = (int(time.time()), kind, sub)
        self._events[key] = self._events.get(key, 0) + n

    def stats(self, *, take_events: bool = True) -> dict[str, Any]:
        """The ``server_stats`` payload of this server now."""
        events: list[dict[str, Any]] = []
        if take_events:
            taken, self._events = self._events, {}
            for (second, kind, sub), count in taken.items():
                entry: dict[str, Any] = {"timestamp": second * 1000, "type": kind, "count": count}
                if sub is not None:
                    entry["subType"] = sub
                events.append(entry)
        sessions = list(self.sessions.values())
        return {
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": os.getpid(),
            "uptime": time.monotonic() - self.started,
            "clientsCount": len(sessions),
            "pollingClientsCount": sum(1 for s in sessions if s.transport == "polling"),
            "aggregatedEvents": events,
            "namespaces": [
                {"name": ns.name, "socketsCount": ns.rooms.member_count(ns.group(None))}
                for ns in self.endpoint.namespaces.values()
            ],
        }

    def serialize(self, tracked: _Tracked) -> dict[str, Any]:
        """One of this server's sockets as the UI shows it (the Node package's format)."""
        conn = tracked.conn
        scope = conn.scope
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        client = conn.client
        query_string = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("path", "")
        return {
            "id": conn.sid,
            "clientId": _client_id(conn),
            "transport": conn.transport,
            "nsp": conn.namespace,
            "data": _without_admin(conn.data),
            "handshake": {
                "address": _address(headers, client.host if client else ""),
                "headers": headers,
                "query": dict(parse_qsl(query_string, keep_blank_values=True)),
                "issued": int(tracked.issued * 1000),
                "secure": scope.get("scheme") in ("https", "wss"),
                "time": _node_date(tracked.issued),
                "url": path + ("?" + query_string if query_string else ""),
                "xdomain": "origin" in headers,
            },
            "rooms": sorted(conn.rooms),
        }

    @staticmethod
    def serialize_fetched(entry: Mapping[str, Any], nsp: str) -> dict[str, Any]:
        """A socket of another server (an entry of its ``FETCH_SOCKETS`` answer, wsgate's
        or Node's) as the UI shows it: the client id and transport come from its
        ``data["_admin"]``, as Node's package serialises fetched sockets."""
        data = entry.get("data")
        info = data.get("_admin") if isinstance(data, dict) else None
        given = entry.get("handshake")
        handshake: Mapping[str, Any] = given if isinstance(given, dict) else {}
        raw_headers = handshake.get("headers")
        headers: Mapping[str, Any] = raw_headers if isinstance(raw_headers, dict) else {}
        rooms = entry.get("rooms")
        room_names = [r for r in rooms if isinstance(r, str)] if isinstance(rooms, list) else []
        out: dict[str, Any] = {"id": entry.get("id")}
        if isinstance(info, dict):
            # Left out when unknown, as Node's undefined fields are.
            out.update({k: info[k] for k in ("clientId", "transport") if k in info})
        out.update(
            {
                "nsp": nsp,
                "data": _without_admin(data),
                "handshake": {
                    "address": _address(headers, handshake.get("address")),
                    "headers": headers,
                    **{
                        key: handshake[key]
                        for key in ("query", "issued", "secure", "time", "url", "xdomain")
                        if key in handshake
                    },
                },
                "rooms": room_names,
            }
        )
        return out

    async def all_sockets(self) -> list[dict[str, Any]]:
        """Every socket of the cluster, serialised: this server's, then those the other
        servers of each namespace report (a server that does not answer within the
        adapter's ``heartbeat_timeout_ms`` is left out, with a warning)."""
        out = [self.serialize(t) for by_sid in self.sockets.values() for t in by_sid.values()]
        fetched: dict[str, list[Any]] = {}

        async def fetch(ns: Namespace, cluster: NamespaceCluster) -> None:
            opts: dict[str, Any] = {"rooms": [], "except": [], "flags": {}}
            timeout = cluster.link.config.heartbeat_timeout_ms / 1000
            try:
                entries = await cluster.request(MessageType.FETCH_SOCKETS, {"opts": opts}, timeout)
            except ClusterTimeoutError as exc:
                logger.warning(
                    "admin UI: the sockets of %s from the other servers: %s; those of the "
                    "servers that did not answer are missing",
                    ns.name,
                    exc,
                )
                entries = exc.responses
            except (ClusterUnavailableError, RuntimeError) as exc:
                # RuntimeError: the adapter is not running (a server without lifespan).
                logger.warning("%s; the admin UI lists this server's sockets only", exc)
                entries = []
            fetched[ns.name] = entries

        async with anyio.create_task_group() as tg:
            for ns in self.endpoint.namespaces.values():
                if ns.cluster is not None:
                    tg.start_soon(fetch, ns, ns.cluster)
        for name, entries in fetched.items():
            out += [
                self.serialize_fetched(e, name)
                for e in entries
                if isinstance(e, dict) and isinstance(e.get("id"), str)
            ]
        return out

    async def emit_stats(self) -> None:
        """Broadcast this server's ``server_stats`` (and the transports that changed)."""
        if self.development:
            for by_sid in self.sockets.values():
                for tracked in list(by_sid.values()):
                    transport = tracked.conn.transport
                    if transport != tracked.transport:
                        tracked.transport = transport
                        conn = tracked.conn
                        _set_admin_info(conn)
                        await self._emit(
                            "socket_updated",
                            {"id": conn.sid, "nsp": conn.namespace, "transport": transport},
                        )
        await self._emit("server_stats", self.stats())

    async def run(self) -> None:
        """``server_stats`` every :data:`STATS_INTERVAL` seconds, while the App serves."""
        while True:
            await self.emit_stats()
            await anyio.sleep(STATS_INTERVAL)

    # -- the observer ---------------------------------------------------------------------

    def engine_opened(self, session: EngineSession) -> None:
        self._count("rawConnection")

    def engine_closed(self, session: EngineSession, reason: str) -> None:
        self._count("rawDisconnection", reason)

    def frames_in(self, data: str | bytes) -> None:
        self._count("packetsIn")
        self._count("bytesIn", None, len(data.encode() if isinstance(data, str) else data))

    def frames_out(self, frames: list[str | bytes], count: int) -> None:
        if count:
            size = sum(len(f.encode() if isinstance(f, str) else f) for f in frames)
            self._count("packetsOut", None, count)
            self._count("bytesOut", None, size * count)

    async def connected(self, conn: SocketIOConnection) -> None:
        if not self.development:
            return
        tracked = _Tracked(conn)
        self.sockets.setdefault(conn.namespace, {})[conn.sid] = tracked
        _set_admin_info(conn)
        await self._emit("socket_connected", self.serialize(tracked), _now())

    async def disconnected(self, conn: SocketIOConnection, reason: str) -> None:
        if not self.development:
            return
        by_sid = self.sockets.get(conn.namespace)
        if by_sid is None or by_sid.pop(conn.sid, None) is None:
            return
        for room in sorted(conn.rooms):
            await self._emit("room_left", conn.namespace, room, conn.sid, _now())
        await self._emit("socket_disconnected", conn.namespace, conn.sid, reason, _now())

    async def room_changed(self, conn: SocketIOConnection, room: str, joined: bool) -> None:
        if self.development:
            event = "room_joined" if joined else "room_left"
            await self._emit(event, conn.namespace, room, conn.sid, _now())

    async def event_received(self, conn: SocketIOConnection, data: list[Any]) -> None:
        if self.development and conn.namespace != self.namespace:
            await self._emit("event_received", conn.namespace, conn.sid, data, _now())

    async def event_sent(
        self,
        ns: Namespace,
        data: list[Any],
        room: str | None,
        skip: SocketIOConnection | frozenset[SocketIOConnection] | None,
    ) -> None:
        if not self.development or ns.name == self.namespace:
            return
        by_sid = self.sockets.get(ns.name)
        if not by_sid:
            return
        if room is None:
            targets = list(by_sid)
        else:
            members = ns.rooms.members(ns.group(room))
            targets = [m.sid for m in members if isinstance(m, SocketIOConnection)]
        when = _now()
        for sid in targets:
            if sid in by_sid and not _skipped(by_sid[sid].conn, skip):
                await self._emit("event_sent", ns.name, sid, data, when)

    # -- the admin namespace --------------------------------------------------------------

    async def admin_connected(self, conn: SocketIOConnection) -> None:
        """Check the credentials (or session id), then send the config and the sockets."""
        if self.auth is not None:
            given = conn.auth if isinstance(conn.auth, dict) else {}
            session_id = given.get("sessionId")
            if isinstance(session_id, str) and session_id and await self.session_exists(session_id):
                pass
            elif self._credentials_match(given):
                session_id = secrets.token_hex(8)
                await self.save_session(session_id)
                await conn.emit("session", session_id)
            else:
                logger.warning("admin UI login refused (invalid credentials)")
                raise WebSocketError("invalid credentials")
        await conn.emit("config", {"supportedFeatures": self.features})
        if self.development:
            await conn.emit("all_sockets", await self.all_sockets())
        # At once, not in up to 2 s (the period's events stay for the broadcast).
        await conn.emit("server_stats", self.stats(take_events=False))

    def _session_link(self) -> StreamsLink | None:
        """The adapter's link to Redis, where session ids are kept (None: in the process)."""
        admin = self.admin
        return admin.cluster.link if admin is not None and admin.cluster is not None else None

    async def session_exists(self, session_id: str) -> bool:
        """Whether ``session_id`` was handed out after a login, by this server or (with an
        adapter) by any server of the cluster."""
        if session_id in self._session_ids:
            self._session_ids.move_to_end(session_id, last=False)
            return True
        link = self._session_link()
        if link is None:
            return False
        try:
            found = await link.client.exists([SESSION_KEY_PREFIX + session_id])
        except (*REDIS_ERRORS, RuntimeError) as exc:
            logger.warning(
                "admin UI: could not look up a session id at %s (%r); the UI is asked for "
                "the password",
                redact(link.url),
                exc,
            )
            return False
        return bool(found)

    async def save_session(self, session_id: str) -> None:
        """Keep ``session_id``: in the process (the most recent :data:`MAX_SESSIONS`) and,
        with an adapter, in Redis for :data:`SESSION_TTL` seconds."""
        self._session_ids[session_id] = None
        self._session_ids.move_to_end(session_id, last=False)
        while len(self._session_ids) > MAX_SESSIONS:
            self._session_ids.popitem()
        link = self._session_link()
        if link is None:
            return
        try:
            await link.client.set(SESSION_KEY_PREFIX + session_id, "true", ex=SESSION_TTL)
        except (*REDIS_ERRORS, RuntimeError) as exc:
            logger.warning(
                "admin UI: could not keep a session id at %s (%r); a reload that reaches "
                "another server asks for the password again",
                redact(link.url),
                exc,
            )

    def _credentials_match(self, given: Mapping[str, Any]) -> bool:
        assert self.auth is not None
        username, password = given.get("username"), given.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        user_ok = hmac.compare_digest(username.encode(), self.auth["username"].encode())
        password_ok = hmac.compare_digest(password.encode(), self.auth["password"].encode())
        return user_ok and password_ok

    def _writable(self, action: str) -> None:
        if self.read_only:
            logger.warning("admin UI action %r refused: instrument(read_only=True)", action)
            raise WebSocketError(f"{action} refused: the admin UI is read-only")

    async def _act(self, action: str, nsp: str, operation: Awaitable[Any]) -> None:
        try:
            await operation
        except ClusterUnavailableError as exc:
            logger.warning("admin UI action %r on %s: %s", action, nsp, exc)
            raise WebSocketError(f"{action} did not reach the other servers: {exc}") from None

    async def join(self, nsp: str, room: str, room_filter: str | None) -> None:
        """Make the sockets of ``nsp`` (in ``room_filter``) join ``room``, on every server
        of the cluster."""
        await self._rooms("join", nsp, room, room_filter)

    async def leave(self, nsp: str, room: str, room_filter: str | None) -> None:
        """Make the sockets of ``nsp`` (in ``room_filter``) leave ``room``, on every server
        of the cluster."""
        await self._rooms("leave", nsp, room, room_filter)

    async def _rooms(
        self, action: Literal["join", "leave"], nsp: str, room: str, room_filter: str | None
    ) -> None:
        self._writable(action)
        if nsp in self.endpoint.namespaces:
            change = self.server.sockets_join if action == "join" else self.server.sockets_leave
            operation = change(
                room, room=room_filter or None, namespace=nsp, path=self.endpoint.path
            )
            await self._act(action, nsp, operation)

    async def disconnect(self, nsp: str, close: bool, room_filter: str | None) -> None:
        """Disconnect the sockets of ``nsp`` (in ``room_filter``), on every server of the
        cluster: the client's whole connection if ``close``, else that namespace only."""
        self._writable("_disconnect")
        if nsp in self.endpoint.namespaces:
            where = self.endpoint.path
            operation = self.server.disconnect_sockets(
                room=room_filter or None, namespace=nsp, close=bool(close), path=where
            )
            await self._act("_disconnect", nsp, operation)

    async def emit(self, nsp: str, room_filter: str | None, event: str, args: list[Any]) -> None:
        """Emit ``event`` to the sockets of ``nsp`` (in ``room_filter``), on every server
        of the cluster."""
        self._writable("emit")
        ns = self.endpoint.namespaces.get(nsp)
        if ns is not None:
            operation = self.endpoint.broadcast(ns, [event, *args], room_filter or None, None)
            await self._act("emit", nsp, operation)


def _client_id(conn: SocketIOConnection) -> str:
    """The Engine.IO id of the connection's client, cut to 12 characters as Node's
    package does (so the UI's clients read alike across a mixed cluster)."""
    return conn.engine_sid[:12]


def _set_admin_info(conn: SocketIOConnection) -> None:
    """Put the UI's facts about ``conn`` in ``conn.data["_admin"]``, where the other
    servers of the cluster read them (Node's ``socket.data._admin``). A ``data`` that is
    not a dict is left alone (the UI then shows no client id or transport for it)."""
    data = conn.data
    if not isinstance(data, dict):
        return
    info = {"clientId": _client_id(conn), "transport": conn.transport}
    if isinstance(data.get("_admin"), dict):
        data["_admin"] = info  # ours (an upgrade, a recovered session): kept in place
    else:
        # A new dict, as Node's package does: the application's own may be shared.
        conn.data = {"_admin": info, **data}


def _without_admin(data: Any) -> Any:
    """``data`` as the UI shows it: without ``"_admin"`` (Node's ``serializeData``)."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k != "_admin"}
    return data if data is not None else {}


def _address(headers: Mapping[str, Any], address: Any) -> Any:
    """The client's address as the UI shows it (a proxy's header first, as Node's)."""
    return headers.get("cf-connecting-ip") or headers.get("x-forwarded-for") or address


class _AdminController:
    """The admin namespace's handlers; a subclass per monitor binds ``monitor``."""

    monitor: ClassVar[AdminMonitor]

    @on_socketio_event("connect")
    async def on_connect(self, conn: SocketIOConnection) -> None:
        await self.monitor.admin_connected(conn)

    @on_socketio_event("join")
    async def on_join(
        self, conn: SocketIOConnection, nsp: str, room: str, room_filter: str | None = None
    ) -> None:
        await self.monitor.join(nsp, room, room_filter)

    @on_socketio_event("leave")
    async def on_leave(
        self, conn: SocketIOConnection, nsp: str, room: str, room_filter: str | None = None
    ) -> None:
        await self.monitor.leave(nsp, room, room_filter)

    @on_socketio_event("_disconnect")
    async def on_disconnect_action(
        self,
        conn: SocketIOConnection,
        nsp: str,
        close: bool = False,
        room_filter: str | None = None,
    ) -> None:
        await self.monitor.disconnect(nsp, close, room_filter)

    @on_socketio_event("emit")
    async def on_emit(
        self, conn: SocketIOConnection, nsp: str, room_filter: str | None, event: str, *args: Any
    ) -> None:
        await self.monitor.emit(nsp, room_filter, event, list(args))


def instrument(
    app: App,
    *,
    auth: Mapping[str, str] | Literal[False] | None = None,
    mode: Literal["development", "production"] = "development",
    read_only: bool = False,
    namespace: str = "/admin",
    server_id: str | None = None,
) -> list[AdminMonitor]:
    """Serve the official Socket.IO Admin UI's protocol on ``app``'s Socket.IO paths.

    Call it once the App is built and before it serves. ``auth``:
    ``{"username": ..., "password": ...}``, the credentials the UI's login form must be
    given (a wrong or missing pair is refused with ``"invalid credentials"``); ``False``
    to serve the namespace without a login (only where nobody else can reach it).
    ``mode="production"`` sends only the servers' statistics (no socket list, no
    per-socket events). ``read_only`` refuses the UI's actions (join, leave, disconnect,
    emit). ``server_id`` names this server in the UI (default ``hostname#pid``).

    Across a cluster (a :class:`~wsgate.socketio.RedisStreamsAdapter`, given or from the
    App's broker), call it on every server: a UI connected to any of them lists every
    server, gets the sockets of all of them at login (with their transport, handshake,
    rooms and ``data``; each socket carries the UI's facts in ``conn.data["_admin"]``,
    as Node's package does, so wsgate and Node servers show each other's sockets), sees
    every server's events, and its actions (join, leave, disconnect, emit) reach the
    sockets wherever they are. The session id a login hands out is kept in Redis (the
    keys of Node's ``RedisStore``: ``socket.io-admin#<id>``, one day), so a reload that
    reaches another server needs no password; without an adapter it is kept in the
    process.

    Returns the monitor of each Socket.IO path. Raises
    :class:`~wsgate.errors.ConfigurationError` without ``auth``, for an App without
    Socket.IO controllers, or if ``namespace`` is already served.
    """
    credentials = _check_auth(auth)
    if mode not in ("development", "production"):
        raise ConfigurationError(
            f"instrument(mode=...) is 'development' or 'production', not {mode!r}"
        )
    if not isinstance(namespace, str) or not namespace.startswith("/"):
        raise ConfigurationError(f"instrument(namespace=...) must start with '/': {namespace!r}")
    server = server_of(app)
    from .install import EngineIORuntime

    runtime = app.container.get(EngineIORuntime)
    engines = {id(ep.app): ep for ep in runtime.endpoints}
    endpoints = server.endpoints
    base_id = server_id or f"{socket.gethostname()}#{os.getpid()}"
    monitors: list[AdminMonitor] = []
    for endpoint in endpoints:
        if namespace in endpoint.namespaces or endpoint.observer is not None:
            raise ConfigurationError(
                f"the namespace {namespace!r} at {endpoint.path!r} is already served (by a "
                "controller, or instrument() was called twice); pick another namespace="
            )
    for endpoint in endpoints:
        engine = engines.get(id(endpoint))
        if engine is None:  # pragma: no cover - every Socket.IO endpoint has its engine
            raise ConfigurationError(f"the Socket.IO path {endpoint.path!r} has no engine")
        monitor = AdminMonitor(
            endpoint,
            engine.sessions,
            server=server,
            auth=credentials,
            development=mode == "development",
            read_only=read_only,
            namespace=namespace,
            server_id=base_id if len(endpoints) == 1 else f"{base_id} {endpoint.path}",
        )
        cls = type("SocketIOAdmin", (_AdminController,), {"monitor": monitor})
        some = next(iter(endpoint.namespaces.values()))
        admin = Namespace(
            namespace,
            cls,
            compile_events(cls, SocketIOConnection, app.container),
            app.container,
            some.rooms,
            f"|{endpoint.path}|{namespace}",
            None,
            {},
        )
        if some.cluster is not None:
            # With an adapter, the admin namespace's broadcasts travel through it too.
            admin.cluster = NamespaceCluster(some.cluster.link, admin)
        monitor.admin = admin
        endpoint.namespaces[namespace] = admin
        endpoint.observer = monitor
        app.add_lifespan(serve=monitor.run)
        monitors.append(monitor)
    return monitors


def server_of(app: App) -> SocketIOServer:
    """The :class:`~wsgate.socketio.SocketIOServer` of ``app``. Raises
    :class:`~wsgate.errors.ConfigurationError` if the App has no Socket.IO controller."""
    if not app.container.can_provide(SocketIOServer):
        raise ConfigurationError(
            "this App serves no Socket.IO: give it a @socketio_controller class in "
            "App(gateways=[...]) before calling instrument()"
        )
    server: SocketIOServer = app.container.get(SocketIOServer)
    return server


def _skipped(conn: Any, skip: SocketIOConnection | frozenset[SocketIOConnection] | None) -> bool:
    """Whether an emit that left out ``skip`` left out ``conn``."""
    if skip is None:
        return False
    if isinstance(skip, frozenset):
        return conn in skip
    return conn is skip
