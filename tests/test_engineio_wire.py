"""Engine.IO and Socket.IO on the wire, with raw HTTP requests (httpx) and a raw
WebSocket client, against real servers serving tests/apps/socketio_app.py: handshakes,
the Engine.IO error answers, heartbeats and timeouts, oversize and malformed input,
CORS and Origin checks; bad input never affects another connection."""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import servers
from servers import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from wsgate.socketio.engineio_protocol import decode_payload

socketio_server = servers.socketio_server
server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

TIMEOUT = 5.0
PATH = "/socket.io/"


def http(url: str) -> str:
    return "http" + url[2:]


async def handshake(client: httpx.AsyncClient, path: str = PATH) -> dict[str, Any]:
    r = await client.get(path, params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; charset=UTF-8"
    assert r.text[0] == "0"
    opened: dict[str, Any] = json.loads(r.text[1:])
    return opened


async def poll(client: httpx.AsyncClient, sid: str, path: str = PATH) -> httpx.Response:
    return await client.get(path, params={"EIO": "4", "transport": "polling", "sid": sid})


async def post(
    client: httpx.AsyncClient, sid: str, body: str | bytes, path: str = PATH, **kwargs: Any
) -> httpx.Response:
    return await client.post(
        path, params={"EIO": "4", "transport": "polling", "sid": sid}, content=body, **kwargs
    )


async def poll_until(
    client: httpx.AsyncClient, sid: str, wanted: str, path: str = PATH
) -> list[str]:
    """Poll until a packet starting with ``wanted`` arrives; every packet seen."""
    seen: list[str] = []
    with anyio.fail_after(TIMEOUT):
        while not any(p.startswith(wanted) for p in seen):
            r = await poll(client, sid, path)
            assert r.status_code == 200, r.text
            seen += r.text.split("\x1e")
    return seen


def http_client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=http(url), timeout=TIMEOUT)


async def test_polling_handshake(socketio_server: str) -> None:
    async with http_client(socketio_server) as client:
        opened = await handshake(client)
        assert set(opened) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
        assert opened["upgrades"] == ["websocket"]
        assert (opened["pingInterval"], opened["pingTimeout"], opened["maxPayload"]) == (
            500,
            1000,
            100_000,
        )
        sid = opened["sid"]
        # A Socket.IO CONNECT, an event, its answers; "ok" for each POST.
        r = await post(client, sid, "40")
        assert (r.status_code, r.text) == (200, "ok")
        seen = await poll_until(client, sid, '42["auth"')
        assert seen[0].startswith('40{"sid":')
        r = await post(client, sid, '42["message","x"]\x1e421["pair",1,2]')
        assert r.text == "ok"
        seen = await poll_until(client, sid, "431")
        assert '42["message-back","x"]' in seen and "431[2,1]" in seen
        # Binary attachments travel base64-encoded behind "b".
        r = await post(client, sid, '451-2["binary",{"_placeholder":true,"num":0},null]\x1ebAAE=')
        seen = await poll_until(client, sid, "b")
        packets = decode_payload("\x1e".join(p for p in seen if p != "2"))
        assert any(p.data == b"\x00\x01" for p in packets)


@pytest.mark.parametrize(
    ("method", "params", "status", "code", "message"),
    [
        ("GET", {"EIO": "3", "transport": "polling"}, 400, 5, "Unsupported protocol version"),
        ("GET", {"transport": "polling"}, 400, 5, "Unsupported protocol version"),
        ("GET", {"EIO": "4", "transport": "carrier-pigeon"}, 400, 0, "Transport unknown"),
        ("POST", {"EIO": "4", "transport": "polling"}, 400, 2, "Bad handshake method"),
        ("GET", {"EIO": "4", "transport": "websocket"}, 400, 3, "Bad request"),
        ("GET", {"EIO": "4", "transport": "polling", "sid": "nope"}, 400, 1, "Session ID unknown"),
        ("POST", {"EIO": "4", "transport": "polling", "sid": "nope"}, 400, 1, "Session ID unknown"),
    ],
)
async def test_engineio_error_answers(
    socketio_server: str, method: str, params: dict[str, str], status: int, code: int, message: str
) -> None:
    async with http_client(socketio_server) as client:
        r = await client.request(method, PATH, params=params, content=b"40")
        assert r.status_code == status
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"code": code, "message": message}


