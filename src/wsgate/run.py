"""``wsgate run``: serve an app with hypercorn in N worker processes and drain on signals.

::

    wsgate run chat.app:app --workers 4 --backend trio --bind 0.0.0.0:8000

A supervisor process binds the listening socket and starts ``--workers`` worker
processes that share it (each runs hypercorn on trio or asyncio). On SIGTERM or SIGINT,
whether it reaches the supervisor only or the whole process group (systemd's default
``KillMode=control-group``), every worker:

1. stops accepting connections,
2. closes every open WebSocket with 1012 (service restart), so clients reconnect, and
   waits for their ``@on_disconnect`` hooks,
3. runs the lifespan shutdown (``on_shutdown`` hooks, providers' ``__aexit__``: a
   :class:`~wsgate.broadcast.redis.RedisBroadcastGroup` removes its member counts and
   heartbeat from Redis at once),

and exits. The supervisor forwards the signal to the workers, waits up to
``--shutdown-timeout`` seconds, kills a worker that is still running then, and exits
with status 0 if every worker stopped by itself (1 otherwise).

A worker that dies while serving (a crash, the OOM killer, ``kill -9``) is restarted
after a backoff (:class:`RestartPolicy`: 0.5 s, doubling to 8 s) while the other
workers go on serving; only its own clients lose their connection, and they reconnect.
Five deaths within a minute is a crash loop: the supervisor then stops every worker and
exits with status 1, for the process manager to act. A worker that dies before its
lifespan startup completed is not restarted (the app cannot start: the supervisor stops
and exits with 1, showing the worker's error once).

``--ping-interval S`` (default 20) has hypercorn ping every client every S seconds; a
client from which nothing arrived, not even a pong, for ``S + --ping-timeout`` seconds
(default ``2 * S``) is closed (a peer that vanished without a FIN), and its
``@on_disconnect`` runs at once. ``--ping-interval 0`` sends no pings and closes nobody.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from . import status
from .asgi import Message, Receive, Scope, Send

__all__ = ["add_arguments", "drain_on_signal", "run"]

logger = logging.getLogger("wsgate.run")


#: Close code and reason every connection gets when a worker drains.
DRAIN_CODE = status.WS_1012_SERVICE_RESTART
DRAIN_REASON = "service restart"
#: Part of ``--shutdown-timeout`` kept for the lifespan shutdown after the connections.
_LIFESPAN_SHARE = 0.25
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds hypercorn may still wait for its connections once the app closed them all.
_AFTER_DRAIN = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``wsgate run``."""
    parser.add_argument("app", metavar="MODULE:APP", help="the ASGI app, e.g. chat.app:app")
    parser.add_argument("--workers", "-w", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--backend",
        choices=("trio", "asyncio"),
        default="trio",
        help="hypercorn worker class (default trio)",
    )
    parser.add_argument(
        "--bind", "-b", default="127.0.0.1:8000", help="HOST:PORT (default 127.0.0.1:8000)"
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds a signal-initiated shutdown may take before workers are killed (default 10)",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        metavar="S",
        help="ping every client every S seconds (default 20; 0: no pings)",
    )
    parser.add_argument(
        "--ping-timeout",
        type=float,
        default=None,
        metavar="S",
        help="close a client from which nothing (not even a pong) arrived for "
        "ping interval + S seconds (default: S = the ping interval)",
    )
    parser.add_argument("--backlog", type=int, default=1024, help="listen backlog (default 1024)")
    # Internal: how the supervisor starts a worker on the socket it bound.
    parser.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run ``wsgate run`` (the supervisor, or one worker when started by it); returns
    the exit status."""
    if args.worker_fd is not None:
        return _worker(args)
    if args.workers < 1:
        raise SystemExit("wsgate run: --workers must be at least 1")
    if args.shutdown_timeout <= 0:
        raise SystemExit("wsgate run: --shutdown-timeout must be positive")
    if args.ping_interval < 0:
        raise SystemExit("wsgate run: --ping-interval must be 0 (no pings) or positive")
    if args.ping_timeout is not None and args.ping_timeout <= 0:
        raise SystemExit("wsgate run: --ping-timeout must be positive")
    return Supervisor(args).run()


def liveness_bound(ping_interval: float, ping_timeout: float | None = None) -> float:
    """Seconds after which a client that stopped answering (vanished without a FIN) is
    closed: the ping interval plus the ping timeout (by default the interval again)."""
    return ping_interval + (ping_interval if ping_timeout is None else ping_timeout)


def _parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"wsgate run: --bind takes HOST:PORT (e.g. 0.0.0.0:8000), got {bind!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _listen(bind: str, backlog: int) -> socket.socket:
    host, port = _parse_bind(bind)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"wsgate run: cannot bind {bind}: {exc}") from exc
    sock.listen(backlog)
    return sock


def _log(message: str) -> None:
    print(f"[wsgate {os.getpid()}] {message}", file=sys.stderr, flush=True)


# -- the supervisor ---------------------------------------------------------------------


class RestartPolicy:
    """When to restart a worker that died, and when to give up (no I/O, no clock: the
    time is passed in).

    Each death is answered with a delay before the restart: ``first_delay`` doubling
    per death still within ``window`` seconds, up to ``max_delay``. ``max_deaths``
    deaths within ``window`` seconds is a crash loop: :meth:`died` returns None.
    """

    __slots__ = ("deaths", "first_delay", "max_deaths", "max_delay", "window")

    def __init__(
        self,
        *,
        max_deaths: int = 5,
        window: float = 60.0,
        first_delay: float = 0.5,
        max_delay: float = 8.0,
    ) -> None:
        self.max_deaths = max_deaths
        self.window = window
        self.first_delay = first_delay
        self.max_delay = max_delay
        #: When the deaths within the window happened.
        self.deaths: list[float] = []

    def died(self, now: float) -> float | None:
        """A worker died at ``now``: seconds to wait before restarting it, or None for
        a crash loop."""
        self.deaths = [t for t in self.deaths if now - t < self.window]
        self.deaths.append(now)
        if len(self.deaths) >= self.max_deaths:
            return None
        delay: float = self.first_delay * 2.0 ** (len(self.deaths) - 1)
        return min(self.max_delay, delay)


class Supervisor:
    """Binds the socket, starts the workers, forwards signals, reaps the workers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workers: list[subprocess.Popen[bytes]] = []
        self.stopping_since: float | None = None
        self.signal_received: int | None = None
        self.restarts = RestartPolicy()
        #: Pids of the workers whose lifespan startup completed.
        self.ready: set[int] = set()
        #: When each pending restart is due.
        self.restart_at: list[float] = []
        self._argv: list[str] = []
        self._fds: tuple[int, ...] = ()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.signal_received is None:
            self.signal_received = signum
        self._forward(signum)

    def _forward(self, signum: int) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    def run(self) -> int:
        args = self.args
        sock = _listen(args.bind, args.backlog)
        fd = sock.fileno()
        ready_r, ready_w = os.pipe()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            host, port = sock.getsockname()[:2]
            _log(f"listening on {host}:{port}; starting {args.workers} {args.backend} workers")
            argv = [
                sys.executable, "-m", "wsgate", "run", args.app,
                "--backend", args.backend,
                "--shutdown-timeout", str(args.shutdown_timeout),
                "--worker-fd", str(fd),
                "--ready-fd", str(ready_w),
            ]  # fmt: skip
            argv += ["--ping-interval", str(args.ping_interval)]
            if args.ping_timeout is not None:
                argv += ["--ping-timeout", str(args.ping_timeout)]
            self._argv, self._fds = argv, (fd, ready_w)
            for _ in range(args.workers):
                if self.signal_received is not None:
                    break
                self._spawn()
            # The supervisor keeps the socket (it never accepts on it) and the ready pipe
            # open, to restart a worker that dies.
            return self._wait(ready_r)
        finally:
            if ready_w >= 0:
                os.close(ready_w)
            os.close(ready_r)
            sock.close()
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _spawn(self) -> None:
        # Started with SIGTERM and SIGINT blocked (the mask is inherited): a signal to
        # the process group before the worker's handler is in place waits for it
        # instead of killing the worker.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            self.workers.append(subprocess.Popen(self._argv, pass_fds=self._fds))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def _stop(self, why: str) -> None:
        _log(why)
        self.stopping_since = time.monotonic()
        self.restart_at.clear()
        self._forward(signal.SIGTERM)

    def _reap(self, now: float) -> bool:
        """Workers that died while serving: schedule their restart. False if the
        service must stop (a worker that never started, or a crash loop)."""
        for proc in [p for p in self.workers if p.poll() is not None]:
            self.workers.remove(proc)
            served = proc.pid in self.ready
            self.ready.discard(proc.pid)
            if not served:
                self._stop(
                    f"worker {proc.pid} exited with {proc.returncode} before it was ready: stopping"
                )
                return False
            delay = self.restarts.died(now)
            if delay is None:
                self._stop(
                    f"worker {proc.pid} exited with {proc.returncode}: "
                    f"{self.restarts.max_deaths} deaths within {self.restarts.window:g} s, "
                    "a crash loop: stopping"
                )
                return False
            _log(f"worker {proc.pid} exited with {proc.returncode}: restarting it in {delay:g} s")
            self.restart_at.append(now + delay)
        return True

    def _wait(self, ready_r: int) -> int:
        import selectors

        reported = False
        failed = False
        buffer = b""
        sel = selectors.DefaultSelector()
        sel.register(ready_r, selectors.EVENT_READ)
        with sel:
            while self.restart_at or any(p.poll() is None for p in self.workers):
                now = time.monotonic()
                if self.signal_received is not None and self.stopping_since is None:
                    name = signal.Signals(self.signal_received).name
                    self._stop(f"{name}: draining the workers (1012, service restart)")
                if self.stopping_since is not None:
                    left = self.stopping_since + self.args.shutdown_timeout - now
                    if left <= 0:
                        for proc in self.workers:
                            if proc.poll() is None:
                                _log(f"worker {proc.pid} still running: killed")
                                proc.kill()
                                failed = True
                        break
                elif not self._reap(now):
                    failed = True
                    continue
                for due in [t for t in self.restart_at if t <= now]:
                    self.restart_at.remove(due)
                    self._spawn()
                for _key, _ in sel.select(timeout=0.05):
                    buffer += os.read(ready_r, 256)
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    pid = int(line)
                    self.ready.add(pid)
                    if reported:
                        _log(f"worker {pid} ready")
                if not reported and len(self.ready) >= self.args.workers:
                    reported = True
                    _log(f"{len(self.ready)} workers ready")
        for proc in self.workers:
            proc.wait()
            if proc.returncode != 0:
                failed = True
        _log("stopped" if not failed else "stopped with errors")
        return 1 if failed else 0


