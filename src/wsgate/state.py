"""The lifecycle of one connection, as a sans-I/O state machine.

Everything that changes where a connection is in its life lives here (h11's rule): the
runtime (:mod:`wsgate.connection`), the facade (:mod:`wsgate.websocket`) and the App only
call these transitions and read the result. An illegal move raises
:class:`~wsgate.errors.WebSocketStateError` naming the state, so a mistake is reported
where it is made. No I/O, no clock: the machine is tested on its own
(``tests/test_state.py``).

::

    CONNECTING --accept()--> OPEN --close()--> CLOSING --close_sent()--> CLOSED
        |                      |                  |
        +--refuse()------------+--peer_left()-----+-----------------> CLOSED
"""

from __future__ import annotations

import enum

from .errors import WebSocketDisconnect, WebSocketStateError

__all__ = ["ConnectionState", "Phase", "Receiver", "WebSocketState"]


class WebSocketState(enum.IntEnum):
    """Where a connection is in its life, as handlers see it."""

    #: The handshake arrived; neither accepted nor refused yet.
    CONNECTING = 0
    #: Accepted: frames flow both ways.
    CONNECTED = 1
    #: Closed by either side, or refused.
    DISCONNECTED = 2


class Phase(enum.IntEnum):
    """The runtime's finer view of the same life."""

    #: The handshake arrived; neither accepted nor refused yet.
    CONNECTING = 0
    #: Accepted; frames flow both ways.
    OPEN = 1
    #: The server decided to close: the close frame is queued behind what was queued
    #: before it (or alone, if the queue was discarded). Nothing more may be sent.
    CLOSING = 2
    #: Over: the close frame was sent, the peer left, the transport failed, or the
    #: handshake was refused.
    CLOSED = 3


class Receiver(enum.Enum):
    """Who reads from ASGI ``receive``; exactly one reader at any time."""

    #: ``@on_connect`` is running: ``ws.receive*()`` reads straight from ASGI.
    HANDSHAKE = "handshake"
    #: A gateway without ``@on_message`` handlers owns the connection: a reader task
    #: feeds the inbox and ``ws.receive*()`` takes from it.
    OWNER = "owner"
    #: A dispatching gateway: the runtime reads every frame and dispatches it;
    #: ``ws.receive*()`` is an error.
    RUNTIME = "runtime"


_PUBLIC = {
    Phase.CONNECTING: WebSocketState.CONNECTING,
    Phase.OPEN: WebSocketState.CONNECTED,
    Phase.CLOSING: WebSocketState.DISCONNECTED,
    Phase.CLOSED: WebSocketState.DISCONNECTED,
}


