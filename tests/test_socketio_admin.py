"""The Socket.IO admin UI's protocol (``instrument()``), spoken by python-socketio
clients as the UI speaks it, against real servers serving tests/apps/socketio_admin.py:
the login (credentials, then the session id the server hands out), ``config``,
``all_sockets``, ``server_stats``, the event log of development mode, the actions and
``read_only``, production mode; and the configuration mistakes ``instrument()`` refuses.

python-socketio's client runs on asyncio only: each scenario runs on its own event loop
in a worker thread, so the tests themselves run on trio and on asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
import socketio
from apps.socketio_admin import PASSWORD, USERNAME, Chat
from redis_server import RedisServer, redis_command, require_binary

from wsgate import App, ConfigurationError
from wsgate.socketio import instrument
from wsgate.socketio.admin import AdminMonitor

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

TIMEOUT = 5.0
#: A server_stats broadcast comes every 2 s; a few of them may be awaited.
STATS_TIMEOUT = 10.0
ADMIN_EVENTS = (
    "session",
    "config",
    "all_sockets",
    "server_stats",
    "socket_connected",
    "socket_updated",
    "socket_disconnected",
    "room_joined",
    "room_left",
    "event_received",
    "event_sent",
)
CREDENTIALS = {"username": USERNAME, "password": PASSWORD}
ACTIONS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]


def _server(request: pytest.FixtureRequest, server_pool: servers.ServerPool, app: str) -> str:
    url = server_pool.get(request.param, f"apps.socketio_admin:{app}")
    return "http" + url[2:]


@pytest.fixture(scope="module", params=servers.SERVER_PARAMS)
def admin_server(request: pytest.FixtureRequest, server_pool: servers.ServerPool) -> str:
    return _server(request, server_pool, "app")


@pytest.fixture(scope="module", params=servers.SERVER_PARAMS)
def read_only_server(request: pytest.FixtureRequest, server_pool: servers.ServerPool) -> str:
    return _server(request, server_pool, "read_only_app")


@pytest.fixture(scope="module", params=servers.SERVER_PARAMS)
def production_server(request: pytest.FixtureRequest, server_pool: servers.ServerPool) -> str:
    return _server(request, server_pool, "production_app")


async def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run an asyncio scenario on its own loop in a worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(asyncio.run, scenario()))


class Admin:
    """A client of the admin namespace, as the UI: every event it receives, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
        self.refused: asyncio.Queue[Any] = asyncio.Queue()
        for event in ADMIN_EVENTS:
            self.client.on(event, functools.partial(self._put, event), namespace="/admin")
        self.client.on("connect_error", self.refused.put, namespace="/admin")

    async def _put(self, event: str, *args: Any) -> None:
        await self.queue.put((event, args))

    async def connect(self, url: str, auth: Any, transports: list[str] | None = None) -> None:
        await self.client.connect(
            url,
            namespaces=["/admin"],
            auth=auth,
            transports=transports or ["websocket"],
            wait_timeout=TIMEOUT,
        )

    async def next(self, *events: str, timeout: float = TIMEOUT) -> tuple[str, tuple[Any, ...]]:
        """The next event among ``events`` (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                event, args = await self.queue.get()
                if event in events:
                    return event, args

    async def until(
        self, event: str, predicate: Callable[..., bool], timeout: float = STATS_TIMEOUT
    ) -> tuple[Any, ...]:
        """The args of the next ``event`` for which ``predicate(*args)`` holds."""
        async with asyncio.timeout(timeout):
            while True:
                _, args = await self.next(event, timeout=timeout)
                if predicate(*args):
                    return args

    async def action(self, event: str, *args: Any) -> Any:
        """Send an action as the UI does, but with an ack: the server answers once done."""
        return await self.client.call(event, args, namespace="/admin", timeout=TIMEOUT)

    async def close(self) -> None:
        await self.client.disconnect()


def _subject(event: str, args: tuple[Any, ...]) -> str:
    """The socket id an event of the log is about."""
    if event in ("socket_connected", "socket_updated"):
        return str(args[0]["id"])
    return str(args[2] if event in ("room_joined", "room_left") else args[1])


async def user(
    url: str,
    room: str | None = None,
    transports: list[str] | None = None,
    data: dict[str, Any] | None = None,
) -> Any:
    """A client of the chat; the app joins it to ``room`` and sets its ``conn.data``."""
    client = socketio.AsyncClient(reconnection=False)
    client.received = asyncio.Queue()  # type: ignore[attr-defined]
    client.on("*", lambda event, *args: client.received.put_nowait((event, args)))  # type: ignore[attr-defined]
    auth: dict[str, Any] = {}
    if room:
        auth["room"] = room
    if data is not None:
        auth["data"] = data
    await client.connect(
        url,
        auth=auth or None,
        transports=transports or ["websocket"],
        wait_timeout=TIMEOUT,
    )
    return client


# -- configuration ----------------------------------------------------------------------


def test_instrument_refuses_to_start_without_auth() -> None:
    with pytest.raises(ConfigurationError, match="auth=False"):
        instrument(App(gateways=[Chat]))
    for bad in ({"username": "a"}, {"username": "a", "password": ""}, "admin:pw", {"user": "a"}):
        with pytest.raises(ConfigurationError, match="instrument\\(auth=...\\)"):
            instrument(App(gateways=[Chat]), auth=bad)  # type: ignore[arg-type]
    bcrypt = "$2b$10$" + "x" * 53
    with pytest.raises(ConfigurationError, match="bcrypt"):
        instrument(App(gateways=[Chat]), auth={"username": "a", "password": bcrypt})
    with pytest.raises(ConfigurationError, match="'development' or 'production'"):
        instrument(App(gateways=[Chat]), auth=False, mode="debug")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="serves no Socket.IO"):
        instrument(App(), auth=False)
    app = App(gateways=[Chat])
    (monitor,) = instrument(app, auth=False)
    assert monitor.namespace == "/admin" and monitor.auth is None
    with pytest.raises(ConfigurationError, match="already served"):
        instrument(app, auth=False)


# -- the login ----------------------------------------------------------------------------


async def test_wrong_or_missing_credentials_are_refused(admin_server: str) -> None:
    async def scenario() -> list[Any]:
        refusals = []
        for auth in (
            {"username": USERNAME, "password": "wrong"},
            {"username": "root", "password": PASSWORD},
            None,
            {"sessionId": "not-one-the-server-gave"},
        ):
            admin = Admin()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await admin.connect(admin_server, auth)
            refusals.append(await asyncio.wait_for(admin.refused.get(), TIMEOUT))
            assert admin.queue.empty()  # nothing was sent to it
            await admin.close()
        return refusals

    refusals = await run(scenario)
    # The message the UI recognises (it then shows its login form with "invalid credentials").
    assert [r["message"] for r in refusals] == ["invalid credentials"] * 4


async def test_login_gives_session_config_sockets_and_stats(admin_server: str) -> None:
    async def scenario() -> None:
        alice = await user(admin_server, room="lobby")
        admin = Admin()
        await admin.connect(admin_server, CREDENTIALS)
        try:
            event, (session_id,) = await admin.next(*ADMIN_EVENTS)
            assert event == "session" and isinstance(session_id, str) and session_id
            assert await admin.next(*ADMIN_EVENTS) == (
                "config",
                ({"supportedFeatures": [*ACTIONS, "AGGREGATED_EVENTS", "ALL_EVENTS"]},),
            )
            event, (sockets,) = await admin.next(*ADMIN_EVENTS)
            assert event == "all_sockets"
            mine = [s for s in sockets if s["id"] == alice.get_sid()]
            assert len(mine) == 1, sockets
            socket = mine[0]
            assert socket["nsp"] == "/"
            assert socket["transport"] == "websocket"
            assert sorted(socket["rooms"]) == sorted([alice.get_sid(), "lobby"])
            handshake = socket["handshake"]
            assert handshake["address"] == "127.0.0.1"
            assert handshake["url"].startswith("/socket.io/?")
            assert handshake["query"]["EIO"] == "4"
            assert "user-agent" in handshake["headers"]
            assert handshake["secure"] is False
            assert isinstance(handshake["issued"], int) and handshake["time"]
            event, (stats,) = await admin.next(*ADMIN_EVENTS)
            assert event == "server_stats"
            assert stats["serverId"] == "wsgate-test"
            assert {"hostname", "pid", "uptime", "aggregatedEvents"} <= set(stats)
            assert stats["clientsCount"] >= 2
            spaces = {n["name"]: n["socketsCount"] for n in stats["namespaces"]}
            assert spaces["/"] >= 1 and spaces["/admin"] >= 0 and "/other" in spaces
            # The broadcast every 2 s, with the aggregated events of the period.
            (stats,) = await admin.until("server_stats", lambda s: True)
            assert stats["serverId"] == "wsgate-test"
            await admin.close()

            # The UI reconnects (a page reload) with the session id alone.
            again = Admin()
            await again.connect(admin_server, {"sessionId": session_id})
            event, _ = await again.next(*ADMIN_EVENTS)
            assert event == "config"  # no new session
            await again.close()
        finally:
            await alice.disconnect()

    await run(scenario)


# -- the event log (development mode) -------------------------------------------------------


async def test_the_event_log_follows_a_socket(admin_server: str) -> None:
    async def scenario() -> None:
        admin = Admin()
        await admin.connect(admin_server, CREDENTIALS)
        await admin.next("all_sockets")
        # Polling first, then the upgrade: the UI learns the transport either way.
        bob = await user(admin_server, room="kitchen", transports=["polling", "websocket"])
        sid = bob.get_sid()
        mine = {"socket_connected", "socket_updated", "socket_disconnected"}
        mine |= {"room_joined", "room_left", "event_received", "event_sent"}
        log: list[tuple[str, tuple[Any, ...]]] = []

        async def upto(event: str) -> tuple[Any, ...]:
            while True:
                name, args = await admin.next(*mine)
                if _subject(name, args) == sid:
                    log.append((name, args))
                    if name == event:
                        return args

        connected, when = await upto("socket_connected")
        assert connected["nsp"] == "/" and sorted(connected["rooms"]) == sorted([sid, "kitchen"])
        assert when.endswith("Z")
        assert [(n, a[1]) for n, a in log if n == "room_joined"] == [
            ("room_joined", sid),
            ("room_joined", "kitchen"),
        ]
        transport = connected["transport"]
        while transport != "websocket":
            update = (await upto("socket_updated"))[0]
            transport = update.get("transport", transport)
        await bob.emit("hello", "bob")
        assert (await upto("event_received"))[:3] == ("/", sid, ["hello", "bob"])
        assert (await upto("event_sent"))[:3] == ("/", sid, ["hello-back", "hello bob"])
        await bob.disconnect()
        _, _, reason, _ = await upto("socket_disconnected")
        # python-socketio sends DISCONNECT and closes at once: either may be seen first.
        assert reason in ("client namespace disconnect", "transport close")
        assert {a[1] for n, a in log if n == "room_left"} == {sid, "kitchen"}
        await admin.close()

    await run(scenario)


# -- the actions ---------------------------------------------------------------------------


async def test_actions_join_leave_emit_disconnect(admin_server: str) -> None:
    async def scenario() -> None:
        admin = Admin()
        await admin.connect(admin_server, CREDENTIALS)
        await admin.next("all_sockets")
        carol = await user(admin_server)
        sid = carol.get_sid()
        # As the UI's socket page: the socket's own id is the filter.
        await admin.action("join", "/", "vip", sid)
        assert await carol.call("rooms", timeout=TIMEOUT) == sorted([sid, "vip"])
        await admin.until("room_joined", lambda nsp, room, who, when: (room, who) == ("vip", sid))
        await admin.action("emit", "/", "vip", "notice", {"n": 1})
        assert await asyncio.wait_for(carol.received.get(), TIMEOUT) == ("notice", ({"n": 1},))
        await admin.action("leave", "/", "vip", sid)
        assert await carol.call("rooms", timeout=TIMEOUT) == [sid]
        await admin.until("room_left", lambda nsp, room, who, when: (room, who) == ("vip", sid))
        # The UI's "disconnect" button: _disconnect(nsp, false, socket id).
        gone = asyncio.Event()
        carol.on("disconnect", lambda *reason: gone.set())
        await admin.action("_disconnect", "/", False, sid)
        await asyncio.wait_for(gone.wait(), TIMEOUT)
        assert not carol.connected
        _, _, reason, _ = await admin.until("socket_disconnected", lambda nsp, who, *_: who == sid)
        assert reason == "server namespace disconnect"
        await admin.close()

    await run(scenario)


async def test_disconnect_ends_one_namespace_or_the_whole_client(admin_server: str) -> None:
    async def scenario() -> None:
        admin = Admin()
        await admin.connect(admin_server, CREDENTIALS)
        await admin.next("all_sockets")
        frank = socketio.AsyncClient(reconnection=False)
        left: asyncio.Queue[str] = asyncio.Queue()
        frank.on("disconnect", lambda *_: left.put_nowait("/other"), namespace="/other")
        frank.on("disconnect", lambda *_: left.put_nowait("/"), namespace="/")
        await frank.connect(
            admin_server, namespaces=["/", "/other"], transports=["websocket"], wait_timeout=5
        )
        other_sid = frank.get_sid("/other")
        # close=false (the UI's socket button): that namespace only.
        await admin.action("_disconnect", "/other", False, other_sid)
        assert await asyncio.wait_for(left.get(), TIMEOUT) == "/other"
        assert await frank.call("echo", "still here", timeout=TIMEOUT) == "still here"
        # close=true (the UI's client button): the whole connection.
        await admin.action("_disconnect", "/", True, frank.get_sid("/"))
        assert await asyncio.wait_for(left.get(), TIMEOUT) == "/"
        await asyncio.wait_for(frank.wait(), TIMEOUT)  # the connection ended
        await admin.close()

    await run(scenario)


async def test_read_only_refuses_the_actions(read_only_server: str) -> None:
    async def scenario() -> None:
        admin = Admin()
        await admin.connect(read_only_server, CREDENTIALS)
        assert (await admin.next("config"))[1] == (
            {"supportedFeatures": ["AGGREGATED_EVENTS", "ALL_EVENTS"]},
        )
        dave = await user(read_only_server)
        sid = dave.get_sid()
        for action in (("_disconnect", "/", True, sid), ("join", "/", "x", sid)):
            answer = await admin.action(*action)
            assert answer["error"]["message"] == f"{action[0]} refused: the admin UI is read-only"
        # Nothing happened: dave is still connected, in its own room only.
        assert await dave.call("rooms", timeout=TIMEOUT) == [sid]
        assert dave.connected
        await dave.disconnect()
        await admin.close()

    await run(scenario)


async def test_production_mode_sends_only_the_statistics(production_server: str) -> None:
    async def scenario() -> set[str]:
        admin = Admin()
        await admin.connect(production_server, None)  # auth=False: no login
        assert await admin.next(*ADMIN_EVENTS) == (
            "config",
            ({"supportedFeatures": [*ACTIONS, "AGGREGATED_EVENTS"]},),
        )
        erin = await user(production_server, room="r")
        await erin.emit("hello", "erin")
        assert await asyncio.wait_for(erin.received.get(), TIMEOUT) == (
            "hello-back",
            ("hello erin",),
        )
        # Wait for a server_stats that counts erin: it was sent after erin's connection
        # and events, and nothing but statistics came before it.
        seen = []
        async with asyncio.timeout(STATS_TIMEOUT):
            while True:
                event, args = await admin.next(*ADMIN_EVENTS, timeout=STATS_TIMEOUT)
                seen.append(event)
                if event == "server_stats":
                    counts = {n["name"]: n["socketsCount"] for n in args[0]["namespaces"]}
                    if counts["/"] == 1:
                        stats = args[0]
                        break
        assert set(seen) == {"server_stats"}, seen
        assert stats["clientsCount"] >= 2
        await erin.disconnect()
        await admin.close()
        return {e["type"] for e in stats["aggregatedEvents"]}

    kinds = await run(scenario)
    assert kinds <= {
        "rawConnection",
        "rawDisconnection",
        "packetsIn",
        "packetsOut",
        "bytesIn",
        "bytesOut",
    }


# -- several workers ------------------------------------------------------------------------


async def test_every_worker_reports_to_the_ui_through_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``wsgate run --workers 2`` with a Valkey broker: the UI, connected to one worker,
    lists both servers (each broadcasts its own server_stats) and sees a socket connect
    whichever worker took it."""
    with RedisServer(require_binary()) as valkey:
        monkeypatch.setenv("WSGATE_BROKER_URL", valkey.url)
        with servers.run_server("wsgate-run-2", "apps.socketio_admin:cluster_app") as url:
            base = "http" + url[2:]

            async def scenario() -> None:
                admin = Admin()
                await admin.connect(base, CREDENTIALS)
                ids: set[str] = set()
                async with asyncio.timeout(STATS_TIMEOUT):
                    while len(ids) < 2:
                        (stats,) = await admin.until("server_stats", lambda s: True)
                        ids.add(stats["serverId"])
                pids = {int(i.rpartition("#")[2]) for i in ids}
                assert len(pids) == 2, ids
                # Sockets on either worker show up (a few, to land on both).
                users = [await user(base) for _ in range(4)]
                sids = {u.get_sid() for u in users}
                seen: set[str] = set()
                while seen != sids:
                    (socket, _) = await admin.until(
                        "socket_connected", lambda s, when: s["id"] in sids
                    )
                    seen.add(socket["id"])
                for u in users:
                    await u.disconnect()
                await admin.close()

            await run(scenario)


