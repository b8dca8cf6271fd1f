"""What one connection may send, decided without I/O: frame size, rate, idleness.

Plain objects that take a message or the current time and answer; the runtime
(:mod:`wsgate.connection`) feeds them and turns their answers into events for the
lifecycle machine (:mod:`wsgate.state`). Tested on their own, with no clock and no
socket (``tests/test_limits_sansio.py``).
"""

from __future__ import annotations

import enum

from .asgi import Message

__all__ = ["IdleWatch", "Limits", "RateVerdict", "TokenBucket", "over_size"]


class Limits:
    """What one connection may send: ``max_frame_bytes`` and a token bucket of
    ``rate`` frames refilled over ``per`` seconds (no bucket when ``rate`` is 0)."""

    __slots__ = ("max_frame_bytes", "per", "quick_max", "rate")

    def __init__(self, max_frame_bytes: int, rate: int = 0, per: float = 1.0) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.rate = rate
        self.per = per
        #: A text frame of at most this many characters is within max_frame_bytes
        #: whatever its characters (UTF-8 takes at most 4 bytes per character).
        self.quick_max = max_frame_bytes // 4

    def bucket(self) -> TokenBucket | None:
        """A full token bucket for a new connection, or None without a rate limit."""
        return TokenBucket(self.rate, self.per) if self.rate else None


def over_size(message: Message, limit: int) -> bool:
    """True if the frame in ``message`` is over ``limit`` bytes (a text frame counted in
    UTF-8, without decoding anything else)."""
    text = message.get("text")
    if text is not None:
        return len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit
    return len(message.get("bytes") or b"") > limit


class RateVerdict(enum.IntEnum):
    """What the rate limit says about one frame."""

    #: Within the limit: handle it.
    PASS = 0
    #: Over the limit, the first of a run: drop it and tell the client once.
    WARN = 1
    #: Over the limit again: drop it.
    DROP = 2
    #: Over the limit for a whole bucket's worth of frames in a row: close.
    CLOSE = 3


class TokenBucket:
    """``rate`` frames per ``per`` seconds, refilled continuously; starts full."""

    __slots__ = ("at", "per", "rate", "strikes", "tokens")

    def __init__(self, rate: int, per: float) -> None:
        self.rate = rate
        self.per = per
        self.tokens = float(rate)
        self.at = 0.0
        #: Frames refused in a row.
        self.strikes = 0

    def take(self, now: float) -> RateVerdict:
        """Take a token for a frame that arrived at ``now``."""
        rate = self.rate
        tokens = min(float(rate), self.tokens + (now - self.at) * rate / self.per)
        self.at = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            self.strikes = 0
            return RateVerdict.PASS
        self.tokens = tokens
        self.strikes += 1
        if self.strikes > rate:
            return RateVerdict.CLOSE
        return RateVerdict.WARN if self.strikes == 1 else RateVerdict.DROP


class IdleWatch:
    """Idleness from periodic looks at a frame counter: idle once the counter has not
    moved for ``timeout`` seconds, counted from the first look after it last moved (so
    the bound is ``timeout`` plus the period between looks)."""

    __slots__ = ("quiet_since", "seen")

    def __init__(self) -> None:
        self.seen = -1
        self.quiet_since = 0.0

    def idle(self, received: int, now: float, timeout: float) -> bool:
        """Look at the counter (``received``) at ``now``."""
        if received != self.seen:
            self.seen = received
            self.quiet_since = now
            return False
        return now - self.quiet_since >= timeout
