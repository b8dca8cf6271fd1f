"""Serve the chat example with hypercorn on trio: ``python -m examples.chat [port]``."""

from __future__ import annotations

import signal
import sys

import trio

import wsgate

from .app import app


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(wsgate.serve, app, "127.0.0.1", port)
        print(
            f"wsgate chat demo: open http://127.0.0.1:{bound}/ in two browser tabs "
            f"(WebSocket endpoint ws://127.0.0.1:{bound}/chat/{{room_id}}); Ctrl+C to stop",
            flush=True,
        )
        # Ctrl+C or SIGTERM: stop gracefully (clients are closed with 1001).
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
