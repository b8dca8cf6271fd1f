"""The clients' presence views against a real server (tests/apps/presence_app.py under
each server kind): wsgate.js in node (tests/js/presence_integration.mjs; its unit tests
are tests/js/presence.test.mjs, run by test_browser_client.py) and the Python client;
and the TypeScript declarations."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
from servers import SERVER_PARAMS, ServerPool, ServerURL

from wsgate.client import ClientState, connect

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")
TSC = ROOT / "node_modules" / ".bin" / "tsc"
TIMEOUT = 5.0

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def presence_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    return server_pool.get(request.param, "apps.presence_app:app")


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


async def test_browser_client_follows_a_group(
    presence_server: ServerURL, server_logs_clean: None
) -> None:
    if NODE is None:
        pytest.fail("node (>= 20) is needed for the browser client's tests; install Node.js")
    room = f"r{uuid.uuid4().hex[:8]}"
    args = [NODE, "--experimental-websocket", "tests/js/presence_integration.mjs"]
    result = await anyio.to_thread.run_sync(lambda: _run([*args, presence_server, room]))
    assert result.returncode == 0, result.stdout + result.stderr
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    ann, bob = {"user": "ann"}, {"user": "bob"}
    away = {"user": "ann", "away": True}
    assert out["sync"] == {}  # subscribed before it was tracked
    assert out["annJoin"] == ["ann", [ann], [ann]]
    assert out["bobJoin"] == ["bob", [bob], [bob]]
    assert out["bobSecondTab"] == ["bob", [bob, bob], [bob]]
    assert out["bobTabLeave"] == ["bob", [bob], [bob]]
    assert out["annUpdate"] == {
        "join": ["ann", [ann, away], [away]],
        "leave": ["ann", [away], [ann]],
    }
    assert out["listed"] == {"ann": [away], "bob": [bob]}
    # After the reconnect: ann's new connection subscribed before it tracked ann again.
    assert out["resync"] in ({"bob": [bob]}, {"ann": [ann], "bob": [bob]})


async def test_python_client_follows_a_group(
    presence_server: ServerURL, server_logs_clean: None
) -> None:
    room = f"r{uuid.uuid4().hex[:8]}"
    url = f"{presence_server}/presence/{room}"
    calls: list[tuple[Any, ...]] = []
    changed = anyio.Event()

    def record(*args: Any) -> None:
        calls.append(args)
        changed.set()

    async def until(predicate: Any) -> None:
        nonlocal changed
        with anyio.fail_after(TIMEOUT):
            while not predicate():
                changed = anyio.Event()
                await changed.wait()

    conn = connect(f"{url}?user=ann", reconnect=True)
    view = conn.presence(room)
    assert conn.presence(room) is view
    view.on_sync(lambda entries: record("sync", entries))
    view.on_join(lambda key, current, joined: record("join", key, current, joined))
    view.on_leave(lambda key, current, left: record("leave", key, current, left))
    removed: list[tuple[Any, ...]] = []
    remove = view.on_leave(lambda *args: removed.append(args))
    ann, bob = {"user": "ann"}, {"user": "bob"}
    async with conn:
        await until(lambda: view.list() == {"ann": [ann]})
        assert calls[:2] == [("sync", {}), ("join", "ann", [ann], [ann])]
        async with connect(f"{url}?user=bob&watch=0"):
            async with connect(f"{url}?user=bob&watch=0"):
                await until(lambda: view.list().get("bob") == [bob, bob])
            await until(lambda: view.list().get("bob") == [bob])
            assert calls[-1] == ("leave", "bob", [bob], [bob])
            remove()
        await until(lambda: "bob" not in view.list())
        assert calls[-1] == ("leave", "bob", [], [bob])
        assert removed == [("bob", [bob], [bob])]  # not called after its remover
        # The server restarts the connection: after the reconnect the state comes again.
        syncs = sum(1 for c in calls if c[0] == "sync")
        await conn.send_event("restart")
        await until(lambda: sum(1 for c in calls if c[0] == "sync") > syncs)
        await until(lambda: view.list() == {"ann": [ann]})
        assert conn.connection_state is ClientState.OPEN


def test_declarations_type_presence_views() -> None:
    if not TSC.exists():
        pytest.fail("node_modules/.bin/tsc is missing: run `npm ci` in the repository")
    flags = ["--noEmit", "--strict", "--target", "es2022", "--module", "es2022"]
    flags += ["--moduleResolution", "bundler", "--lib", "es2022"]
    result = _run([str(TSC), *flags, "tests/ts/presence_ok.ts"], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
