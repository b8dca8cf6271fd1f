"""The client connection's states and the only place they change (no I/O besides an
:class:`anyio.Event` to wake the tasks that wait for a change)."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

import anyio

__all__ = ["ClientState", "StateMachine"]

logger = logging.getLogger("wsgate.client")


class ClientState(enum.Enum):
    """Where a :class:`~wsgate.client.ClientConnection` is (its lifecycle, read as
    ``conn.connection_state``; named apart from the server's
    :class:`wsgate.state.ClientState`).

    ``CONNECTING`` (the first handshake) -> ``OPEN`` -> ``RECONNECTING`` (the connection
    dropped; waiting the backoff or trying again) -> ``OPEN`` ... -> ``CLOSED`` (for
    good: closed by the program, by a final close code, or the policy gave up).
    """

    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


_S = ClientState
#: The state changes a connection may make; anything else is a bug.
_TRANSITIONS: dict[ClientState, frozenset[ClientState]] = {
    _S.CONNECTING: frozenset({_S.OPEN, _S.CLOSED}),
    _S.OPEN: frozenset({_S.RECONNECTING, _S.CLOSED}),
    _S.RECONNECTING: frozenset({_S.OPEN, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}


class StateMachine:
    """The current :class:`ClientState`, its legal changes, and the waiters."""

    def __init__(self, on_change: Callable[[ClientState], object] | None = None) -> None:
        self.state = ClientState.CONNECTING
        self._changed = anyio.Event()
        self._on_change = on_change

    def move(self, state: ClientState) -> None:
        """Change to ``state`` (nothing if already there); :class:`RuntimeError` for a
        change the table does not allow."""
        if state is self.state:
            return
        if state not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal client state change: {self.state.name} -> {state.name}")
        self.state = state
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        if self._on_change is not None:
            try:
                self._on_change(state)
            except Exception:
                logger.exception("on_state_change failed")

    async def changed(self) -> None:
        """Wait for the next change."""
        await self._changed.wait()