# -- a worker ---------------------------------------------------------------------------


class _ReadyReporter:
    """Wraps the ASGI app: reports lifespan startup to the supervisor (the worker's pid
    and a newline)."""

    def __init__(self, app: Any, ready_fd: int | None) -> None:
        self.app = app
        self.ready_fd = ready_fd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" or self.ready_fd is None:
            await self.app(scope, receive, send)
            return

        async def send_(message: Message) -> None:
            await send(message)
            if message["type"] in ("lifespan.startup.complete", "lifespan.startup.failed"):
                self._report()

        try:
            await self.app(scope, receive, send_)
        finally:
            self._report()  # an app without lifespan support

    def _report(self) -> None:
        if self.ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, b"%d\n" % os.getpid())
                os.close(self.ready_fd)
            self.ready_fd = None


def _worker(args: argparse.Namespace) -> int:
    import anyio

    from .loading import load_app

    app = load_app(args.app)
    sock = socket.socket(fileno=args.worker_fd)
    sock.setblocking(False)
    try:
        anyio.run(
            _serve_worker,
            app,
            sock,
            args,
            backend=args.backend,
        )
    except KeyboardInterrupt:  # pragma: no cover - a signal before the handler was set
        return 1
    return 0


def _quiet_cancelled_connections() -> None:
    """On asyncio, hypercorn's connection tasks cancelled at the end of the graceful
    timeout are each reported by asyncio's stream callback as an 'Exception in
    callback ... CancelledError'; after a drain that is expected, not an error."""
    import sniffio

    if sniffio.current_async_library() != "asyncio":
        return
    import asyncio

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.CancelledError):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def _serve_worker(app: Any, sock: socket.socket, args: argparse.Namespace) -> None:
    import anyio
    import anyio.abc
    import sniffio
    from hypercorn.config import Config

    from .app import App

    cfg = Config()
    cfg.bind = [f"fd://{sock.detach()}"]
    cfg.accesslog = None
    cfg.errorlog = "-"
    # What is left of the shutdown timeout after the connections went is for the
    # lifespan shutdown.
    cfg.graceful_timeout = args.shutdown_timeout * (1 - _LIFESPAN_SHARE)
    if args.ping_interval > 0:
        # hypercorn sends the pings but does not wait for the pongs: its read timeout
        # closes a connection from which nothing arrived for that long, and a live
        # client's pong arrives within every ping interval.
        cfg.websocket_ping_interval = args.ping_interval
        cfg.read_timeout = liveness_bound(args.ping_interval, args.ping_timeout)  # type: ignore[assignment]
    stop = anyio.Event()
    wrapped: Any = _ReadyReporter(app, args.ready_fd)

    async def drain() -> None:
        if isinstance(app, App):
            # Close every connection with 1012 and wait for their hooks while hypercorn
            # still runs them (a handshake arriving meanwhile is refused with 1012).
            with anyio.move_on_after(cfg.graceful_timeout):
                await app.shutdown(code=DRAIN_CODE, reason=DRAIN_REASON)
            # What hypercorn still waits for is its own: a closed connection's pinger
            # sleeps up to a ping interval before it notices. Don't wait for it.
            cfg.graceful_timeout = min(cfg.graceful_timeout, _AFTER_DRAIN)
            _quiet_cancelled_connections()
        # Stop accepting; hypercorn waits for what is left (up to graceful_timeout), then
        # runs the lifespan shutdown.
        stop.set()

    listening = anyio.CancelScope()

    async def on_signals(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        # One receiver for the worker's whole life: the supervisor forwards the signal
        # that the process group already delivered, and a second one must not find
        # the default handler (which would kill the worker mid-drain).
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            # The supervisor started this worker with both signals blocked; one that
            # arrived meanwhile is delivered now, to the receiver.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            task_status.started()
            draining = False
            with listening:
                async for _signum in signals:
                    if not draining:
                        draining = True
                        tg.start_soon(drain)

    async with anyio.create_task_group() as tg:
        await tg.start(on_signals)
        if sniffio.current_async_library() == "trio":
            from hypercorn.trio import serve as trio_serve

            await trio_serve(wrapped, cfg, shutdown_trigger=stop.wait)
        else:
            from hypercorn.asyncio import serve as asyncio_serve

            await asyncio_serve(wrapped, cfg, shutdown_trigger=stop.wait)
        listening.cancel()


# -- under another server's command line ------------------------------------------------


def drain_on_signal(app: Any, *, server_stop_wait: float = 5.0) -> Any:
    """Wrap a wsgate App so that, served by ``hypercorn`` or ``uvicorn`` from their own
    command line, SIGTERM or SIGINT reaching the process closes every connection with 1012
    (service restart) and runs their ``@on_disconnect`` hooks before the server goes on::

        app = drain_on_signal(App(gateways=[...]))      # hypercorn --workers 4 module:app

    At lifespan startup the wrapper installs its own handler in the process that runs
    the app. On a signal it drains the App, then hands the signal to the handler that was
    there before (uvicorn's, which then stops the server) or, where there was none (a
    hypercorn worker, which its main process stops), waits ``server_stop_wait`` seconds
    for the server's lifespan shutdown before applying the default action. That turns
    hypercorn's worst case, SIGTERM to the whole process group (its workers died at once,
    without hooks or lifespan shutdown), into a drain. SIGTERM sent to hypercorn's main
    process alone still reaches no worker: there hypercorn waits ``--graceful-timeout``
    before cutting the connections, so prefer ``wsgate run``. Raises ``TypeError`` if
    ``app`` has no ``shutdown(code=, reason=)``.
    """
    shutdown = getattr(app, "shutdown", None)
    if shutdown is None:
        raise TypeError(f"drain_on_signal() takes a wsgate App, not {type(app).__name__}")

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        import anyio

        async with anyio.create_task_group() as tg:
            await tg.start(_drain_watcher, app, server_stop_wait)
            await app(scope, receive, send)
            tg.cancel_scope.cancel()

    return wrapper


async def _drain_watcher(app: Any, server_stop_wait: float, *, task_status: Any) -> None:
    import anyio
    import sniffio

    received: list[int] = []
    woken = anyio.Event()
    if sniffio.current_async_library() == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()

        def call_soon(callback: Callable[[], object]) -> None:
            token.run_sync_soon(callback)
    else:
        import asyncio

        loop = asyncio.get_running_loop()

        def call_soon(callback: Callable[[], object]) -> None:
            loop.call_soon_threadsafe(callback)

    def handler(signum: int, _frame: Any) -> None:
        # In a signal handler: only hand the wake-up to the event loop (both calls are
        # safe here).
        if not received:
            received.append(signum)
            call_soon(woken.set)

    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        task_status.started()
        await woken.wait()
        signum = signal.Signals(received[0])
        await app.shutdown(code=DRAIN_CODE, reason=DRAIN_REASON)
        before = previous[signum]
        if before in (signal.SIG_DFL, None):
            # A worker of a server whose main process stops it: let it do so (this task
            # is cancelled when the lifespan ends); if it doesn't, die as the signal says.
            await anyio.sleep(server_stop_wait)
    finally:
        for s, h in previous.items():
            if signal.getsignal(s) is handler:
                signal.signal(s, h if h is not None else signal.SIG_DFL)
    if callable(before):
        before(signum, None)
    elif before in (signal.SIG_DFL, None):
        signal.raise_signal(signum)
