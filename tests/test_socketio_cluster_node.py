"""wsgate and Node in one Socket.IO cluster: a wsgate server (tests/apps/socketio_cluster.py,
under hypercorn on the test's backend) and a Node socket.io 4.x server with
``@socket.io/redis-streams-adapter`` (tests/js/cluster_node.mjs) on one real Valkey, with
the official socket.io-client (node) as the clients. Broadcasts with ``except``, binary
payloads, acknowledgements from every client, each cluster operation, server-to-server
events and connection state recovery, in both directions; and a wsgate server killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
from redis_server import RedisServer, redis_command
from wsgate_run import RunProcess

pytestmark = pytest.mark.usefixtures("anyio_backend")

SCRIPT = servers.ROOT / "tests" / "js" / "cluster_node.mjs"
APP = "tests.apps.socketio_cluster:app"
STEP_TIMEOUT = 15.0


class Node:
    """The node script: one command at a time, each answer awaited with a timeout."""

    def __init__(self, redis_url: str, stream: str) -> None:
        node = shutil.which("node")
        assert node is not None, "node is needed for the Node cluster tests"
        self.stream = stream
        self.proc = subprocess.Popen(
            [node, str(SCRIPT), redis_url, stream],
            cwd=servers.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self._next()["ready"]
        self._id = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _next(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=STEP_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"the node script said nothing for {STEP_TIMEOUT}s") from None
        if line is None:
            self.proc.wait(10)
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the node script ended:\n{stderr[-6000:]}")
        return dict(json.loads(line))

    def _call(self, cmd: str, kw: dict[str, Any]) -> Any:
        self._id += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._id, "cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        answer = self._next()
        assert answer.get("id") == self._id, answer
        if "error" in answer:
            raise AssertionError(f"node {cmd} failed: {answer['error']}")
        return answer["result"]

    async def __call__(self, cmd: str, **kw: Any) -> Any:
        return await anyio.to_thread.run_sync(self._call, cmd, kw)

    async def op(self, name: str, **kw: Any) -> Any:
        """A cluster operation of the wsgate server (through its "/ops" namespace)."""
        return await self("emit", name="ops", args=["op", name, kw])

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def wsgate_server(kind: str, redis_url: str, stream: str) -> Iterator[servers.ServerProcess]:
    env = {"WSGATE_BROKER_URL": redis_url, "WSGATE_SIO_STREAM": stream}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = servers.ServerProcess(kind, APP)
    try:
        server.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def cluster(redis_server: RedisServer, backend: str) -> Iterator[tuple[Node, str]]:
    """A Node server and a wsgate server on one stream; the node script's client "ops"
    is connected to the wsgate server's "/ops" namespace."""
    stream = f"s{uuid.uuid4().hex[:10]}"
    with wsgate_server(f"hypercorn-{backend}", redis_server.url, stream) as server:
        node = Node(redis_server.url, stream)
        try:
            assert server.url is not None
            yield node, "http" + server.url[2:]
        finally:
            node.stop()


@pytest.fixture
def backend(anyio_backend_name: str) -> str:
    return anyio_backend_name


async def eventually(fetch: Any, expected: Any) -> None:
    """Poll ``fetch()`` until it returns ``expected`` (room changes travel through the
    stream, fetches through pub/sub: another server may answer before it has read the
    change, in Node's adapter as in wsgate's)."""

    async def matches() -> bool:
        return bool(await fetch() == expected)

    await servers.wait_for(matches, timeout=5, what=f"{expected}")


def command(where: int | str, *args: str) -> bytes:
    """One Redis command to the server on TCP port ``where`` or Unix socket ``where``."""
    if isinstance(where, int):
        return redis_command(where, *args)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(where)
        s.sendall(
            b"".join(
                [b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args]
            )
        )
        return s.recv(256)