@contextlib.contextmanager
def two_servers(redis_url: str, backend: str) -> Iterator[tuple[str, str]]:
    """Two wsgate servers (hypercorn on ``backend``) of one cluster: the App's broker on
    ``redis_url`` gives their Socket.IO path the Redis Streams adapter."""
    saved = os.environ.get("WSGATE_BROKER_URL")
    os.environ["WSGATE_BROKER_URL"] = redis_url
    started: list[servers.ServerProcess] = []
    try:
        for _ in range(2):
            server = servers.ServerProcess(
                f"hypercorn-{backend}", "apps.socketio_admin:cluster_app"
            )
            started.append(server)
            server.start()
    except BaseException:
        for server in started:
            server.stop()
        raise
    finally:
        if saved is None:
            os.environ.pop("WSGATE_BROKER_URL", None)
        else:
            os.environ["WSGATE_BROKER_URL"] = saved
    try:
        urls = [s.url for s in started]
        assert urls[0] is not None and urls[1] is not None
        yield "http" + urls[0][2:], "http" + urls[1][2:]
    finally:
        for server in started:
            server.stop()
        for server in started:
            assert server.url is not None
            unexpected = servers.UNEXPECTED_LOG.search(server.url.log())
            assert unexpected is None, server.url.log()[-4000:]


