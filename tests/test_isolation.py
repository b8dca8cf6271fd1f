"""The key reliability property, under real servers: a client that stops reading stalls
nobody but itself.

On hypercorn's trio worker an ASGI ``send`` to a client that stopped reading blocks
(uncancellably) after some 16-200 KiB; on asyncio servers after a few MB of kernel
buffer. wsgate confines that to the one connection's writer task. These tests make a
real client stop reading (a raw socket with a 4 KiB receive buffer that never calls
``recv``) and check that other connections keep being served, by completing within
generous per-receive timeouts (no wall-clock assertions: a real stall fails them).

Apps: tests/apps/isolation.py, under hypercorn trio, hypercorn asyncio and uvicorn.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import anyio.to_thread
import pytest
import servers
from servers import (
    Client,
    RawClient,
    ServerURL,
    wait_for,
)

# The fixtures, from the harness.
isolation_server = servers.isolation_server
server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

# See tests/test_real_servers.py: keeps the server parametrization of async tests.
pytestmark = pytest.mark.usefixtures("anyio_backend", "server_logs_clean")

#: The flood: 10,000 frames of 2 KiB (20 MiB), far more than any kernel buffer holds.
FLOOD_FRAMES = 10_000
FLOOD_SIZE = 2048
#: The room: 5,000 broadcasts of 1 KiB, published in chunks.
ROOM_SIZE = 1024
ROOM_CHUNK = 100
#: (readers, messages): the full scale on hypercorn's trio worker, whose send to a
#: client that stopped reading cannot even be cancelled; a smaller room elsewhere.
ROOM_SCALE = {"hypercorn-trio": (100, 10_000)}
ROOM_SCALE_DEFAULT = (20, 5_000)
#: The default outbox of a connection (AppConfig.outbound_queue).
OUTBOX = 256


def numbered(i: int, size: int) -> str:
    return f"{i:08d}" + "x" * (size - 8)


class Probe:
    """Asks the ``/probe`` gateway what the server saw."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._id = 0

    async def ask(self, event: str, data: Any) -> Any:
        self._id += 1
        frame = await self.client.request(event, data, id=self._id)
        assert frame["event"] == event, frame
        return frame["data"]


async def _echo_round_trips(url: str, who: int, n: int, done: list[int]) -> None:
    async with await Client.connect(f"{url}/echo") as c:
        for i in range(n):
            payload = {"client": who, "i": i, "pad": "y" * 64}
            await c.send_event("echo", payload, id=i)
            frame = await c.recv_json(timeout=5)
            assert frame == {"event": "echo", "id": i, "data": payload}
            done[who] += 1


async def test_stalled_reader_does_not_slow_other_connections(isolation_server: ServerURL) -> None:
    url = isolation_server
    key = uuid.uuid4().hex
    with anyio.fail_after(60):
        stalled = await anyio.to_thread.run_sync(
            lambda: RawClient.connect(f"{url}/flood/{key}", rcvbuf=4096)
        )
        try:
            async with await Client.connect(f"{url}/probe") as probe_client:
                probe = Probe(probe_client)
                await anyio.to_thread.run_sync(
                    lambda: stalled.send_event("flood", {"n": FLOOD_FRAMES, "size": FLOOD_SIZE})
                )

                # The flood is under way: the handler got past what the outbox holds, so
                # frames are being pushed at a client that reads none of them.
                async def flooding() -> Any:
                    p = await probe.ask("progress", key)
                    return p if p["sent"] > OUTBOX else None

                await wait_for(flooding, timeout=20, what="the flood to start")

                # Five other clients, 200 echo round trips each, every reply within 5 s.
                done = [0] * 5
                async with anyio.create_task_group() as tg:
                    for who in range(5):
                        tg.start_soon(_echo_round_trips, url, who, 200, done)
                assert done == [200] * 5

                # The flood was stalled all along (else this test proved nothing): the
                # handler is still blocked far from the end, its connection still open.
                p = await probe.ask("progress", key)
                assert not p["finished"], p
                assert p["sent"] < FLOOD_FRAMES // 2, p
                assert p["open"] and p["disconnects"] == 0, p

                # The stalled client starts reading: its frames come in order, intact.
                def read_some() -> list[bytes]:
                    out = []
                    for _ in range(500):
                        opcode, payload = stalled.read_frame(timeout=5)
                        assert opcode == 0x1
                        out.append(payload)
                    return out

                frames = await anyio.to_thread.run_sync(read_some)
                assert [f.decode() for f in frames] == [numbered(i, FLOOD_SIZE) for i in range(500)]

                # Then it vanishes (RST) with its writer blocked mid-flood: the connection
                # ends and @on_disconnect runs once.
                await anyio.to_thread.run_sync(stalled.abort)

                async def ended() -> Any:
                    p = await probe.ask("progress", key)
                    return p if not p["open"] else None

                p = await wait_for(ended, timeout=20, what="the flooded connection to end")
                assert p["disconnects"] == 1, p
                assert not p["finished"], p

                # And the server still serves.
                done = [0]
                await _echo_round_trips(url, 0, 10, done)
        finally:
            stalled.close()


