"""Socket.IO over WebSocket runs each event's handler in the task that read it and writes
its ack directly; a handler that waits (here for the client's own ack) must neither stop
the reading nor reorder the events behind it. Raw WebSocket client against real servers
(hypercorn asyncio and trio, uvicorn) serving tests/apps/socketio_app.py."""

from __future__ import annotations

import json
import uuid

import anyio
import pytest
import servers
from servers import Client

from wsgate import App
from wsgate.socketio import (
    EngineIOConnection,
    SocketIOConnection,
    engineio_controller,
    on_engineio_message,
    on_socketio_event,
    socketio_controller,
)
from wsgate.testing import TestClient

socketio_server = servers.socketio_server
server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

PATH = "/socket.io/?EIO=4&transport=websocket"


async def connected(url: str) -> Client:
    ws = await Client.connect(url + PATH)
    assert str(await ws.recv()).startswith("0{")
    await ws.send("40")
    assert str(await ws.recv()).startswith("40{")
    # The connect handler's emit, buffered until the CONNECT went out.
    assert await next_message(ws) == '42["auth",null]'
    return ws


async def next_message(ws: Client) -> str:
    """The next Socket.IO packet (server pings answered on the way)."""
    while True:
        frame = await ws.recv()
        assert isinstance(frame, str), frame
        if frame == "2":
            await ws.send("3")
            continue
        return frame


async def test_events_behind_a_waiting_handler_keep_their_order(socketio_server: str) -> None:
    ws = await connected(socketio_server)
    try:
        # "ask" awaits conn.call("question"): the server waits for our ack.
        await ws.send('421["ask","q?",5]')
        question = await next_message(ws)
        assert question.startswith("42") and question.endswith('["question","q?"]'), question
        ack_id = question[2 : question.index("[")]
        # Events sent while that handler waits are read (the ack below reaches it) but
        # handled after it, in the order they came.
        for i in range(2, 7):
            await ws.send(f'42{i}["pair",{i},0]')
        await ws.send(f'43{ack_id}["yes"]')
        replies = [await next_message(ws) for _ in range(6)]
        assert replies == ['431[["answer","yes"]]'] + [f"43{i}[0,{i}]" for i in range(2, 7)]
        # The connection goes on answering at once.
        await ws.send('427["pair",1,2]')
        assert await next_message(ws) == "437[2,1]"
    finally:
        await ws.close()


async def test_client_leaving_while_a_handler_waits_for_its_ack(socketio_server: str) -> None:
    tag = f"inline-{uuid.uuid4()}"
    ws = await Client.connect(socketio_server + PATH)
    assert str(await ws.recv()).startswith("0{")
    await ws.send("40" + json.dumps({"tag": tag}))
    assert str(await ws.recv()).startswith("40{")
    assert await next_message(ws) == f'42["auth",{{"tag":"{tag}"}}]'
    await ws.send('421["ask","q?",30]')
    assert (await next_message(ws)).endswith('["question","q?"]')
    await ws.close()  # the handler still waits for our ack
    # The disconnect handler ran (the waiting call was released): another client sees it.
    other = await connected(socketio_server)
    try:
        with anyio.fail_after(5):
            seen: list[str] = []
            i = 0
            while seen != ["transport close"]:
                i += 1
                await other.send(f'42{i}["disconnects","{tag}"]')
                reply = await next_message(other)
                assert reply.startswith(f"43{i}[")
                seen = json.loads(reply[len(f"43{i}") :])[0]
    finally:
        await other.close()


async def test_many_acks_in_flight_come_back_in_order(socketio_server: str) -> None:
    ws = await connected(socketio_server)
    try:
        n = 200
        for i in range(n):
            await ws.send(f'42{i}["chat",{json.dumps({"text": "x" * (i % 7)})}]')
        replies = [await next_message(ws) for _ in range(n)]
        assert replies == [f'43{i}[{{"ok":true,"length":{i % 7}}}]' for i in range(n)]
    finally:
        await ws.close()


async def test_app_limits_still_apply_to_the_socketio_websocket() -> None:
    # The Engine.IO loop reads the socket itself: the App's frame size limit and rate
    # limit must hold there as they do in every gateway.
    @socketio_controller()
    class Echo:
        @on_socketio_event("echo")
        async def echo(self, conn: SocketIOConnection, text: str) -> str:
            return text

    query = {"EIO": "4", "transport": "websocket"}
    app = App(gateways=[Echo], max_frame_bytes=1000, rate_limit=(3, 60.0))
    async with TestClient(app, timeout=5) as client:
        async with client.websocket_connect("/socket.io/", query=query) as ws:
            assert (await ws.receive_text()).startswith("0{")
            await ws.send_text('42["echo","' + "x" * 2000 + '"]')
            assert (await ws.wait_closed())[0] == 1009
        async with client.websocket_connect("/socket.io/", query=query) as ws:
            assert (await ws.receive_text()).startswith("0{")
            await ws.send_text("40")
            assert (await ws.receive_text()).startswith("40{")
            await ws.send_text('421["echo","a"]')
            assert await ws.receive_text() == '431["a"]'
            await ws.send_text('422["echo","b"]')
            assert await ws.receive_text() == '432["b"]'
            # The fourth frame within the minute is over the limit: dropped, with the
            # rate_limited error frame the gateway runtime sends.
            await ws.send_text('423["echo","c"]')
            assert "rate_limited" in await ws.receive_text()


