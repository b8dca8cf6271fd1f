"""Serve the protocol-suite app with hypercorn on trio:
``python -m examples.protocol_suites [port]`` (port 3000 by default, as the suites expect)."""

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
            f"Socket.IO at http://127.0.0.1:{bound}/socket.io, Engine.IO at "
            f"http://127.0.0.1:{bound}/engine.io; Ctrl+C to stop",
            flush=True,
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