async def kept(node: Node, name: str, where: int | str) -> None:
    """Wait until the server the client ``name`` was cut off from has kept its session
    (a client that comes back sooner, anywhere, is not recovered: in Node too)."""
    key = "sio:session:" + await node("pid", name=name)

    async def there() -> bool:
        return command(where, "EXISTS", key).startswith(b":1")

    await servers.wait_for(there, timeout=5, what=f"the session of {name} kept")


async def connect(node: Node, name: str, url: str, **kw: Any) -> dict[str, Any]:
    hello: dict[str, Any] = await node("connect", name=name, url=url, **kw)
    if url != "node" and kw.get("namespace", "/") == "/":
        # wsgate's connect handler says whether it recovered.
        (welcome,) = await node("events", name=name, count=1)
        assert welcome == ["welcome", hello["recovered"]]
    return hello


async def test_broadcasts_and_binary_both_ways(redis_server: RedisServer, backend: str) -> None:
    with cluster(redis_server, backend) as (node, wsgate):
        await connect(node, "ops", wsgate, namespace="/ops")
        for name, url in (("n1", "node"), ("n2", "node"), ("w1", wsgate), ("w2", wsgate)):
            await connect(node, name, url)
            await node("emit", name=name, args=["join", "r"])
        n3 = (await connect(node, "n3", "node"))["sid"]
        await node("emit", name="n3", args=["join", "other"])
        # From a Node client's handler (socket.to(room)) to everyone else in the room.
        await node("emit", name="n1", args=["shout", "r", "from node"])
        for name in ("n2", "w1", "w2"):
            assert await node("events", name=name, count=1) == [["shouted", "from node"]]
        # From a wsgate client's handler (skip=conn).
        await node("emit", name="w1", args=["shout", "r", "from wsgate"])
        for name in ("n1", "n2", "w2"):
            assert await node("events", name=name, count=1) == [["shouted", "from wsgate"]]
        # Node's io.to(room).except(room), with binary, reaches wsgate's clients.
        await node("ioEmit", room="r", args=["bin", {"$bin": "00ff"}, {"n": 1}])
        await node("ioEmit", args=["all"])
        for name in ("n1", "n2", "w1", "w2"):
            assert await node("events", name=name, count=2) == [
                ["bin", {"$bin": "00ff"}, {"n": 1}],
                ["all"],
            ]
        assert await node("events", name="n3", count=1) == [["all"]]
        await node("ioEmit", args=["not-other"], skip="other")
        # wsgate's emit, with binary, reaches Node's clients; a room's sid works as a room.
        await node.op("emit", args=["from-wsgate", {"$bin": "0102"}], room="r")
        await node.op("emit", args=["direct"], room=n3)
        for name in ("n1", "n2", "w1", "w2"):
            assert await node("events", name=name, count=2) == [
                ["not-other"],
                ["from-wsgate", {"$bin": "0102"}],
            ]
        assert await node("events", name="n3", count=1) == [["direct"]]

        # Another namespace, each way; "/" does not see it. A local emit stays local.
        await connect(node, "nc", "node", namespace="/custom")
        await connect(node, "wc", wsgate, namespace="/custom")
        await node("ioEmit", namespace="/custom", args=["custom", 1])
        await node.op("emit", namespace="/custom", args=["custom", 2])
        await node("ioEmit", local=True, args=["local"])
        for name in ("nc", "wc"):
            assert await node("events", name=name, count=2) == [["custom", 1], ["custom", 2]]
        assert await node("events", name="n1", count=1) == [["local"]]
        await node.op("emit", args=["last"])
        assert await node("events", name="w1", count=1) == [["last"]]


