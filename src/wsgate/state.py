"""The lifecycle of one connection, as a sans-I/O state machine that decides.

Everything that changes where a connection is in its life lives here (h11's rule). The
runtime (:mod:`wsgate.connection`), the facade (:mod:`wsgate.websocket`) and the App
feed :meth:`ConnectionState.handle` an :class:`Event` (the handshake was accepted, the
peer closed, a frame was too large, ...) and carry out the :class:`Action`\\ s it
returns (send the close frame now, queue it behind what is queued, drop the outbox,
cancel the connection's tasks, count it). The moves are one table,
:data:`TRANSITIONS`, keyed by ``(phase, event)``; an event that is not in the table
for the current phase raises :class:`~wsgate.errors.WebSocketStateError` naming both,
so a mistake is reported where it is made. The close code and reason of the events
the runtime detects itself (idle, too large, rate limit, slow consumer, transport
failure, handshake expiry) are decided here too (:data:`CLOSE_CODES`).

No I/O, no clock: the machine is tested on its own (``tests/test_state.py``), and the
documentation's state diagram is drawn from :data:`TRANSITIONS`, so it cannot drift.

Of the connection's objects, ``.state`` always means this lifecycle on the runtime
side (``Connection.state``); on the facade, ``ws.state`` is the user's data bag and the
lifecycle is ``ws.connection_state``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from . import status
from .errors import WebSocketDisconnect, WebSocketStateError

__all__ = [
    "CLOSE_CODES",
    "TRANSITIONS",
    "Action",
    "ConnectionState",
    "Event",
    "Phase",
    "Receiver",
    "Transition",
    "WebSocketState",
    "truncate_reason",
]


def truncate_reason(reason: str) -> str:
    """``reason`` cut to the 123 bytes of UTF-8 a close frame can carry."""
    data = reason.encode()
    return reason if len(data) <= 123 else data[:123].decode(errors="ignore")


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


class Event(enum.Enum):
    """What happened to a connection: the machine's input."""

    #: The server accepts the handshake (``ws.accept()``, or ``@on_connect`` returned).
    HANDSHAKE_ACCEPTED = "handshake accepted"
    #: The server refuses the handshake (a guard, ``ws.deny()``, ``@on_connect`` raised).
    HANDSHAKE_REFUSED = "handshake refused"
    #: Guards and ``@on_connect`` did not decide within ``handshake_timeout``.
    HANDSHAKE_EXPIRED = "handshake expired"
    #: An owning ``@on_connect`` accepted the connection and then returned.
    OWNER_RETURNED = "owner returned"
    #: The server closes (``ws.close()``, shutdown).
    SERVER_CLOSE = "server close"
    #: The client's close frame (or its disconnect) arrived.
    PEER_CLOSED = "peer closed"
    #: The queued close frame was written.
    CLOSE_SENT = "close sent"
    #: Nothing arrived for ``idle_timeout`` seconds.
    IDLE = "idle"
    #: A frame over ``max_frame_bytes`` arrived.
    FRAME_TOO_LARGE = "frame too large"
    #: The client went on sending a bucket's worth of frames over the rate limit.
    RATE_EXCEEDED = "rate exceeded"
    #: A frame offered to a full outbox under a closing overflow policy.
    SLOW_CONSUMER = "slow consumer"
    #: A send failed: the transport is gone.
    TRANSPORT_FAILED = "transport failed"
    #: wsgate itself failed while serving the connection; no writer is left.
    ABORT = "abort"
    #: The connection's tasks are over, however that happened.
    ENDED = "ended"


