"""Process control for the server benchmarks: servers and load clients in subprocesses.

:class:`Server` starts ``python -m benchmarks._serve KIND MODULE:APP`` (one process, on
a free port of 127.0.0.1), waits until it answers HTTP, and reads its CPU time and memory
from ``/proc``. :func:`serving` starts several and stops every one of them on the way out,
whatever happened (SIGTERM, then SIGKILL after a second). Every child process is also
started with ``PR_SET_PDEATHSIG`` so it dies with the harness even if the harness is
killed outright.

:func:`run_client` runs ``python -m benchmarks.loadgen ...`` to completion (with a
timeout) and returns its JSON result; :class:`IdleClient` drives the interactive
``idle`` mode used by the memory benchmark.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks import _proc

__all__ = ["ClientError", "IdleClient", "Server", "ServerError", "run_client", "serving"]

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 1.0
LOG_DIR = Path(tempfile.gettempdir()) / "wsgate-bench-logs"


class ServerError(RuntimeError):
    pass


class ClientError(RuntimeError):
    pass


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("PYTHONDEVMODE", None)
    return env


@dataclass
class Server:
    """One server process serving one app; call :meth:`start` (or use :func:`serving`)."""

    kind: str
    app: str
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    log: Path = field(default_factory=Path)
    #: Environment variables set for the server on top of this process's.
    env: dict[str, str] = field(default_factory=dict)
    _log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Server:
        LOG_DIR.mkdir(exist_ok=True)
        if not self.log.name:
            safe = f"{self.kind}-{self.app}".replace(":", "-").replace("/", "-")
            self.log = LOG_DIR / f"{safe}-{os.getpid()}-{time.monotonic_ns()}.log"
        # Appended to: a server restarted after a failure keeps the log of its first life.
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._serve", self.kind, self.app],
            cwd=ROOT,
            env=_env() | self.env,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            self.port = self._read_port()
            self._wait_http()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise ServerError(f"{self.kind} {self.app} did not start:\n{self.log_tail()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 64)
                if not chunk:
                    raise ServerError(f"{self.kind} {self.app} exited:\n{self.log_tail()}")
                line += chunk
        if not line.startswith(b"PORT "):
            raise ServerError(f"unexpected launcher output {line!r}")
        return int(line.split()[1])

    def _wait_http(self) -> None:
        """Until the server answers an HTTP request (any status): lifespan startup done."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
                return
            except OSError as exc:
                assert self.proc is not None
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise ServerError(
                        f"{self.kind} {self.app} not answering ({exc}):\n{self.log_tail()}"
                    ) from exc
                time.sleep(0.1)
            finally:
                conn.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the process tree, SIGKILL what is left after a second."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            pids = _proc.tree(proc.pid)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def errors_logged(self) -> int:
        """Tracebacks in the server's log so far."""
        try:
            return self.log.read_bytes().count(b"Traceback")
        except OSError:
            return 0

    # -- measurements (the whole process tree)

    def cpu_seconds(self) -> float:
        return _proc.cpu_seconds(self.pid)

    def rss(self) -> int:
        return _proc.rss(self.pid)

    def reset_peak_rss(self) -> bool:
        return _proc.reset_peak_rss(self.pid)

    def peak_rss(self) -> int:
        return _proc.peak_rss(self.pid)


@contextlib.contextmanager
def serving(specs: Iterable[tuple[str, str]]) -> Iterator[list[Server]]:
    """Start a server per ``(kind, "module:app")``; all are stopped on exit."""
    servers: list[Server] = []
    try:
        for kind, app in specs:
            server = Server(kind, app)
            servers.append(server)
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
            if not server.errors_logged():  # keep only the logs worth reading
                server.log.unlink(missing_ok=True)


def _client_cmd(args: Iterable[Any]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.loadgen", *(str(a) for a in args)]


def run_client(args: Iterable[Any], timeout: float) -> dict[str, Any]:
    """Run the load client to completion; its JSON result (ClientError on failure)."""
    cmd = _client_cmd(args)
    try:
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            timeout=timeout,
            preexec_fn=_die_with_parent,
        )
    except subprocess.TimeoutExpired as exc:
        raise ClientError(f"{' '.join(cmd[2:])}: no result after {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-3000:]
        raise ClientError(f"{' '.join(cmd[2:])} failed ({done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


class IdleClient:
    """``loadgen idle``: opens connections in two steps, each acknowledged with a
    ``READY n`` line, and holds them until told to go on."""

    def __init__(self, args: Iterable[Any]) -> None:
        self.proc = subprocess.Popen(
            _client_cmd(["idle", *args]),
            cwd=ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )

    def wait_ready(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b"READY"):
            self.kill()
            err = (
                self.proc.stderr.read().decode(errors="replace")[-3000:] if self.proc.stderr else ""
            )
            raise ClientError(f"idle client not ready after {timeout:.0f} s: {line!r}\n{err}")
        return int(line.split()[1])

    def proceed(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float) -> dict[str, Any]:
        self.proceed()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise ClientError("idle client did not finish") from exc
        if self.proc.returncode != 0:
            raise ClientError(f"idle client failed:\n{err.decode(errors='replace')[-3000:]}")
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> IdleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