async def test_acknowledgements_across_both(redis_server: RedisServer, backend: str) -> None:
    with cluster(redis_server, backend) as (node, wsgate):
        await connect(node, "ops", wsgate, namespace="/ops")
        await connect(node, "n1", "node", answer="n1")
        await connect(node, "w1", wsgate, answer="w1")
        await connect(node, "w2", wsgate, answer="w2")
        await connect(node, "nb", "node", answer={"$bin": "01"})
        await connect(node, "wb", wsgate, answer={"$bin": "02"})
        for name in ("n1", "w1", "w2"):
            await node("emit", name=name, args=["join", "q"])
        got = await node("ioEmitWithAck", room="q", args=["question", 1])
        assert sorted(got["responses"]) == ["n1", "w1", "w2"]
        got = await node.op("emit_with_ack", room="q", args=["question", 2])
        assert sorted(got["responses"]) == ["n1", "w1", "w2"]
        # Binary acknowledgements; a room with no client.
        for name in ("nb", "wb"):
            await node("emit", name=name, args=["join", "bin"])
        binary = [{"$bin": "01"}, {"$bin": "02"}]
        got = await node("ioEmitWithAck", room="bin", args=["question"])
        assert sorted(got["responses"], key=json.dumps) == binary
        got = await node.op("emit_with_ack", room="bin", args=["question"])
        assert sorted(got["responses"], key=json.dumps) == binary
        assert await node("ioEmitWithAck", room="nobody", args=["question"]) == {"responses": []}
        assert await node.op("emit_with_ack", room="nobody", args=["q"]) == {"responses": []}
        # A client that does not answer: a timeout on both sides, with the answers.
        await connect(node, "mute", "node")
        await node("emit", name="mute", args=["join", "q"])
        got = await node.op("emit_with_ack", room="q", args=["question", 3], timeout=0.5)
        assert sorted(got["timeout"]) == ["n1", "w1", "w2"]
        got = await node("ioEmitWithAck", room="q", timeout=500, args=["question", 4])
        assert sorted(got["timeout"]) == ["n1", "w1", "w2"]


async def test_cluster_operations_both_ways(redis_server: RedisServer, backend: str) -> None:
    with cluster(redis_server, backend) as (node, wsgate):
        await connect(node, "ops", wsgate, namespace="/ops")
        n = (await connect(node, "n", "node", auth={"who": "n"}))["sid"]
        w = (await connect(node, "w", wsgate, auth={"who": "w"}))["sid"]
        await node("emit", name="n", args=["data", {"name": "node", "bin": {"$bin": "ab"}}])
        await node("emit", name="w", args=["data", {"name": "wsgate"}])
        await node("emit", name="w", args=["join", "blue"])

        seen_by_node = {s["sid"]: s for s in await node("fetchSockets")}
        seen_by_wsgate = {s["sid"]: s for s in await node.op("fetch_sockets")}
        for seen in (seen_by_node, seen_by_wsgate):
            assert set(seen) == {n, w}
            assert seen[w]["rooms"] == sorted([w, "blue"])
            assert seen[w]["data"] == {"name": "wsgate"}
            assert seen[w]["auth"] == {"who": "w"}
            assert seen[n]["data"] == {"name": "node", "bin": {"$bin": "ab"}}
            assert seen[n]["auth"] == {"who": "n"}
        assert [s["sid"] for s in await node("fetchSockets", room="blue")] == [w]

        # RemoteSocket operations, each way.
        await node("remote", sid=w, action="emit", args=["poke", 1])
        await node.op("remote", sid=n, action="emit", args=["poke", 2])
        assert await node("events", name="w", count=1) == [["poke", 1]]
        assert await node("events", name="n", count=1) == [["poke", 2]]
        await node("remote", sid=w, action="join", args="from-node")
        await node.op("remote", sid=n, action="join", args=["from-wsgate"])
        await node.op("remote", sid=w, action="leave", args="blue")

        async def rooms_by(fetch: Any) -> dict[str, list[str]]:
            return {s["sid"]: s["rooms"] for s in await fetch()}

        await eventually(
            lambda: rooms_by(lambda: node.op("fetch_sockets")),
            {n: sorted([n, "from-wsgate"]), w: sorted([w, "from-node"])},
        )

        # socketsJoin / socketsLeave of the whole cluster, each way.
        await node("socketsJoin", rooms=["everyone"])
        await node.op("sockets_join", rooms=["all"], room="everyone")
        await node.op("sockets_leave", rooms="from-wsgate")
        await node("socketsLeave", room="all", rooms=["from-node"])
        await eventually(
            lambda: rooms_by(lambda: node("fetchSockets")),
            {n: sorted([n, "everyone", "all"]), w: sorted([w, "everyone", "all"])},
        )

        # Server-side events, each way, with and without acknowledgement.
        assert await node("serverSideEmitWithAck", args=["hello", "node"]) == ["wsgate greets node"]
        assert await node.op("server_side_emit_with_ack", args=["hello", "wsgate"]) == [
            "node greets wsgate"
        ]
        await node("serverSideEmit", args=["note", 1, {"$bin": "ff"}])
        await node.op("server_side_emit", args=["note", "two"])
        assert await node("notes", count=1) == [["two"]]
        assert await node.op("notes") == [[1, {"$bin": "ff"}]]

        # disconnectSockets, each way.
        await node.op("remote", sid=n, action="disconnect", args=False)
        assert await node("events", name="n", count=1) == [["(disconnect)", "io server disconnect"]]
        await node("disconnectSockets", room=w)
        assert await node("events", name="w", count=1) == [["(disconnect)", "io server disconnect"]]
        assert await node("fetchSockets") == []


