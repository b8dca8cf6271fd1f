"""``wsgate run``: N hypercorn workers on one socket that drain on SIGTERM.

Each test starts ``wsgate run tests/apps/ops.py --workers 2`` with a RedisBroadcastGroup
on a real Valkey server, opens 200 connections (raw AnyIO clients, on the test's
backend), stops the server with SIGTERM, either to the supervisor alone or to the whole
process group (what systemd does by default), and checks what a user would see: every
client gets 1012, every ``@on_disconnect`` ran, no member count or heartbeat is left in
Redis, and the command exits with 0 within ``--shutdown-timeout``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from aioraw import AsyncRawClient
from redis_server import RedisServer, free_port
from servers import wait_for
from wsgate_run import RunProcess

from wsgate import App, WebSocket, on_disconnect, on_message, ws_controller
from wsgate.cli import main
from wsgate.testing import TestClient, WebSocketDenied

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 200
SHUTDOWN_TIMEOUT = 8.0
START_TIMEOUT = 30.0


class WsgateRun:
    """``wsgate run`` in a subprocess of its own session (its own process group)."""

    def __init__(
        self,
        tmp: Path,
        backend: str,
        redis_url: str,
        prefix: str,
        *,
        hypercorn_app: str | None = None,
    ) -> None:
        self.port = free_port()
        self.ready_line, self.ready_count = "2 workers ready", 1
        self.log_path = tmp / "server.log"
        self.hooks_path = tmp / "hooks.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "PYTHONUNBUFFERED": "1",
            "WSGATE_TEST_LOG": str(self.hooks_path),
            "WSGATE_REDIS_URL": redis_url,
            "WSGATE_TEST_PREFIX": prefix,
        }
        argv = [
            sys.executable, "-m", "wsgate", "run", "apps.ops:app",
            "--workers", "2",
            "--backend", backend,
            "--bind", f"127.0.0.1:{self.port}",
            "--shutdown-timeout", str(SHUTDOWN_TIMEOUT),
        ]  # fmt: skip
        if hypercorn_app is not None:
            # hypercorn's own command line, serving the app wrapped in drain_on_signal.
            argv = [
                sys.executable, "-m", "hypercorn", "--workers", "2",
                "--worker-class", backend,
                "--bind", f"127.0.0.1:{self.port}",
                "--graceful-timeout", str(int(SHUTDOWN_TIMEOUT / 2)),
                hypercorn_app,
            ]  # fmt: skip
            self.ready_line, self.ready_count = "Running on", 2
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Until the supervisor reports every worker's lifespan startup done."""
        deadline = time.monotonic() + START_TIMEOUT
        while self.log().count(self.ready_line) < self.ready_count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"wsgate run did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def hooks(self) -> list[tuple[int, int]]:
        """``(pid, close code)`` of every ``@on_disconnect`` that ran."""
        if not self.hooks_path.exists():
            return []
        out = []
        for line in self.hooks_path.read_text().splitlines():
            pid, code = line.split()
            if code.isdigit():
                out.append((int(pid), int(code)))
        return out

    def lifespan_shutdowns(self) -> set[int]:
        """Pids of the workers whose lifespan shutdown ran."""
        lines = self.hooks_path.read_text().splitlines() if self.hooks_path.exists() else []
        return {int(line.split()[0]) for line in lines if line.endswith(" lifespan-shutdown")}

    def kill(self) -> None:
        """After a failed test: stop the command (SIGTERM to its process group, so that
        it removes what it created; SIGKILL if it does not stop)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(SHUTDOWN_TIMEOUT + 2)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.mark.parametrize("target", ["supervisor", "process-group"])
@pytest.mark.parametrize("backend", ["trio", "asyncio"])
async def test_sigterm_drains_every_connection_with_1012(
    redis_server: RedisServer, tmp_path: Path, backend: str, target: str
) -> None:
    prefix = f"run{uuid.uuid4().hex[:8]}"
    server = WsgateRun(tmp_path, backend, redis_server.url, prefix)
    await drains_with_1012(server, redis_server, prefix, target)


@pytest.mark.parametrize("worker_class", ["trio", "asyncio"])
async def test_drain_on_signal_under_hypercorn_workers(
    redis_server: RedisServer, tmp_path: Path, worker_class: str
) -> None:
    """``hypercorn --workers 2`` with SIGTERM to the process group: without the wrapper
    the workers die at once (no hook, no lifespan shutdown: benchmarks/results/drain.md);
    with ``drain_on_signal(app)`` every client gets 1012 and Redis is left clean."""
    prefix = f"run{uuid.uuid4().hex[:8]}"
    server = WsgateRun(
        tmp_path, worker_class, redis_server.url, prefix, hypercorn_app="apps.ops:drained"
    )
    await drains_with_1012(server, redis_server, prefix, "process-group")


async def drains_with_1012(
    server: WsgateRun, redis_server: RedisServer, prefix: str, target: str
) -> None:
    try:
        await anyio.to_thread.run_sync(server.wait_ready)
        base = f"ws://127.0.0.1:{server.port}"
        clients: list[AsyncRawClient] = []
        pids: list[int] = []

        async def open_one(i: int) -> None:
            c = await AsyncRawClient.connect(f"{base}/room/r{i % 4}")
            clients.append(c)
            pids.append(await c.request("hello"))  # accepted, and in its room

        async with anyio.create_task_group() as tg:
            for i in range(CLIENTS):
                tg.start_soon(open_one, i)
        # On a loaded machine one worker may accept every connection of the burst: more,
        # until the other has some too.
        with anyio.fail_after(START_TIMEOUT):
            while len(set(pids)) < 2:
                await open_one(len(clients))
        keys = redis_server.command("KEYS", f"{prefix}:*")
        assert isinstance(keys, list)
        assert any(k.startswith(f"{prefix}:w:".encode()) for k in keys), keys
        assert any(k.startswith(f"{prefix}:m:".encode()) for k in keys), keys

        codes: list[int | None] = []

        async def closed(c: AsyncRawClient) -> None:
            codes.append(await c.wait_close(timeout=SHUTDOWN_TIMEOUT + 2))

        started = time.monotonic()
        if target == "supervisor":
            server.proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(server.proc.pid, signal.SIGTERM)
        async with anyio.create_task_group() as tg:
            for c in clients:
                tg.start_soon(closed, c)
        status = await anyio.to_thread.run_sync(server.proc.wait, SHUTDOWN_TIMEOUT + 2)
        elapsed = time.monotonic() - started

        assert codes == [1012] * len(clients), sorted(set(map(str, codes)))
        hooks = server.hooks()
        assert len(hooks) == len(clients), f"{len(hooks)} @on_disconnect hooks ran"
        assert {code for _, code in hooks} == {1012}
        assert {pid for pid, _ in hooks} == set(pids)
        assert server.lifespan_shutdowns() == set(pids)
        assert redis_server.command("KEYS", f"{prefix}:*") == []
        assert status == 0, server.log()[-3000:]
        assert elapsed < SHUTDOWN_TIMEOUT, f"stopped after {elapsed:.1f}s"
        assert "Traceback" not in server.log(), server.log()[-3000:]
    finally:
        server.kill()


def test_bad_bind_says_how_to_fix_it() -> None:
    with pytest.raises(SystemExit, match="--bind takes HOST:PORT"):
        main(["run", "apps.ops:app", "--bind", "localhost"])


def test_bad_workers_is_refused() -> None:
    with pytest.raises(SystemExit, match="--workers must be at least 1"):
        main(["run", "apps.ops:app", "--workers", "0"])


async def test_app_shutdown_takes_the_close_code_and_refuses_late_handshakes() -> None:
    """``App.shutdown(code=, reason=)``, what ``wsgate run`` drains with: every client and
    every hook sees the code, and a handshake arriving afterwards is refused."""
    hooks: list[int | None] = []

    @ws_controller("/")
    class G:
        @on_message("x")
        async def x(self) -> None: ...

        @on_disconnect
        async def bye(self, ws: WebSocket) -> None:
            hooks.append(ws.close_code)

    app = App(gateways=[G])
    async with TestClient(app) as client:
        async with client.websocket_connect("/") as a, client.websocket_connect("/") as b:
            await a.send_event("x", id=1)
            await a.receive_json(timeout=5)
            await b.send_event("x", id=1)
            await b.receive_json(timeout=5)
            await app.shutdown(code=1012, reason="service restart")
            assert hooks == [1012, 1012]
            assert await a.wait_closed() == (1012, "service restart")
            assert await b.wait_closed() == (1012, "service restart")
        with pytest.raises(WebSocketDenied):
            async with client.websocket_connect("/"):
                pass


def test_the_restart_policy_backs_off_and_calls_five_deaths_a_minute_a_crash_loop() -> None:
    from wsgate.run import RestartPolicy

    policy = RestartPolicy()
    assert [policy.died(t) for t in (0.0, 1.0, 2.0, 3.0)] == [0.5, 1.0, 2.0, 4.0]
    assert policy.died(4.0) is None  # the fifth death within a minute
    # Deaths spread out further than the window never add up to a crash loop.
    spread = RestartPolicy()
    assert all(spread.died(t * 61.0) == 0.5 for t in range(10))
    capped = RestartPolicy(max_deaths=100, max_delay=8.0)
    assert [capped.died(float(t)) for t in range(6)][-2:] == [8.0, 8.0]


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
async def test_a_killed_worker_is_restarted_and_the_others_keep_serving(
    redis_server: RedisServer, tmp_path: Path, backend: str
) -> None:
    prefix = f"run{uuid.uuid4().hex[:8]}"
    server = WsgateRun(tmp_path, backend, redis_server.url, prefix)
    base = f"ws://127.0.0.1:{server.port}"
    try:
        await anyio.to_thread.run_sync(server.wait_ready)
        # One client on each worker (the kernel spreads connections between them).
        by_pid: dict[int, AsyncRawClient] = {}
        extra: list[AsyncRawClient] = []
        with anyio.fail_after(START_TIMEOUT):
            while len(by_pid) < 2:
                c = await AsyncRawClient.connect(f"{base}/room/r")
                pid = await c.request("hello")
                if pid in by_pid:
                    extra.append(c)
                else:
                    by_pid[pid] = c
        victim, survivor = sorted(by_pid)
        os.kill(victim, signal.SIGKILL)
        # The victim's client sees its connection end (no close frame: the process is
        # gone); the other worker's client goes on as if nothing happened.
        assert await by_pid[victim].wait_close(timeout=10) is None
        assert await by_pid[survivor].request("hello") == survivor

        marker = f"worker {victim} exited"

        async def restarted() -> str | None:
            assert server.proc.poll() is None, server.log()[-3000:]
            log = server.log()
            return log if marker in log and " ready" in log.split(marker)[1] else None

        log = await wait_for(restarted, timeout=START_TIMEOUT, what="the worker's restart")
        assert f"worker {victim} exited with -9: restarting it in 0.5 s" in log
        # New connections reach two live workers again, one of them the new one.
        seen: set[int] = set()
        with anyio.fail_after(START_TIMEOUT):
            while len(seen) < 2:
                c = await AsyncRawClient.connect(f"{base}/room/r")
                seen.add(await c.request("hello"))
                extra.append(c)
        assert survivor in seen and victim not in seen
        # A drain after a recovered crash is a clean stop.
        server.proc.send_signal(signal.SIGTERM)
        status = await anyio.to_thread.run_sync(server.proc.wait, SHUTDOWN_TIMEOUT + 2)
        assert status == 0, server.log()[-3000:]
    finally:
        server.kill()


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
async def test_late_copies_of_the_stop_signal_do_not_fail_the_drain(
    tmp_path: Path, backend: str
) -> None:
    """A worker gets the stop signal more than once: from the process group and again
    from the supervisor, which may run late on a loaded machine. However late a copy
    arrives (here: one every 5 ms until the worker is gone, also after its event loop
    ended), the drain is one clean drain and the command exits with 0."""
    run = RunProcess(tmp_path, "apps.ops:app", ["--workers", "2", "--backend", backend])
    try:
        await anyio.to_thread.run_sync(run.wait_ready, 2)
        clients: list[AsyncRawClient] = []
        pids: set[int] = set()
        with anyio.fail_after(START_TIMEOUT):
            # 20 clients, on both workers (the kernel spreads the connections).
            while len(clients) < 20 or len(pids) < 2:
                c = await AsyncRawClient.connect(f"ws://127.0.0.1:{run.port}/room/r")
                clients.append(c)
                pids.add(await c.request("hello"))
        # pidfds: a copy never reaches another process that reused a worker's pid.
        pidfds = [os.pidfd_open(pid) for pid in pids]
        os.killpg(run.proc.pid, signal.SIGTERM)

        async def repeat_signals() -> None:
            live = list(pidfds)
            while live:
                for fd in list(live):
                    try:
                        signal.pidfd_send_signal(fd, signal.SIGTERM)
                    except ProcessLookupError:
                        live.remove(fd)
                await anyio.sleep(0.005)

        codes: list[int | None] = []

        async def closed(c: AsyncRawClient) -> None:
            codes.append(await c.wait_close(timeout=10))

        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                tg.start_soon(repeat_signals)
                for c in clients:
                    tg.start_soon(closed, c)
        for fd in pidfds:
            os.close(fd)
        status = await anyio.to_thread.run_sync(run.proc.wait, 10)
        assert codes == [1012] * len(clients)
        assert status == 0, run.log()[-3000:]
        assert "exited with" not in run.log()
    finally:
        run.kill()


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
async def test_the_only_worker_is_restarted_too(tmp_path: Path, backend: str) -> None:
    """A lone worker that dies is restarted like any other, and keeps its
    ``WSGATE_WORKER_ID``."""
    run = RunProcess(tmp_path, "apps.runopts:app", ["--workers", "1", "--backend", backend])

    async def who() -> dict[str, object]:
        c = await AsyncRawClient.connect(f"ws://127.0.0.1:{run.port}/who")
        answer: dict[str, object] = await c.request("who")
        await c.aclose()
        return answer

    try:
        await anyio.to_thread.run_sync(run.wait_ready, 1)
        c = await AsyncRawClient.connect(f"ws://127.0.0.1:{run.port}/room/r")
        victim = await c.request("hello")
        assert (await who())["worker_id"] == "0"
        os.kill(victim, signal.SIGKILL)
        assert await c.wait_close(timeout=10) is None
        await anyio.to_thread.run_sync(lambda: run.wait_line(r"\] worker \d+ ready"))
        after = await who()
        assert after["pid"] != victim
        assert after["worker_id"] == "0"
        assert await anyio.to_thread.run_sync(run.stop) == 0
    finally:
        run.kill()
