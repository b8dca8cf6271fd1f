"""Serve the Socket.IO chat with hypercorn on trio: ``python -m examples.chat_socketio [port]``."""

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
            f"wsgate Socket.IO chat: open http://127.0.0.1:{bound}/ in two browser tabs "
            "(Socket.IO at /socket.io); Ctrl+C to stop",
            flush=True,
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