async def test_the_ui_on_one_server_sees_and_acts_on_the_sockets_of_another(
    redis_server: RedisServer, anyio_backend_name: str
) -> None:
    """Servers A and B on one Valkey: a UI logged in on A lists a socket of B (its
    transport, handshake, rooms and data), its join / emit / leave / _disconnect reach
    that socket (its own client sees them), and the session id A handed out logs the
    UI in on B."""
    with two_servers(redis_server.url, anyio_backend_name) as (a, b):

        async def scenario() -> str:
            bob = await user(b, room="lobby", data={"nick": "bob"})
            sid = bob.get_sid()
            admin = Admin()
            await admin.connect(a, CREDENTIALS)
            _, (session_id,) = await admin.next("session")
            _, (sockets,) = await admin.next("all_sockets")
            mine = [s for s in sockets if s["id"] == sid]
            assert len(mine) == 1, sockets
            socket = mine[0]
            assert socket["nsp"] == "/"
            assert socket["transport"] == "websocket"
            assert isinstance(socket["clientId"], str) and socket["clientId"]
            assert sorted(socket["rooms"]) == sorted([sid, "lobby"])
            assert socket["data"] == {"nick": "bob"}  # without the UI's "_admin"
            handshake = socket["handshake"]
            assert handshake["address"] == "127.0.0.1"
            assert handshake["url"].startswith("/socket.io/?")
            assert handshake["query"]["EIO"] == "4"
            assert "user-agent" in handshake["headers"]

            # The UI's socket page acts on bob through A: the socket's id is the filter.
            await admin.action("join", "/", "vip", sid)
            await admin.until(
                "room_joined", lambda nsp, room, who, when: (room, who) == ("vip", sid)
            )
            assert await bob.call("rooms", timeout=TIMEOUT) == sorted([sid, "lobby", "vip"])
            await admin.action("emit", "/", "vip", "notice", {"n": 1})
            assert await asyncio.wait_for(bob.received.get(), TIMEOUT) == ("notice", ({"n": 1},))
            await admin.action("leave", "/", "vip", sid)
            await admin.until("room_left", lambda nsp, room, who, when: (room, who) == ("vip", sid))
            assert await bob.call("rooms", timeout=TIMEOUT) == sorted([sid, "lobby"])
            gone = asyncio.Event()
            bob.on("disconnect", lambda *reason: gone.set())
            await admin.action("_disconnect", "/", False, sid)
            await asyncio.wait_for(gone.wait(), TIMEOUT)
            assert not bob.connected
            _, _, reason, _ = await admin.until(
                "socket_disconnected", lambda nsp, who, *_: who == sid
            )
            assert reason == "server namespace disconnect"
            await admin.close()

            # A reload that lands on B: the session id A handed out is enough.
            again = Admin()
            await again.connect(b, {"sessionId": session_id})
            # (B's events, e.g. the first UI's disconnection, may come first: broadcasts.)
            event, _ = await again.next("session", "config")
            assert event == "config"  # no new session, no password
            await again.close()
            # One B did not hand out is still refused there.
            stranger = Admin()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await stranger.connect(b, {"sessionId": session_id[::-1]})
            await stranger.close()
            return str(session_id)

        session_id = await run(scenario)
    # Kept where a Node server instrumented with @socket.io/admin-ui's RedisStore looks.
    key = f"socket.io-admin#{session_id}"
    assert redis_command(redis_server.port, "EXISTS", key).startswith(b":1")
    ttl = redis_command(redis_server.port, "TTL", key)
    assert 0 < int(ttl[1:].strip()) <= 86_400, ttl