async def test_slow_room_member_is_closed_and_the_others_get_everything(
    isolation_server: ServerURL,
) -> None:
    url = isolation_server
    room = f"room-{uuid.uuid4().hex}"
    n_readers, n_messages = ROOM_SCALE.get(url.kind, ROOM_SCALE_DEFAULT)
    readers: list[Client] = []
    with anyio.fail_after(240):
        slow = await anyio.to_thread.run_sync(
            lambda: RawClient.connect(f"{url}/room/{room}", rcvbuf=4096)
        )
        probe_client = await Client.connect(f"{url}/probe")
        publisher = await Client.connect(f"{url}/room/{room}?role=publisher")
        try:
            probe = Probe(probe_client)
            for _ in range(n_readers):
                readers.append(await Client.connect(f"{url}/room/{room}"))
            before = await probe.ask("room", room)
            assert before["members"] == n_readers + 1, before

            received = [0] * n_readers

            async def read_chunk(r: int, start: int) -> None:
                msgs = await readers[r].recv_many(ROOM_CHUNK, timeout=10)
                expected = [numbered(i, ROOM_SIZE) for i in range(start, start + ROOM_CHUNK)]
                if msgs != expected:
                    got = [m[:8] for m in msgs]
                    raise AssertionError(f"reader {r}, chunk at {start}: got {got}")
                received[r] += len(msgs)

            # The publisher broadcasts in chunks; the readers read each chunk before the
            # next one is published, so a reader is never more than a chunk behind (less
            # than its outbox): only the member that never reads may overflow.
            for start in range(0, n_messages, ROOM_CHUNK):
                reply = await publisher.request(
                    "publish",
                    {"start": start, "count": ROOM_CHUNK, "size": ROOM_SIZE},
                    id=start,
                    timeout=10,
                )
                assert reply["data"]["enqueued"] >= n_readers * ROOM_CHUNK, reply
                async with anyio.create_task_group() as tg:
                    for r in range(n_readers):
                        tg.start_soon(read_chunk, r, start)
            assert received == [n_messages] * n_readers

            # The slow member was closed by the overflow policy and left the room; the
            # others are all still members.
            after = await probe.ask("room", room)
            assert after["members"] == n_readers, after
            assert after["group"]["slow_consumer_closes"] == 1, after
            assert after["group"]["delivered"] >= n_readers * n_messages, after
            assert (
                after["app"]["slow_consumer_closes"] - before["app"]["slow_consumer_closes"] == 1
            ), (before, after)

            # Once it reads, the slow member finds a prefix of the messages, in order, then
            # the close frame: 1013, "slow consumer".
            payloads, code, reason = await anyio.to_thread.run_sync(
                lambda: slow.read_until_close(timeout=10)
            )
            assert (code, reason) == (1013, "slow consumer")
            assert 0 < len(payloads) < n_messages
            assert [p.decode() for p in payloads] == [
                numbered(i, ROOM_SIZE) for i in range(len(payloads))
            ]
            await anyio.to_thread.run_sync(lambda: slow.send_close(1013))

            # The readers are still subscribed and got nothing extra: the next message
            # each receives is the next one published.
            reply = await publisher.request(
                "publish", {"start": n_messages, "count": 1, "size": ROOM_SIZE}, id="last"
            )
            assert reply["data"]["enqueued"] == n_readers, reply

            async def read_last(r: int) -> None:
                assert await readers[r].recv(timeout=10) == numbered(n_messages, ROOM_SIZE)

            async with anyio.create_task_group() as tg:
                for r in range(n_readers):
                    tg.start_soon(read_last, r)
        finally:
            with anyio.CancelScope(shield=True):
                slow.close()
                async with anyio.create_task_group() as tg:
                    for c in (*readers, publisher, probe_client):
                        tg.start_soon(c.close)
