"""Serving an App with hypercorn from inside a running trio or asyncio program."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import sniffio
from anyio.abc import TaskStatus

__all__ = ["serve"]


async def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    graceful_timeout: float = 5.0,
    **config: Any,
) -> None:
    """Serve ``app`` with hypercorn until the enclosing scope is cancelled.

    Runs on whichever backend is running (hypercorn's trio worker under trio, its asyncio
    worker under asyncio). Use it with ``await tg.start(serve, app, host, port)`` (or
    ``nursery.start``): it reports the bound port once the socket listens, so ``port=0``
    picks a free one. Cancelling the scope stops the server gracefully: lifespan shutdown
    runs, so open connections are closed with 1001 and their ``@on_disconnect`` hooks run.
    Extra keyword arguments set hypercorn ``Config`` attributes. Requires the
    ``hypercorn`` extra.
    """
    try:
        from hypercorn.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("wsgate.serve needs hypercorn: pip install 'wsgate[hypercorn]'") from exc

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    bound_port: int = sock.getsockname()[1]

    cfg = Config()
    # hypercorn takes ownership of the descriptor (and closes it when it stops).
    cfg.bind = [f"fd://{sock.detach()}"]
    cfg.graceful_timeout = graceful_timeout
    cfg.accesslog = None
    for key, value in config.items():
        setattr(cfg, key, value)
    stop = anyio.Event()

    async def run() -> None:
        # Shielded: on cancellation we ask hypercorn to stop instead of tearing it down,
        # so its lifespan shutdown runs.
        with anyio.CancelScope(shield=True):
            if sniffio.current_async_library() == "trio":
                from hypercorn.trio import serve as trio_serve

                await trio_serve(app, cfg, shutdown_trigger=stop.wait)
            else:
                from hypercorn.asyncio import serve as asyncio_serve

                await asyncio_serve(app, cfg, shutdown_trigger=stop.wait)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        task_status.started(bound_port)
        try:
            await anyio.sleep_forever()
        finally:
            # Close our connections with 1001 (and run their hooks) before hypercorn
            # stops: it would otherwise cancel them before the lifespan shutdown runs.
            shutdown = getattr(app, "shutdown", None)
            if shutdown is not None:
                with anyio.CancelScope(shield=True):
                    await shutdown()
            stop.set()