class Action(enum.Enum):
    """What the runtime must do after a move, in the order given."""

    #: Send the accept message (the caller's, with its subprotocol and headers).
    SEND_ACCEPT = "send accept"
    #: An owning gateway (no ``@on_message`` handlers): start the reader task that feeds
    #: ``ws.receive*()``. Returned only when the connection is due one.
    START_READER = "start reader"
    #: Start the writer if frames were queued before the accept.
    FLUSH = "flush"
    #: Send the refusal messages (a close, or an HTTP denial) now.
    SEND_REFUSAL = "send refusal"
    #: Send a close frame now, from the calling task (before accept this refuses the
    #: handshake; after a runtime failure no writer is left to send it).
    SEND_CLOSE = "send close"
    #: Queue the close frame behind what is queued; the writer sends it.
    QUEUE_CLOSE = "queue close"
    #: Drop every queued frame (counted as dropped).
    DISCARD_OUTBOX = "discard outbox"
    #: Wake the tasks waiting for a frame or for room: they see the new phase.
    WAKE_WAITERS = "wake waiters"
    #: Cancel every task of the connection.
    CANCEL_TASKS = "cancel tasks"
    #: Count the event in the App's stats (``stats.count(event)``).
    COUNT = "count"


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the table: the phase after the event, and what to do."""

    next: Phase
    actions: tuple[Action, ...] = ()


P, E, A, T = Phase, Event, Action, Transition

_CLOSE_NOW = (A.SEND_CLOSE,)
_PEER_GONE = (A.DISCARD_OUTBOX, A.WAKE_WAITERS)
_TRANSPORT_GONE = (A.DISCARD_OUTBOX, A.WAKE_WAITERS, A.CANCEL_TASKS)
_SAME: dict[Phase, Transition] = {p: T(p) for p in Phase}

#: Every legal move: ``(phase, event) -> Transition``. Anything else raises.
TRANSITIONS: Mapping[tuple[Phase, Event], Transition] = MappingProxyType(
    {
        # -- the handshake ----------------------------------------------------------
        (P.CONNECTING, E.HANDSHAKE_ACCEPTED): T(P.OPEN, (A.SEND_ACCEPT, A.START_READER, A.FLUSH)),
        (P.CONNECTING, E.HANDSHAKE_REFUSED): T(P.CLOSED, (A.SEND_REFUSAL,)),
        (P.CONNECTING, E.HANDSHAKE_EXPIRED): T(P.CLOSED, (A.COUNT, A.SEND_REFUSAL)),
        (P.CONNECTING, E.SERVER_CLOSE): T(P.CLOSED, _CLOSE_NOW),
        (P.CONNECTING, E.PEER_CLOSED): T(P.CLOSED, _PEER_GONE),
        (P.CONNECTING, E.TRANSPORT_FAILED): T(P.CLOSED, _TRANSPORT_GONE),
        (P.CONNECTING, E.ABORT): T(P.CLOSED, _CLOSE_NOW),
        (P.CONNECTING, E.ENDED): T(P.CLOSED),
        # Frames read by @on_connect itself are not limited, nobody is idle before the
        # accept (handshake_timeout bounds it), and a frame offered to a full outbox
        # before the accept is dropped rather than closing an unanswered handshake.
        (P.CONNECTING, E.IDLE): _SAME[P.CONNECTING],
        (P.CONNECTING, E.SLOW_CONSUMER): _SAME[P.CONNECTING],
        (P.CONNECTING, E.FRAME_TOO_LARGE): _SAME[P.CONNECTING],
        (P.CONNECTING, E.RATE_EXCEEDED): _SAME[P.CONNECTING],
        # -- open ---------------------------------------------------------------------
        (P.OPEN, E.SERVER_CLOSE): T(P.CLOSING, (A.QUEUE_CLOSE,)),
        (P.OPEN, E.OWNER_RETURNED): T(P.CLOSING, (A.QUEUE_CLOSE,)),
        (P.OPEN, E.IDLE): T(P.CLOSING, (A.COUNT, A.QUEUE_CLOSE)),
        (P.OPEN, E.FRAME_TOO_LARGE): T(P.CLOSING, (A.COUNT, A.QUEUE_CLOSE)),
        (P.OPEN, E.RATE_EXCEEDED): T(P.CLOSING, (A.COUNT, A.QUEUE_CLOSE)),
        (P.OPEN, E.SLOW_CONSUMER): T(P.CLOSING, (A.COUNT, A.DISCARD_OUTBOX, A.QUEUE_CLOSE)),
        (P.OPEN, E.PEER_CLOSED): T(P.CLOSED, _PEER_GONE),
        (P.OPEN, E.TRANSPORT_FAILED): T(P.CLOSED, _TRANSPORT_GONE),
        (P.OPEN, E.ABORT): T(P.CLOSED, _CLOSE_NOW),
        (P.OPEN, E.ENDED): T(P.CLOSED),
        # -- closing: the close frame is queued ------------------------------------------
        (P.CLOSING, E.CLOSE_SENT): T(P.CLOSED, (A.DISCARD_OUTBOX, A.CANCEL_TASKS)),
        (P.CLOSING, E.PEER_CLOSED): T(P.CLOSED, _PEER_GONE),
        (P.CLOSING, E.TRANSPORT_FAILED): T(P.CLOSED, _TRANSPORT_GONE),
        (P.CLOSING, E.ABORT): T(P.CLOSED, _CLOSE_NOW),
        (P.CLOSING, E.ENDED): T(P.CLOSED),
        # Closing again is not an error: the first close wins.
        (P.CLOSING, E.SERVER_CLOSE): _SAME[P.CLOSING],
        (P.CLOSING, E.OWNER_RETURNED): _SAME[P.CLOSING],
        (P.CLOSING, E.IDLE): _SAME[P.CLOSING],
        (P.CLOSING, E.FRAME_TOO_LARGE): _SAME[P.CLOSING],
        (P.CLOSING, E.RATE_EXCEEDED): _SAME[P.CLOSING],
        (P.CLOSING, E.SLOW_CONSUMER): _SAME[P.CLOSING],
        # -- closed ---------------------------------------------------------------------
        # The close frame may finish sending after the peer left; the writer then ends.
        (P.CLOSED, E.CLOSE_SENT): T(P.CLOSED, (A.DISCARD_OUTBOX, A.CANCEL_TASKS)),
        (P.CLOSED, E.PEER_CLOSED): _SAME[P.CLOSED],
        (P.CLOSED, E.TRANSPORT_FAILED): T(P.CLOSED, (A.CANCEL_TASKS,)),
        (P.CLOSED, E.SERVER_CLOSE): _SAME[P.CLOSED],
        (P.CLOSED, E.OWNER_RETURNED): _SAME[P.CLOSED],
        (P.CLOSED, E.IDLE): _SAME[P.CLOSED],
        (P.CLOSED, E.FRAME_TOO_LARGE): _SAME[P.CLOSED],
        (P.CLOSED, E.RATE_EXCEEDED): _SAME[P.CLOSED],
        (P.CLOSED, E.SLOW_CONSUMER): _SAME[P.CLOSED],
        (P.CLOSED, E.ABORT): _SAME[P.CLOSED],
        (P.CLOSED, E.ENDED): _SAME[P.CLOSED],
    }
)

#: The close code and reason of the events the runtime detects itself. The slow
#: consumer's code depends on the overflow policy (1008 or 1013) and is passed in.
CLOSE_CODES: Mapping[Event, tuple[int, str]] = MappingProxyType(
    {
        E.OWNER_RETURNED: (status.WS_1000_NORMAL_CLOSURE, ""),
        E.IDLE: (status.WS_1001_GOING_AWAY, "idle"),
        E.FRAME_TOO_LARGE: (status.WS_1009_MESSAGE_TOO_BIG, "frame too large"),
        E.RATE_EXCEEDED: (status.WS_1008_POLICY_VIOLATION, "rate limit exceeded"),
        E.SLOW_CONSUMER: (status.WS_1013_TRY_AGAIN_LATER, "slow consumer"),
        E.TRANSPORT_FAILED: (status.WS_1006_ABNORMAL_CLOSURE, ""),
        E.HANDSHAKE_EXPIRED: (status.WS_1013_TRY_AGAIN_LATER, "handshake timeout"),
        E.ENDED: (status.WS_1006_ABNORMAL_CLOSURE, ""),
    }
)

del P, E, A, T


class Receiver(enum.Enum):
    """Who reads from ASGI ``receive``; exactly one reader at any time."""

    #: ``@on_connect`` is running: ``ws.receive*()`` reads straight from ASGI.
    HANDSHAKE = "handshake"
    #: An owning gateway (no ``@on_message`` handlers): once accepted, a reader task
    #: feeds the inbox and ``ws.receive*()`` takes from it (or the owner reads ASGI
    #: itself, as the Engine.IO transport does).
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
_PEER_EVENTS = frozenset({Event.PEER_CLOSED, Event.TRANSPORT_FAILED})
#: The accept's actions when no owning reader is due (a dispatching gateway, or an
#: owner that reads ASGI itself).
_ACCEPT_WITHOUT_READER = tuple(
    a
    for a in TRANSITIONS[Phase.CONNECTING, Event.HANDSHAKE_ACCEPTED].actions
    if a is not Action.START_READER
)


class ConnectionState:
    """One connection's lifecycle: phase, close code and reason, who reads.

    ``owner`` says who reads once the handshake is accepted: the owning gateway's
    reader (``Receiver.OWNER``, a gateway without ``@on_message`` handlers) or the
    runtime's dispatcher. Feed it events with :meth:`handle`; read it through the
    properties. The first close (the server's or the peer's) keeps its code and reason.
    """

    __slots__ = (
        "accepted",
        "close_code",
        "close_reason",
        "owner",
        "peer_left",
        "phase",
        "receiver",
    )

    def __init__(self, *, owner: bool = False) -> None:
        self.phase = Phase.CONNECTING
        #: True once the handshake was accepted (``@on_disconnect`` runs only then).
        self.accepted = False
        #: True once the client's side is gone (close frame received, or transport lost).
        self.peer_left = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.receiver = Receiver.HANDSHAKE
        #: The gateway has no ``@on_message`` handlers: it owns the receive side once
        #: accepted (see :meth:`dispatch_after_handshake`).
        self.owner = owner

    def __repr__(self) -> str:
        return f"<ConnectionState {self.phase.name} code={self.close_code}>"

    # -- the machine -----------------------------------------------------------------

    def handle(self, event: Event, code: int | None = None, reason: str = "") -> tuple[Action, ...]:
        """Apply ``event``: move to the next phase and return the actions to carry out,
        in order. ``code`` and ``reason`` are the close's (defaulting to
        :data:`CLOSE_CODES` for the events the runtime detects). Raises
        :class:`~wsgate.errors.WebSocketStateError` for an event that is not legal in
        the current phase."""
        phase = self.phase
        move = TRANSITIONS.get((phase, event))
        if move is None:
            raise self._illegal(event)
        if event in _PEER_EVENTS:
            self.peer_left = True
        if move.next is phase:
            return move.actions
        self.phase = move.next
        if event is Event.HANDSHAKE_ACCEPTED:
            self.accepted = True
            if self.owner and self.receiver is Receiver.HANDSHAKE:
                self.receiver = Receiver.OWNER
                return move.actions
            return _ACCEPT_WITHOUT_READER
        if self.close_code is None:  # the first close (ours or the peer's) keeps its code
            if code is None:
                code, reason = CLOSE_CODES.get(event, (status.WS_1005_NO_STATUS_RECEIVED, reason))
            self.close_code, self.close_reason = code, truncate_reason(reason)
        return move.actions

    def _illegal(self, event: Event) -> WebSocketStateError:
        if event is Event.HANDSHAKE_ACCEPTED:
            return WebSocketStateError(
                f"cannot accept: the connection is {self.public.name}, not CONNECTING"
            )
        if event in (Event.HANDSHAKE_REFUSED, Event.HANDSHAKE_EXPIRED):
            return WebSocketStateError(
                f"cannot refuse the handshake: the connection is {self.public.name}; "
                "deny() only works before accept()"
            )
        if event is Event.CLOSE_SENT:
            return WebSocketStateError(f"no close frame was queued (state {self.phase.name})")
        return WebSocketStateError(
            f"{event.value!r} is not a legal event while the connection is {self.phase.name}"
        )

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
            code = self.close_code or status.WS_1005_NO_STATUS_RECEIVED
            return WebSocketDisconnect(code, self.close_reason)
        if phase is Phase.OPEN:
            return WebSocketStateError(f"cannot {action}: the connection is open")
        return WebSocketStateError(
            f"cannot {action}: the connection is DISCONNECTED (closed by the server with "
            f"code {self.close_code})"
        )

    # -- who reads ---------------------------------------------------------------------

    def dispatch_after_handshake(self) -> None:
        """``@on_connect`` returned without accepting: the runtime dispatches the
        connection's frames once accepted, whatever the gateway's handlers."""
        self.owner = False

    def hand_receive_to(self, receiver: Receiver) -> None:
        """``@on_connect`` is over: the runtime (or an owning handler's reader) reads
        from now on. Only the handshake's reader can hand over."""
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
