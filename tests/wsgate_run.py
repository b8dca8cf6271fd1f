"""``wsgate run`` in a subprocess, for the tests of its options and of its broker
(tests/test_run_broker.py, tests/test_run_options.py).

The command runs in a session of its own (its own process group, as under systemd),
with stdout and stderr in one log file. Every wait polls with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 20.0
#: The supervisor's line naming the embedded Valkey.
EMBEDDED = re.compile(r"broker: embedded Valkey \(pid (\d+)\) at unix://(\S+)")


class RunProcess:
    """``python -m wsgate run APP *options --bind 127.0.0.1:PORT``."""

    def __init__(
        self,
        tmp: Path,
        app: str,
        options: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        unset: Sequence[str] = ("WSGATE_BROKER_URL", "WSGATE_METRICS_DIR"),
        cwd: Path = ROOT,
        pythonpath: Sequence[Path] = (),
    ) -> None:
        self.port = free_port()
        self.log_path = tmp / f"wsgate-run-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if k not in unset}
        full_env.update(
            {
                "PYTHONPATH": os.pathsep.join(
                    [
                        *map(str, pythonpath),
                        str(ROOT / "tests"),
                        *filter(None, [os.environ.get("PYTHONPATH")]),
                    ]
                ),
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            }
        )
        argv = [sys.executable, "-m", "wsgate", "run", app, *options]
        argv += ["--bind", f"127.0.0.1:{self.port}", "--shutdown-timeout", "5"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_line(self, pattern: str, *, timeout: float = START_TIMEOUT, count: int = 1) -> str:
        """Until ``pattern`` (a regular expression) matched ``count`` lines; returns the
        log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if len(re.findall(pattern, log)) >= count:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the log:\n{log[-3000:]}")
            if self.proc.poll() is not None:
                raise AssertionError(f"wsgate run exited ({self.proc.returncode}):\n{log[-3000:]}")
            time.sleep(0.02)

    def wait_ready(self, workers: int = 1) -> str:
        return self.wait_line(rf"\] {workers} workers ready")

    def embedded(self) -> tuple[int, str]:
        """Pid and socket path of the embedded Valkey (as the startup log names them)."""
        match = EMBEDDED.search(self.log())
        assert match, self.log()[-3000:]
        return int(match[1]), match[2]

    def stop(self, signum: int = signal.SIGTERM, *, group: bool = False) -> int:
        """Signal the supervisor (or its process group) and wait for its exit status."""
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"wsgate run did not stop:\n{self.log()[-3000:]}") from None

    def kill(self) -> None:
        """After a failed test: stop the command (SIGTERM to its process group, so that
        it removes what it created; SIGKILL if it does not stop)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def __enter__(self) -> RunProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()


def process_exists(pid: int) -> bool:
    """True if ``pid`` is a live process (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