#: Socket.IO's defaults. The App's sweep ticks heartbeats once a second for these.
PING_INTERVAL, PING_TIMEOUT, SWEEP = 25.0, 20.0, 1.0


@socketio_controller("/beat", ping_interval_ms=25_000, ping_timeout_ms=20_000)
class Beat:
    @on_socketio_event("echo")
    async def echo(self, conn: SocketIOConnection, text: str) -> str:
        return text


@pytest.mark.virtual_time
@pytest.mark.parametrize("lifespan", [True, False])
async def test_websocket_heartbeats_with_and_without_a_lifespan(lifespan: bool) -> None:
    # Heartbeats are ticked by the endpoint's sweep (in the lifespan) or, without one,
    # by a task of the connection: pings come every ping interval, and a missing pong
    # closes the session ping_timeout after the ping.
    query = {"EIO": "4", "transport": "websocket"}
    async with TestClient(App(gateways=[Beat]), timeout=120, lifespan=lifespan) as client:
        async with client.websocket_connect("/beat/", query=query) as ws:
            opened = json.loads((await ws.receive_text()).removeprefix("0"))
            assert (opened["pingInterval"], opened["pingTimeout"]) == (25_000, 20_000)
            await ws.send_text("40")
            assert (await ws.receive_text()).startswith("40{")
            for _ in range(2):
                with pytest.raises(TimeoutError):
                    await ws.receive(timeout=PING_INTERVAL - 0.1)  # no ping before it is due
                assert await ws.receive_text(timeout=SWEEP + 0.2) == "2"
                await ws.send_text("3")
            await ws.send_text('421["echo","still here"]')
            assert await ws.receive_text() == '431["still here"]'
            # The next ping goes unanswered: the session closes ping_timeout after it.
            assert await ws.receive_text(timeout=PING_INTERVAL + SWEEP + 0.2) == "2"
            pinged = anyio.current_time()
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=PING_TIMEOUT - SWEEP - 0.1)  # still open
            assert (await ws.wait_closed(timeout=2 * SWEEP + 0.2))[0] == 1000
            assert anyio.current_time() - pinged <= PING_TIMEOUT + SWEEP


@engineio_controller("/eio")
class Returns:
    @on_engineio_message
    async def echo(self, conn: EngineIOConnection, data: str | bytes) -> str:
        await conn.send(data)
        return "ignored"  # an Engine.IO handler's return value is not sent


async def test_an_engineio_handler_may_return_a_value() -> None:
    query = {"EIO": "4", "transport": "websocket"}
    async with TestClient(App(gateways=[Returns]), timeout=5) as client:
        async with client.websocket_connect("/eio/", query=query) as ws:
            assert (await ws.receive_text()).startswith("0{")
            for text in ("4one", "4two"):
                await ws.send_text(text)
                assert await ws.receive_text() == text


@socketio_controller("/slow")
class Slow:
    @on_socketio_event("slow")
    async def slow(self, conn: SocketIOConnection, n: int) -> int:
        await anyio.lowlevel.checkpoint()  # suspends: the reader hands the reading off
        return n


async def test_handlers_that_suspend_leave_nothing_behind() -> None:
    # 150 events whose handlers suspend, answered in order; once the client leaves, the
    # server is as idle as before it came: no session, no open connection, no task.
    query = {"EIO": "4", "transport": "websocket"}
    app = App(gateways=[Slow])
    async with TestClient(app, timeout=5) as client:
        await anyio.wait_all_tasks_blocked()
        idle_tasks = len(anyio.get_running_tasks())
        async with client.websocket_connect("/slow/", query=query) as ws:
            assert (await ws.receive_text()).startswith("0{")
            await ws.send_text("40")
            assert (await ws.receive_text()).startswith("40{")
            for i in range(150):
                await ws.send_text(f'42{i}["slow",{i}]')
                assert await ws.receive_text() == f"43{i}[{i}]"
        await anyio.wait_all_tasks_blocked()
        assert app.stats.connections_open == 0
        assert len(anyio.get_running_tasks()) == idle_tasks
