"""A node script driven by a test over stdin/stdout, one JSON object per line: the script
prints ``{"step": NAME}`` and waits for the line ``ok``; it ends with ``{"result": ...}``.
Used where a node client must live through something only the test can do (stopping and
starting a server)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class NodeScript:
    """``node *args`` in the repository root; every read has a timeout."""

    def __init__(self, *args: str, step_timeout: float = 60.0) -> None:
        self.step_timeout = step_timeout
        self.proc = subprocess.Popen(
            ["node", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self) -> dict[str, Any]:
        """The script's next message; fails if it says nothing in time or exits."""
        try:
            line = self.lines.get(timeout=self.step_timeout)
        except queue.Empty:
            raise AssertionError(f"the node script said nothing for {self.step_timeout}s") from None
        if line is None:
            self.proc.wait(10)
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the node script failed:\n{stderr[-6000:]}")
        return dict(json.loads(line))

    def run(self, steps: dict[str, Callable[[], object]]) -> Any:
        """Answer each step by calling its function, then return the result."""
        try:
            while "result" not in (message := self.next()):
                action = steps.get(message.get("step", ""))
                if action is None:
                    raise AssertionError(f"unknown step from the node script: {message}")
                action()
                assert self.proc.stdin is not None
                self.proc.stdin.write("ok\n")
                self.proc.stdin.flush()
            return message["result"]
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