async def test_transport_mismatch_and_bad_origin(socketio_server: str) -> None:
    async with http_client(socketio_server) as client:
        sid = (await handshake(client))["sid"]
        r = await client.get(PATH, params={"EIO": "4", "transport": "websocket", "sid": sid})
        assert (r.status_code, r.json()["code"]) == (400, 3)
        r = await client.get(
            PATH,
            params={"EIO": "4", "transport": "polling"},
            headers={"origin": "http://evil.example"},
        )
        assert r.status_code == 403
        assert r.json() == {"code": 4, "message": "Forbidden"}
        r = await client.get(
            PATH,
            params={"EIO": "4", "transport": "polling"},
            headers={"origin": "http://allowed.example"},
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://allowed.example"
        assert r.headers["access-control-allow-credentials"] == "true"
        r = await client.options(
            PATH,
            params={"EIO": "4", "transport": "polling"},
            headers={
                "origin": "http://allowed.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert r.status_code == 204
        assert "POST" in r.headers["access-control-allow-methods"]
        assert r.headers["access-control-allow-headers"] == "content-type"


async def test_overlapping_polls_close_the_session(socketio_server: str) -> None:
    async with http_client(socketio_server) as client:
        sid = (await handshake(client))["sid"]
        responses: list[httpx.Response] = []

        async def one_poll() -> None:
            responses.append(await poll(client, sid))

        # Two polls at once: the later one is refused and the session ends, which
        # releases the pending one with a close packet.
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(one_poll)
                tg.start_soon(one_poll)
        statuses = sorted((r.status_code, r.text) for r in responses)
        assert statuses[0][0] == 200 and statuses[0][1].endswith("1")
        assert statuses[1][0] == 400
        r = await poll(client, sid)
        assert (r.status_code, r.json()["code"]) == (400, 1)


async def test_oversize_and_malformed_posts(socketio_server: str) -> None:
    async with http_client(socketio_server) as client:
        bystander = (await handshake(client))["sid"]
        await post(client, bystander, "40")
        await poll_until(client, bystander, "42")

        sid = (await handshake(client))["sid"]
        r = await post(client, sid, "4" + "x" * 100_001)
        assert r.status_code == 413
        r = await poll(client, sid)
        assert r.status_code == 400 or r.text.endswith("1")

        sid = (await handshake(client))["sid"]
        r = await post(
            client, sid, b"\x00\x01", headers={"content-type": "application/octet-stream"}
        )
        assert r.status_code == 400

        sid = (await handshake(client))["sid"]
        r = await post(client, sid, "9oops")  # an unknown packet type: a parse error
        assert (r.status_code, r.text) == (200, "ok")
        r = await poll(client, sid)
        assert r.status_code == 400 or r.text.endswith("1")

        # None of it touched the bystander.
        r = await post(client, bystander, '421["pair",5,6]')
        assert "431[6,5]" in await poll_until(client, bystander, "431")


async def test_polling_ping_timeout(socketio_server: str) -> None:
    async with http_client(socketio_server) as client:
        sid = (await handshake(client))["sid"]
        await post(client, sid, "40")
        await poll_until(client, sid, "2")  # the server pings; we never pong
        with anyio.fail_after(TIMEOUT):
            while True:
                r = await poll(client, sid)
                if r.status_code == 400 or r.text.endswith("1"):
                    break


async def test_connect_timeout(socketio_server: str) -> None:
    async with http_client(socketio_server) as client:
        sid = (await handshake(client))["sid"]
        # No Socket.IO CONNECT within connect_timeout_ms (1 s): the session is closed;
        # pongs keep the Engine.IO session itself alive until then.
        with anyio.fail_after(TIMEOUT):
            while True:
                r = await poll(client, sid)
                if r.status_code == 400 or r.text.endswith("1"):
                    break
                if "2" in r.text.split("\x1e"):
                    await post(client, sid, "3")


# -- WebSocket ---------------------------------------------------------------------------


def ws_url(url: str, path: str = PATH, **query: str) -> str:
    params = "&".join(
        f"{k}={v}" for k, v in {"EIO": "4", "transport": "websocket", **query}.items()
    )
    return f"{url}{path}?{params}"


async def open_ws(url: str, path: str = PATH) -> tuple[Client, dict[str, Any]]:
    ws = await Client.connect(ws_url(url, path))
    opened = await ws.recv()
    assert isinstance(opened, str) and opened[0] == "0"
    return ws, json.loads(opened[1:])


async def test_websocket_ping_pong_and_timeout(socketio_server: str) -> None:
    ws, opened = await open_ws(socketio_server)
    assert opened["upgrades"] == []
    await ws.send("40")
    assert (await recv_skipping_pings(ws)).startswith("40{")  # type: ignore[union-attr]
    # Answer two pings: the connection stays.
    pings = 0
    while pings < 2:
        frame = await ws.recv()
        if frame == "2":
            pings += 1
            await ws.send("3")
    await ws.send('421["pair",1,2]')
    frames = [await ws.recv()]
    while "431[2,1]" not in frames:
        frames.append(await ws.recv())
    # Stop answering: closed within ping interval + ping timeout.
    code, _, seen = await ws.wait_closed(timeout=TIMEOUT)
    assert code == 1000
    assert "2" in seen


async def test_websocket_bad_input(socketio_server: str) -> None:
    bystander, _ = await open_ws(socketio_server, "/engine.io/")
    # A Socket.IO packet with a reserved event name: the Engine.IO connection is closed.
    ws, _ = await open_ws(socketio_server)
    await ws.send("40")
    await ws.recv()
    await ws.send('42["connect"]')
    code, _, _ = await ws.wait_closed(timeout=TIMEOUT)
    assert code == 1000
    # An unknown Engine.IO packet type: closed.
    ws, _ = await open_ws(socketio_server)
    await ws.send("9")
    code, _, _ = await ws.wait_closed(timeout=TIMEOUT)
    assert code == 1000
    # A message larger than max_payload_bytes: closed with 1009 as the reference does.
    ws, _ = await open_ws(socketio_server)
    await ws.send("4" + "x" * 100_001)
    code, _, _ = await ws.wait_closed(timeout=TIMEOUT)
    assert code == 1009
    # Binary data where no attachment is expected: closed.
    ws, _ = await open_ws(socketio_server)
    await ws.send("40")
    await ws.recv()
    await ws.send(b"\x00")
    code, _, _ = await ws.wait_closed(timeout=TIMEOUT)
    assert code == 1000
    # The bystander on another endpoint still echoes.
    await bystander.send("4still here")
    frame = await bystander.recv()
    while frame == "2":
        await bystander.send("3")
        frame = await bystander.recv()
    assert frame == "4still here"
    await bystander.close()


async def test_websocket_handshake_errors(socketio_server: str) -> None:
    def refused(url: str, origin: str | None = None) -> int:
        try:
            with ws_connect(url, origin=origin, open_timeout=TIMEOUT):  # type: ignore[arg-type]
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    if servers.DENIAL_EXTENSION.get(socketio_server.kind, True):
        assert await anyio.to_thread.run_sync(refused, ws_url(socketio_server, sid="nope")) == 400
        assert (
            await anyio.to_thread.run_sync(refused, ws_url(socketio_server), "http://evil.example")
            == 403
        )
    assert (
        await anyio.to_thread.run_sync(refused, ws_url(socketio_server), "http://allowed.example")
        == 101
    )


async def test_engineio_controller_echo(socketio_server: str) -> None:
    ws, _ = await open_ws(socketio_server, "/engine.io/")
    await ws.send("4hello")
    await ws.send(b"\x01\x02")
    got = []
    while len(got) < 2:
        frame = await ws.recv()
        if frame == "2":
            await ws.send("3")
        else:
            got.append(frame)
    assert got == ["4hello", b"\x01\x02"]
    await ws.close()
    async with http_client(socketio_server) as client:
        r = await client.get(
            "/engine.io/",
            params={"EIO": "4", "transport": "polling"},
            headers={"origin": "http://anywhere.example"},
        )
        # cors_allowed_origins="*" answers as Node's cors package does: "*", and no
        # credentials.
        assert r.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in r.headers
        sid = json.loads(r.text[1:])["sid"]
        await post(client, sid, "4hi\x1ebAQ==", path="/engine.io/")
        seen = await poll_until(client, sid, "bAQ==", path="/engine.io/")
        assert "4hi" in seen


async def test_dropped_poll_ends_the_session(socketio_server: str) -> None:
    import socket
    import uuid

    tag = f"dropped-{uuid.uuid4()}"
    async with http_client(socketio_server) as client:
        sid = (await handshake(client))["sid"]
        await post(client, sid, "40" + json.dumps({"tag": tag}))
        await poll_until(client, sid, '42["auth"')

        def drop_a_pending_poll() -> None:
            with socket.create_connection(("127.0.0.1", socketio_server.port), TIMEOUT) as s:  # type: ignore[attr-defined]
                s.sendall(
                    f"GET {PATH}?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                    f"Host: 127.0.0.1\r\n\r\n".encode()
                )

        await anyio.to_thread.run_sync(drop_a_pending_poll)
        # Another client asks the server what it saw: the session ended at once, with
        # the reference server's reason for a poll closed prematurely.
        watcher = (await handshake(client))["sid"]
        await post(client, watcher, "40")
        await poll_until(client, watcher, '42["auth"')
        with anyio.fail_after(TIMEOUT):
            n = 0
            while True:
                n += 1
                await post(client, watcher, f'42{n}["disconnects","{tag}"]')
                seen = await poll_until(client, watcher, f"43{n}[")
                answer = next(p for p in seen if p.startswith(f"43{n}["))
                if answer != f"43{n}[[]]":
                    break
        assert answer == f'43{n}[["transport error"]]'


# -- what the official protocol suites check (github.com/socketio/engine.io-protocol and
# -- socket.io-protocol, test-suite/), answered as the reference server does -------------


async def recv_skipping_pings(ws: Client) -> str | bytes:
    """The next frame that is not a server ping (each ping is answered)."""
    while True:
        frame = await ws.recv()
        if frame != "2":
            return frame
        await ws.send("3")


def _send_raw_poll(port: int, path: str, sid: str) -> Any:
    import socket

    sock = socket.create_connection(("127.0.0.1", port), TIMEOUT)
    sock.sendall(
        f"GET {path}?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    )
    return sock


def _read_response(sock: Any) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, body
        body += chunk
    return int(lines[0].split()[1]), body


async def test_client_close_releases_the_poll_with_a_noop(socketio_server: str) -> None:
    import uuid

    tag = f"slow-{uuid.uuid4()}"  # its disconnect handler takes 2 s
    async with http_client(socketio_server) as client:
        sid = (await handshake(client))["sid"]
        await post(client, sid, "40" + json.dumps({"tag": tag}))
        await poll_until(client, sid, '42["auth"')
        await poll_until(client, sid, "2")
        await post(client, sid, "3")  # the next ping is a whole interval away
        sock = await anyio.to_thread.run_sync(
            _send_raw_poll,
            socketio_server.port,  # type: ignore[attr-defined]
            PATH,
            sid,
        )
        try:
            await handshake(client)  # a round trip elsewhere: the poll is pending by now
            r = await post(client, sid, "1")  # the client closes the session
            assert (r.status_code, r.text) == (200, "ok")
            status, body = await anyio.to_thread.run_sync(_read_response, sock)
        finally:
            sock.close()
        # The pending poll is released with a noop, not a close packet.
        assert (status, body) == (200, b"6")
        # The session is forgotten at once, while its disconnect handler still runs.
        r = await poll(client, sid)
        assert (r.status_code, r.json()) == (400, {"code": 1, "message": "Session ID unknown"})


async def test_close_packet_and_poll_sent_together(socketio_server: str) -> None:
    # The client's close (a POST) and its poll (a GET) leave at the same time on two
    # connections: whichever the server reads first, the poll gets the noop.
    async with http_client(socketio_server) as client:
        sid = (await handshake(client))["sid"]
        await post(client, sid, "40")
        await poll_until(client, sid, '42["auth"')
        await poll_until(client, sid, "2")
        await post(client, sid, "3")  # the next ping is a whole interval away
        answers: dict[str, httpx.Response] = {}

        async def close() -> None:
            answers["post"] = await post(client, sid, "1")

        async def poll_once() -> None:
            answers["get"] = await poll(client, sid)

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(close)
                tg.start_soon(poll_once)
        assert (answers["post"].status_code, answers["post"].text) == (200, "ok")
        assert (answers["get"].status_code, answers["get"].text) == (200, "6")
        r = await poll(client, sid)
        assert (r.status_code, r.json()["code"]) == (400, 1)


async def test_poll_sent_after_the_upgrade_packet_is_refused(socketio_server: str) -> None:
    path = "/engine.io/"
    async with http_client(socketio_server) as client:
        sid = (await handshake(client, path))["sid"]
        async with await Client.connect(ws_url(socketio_server, path, sid=sid)) as ws:
            # Probe and upgrade packet back to back, then a poll: the server may see the
            # poll before the WebSocket's packets, and still refuses it as sent after.
            await ws.send("2probe")
            await ws.send("5")
            r = await poll(client, sid, path)
            assert (r.status_code, r.json()) == (400, {"code": 3, "message": "Bad request"})
            assert await ws.recv() == "3probe"
            await ws.send("4hello")
            assert await recv_skipping_pings(ws) == "4hello"


async def test_poll_during_the_upgrade_gets_a_noop(socketio_server: str) -> None:
    path = "/engine.io/"
    async with http_client(socketio_server) as client:
        sid = (await handshake(client, path))["sid"]
        async with await Client.connect(ws_url(socketio_server, path, sid=sid)) as ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            # A poll that was on its way while the client paused polling: a noop.
            with anyio.fail_after(TIMEOUT):
                r = await poll(client, sid, path)
            assert (r.status_code, r.text) == (200, "6")
            await ws.send("5")
            await ws.send("4hello")
            assert await recv_skipping_pings(ws) == "4hello"
            r = await poll(client, sid, path)
            assert (r.status_code, r.json()["code"]) == (400, 3)


async def test_second_websocket_for_an_upgrading_session_is_accepted_then_closed(
    socketio_server: str,
) -> None:
    path = "/engine.io/"
    async with http_client(socketio_server) as client:
        sid = (await handshake(client, path))["sid"]
        url = ws_url(socketio_server, path, sid=sid)
        async with await Client.connect(url) as ws:
            # Upgrading: a second WebSocket is accepted, then closed once the upgrade
            # has settled (after the probe's answer went out on the first one).
            closed: list[tuple[int | None, list[Any]]] = []

            async def second() -> None:
                other = await Client.connect(url, open_timeout=TIMEOUT)
                code, _, seen = await other.wait_closed(timeout=TIMEOUT)
                closed.append((code, seen))

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(second)
                    await ws.send("2probe")
                    assert await ws.recv() == "3probe"
                    await ws.send("5")
            assert closed == [(1000, [])]
            await ws.send("4one")
            assert await recv_skipping_pings(ws) == "4one"
            # Upgraded: accepted and closed at once; the session goes on.
            third = await Client.connect(url)
            code, _, seen = await third.wait_closed(timeout=TIMEOUT)
            assert (code, seen) == (1000, [])
            await ws.send("4two")
            assert await recv_skipping_pings(ws) == "4two"


async def test_server_acknowledgement_ids_start_at_1(socketio_server: str) -> None:
    ws, _ = await open_ws(socketio_server)
    await ws.send("40")
    assert (await recv_skipping_pings(ws)).startswith("40{")  # type: ignore[union-attr]
    assert await recv_skipping_pings(ws) == '42["auth",null]'
    await ws.send('427["ask","what?",5]')  # the handler calls the client back
    assert await recv_skipping_pings(ws) == '421["question","what?"]'
    await ws.send('431["this"]')
    assert await recv_skipping_pings(ws) == '437[["answer","this"]]'
    await ws.close()
