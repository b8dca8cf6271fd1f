"""History with offsets: the last frames of each group, and their positions.

``BroadcastGroup(history=History(size=100, ttl=300.0))`` (or ``App(history=...)`` for
the App's default group) keeps, for every group it serves, the last ``size`` frames for
``ttl`` seconds after the group's last publish. Every broadcast to such a group gets the
next **offset** (an int, from 1, per group); each group has an **epoch** (a string) that
changes whenever its history is lost (it expired, the in-process group's process
restarted, the broker restarted without persistence).

A frame delivered from a group with history carries its position on the wire, the
clients present the last position they saw when they reconnect, and a connection
subscribed again to the group gets what it missed (see the "Keep history and recover" how-to).

This module holds the value types and the in-process store; the Redis/Valkey store lives
in :mod:`wsgate.broadcast._redis_history`.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = ["History", "MemoryHistory", "Position", "Publication", "new_epoch"]


@dataclass(frozen=True, slots=True)
class History:
    """How much history a broadcast group keeps for each of its groups.

    :param size: The number of frames kept per group (the oldest go first).
    :param ttl: Seconds a group's history is kept after its last publish; then it is
        forgotten and the group gets a new epoch.
    """

    size: int = 100
    ttl: float = 300.0

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ValueError(f"History(size={self.size!r}): size must be an int >= 1")
        if not (isinstance(self.ttl, int | float) and math.isfinite(self.ttl) and self.ttl > 0):
            raise ValueError(f"History(ttl={self.ttl!r}): ttl must be a number of seconds > 0")


class Position(msgspec.Struct, frozen=True):
    """Where a group's history stands: its epoch and the offset of its last frame (0
    before the first)."""

    epoch: str
    offset: int


class Publication(msgspec.Struct, frozen=True):
    """One frame of a group's history: its offset and the message as broadcast (the
    decoded JSON value)."""

    offset: int
    message: Any


def new_epoch() -> str:
    """A fresh epoch: 8 random bytes in hex."""
    return os.urandom(8).hex()


class _Log:
    __slots__ = ("epoch", "expires", "frames", "offset")

    def __init__(self, size: int, expires: float) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.frames: deque[tuple[int, str]] = deque(maxlen=size)
        self.expires = expires


class MemoryHistory:
    """The in-process store of a group's frames (one per :class:`BroadcastGroup`).

    Frames are kept as the encoded JSON text, without their position; ``clock`` gives
    the time in seconds (the running event loop's by default).
    """

    def __init__(self, config: History, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self._logs: dict[str, _Log] = {}

    def _log(self, group: str) -> _Log:
        log = self._logs.get(group)
        if log is None or log.expires <= self._clock():
            log = self._logs[group] = _Log(self.config.size, self._clock() + self.config.ttl)
        return log

    def append(self, group: str, prefix: str, render: Callable[[str, int, str], str]) -> Position:
        """Record the next frame of ``group``, ``render(prefix, offset, epoch)``; its
        position."""
        log = self._log(group)
        log.offset += 1
        log.frames.append((log.offset, render(prefix, log.offset, log.epoch)))
        log.expires = self._clock() + self.config.ttl
        return Position(log.epoch, log.offset)

    def position(self, group: str) -> Position:
        """The current position of ``group`` (its epoch is created if it has none)."""
        log = self._log(group)
        return Position(log.epoch, log.offset)

    def since(
        self, group: str, offset: int, epoch: str
    ) -> tuple[Position, list[tuple[int, str]] | None]:
        """The current position and the frames after ``offset`` in ``epoch``; the frames
        are None if they cannot all be given (another epoch, or the oldest were
        dropped)."""
        log = self._log(group)
        here = Position(log.epoch, log.offset)
        if epoch != log.epoch or offset > log.offset or offset < 0:
            return here, None
        frames = [f for f in log.frames if f[0] > offset]
        first = frames[0][0] if frames else log.offset + 1
        if first != offset + 1:
            return here, None
        return here, frames

    def last(self, group: str, limit: int) -> list[tuple[int, str]]:
        """The last ``limit`` frames of ``group``, oldest first."""
        log = self._log(group)
        if limit <= 0:
            return []
        frames = list(log.frames)
        return frames[-limit:]

    def prune(self) -> None:
        """Forget the groups whose history expired."""
        now = self._clock()
        for group in [g for g, log in self._logs.items() if log.expires <= now]:
            del self._logs[group]
