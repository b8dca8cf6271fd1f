"""History recovery in the browser client (wsgate.js) against a real server serving
tests/apps/recovery.py: tests/js/recovery.mjs under node (its WebSocket is the WHATWG
one a browser has), driven over stdin/stdout to restart the server midway. The unit
tests (tests/js/recovery.test.mjs) run with the others in test_browser_client.py."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import servers
from node_script import NodeScript
from servers import ServerProcess

from wsgate.static import client_source

server_kind = servers.server_kind

ROOT = Path(__file__).resolve().parent.parent
TSC = ROOT / "node_modules" / ".bin" / "tsc"


def _messages(log: list[dict[str, Any]]) -> list[str]:
    return [e["message"]["text"] for e in log if "message" in e]


def _kinds(log: list[dict[str, Any]]) -> list[str]:
    return ["recovery" if "recovery" in e else e["message"]["text"] for e in log]


def test_the_browser_client_recovers_what_it_missed(server_kind: str) -> None:
    if shutil.which("node") is None:
        pytest.fail("node (>= 20) is needed for the browser client's tests; install Node.js")
    log_dir = Path(tempfile.mkdtemp(prefix="wsgate-recovery-"))
    server = ServerProcess(server_kind, "apps.recovery:app", log_dir, graceful_timeout=1)
    url = server.start()

    def restart() -> None:
        server.stop()
        server.start(port=url.port)

    script = NodeScript("--experimental-websocket", "tests/js/recovery.mjs", url)
    try:
        out = script.run({"restart-server": restart})
    finally:
        server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)

    # Dropped while 3 frames were broadcast: exactly those, in order, then onRecover,
    # then the live frames; the position moves with every frame, before its handler.
    drop = out["drop"]
    group = drop["group"]
    log = drop["log"]
    assert _kinds(log) == ["m1", "m2", "m3", "m4", "m5", "recovery", "m6"]
    assert log[0]["message"] == {"text": "m1"}  # no pos in what handlers get
    epoch = log[0]["offsets"][group]["epoch"]
    assert [e["offsets"][group] for e in log if "message" in e] == [
        {"offset": n, "epoch": epoch} for n in range(1, 7)
    ]
    assert log[5]["recovery"] == {"group": group, "recovered": True, "missed": 3}
    assert log[5]["positions"] == {group: {"offset": 5, "epoch": epoch}}
    assert drop["positions"] == {group: {"offset": 6, "epoch": epoch}}
    assert _kinds(drop["other"]) == ["m1", "m2", "m3", "m4", "m5", "m6"]  # never dropped

    # The positions saved before a "page reload" recover in a new client.
    reload = out["reload"]
    assert _kinds(reload["log"]) == ["m7", "m8", "recovery"]
    assert reload["log"][-1]["recovery"] == {"group": group, "recovered": True, "missed": 2}
    assert reload["positions"] == {group: {"offset": 8, "epoch": epoch}}

    # Away for more frames than the history keeps: told so, the position moves on.
    small = out["small"]
    g = small["group"]
    assert _kinds(small["log"]) == ["m1", "recovery", "m5"]
    assert small["log"][1]["recovery"] == {"group": g, "recovered": False, "missed": 0}
    small_epoch = small["log"][0]["offsets"][g]["epoch"]
    assert small["log"][1]["positions"] == {g: {"offset": 4, "epoch": small_epoch}}
    assert small["positions"] == {g: {"offset": 5, "epoch": small_epoch}}

    # A server restart loses in-process history: a new epoch, not recovered, and the new
    # position is stored, so the next reconnect recovers (nothing missed).
    restart_ = out["restart"]
    g = restart_["group"]
    old = out["beforeRestart"][g]
    assert old["offset"] == 2
    log = restart_["log"]
    assert _kinds(log) == ["m1", "m2", "recovery", "recovery", "m3"]
    assert log[2]["recovery"] == {"group": g, "recovered": False, "missed": 0}
    new = log[2]["positions"][g]
    assert new["offset"] == 0 and new["epoch"] != old["epoch"]
    assert log[3]["recovery"] == {"group": g, "recovered": True, "missed": 0}
    assert log[3]["positions"] == {g: new}
    assert restart_["positions"] == {g: {"offset": 1, "epoch": new["epoch"]}}


def test_the_declarations_type_the_recovery_api() -> None:
    """tests/ts/recovery_ok.ts compiles with tsc --strict (its @ts-expect-error lines
    each being an error)."""
    if not TSC.exists():
        pytest.fail("node_modules/.bin/tsc is missing: run `npm ci` in the repository")
    import subprocess

    flags = ["--noEmit", "--strict", "--target", "es2022", "--module", "es2022"]
    flags += ["--moduleResolution", "bundler", "--lib", "es2022"]
    result = subprocess.run(
        [str(TSC), *flags, "tests/ts/recovery_ok.ts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"onRecover(fn: (recovery: Recovery) => void)" in client_source("wsgate.d.ts")