class ConnectionState:
    """One connection's lifecycle: phase, close code and reason, who reads.

    Transitions are methods; each either moves the machine or raises
    :class:`~wsgate.errors.WebSocketStateError`. The ``close*`` transitions are
    idempotent (closing a closed connection is not an error) and report whether the call
    changed anything, so the caller knows whether it must act (queue a close frame, say).
    """

    __slots__ = ("accepted", "close_code", "close_reason", "peer_left", "phase", "receiver")

    def __init__(self) -> None:
        self.phase = Phase.CONNECTING
        #: True once the handshake was accepted (``@on_disconnect`` runs only then).
        self.accepted = False
        #: True once the client's side is gone (close frame received, or transport lost).
        self.peer_left = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.receiver = Receiver.HANDSHAKE

    def __repr__(self) -> str:
        return f"<ConnectionState {self.phase.name} code={self.close_code}>"

    # -- reading the state -----------------------------------------------------------

    @property
    def public(self) -> WebSocketState:
        """The three-state view handlers get (``ws.connection_state``)."""
        return _PUBLIC[self.phase]

    @property
    def open(self) -> bool:
        """Frames may be sent."""
        return self.phase is Phase.OPEN

    def error(self, action: str) -> WebSocketStateError | WebSocketDisconnect:
        """The exception for attempting ``action`` in the current state: a
        :class:`~wsgate.errors.WebSocketDisconnect` once the peer has left (what a
        handler expects to catch), else a :class:`~wsgate.errors.WebSocketStateError`
        that says what to do instead."""
        phase = self.phase
        if phase is Phase.CONNECTING:
            return WebSocketStateError(
                f"cannot {action}: the connection is CONNECTING; accept() it first (or "
                "return from @on_connect and let the runtime accept it)"
            )
        if self.peer_left:
            return WebSocketDisconnect(self.close_code or 1005, self.close_reason)
        if phase is Phase.OPEN:
            return WebSocketStateError(f"cannot {action}: the connection is open")
        return WebSocketStateError(
            f"cannot {action}: the connection is DISCONNECTED (closed by the server with "
            f"code {self.close_code})"
        )

    # -- the handshake -----------------------------------------------------------------

    def accept(self) -> None:
        """CONNECTING -> OPEN."""
        if self.phase is not Phase.CONNECTING:
            raise WebSocketStateError(
                f"cannot accept: the connection is {self.public.name}, not CONNECTING"
            )
        self.phase = Phase.OPEN
        self.accepted = True

    def refuse(self, code: int, reason: str) -> None:
        """CONNECTING -> CLOSED: the handshake is answered with a refusal."""
        if self.phase is not Phase.CONNECTING:
            raise WebSocketStateError(
                f"cannot refuse the handshake: the connection is {self.public.name}; "
                "deny() only works before accept()"
            )
        self._closed(code, reason)

    # -- closing -------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> bool:
        """The server closes: OPEN -> CLOSING (the caller queues the close frame), or,
        before accept, CONNECTING -> CLOSED. False if already closing or closed."""
        phase = self.phase
        if phase is Phase.OPEN:
            self.phase = Phase.CLOSING
            self.close_code, self.close_reason = code, reason
            return True
        if phase is Phase.CONNECTING:
            self._closed(code, reason)
            return True
        return False

    def close_sent(self) -> None:
        """The close frame went out: CLOSING -> CLOSED."""
        if self.phase is not Phase.CLOSING:
            raise WebSocketStateError(f"no close frame was queued (state {self.phase.name})")
        self.phase = Phase.CLOSED

    def peer_closed(self, code: int, reason: str) -> None:
        """The client's side is gone (a close frame, or the transport failed). Any phase
        -> CLOSED; the first close (ours or theirs) keeps its code and reason."""
        self.peer_left = True
        if self.phase is not Phase.CLOSED:
            if self.phase is not Phase.CLOSING:
                self.close_code, self.close_reason = code, reason
            self.phase = Phase.CLOSED

    def ended(self) -> None:
        """The connection's tasks are over, however that happened: CLOSED, with 1006
        (abnormal closure) if no close was recorded."""
        if self.phase is not Phase.CLOSED:
            if self.close_code is None:
                self.close_code, self.close_reason = 1006, ""
            self.phase = Phase.CLOSED

    def _closed(self, code: int, reason: str) -> None:
        self.phase = Phase.CLOSED
        self.close_code, self.close_reason = code, reason

    # -- who reads ---------------------------------------------------------------------

    def hand_receive_to(self, receiver: Receiver) -> None:
        """``@on_connect`` is over: the runtime (or an owning handler's reader task)
        reads from now on. Only the handshake's reader can hand over."""
        if self.receiver is not Receiver.HANDSHAKE:
            raise WebSocketStateError(f"the receive side was already handed to {self.receiver}")
        self.receiver = receiver

    def check_receive(self) -> None:
        """Raise unless a handler may call ``ws.receive*()`` now."""
        if self.receiver is Receiver.RUNTIME:
            raise WebSocketStateError(
                "cannot receive: this gateway has @on_message handlers, so the runtime "
                "reads every frame and dispatches it; take the data as a handler parameter "
                "(e.g. body: Json[T]) or remove the @on_message handlers to loop over "
                "receive_*() in @on_connect"
            )