# -- a mixed cluster: wsgate and Node's @socket.io/admin-ui ------------------------------------

NODE_SCRIPT = servers.ROOT / "tests" / "js" / "admin_node.mjs"
NODE_START_TIMEOUT = 15.0


@contextlib.contextmanager
def node_server(redis_url: str) -> Iterator[str]:
    """tests/js/admin_node.mjs: a Node socket.io server instrumented with the official
    package, with the same credentials, in the cluster of ``redis_url``."""
    node = shutil.which("node")
    assert node is not None, "node is needed for the mixed cluster test"
    proc = subprocess.Popen(
        [node, str(NODE_SCRIPT), redis_url, USERNAME, PASSWORD],
        cwd=servers.ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        try:
            ready = json.loads(lines.get(timeout=NODE_START_TIMEOUT) or "{}")
        except queue.Empty:
            ready = {}
        if "ready" not in ready:
            proc.kill()
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the node server did not start:\n{stderr[-4000:]}")
        yield f"http://127.0.0.1:{ready['ready']}"
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _cluster_ready(port: int, servers_count: int) -> Callable[[], Awaitable[bool]]:
    """Whether ``servers_count`` servers listen on the channels of "/" and "/admin" and
    read the stream (a server that is not reading yet would miss an action)."""

    async def ready() -> bool:
        readers = redis_command(port, "CLIENT", "LIST").count(b"cmd=xread")
        for nsp in ("/", "/admin"):
            reply = redis_command(port, "PUBSUB", "NUMSUB", f"socket.io#{nsp}#")
            if not reply.rstrip().endswith(f":{servers_count}".encode()):
                return False
        return readers >= servers_count

    return ready


async def test_a_node_server_and_a_wsgate_server_show_each_other_s_sockets(
    redis_server: RedisServer, anyio_backend_name: str
) -> None:
    """wsgate (``instrument()``) and Node (``@socket.io/admin-ui``) on one Valkey: the UI
    on either lists the other's sockets with their transport and data, wsgate's actions
    reach a socket of the Node server, and each accepts the other's session ids."""
    kind = f"hypercorn-{anyio_backend_name}"
    with contextlib.ExitStack() as stack:
        saved = os.environ.get("WSGATE_BROKER_URL")
        os.environ["WSGATE_BROKER_URL"] = redis_server.url
        try:
            url = stack.enter_context(servers.run_server(kind, "apps.socketio_admin:cluster_app"))
        finally:
            if saved is None:
                os.environ.pop("WSGATE_BROKER_URL", None)
            else:
                os.environ["WSGATE_BROKER_URL"] = saved
        wsgate = "http" + url[2:]
        node = stack.enter_context(node_server(redis_server.url))
        await servers.wait_for(
            _cluster_ready(redis_server.port, 2), timeout=10, what="both servers in the cluster"
        )

        async def scenario() -> None:
            carol = await user(node, room="lobby", data={"nick": "carol"})
            dave = await user(wsgate, room="den", data={"nick": "dave"})
            on_node, on_wsgate = carol.get_sid(), dave.get_sid()

            async def sockets_seen_from(url: str, sid: str) -> tuple[str, dict[str, Any]]:
                admin = Admin()
                await admin.connect(url, CREDENTIALS)
                _, (session_id,) = await admin.next("session")
                _, (sockets,) = await admin.next("all_sockets")
                await admin.close()
                mine = [s for s in sockets if s["id"] == sid]
                assert len(mine) == 1, sockets
                return session_id, mine[0]

            # The UI on wsgate lists the Node server's socket, and the other way round.
            wsgate_session, socket = await sockets_seen_from(wsgate, on_node)
            assert socket["transport"] == "websocket"
            assert isinstance(socket["clientId"], str) and len(socket["clientId"]) == 12
            assert sorted(socket["rooms"]) == sorted([on_node, "lobby"])
            assert socket["data"] == {"nick": "carol"}
            assert socket["handshake"]["query"]["EIO"] == "4"
            node_session, socket = await sockets_seen_from(node, on_wsgate)
            assert socket["transport"] == "websocket"
            assert isinstance(socket["clientId"], str) and len(socket["clientId"]) == 12
            assert sorted(socket["rooms"]) == sorted([on_wsgate, "den"])
            assert socket["data"] == {"nick": "dave"}

            # wsgate's actions reach the Node server's socket.
            admin = Admin()
            await admin.connect(wsgate, {"sessionId": node_session})  # Node's session id
            await admin.next("config")
            await admin.action("join", "/", "vip", on_node)

            async def joined() -> bool:
                rooms = await carol.call("rooms", timeout=TIMEOUT)
                return bool(rooms == sorted([on_node, "lobby", "vip"]))

            await servers.wait_for(joined, timeout=TIMEOUT, what="carol in vip")
            gone = asyncio.Event()
            carol.on("disconnect", lambda *reason: gone.set())
            await admin.action("_disconnect", "/", False, on_node)
            await asyncio.wait_for(gone.wait(), TIMEOUT)
            await admin.close()

            # Node accepts the session id wsgate handed out.
            again = Admin()
            await again.connect(node, {"sessionId": wsgate_session})
            event, _ = await again.next("session", "config")
            assert event == "config"
            await again.close()
            await dave.disconnect()

        await run(scenario)
        unexpected = servers.UNEXPECTED_LOG.search(url.log())
        assert unexpected is None, url.log()[-4000:]


def test_a_fetched_socket_shows_what_its_server_told() -> None:
    """A socket of another server without ``data["_admin"]`` (a production-mode server,
    or an application that replaced ``conn.data``) is listed without a client id or
    transport, with its data as it is and its address from a proxy's header, as Node's
    package lists it."""
    entry = {
        "id": "abc",
        "rooms": ["abc", "lobby", 3],
        "data": ["not", "a", "dict"],
        "handshake": {
            "address": "10.0.0.9",
            "headers": {"x-forwarded-for": "203.0.113.7"},
            "query": {"EIO": "4"},
            "auth": {"token": "not for the UI"},
        },
    }
    assert AdminMonitor.serialize_fetched(entry, "/") == {
        "id": "abc",
        "nsp": "/",
        "data": ["not", "a", "dict"],
        "handshake": {
            "address": "203.0.113.7",
            "headers": {"x-forwarded-for": "203.0.113.7"},
            "query": {"EIO": "4"},
        },
        "rooms": ["abc", "lobby"],
    }
    entry["data"] = {"_admin": {"clientId": "0123456789ab", "transport": "polling"}, "n": 1}
    shown = AdminMonitor.serialize_fetched(entry, "/")
    assert (shown["clientId"], shown["transport"], shown["data"]) == (
        "0123456789ab",
        "polling",
        {"n": 1},
    )