async def test_recovery_across_both(redis_server: RedisServer, backend: str) -> None:
    with cluster(redis_server, backend) as (node, wsgate):
        await connect(node, "ops", wsgate, namespace="/ops")
        # A client of wsgate recovers on Node, with what it missed from both servers.
        first = await connect(node, "a", wsgate)
        await node("emit", name="a", args=["join", "r"])
        await node("emit", name="a", args=["data", {"k": 1}])
        await node.op("emit", args=["seen", 0], room="r")
        assert await node("events", name="a", count=1) == [["seen", 0]]
        assert await node("drop", name="a") == ["(disconnect)", "forced close"]
        await kept(node, "a", redis_server.port)
        await node.op("emit", args=["missed", 1], room="r")
        await node("ioEmit", room="r", args=["missed", {"$bin": "02"}])
        await node("ioEmit", room="elsewhere", args=["not for a"])
        await node("ioEmit", args=["missed", 3], skip="r")
        await node.op("emit", args=["missed", 4])
        again = await node("resume", name="a", url="node")
        assert again == {"sid": first["sid"], "recovered": True}
        assert await node("events", name="a", count=3) == [
            ["missed", 1],
            ["missed", {"$bin": "02"}],
            ["missed", 4],
        ]
        (socket,) = await node("fetchSockets", room="r")
        assert socket["sid"] == first["sid"] and socket["data"] == {"k": 1}

        # A client of Node recovers on wsgate, with what it missed from both servers.
        second = await connect(node, "b", "node")
        await node("emit", name="b", args=["join", "s"])
        await node("emit", name="b", args=["data", [1, 2]])
        await node("ioEmit", room="s", args=["seen", 2])
        assert await node("events", name="b", count=1) == [["seen", 2]]
        assert await node("drop", name="b") == ["(disconnect)", "forced close"]
        await kept(node, "b", redis_server.port)
        await node("ioEmit", room="s", args=["missed", 5])
        await node.op("emit", args=["missed", {"$bin": "06"}], room="s")
        again = await node("resume", name="b", url=wsgate)
        assert again == {"sid": second["sid"], "recovered": True}
        assert await node("events", name="b", count=3) == [
            ["missed", 5],
            ["missed", {"$bin": "06"}],
            ["welcome", True],
        ]
        await node("ioEmit", room="s", args=["live", 7])
        assert await node("events", name="b", count=1) == [["live", 7]]
        (socket,) = await node.op("fetch_sockets", room="s")
        assert socket["sid"] == second["sid"] and socket["data"] == [1, 2]

        # A session that is gone (taken by the recovery above): a new one.
        third = await connect(node, "c", wsgate)
        assert third["recovered"] is False and third["sid"] != second["sid"]


