"""A service talking to the chat example with wsgate's Python client: a price ticker bot.

Start the chat (``python -m examples.chat``), then::

    python -m examples.service_client --url ws://127.0.0.1:8000 [--room lobby]
        [--name ticker] [--interval 2] [--backend trio|asyncio]

It joins the room, posts a typed ``ChatMessage`` with a made-up price every
``--interval`` seconds, and prints what the others say. When the chat server restarts it
reconnects by itself (exponential backoff with jitter) and goes on. Ctrl+C to stop.

Its types are its own: a client needs the wire format, not the server's code.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
from typing import Any
from urllib.parse import quote

import anyio
import msgspec

from wsgate.client import ClientConnection, ClientState, ConnectError, ConnectionClosed, connect


class ChatMessage(msgspec.Struct):
    """What ``chat.send`` takes."""

    text: str


class Posted(msgspec.Struct):
    """What the room's other members post (event ``chat.message``)."""

    room: str
    user: str
    text: str


class Presence(msgspec.Struct):
    """``joined`` / ``left``."""

    user: str


class Who(msgspec.Struct):
    """The reply to ``who``."""

    room: str
    members: int


async def listen(conn: ClientConnection) -> None:
    """Print what the others say, and who comes and goes."""
    async for push in conn.events("chat.message", type=Posted):
        print(f"[{push.data.room}] {push.data.user}: {push.data.text}", flush=True)


async def presence(conn: ClientConnection) -> None:
    async for push in conn.events("joined", "left", type=Presence):
        print(f"* {push.data.user} {push.event}", flush=True)


async def tick(conn: ClientConnection, interval: float) -> None:
    """Post a price every ``interval`` seconds (skipping ticks while disconnected)."""
    price = 100.0
    n = 0
    while True:
        n += 1
        price = round(price * (1 + random.uniform(-0.01, 0.01)), 2)
        try:
            await conn.send_event("chat.send", ChatMessage(f"WSG #{n}: {price:.2f}"))
        except (TimeoutError, ConnectionError) as exc:
            print(f"! tick {n} not sent: {exc}", flush=True)
            if isinstance(exc, ConnectionClosed):
                return
        await anyio.sleep(interval)


async def main(args: argparse.Namespace) -> None:
    endpoint = f"{args.url.rstrip('/')}/chat/{quote(args.room)}?user={quote(args.name)}"

    async def rejoined(conn: ClientConnection) -> None:
        who = await conn.request("who", type=Who)
        print(f"reconnected to {who.room} ({who.members} members)", flush=True)

    def state_changed(state: ClientState) -> None:
        if state is not ClientState.OPEN:
            print(f"connection {state.value}", flush=True)

    async with connect(endpoint, on_reconnect=rejoined, on_state_change=state_changed) as conn:
        who = await conn.request("who", type=Who)
        print(
            f"service_client: joined {who.room} at {args.url} as {args.name} "
            f"({who.members} members)",
            flush=True,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(listen, conn)
            tg.start_soon(presence, conn)
            tg.start_soon(tick, conn, args.interval)
            tg.start_soon(stop_on_signal, tg.cancel_scope)
            await conn.wait_for_state(ClientState.CLOSED)
            print(f"the server closed the connection for good ({conn.close_code})", flush=True)
            tg.cancel_scope.cancel()
    print("service_client: left", flush=True)


async def stop_on_signal(scope: anyio.CancelScope) -> None:
    """Ctrl+C or SIGTERM: leave the room (the block closes the connection with 1000)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            break
    scope.cancel()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.service_client", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", required=True, help="the chat server, e.g. ws://127.0.0.1:8000")
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--name", default="ticker")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between prices")
    parser.add_argument("--backend", choices=["trio", "asyncio"], default="trio")
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> Any:
    args = parse(argv)
    try:
        return anyio.run(main, args, backend=args.backend)
    except ConnectError as exc:
        sys.exit(f"service_client: {exc}")


if __name__ == "__main__":
    run()
