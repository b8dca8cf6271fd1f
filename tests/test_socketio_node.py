"""The official JavaScript socket.io-client (node_modules, run with ``node``) against
wsgate's Socket.IO server under hypercorn trio, hypercorn asyncio and uvicorn: WebSocket
only, polling only, and polling upgraded to WebSocket.

The scenarios live in tests/node/socketio_client.js and print one JSON line per step.
"""

from __future__ import annotations

import json
import shutil
import uuid
from typing import Any

import anyio
import pytest
import servers

socketio_server = servers.socketio_server
server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

SCRIPT = servers.ROOT / "tests" / "node" / "socketio_client.js"
TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": ["polling", "websocket"],
}


async def run_node(url: str, scenario: str, transports: list[str], **extra: Any) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is needed for the socket.io-client tests"
    config = {"url": "http" + url[2:], "transports": transports, "scenario": scenario, **extra}
    with anyio.fail_after(40):
        result = await anyio.run_process(
            [node, str(SCRIPT), json.dumps(config)], cwd=servers.ROOT, check=False
        )
    steps = {}
    for line in result.stdout.decode().splitlines():
        record = json.loads(line)
        steps[record["step"]] = record["value"]
    assert result.returncode == 0 and "error" not in steps, (steps, result.stderr.decode())
    return steps


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_socketio_client_features(socketio_server: str, transport: str) -> None:
    tag = f"node-{uuid.uuid4()}"
    steps = await run_node(socketio_server, "features", TRANSPORTS[transport], tag=tag)
    assert steps["auth"] == {"tag": tag}
    assert steps["message-back"] == ["a", 2, {"x": None}]
    assert steps["chat"] == {"ok": True, "length": 5}
    assert steps["chat-invalid"]["error"]["code"] == "validation_error"
    assert steps["pair"] == [2, 1]
    assert steps["nothing"] is None
    assert steps["ask"] == ["answer", "42:q?"]
    assert steps["binary-ack"] == {"bytes": [0, 1]}
    assert steps["binary-back"] == [
        {"nested": [{"bytes": [0, 1]}, {"bytes": [1, 0]}]},
        {"k": {"bytes": [122, 122]}},
    ]
    assert steps["whoami"] is True
    assert steps["refused"] == "bad token"
    assert steps["invalid-namespace"] == "Invalid namespace"
    assert steps["join"] == [["r"], ["r"]]
    assert steps["heard-b"] == ["one"]
    # a shouted "one" skipping itself: the first thing it hears is b's "two".
    assert steps["heard-a"] == ["two"]
    assert steps["transport"] == TRANSPORTS[transport][-1]
    assert steps["kicked"] == "io server disconnect"
    assert steps["client-disconnect"] == ["client namespace disconnect"]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_connection_state_recovery(socketio_server: str, transport: str) -> None:
    steps = await run_node(socketio_server, "recovery", TRANSPORTS[transport])
    first, second = steps["first"], steps["second"]
    assert first["recovered"] is False and first["rooms"] == ["news"]
    assert steps["recovered"] is True
    # The event published while the client was away is replayed, in order.
    assert steps["news"] == ["before", "missed", "after"]
    assert second == {"sid": first["sid"], "recovered": True, "count": 2, "rooms": ["news"]}


ENGINE_SCRIPT = servers.ROOT / "tests" / "node" / "engineio_client.js"


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_engineio_client_echo(socketio_server: str, transport: str) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for the engine.io-client tests"
    config = {
        "url": "http" + socketio_server[2:],
        "path": "/engine.io",
        "transports": TRANSPORTS[transport],
    }
    with anyio.fail_after(40):
        result = await anyio.run_process(
            [node, str(ENGINE_SCRIPT), json.dumps(config)], cwd=servers.ROOT, check=False
        )
    steps = {}
    for line in result.stdout.decode().splitlines():
        record = json.loads(line)
        steps[record["step"]] = record["value"]
    assert result.returncode == 0 and "error" not in steps, (steps, result.stderr.decode())
    assert steps["received"] == ["hello", {"bytes": [1, 2, 3]}, "é ✓"]
    assert steps["transport"] == TRANSPORTS[transport][-1]
    assert steps["done"] is True  # the client closed and saw the close
