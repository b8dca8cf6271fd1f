"""Helpers shared by the benchmarks: summaries, markdown tables, an ASGI send counter.

Every benchmark here alternates its variants round by round (A B C A B C ..., the order
rotated each round) and reports the median, min and max over rounds, plus ratios computed
*within* each round, so that a noisy neighbour slows both sides of a ratio together.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio

__all__ = [
    "RESULTS",
    "CountingApp",
    "GcClock",
    "Summary",
    "environment",
    "markdown_table",
    "rotated",
    "publish",
    "write_result",
]

RESULTS = Path(__file__).resolve().parent / "results"

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Summary:
    """Median, min and max of one figure over the rounds."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no samples")
        return cls(statistics.median(values), min(values), max(values))


def rotated(items: Sequence[T], k: int) -> list[T]:
    """``items`` rotated left by ``k`` (round ``k`` starts with a different variant)."""
    if not items:
        return []
    k %= len(items)
    return [*items[k:], *items[:k]]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A GitHub markdown table; the first ``left`` columns left-aligned, the others right."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join(
            (":" + "-" * (w + 1)) if i < left else ("-" * (w + 1) + ":")
            for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def environment() -> str:
    """One line naming the interpreter, the library versions and the machine."""
    versions = []
    for dist in ("wsgate", "msgspec", "pydantic", "pydantic-core", "anyio", "trio"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (absent)")
    return (
        f"Python {platform.python_version()} ({sys.implementation.name}), "
        + ", ".join(versions)
        + f"; {platform.machine()}, {os.cpu_count()} CPUs"
    )


def publish(name: str, report: str, out: bool | Path) -> None:
    """Print ``report`` and, with ``out``, write it to ``benchmarks/results/<name>`` (or
    to ``<out>/<name>`` when ``out`` is a directory)."""
    print()
    print(report)
    if out is not False:
        print(f"written to {write_result(name, report, RESULTS if out is True else out)}")


def write_result(name: str, text: str, folder: Path = RESULTS) -> Path:
    """Write ``text`` to ``<folder>/<name>`` (``benchmarks/results/`` by default) and
    return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path


@dataclass
class CountingApp:
    """Wraps an ASGI app; counts the app's ``websocket.send`` messages across every
    connection and sets :attr:`done` when :attr:`count` reaches :attr:`target`.

    The wrapped ``send`` of every connection is kept in :attr:`sends` (in connection
    order), so a benchmark can also call it directly, bypassing wsgate's writer task.
    ``config`` is forwarded because :class:`wsgate.testing.TestClient` reads timeouts
    from it.
    """

    app: Any
    count: int = 0
    target: int = -1
    done: anyio.Event | None = None
    sends: list[Send] = field(default_factory=list)

    @property
    def config(self) -> Any:
        return self.app.config

    def expect(self, n: int) -> anyio.Event:
        """Reset the count; the returned event is set once ``n`` more frames were sent."""
        self.count = 0
        self.target = n
        self.done = anyio.Event()
        return self.done

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            await send(message)
            if message["type"] == "websocket.send":
                self.count += 1
                if self.count == self.target and self.done is not None:
                    self.done.set()

        self.sends.append(counting_send)
        await self.app(scope, receive, counting_send)


class GcClock:
    """Seconds the garbage collector ran (all generations), via ``gc.callbacks``.

    ``with GcClock() as clock: ...``; read :attr:`seconds` before and after a sample.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections += 1

    def __enter__(self) -> Self:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gc.callbacks.remove(self._callback)