async def test_a_killed_wsgate_server_leaves_the_cluster(
    redis_server: RedisServer, backend: str
) -> None:
    with cluster(redis_server, backend) as (node, wsgate):
        stream = node.stream
        await connect(node, "ops", wsgate, namespace="/ops")
        n = await connect(node, "n", "node")
        w = await connect(node, "w", wsgate)
        with wsgate_server(f"hypercorn-{backend}", redis_server.url, stream) as doomed:
            assert doomed.url is not None and doomed.proc is not None
            await connect(node, "d", "http" + doomed.url[2:])
            assert len(await node("fetchSockets")) == 3
            assert len(await node.op("fetch_sockets")) == 3
            # SIGKILL, to the whole process group (hypercorn serves from a worker).
            os.killpg(doomed.proc.pid, signal.SIGKILL)
            doomed.proc.wait(5)
            # Its pub/sub connection drops with it: no server waits for it any more.
            channel = "socket.io#/#"

            async def two_servers_left() -> bool:
                reply = redis_command(redis_server.port, "PUBSUB", "NUMSUB", channel)
                return reply.split(b"\r\n")[3] == b":2"

            await servers.wait_for(two_servers_left, timeout=5, what="the dead server gone")
            alive = sorted([n["sid"], w["sid"]])
            assert sorted(s["sid"] for s in await node("fetchSockets")) == alive
            assert sorted(s["sid"] for s in await node.op("fetch_sockets")) == alive


async def test_two_workers_under_wsgate_run(tmp_path: Path, backend: str) -> None:
    """``wsgate run --workers 2`` with nothing set up (its embedded Valkey): rooms, acks,
    cluster operations and recovery on the other worker."""
    app = "apps.socketio_cluster:app"
    with RunProcess(tmp_path, app, ["--workers", "2", "--backend", backend]) as run:
        await anyio.to_thread.run_sync(run.wait_ready, 2)
        url = f"http://127.0.0.1:{run.port}"
        valkey = run.embedded()[1]
        node = Node("-", "-")
        try:
            # A client on each worker (the kernel spreads the connections).
            by_pid: dict[int, str] = {}
            for i in range(40):
                await connect(node, f"c{i}", url, answer=f"c{i}")
                pid = await node("emit", name=f"c{i}", args=["pid"])
                if pid in by_pid:
                    await node("close", name=f"c{i}")
                else:
                    by_pid[pid] = f"c{i}"
                if len(by_pid) == 2:
                    break
            assert len(by_pid) == 2, "the two workers did not both get a connection"
            (pid_a, a), (pid_b, b) = by_pid.items()
            for name in (a, b):
                await node("emit", name=name, args=["join", "r"])
            await node("emit", name=a, args=["shout", "r", "across"])
            assert await node("events", name=b, count=1) == [["shouted", "across"]]
            await connect(node, "ops", url, namespace="/ops")
            assert len(await node.op("fetch_sockets", room="r")) == 2
            got = await node.op("emit_with_ack", room="r", args=["question"])
            assert sorted(got["responses"]) == sorted([a, b])

            # a recovers, with what it missed, on whichever worker it reaches; again
            # until that is the other one. (A client presents the offset of the last
            # event it got: one is needed.)
            await node.op("emit", args=["seen"], room="r")
            assert await node("events", name=a, count=2) == [["question"], ["seen"]]
            for attempt in range(20):
                assert await node("drop", name=a) == ["(disconnect)", "forced close"]
                await kept(node, a, valkey)
                await node.op("emit", args=["missed", attempt], room="r")
                again = await node("resume", name=a, url=url)
                assert again["recovered"] is True
                assert await node("events", name=a, count=2) == [
                    ["missed", attempt],
                    ["welcome", True],
                ]
                if await node("emit", name=a, args=["pid"]) == pid_b:
                    break
            else:
                raise AssertionError("the client never reached the other worker")
            assert pid_a != pid_b
        finally:
            node.stop()
