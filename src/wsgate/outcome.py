"""What handling one frame decided, for the runtime to carry out.

:meth:`Session.handle <wsgate.session.Session.handle>` never writes: it returns an
:data:`Outcome` and the runtime (:meth:`Connection.answer
<wsgate.connection.Connection.answer>`) sends, closes or starts the stream, from the
task that should. The common answers stay plain values (the encoded frame, or None for
nothing to send), so the per-frame path allocates nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = ["CloseAfter", "Outcome", "StartStream"]


@dataclass(frozen=True, slots=True)
class CloseAfter:
    """Send ``frame`` (an error frame, if any), then close with ``code`` and ``reason``."""

    frame: bytes | None
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class StartStream:
    """Send ``frame`` (the request's reply, if any), then run ``run`` in the connection's
    task group: an async-generator handler's stream of pushes."""

    frame: bytes | None
    run: Callable[[], Coroutine[Any, Any, None]]


#: The encoded reply, push or error frame to send; a close or a stream to start; or
#: None when there is nothing to send.
Outcome: TypeAlias = bytes | CloseAfter | StartStream | None
