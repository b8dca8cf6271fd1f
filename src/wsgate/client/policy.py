"""When and how soon the client reconnects: :class:`ReconnectPolicy` (no I/O)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .. import status

__all__ = ["ReconnectPolicy"]

#: Close codes after which the client does not reconnect by default (besides
#: 4000-4999, the application's own codes): 1000 (the server ended the conversation)
#: and 1008 (policy violation: reconnecting would be refused again).
FINAL_CLOSE_CODES = frozenset({status.WS_1000_NORMAL_CLOSURE, status.WS_1008_POLICY_VIOLATION})


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff with full jitter, as centrifuge-js does.

    After the ``n``-th consecutive failed attempt (``n`` from 0) the client waits a
    random delay between 0 and ``min(max_delay, initial_delay * multiplier ** n)``
    seconds, so a server restart is not met by every client at once. The count starts
    again after a successful handshake. ``max_attempts`` (``None``: forever) bounds the
    consecutive failed attempts; then the connection is closed for good.

    The client does not reconnect after a close code in ``final_codes`` (default 1000
    and 1008) or in 4000-4999 (the application's codes, e.g. ``WebSocketError(...,
    close_code=4003)``), nor after a handshake refused with an HTTP 4xx status other
    than 408 and 429. It does reconnect after 1001 (going away), 1011, 1012 (restart),
    1013 (try again later) and after a connection that ended without a close frame.

    Raises :class:`ValueError` for negative delays, a ``multiplier`` below 1 or
    ``max_attempts`` below 0.
    """

    initial_delay: float = 0.5
    max_delay: float = 20.0
    multiplier: float = 2.0
    max_attempts: int | None = None
    final_codes: frozenset[int] = FINAL_CLOSE_CODES

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError(
                f"ReconnectPolicy: delays must be >= 0, got initial_delay="
                f"{self.initial_delay!r}, max_delay={self.max_delay!r}"
            )
        if self.multiplier < 1:
            raise ValueError(f"ReconnectPolicy: multiplier must be >= 1, got {self.multiplier!r}")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError(
                f"ReconnectPolicy: max_attempts must be >= 0 or None, got {self.max_attempts!r}"
            )

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` failed
        attempts so far since the connection was last open)."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** min(attempt, 64))
        return rand() * ceiling

    def reconnects_after_close(self, code: int | None) -> bool:
        """Whether a connection the server closed with ``code`` (``None``: no close
        frame) is worth reopening."""
        if code is None:
            return True
        return not (code in status.WS_APPLICATION_CODES or code in self.final_codes)

    def reconnects_after_status(self, status: int | None) -> bool:
        """Whether a handshake refused with HTTP ``status`` (``None``: the server could
        not be reached) is worth trying again."""
        if status is None:
            return True
        return not (400 <= status <= 499 and status not in (408, 429))

    def gives_up(self, failed_attempts: int) -> bool:
        """Whether ``failed_attempts`` consecutive failures exhaust ``max_attempts``."""
        return self.max_attempts is not None and failed_attempts >= self.max_attempts
