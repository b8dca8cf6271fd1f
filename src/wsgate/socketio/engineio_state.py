"""The Engine.IO v4 session state machine, sans-I/O.

Everything that changes an Engine.IO session's state lives here: the open handshake,
heartbeats (the server pings every ``ping_interval``; no pong within ``ping_timeout``
closes the session), messages, the client's close, the upgrade from polling to
WebSocket (probe ping/pong, then the upgrade packet) and the server's close. The I/O
layer feeds it packets and the current time and writes the frames it queues; time is
always passed in, so it is tested without clocks or sockets.

::

    session = EngineIOSession("sid", "polling", ping_interval=25, ping_timeout=20, now=0)
    session.take_outgoing()       # ['0{"sid":"sid","upgrades":["websocket"],...}']
    session.receive(decode_packet("4hello"), now=1)   # [MessageReceived('hello')]
    session.tick(now=25)          # queues '2' (ping); a pong must arrive by 45
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import msgspec

from .engineio_protocol import EngineIOPacket, EngineIOPacketType, encode_packet

__all__ = [
    "TRANSITIONS",
    "EngineIOSession",
    "EngineIOSessionState",
    "SessionEvent",
    "SessionPhase",
    "Transition",
    "MessageReceived",
    "SessionClosed",
    "UpgradeFailed",
    "Upgraded",
]

Frame = str | bytes
T = EngineIOPacketType


class EngineIOSessionState(enum.Enum):
    """Where a session is in its life."""

    OPEN = "open"
    #: Closed by either side (a server close leaves its close packet in ``outgoing``).
    CLOSED = "closed"


class SessionPhase(enum.Enum):
    """The session's place in its life, transport included: the rows of
    :data:`TRANSITIONS`."""

    #: Open over HTTP long-polling.
    POLLING = "polling"
    #: Open over polling while a WebSocket probes to take it over.
    UPGRADING = "upgrading"
    #: Open over a WebSocket.
    WEBSOCKET = "websocket"
    #: Closed by either side.
    CLOSED = "closed"


class SessionEvent(enum.Enum):
    """What moves a session between phases."""

    #: A WebSocket arrived with this session's id.
    UPGRADE_STARTED = "upgrade started"
    #: The upgrade packet arrived on the probing WebSocket.
    UPGRADE_COMPLETED = "upgrade completed"
    #: The probing WebSocket sent something else, or went away.
    UPGRADE_FAILED = "upgrade failed"
    #: The client sent a close packet, or its transport closed.
    TRANSPORT_CLOSED = "transport closed"
    #: The client sent something that is not a packet, or a ping.
    PROTOCOL_ERROR = "protocol error"
    #: No pong within ``ping_timeout``.
    PING_TIMEOUT = "ping timeout"
    #: The server closes the session.
    SERVER_CLOSE = "server close"


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of :data:`TRANSITIONS`: the phase after the event. (What a move does
    besides, queueing or dropping frames and reporting events, is the method's that
    makes it: :meth:`EngineIOSession.close` and the others.)"""

    next: SessionPhase
    actions: tuple[enum.Enum, ...] = ()


def _transitions() -> dict[tuple[SessionPhase, SessionEvent], Transition]:
    P, E = SessionPhase, SessionEvent
    closing = (E.TRANSPORT_CLOSED, E.PROTOCOL_ERROR, E.PING_TIMEOUT, E.SERVER_CLOSE)
    table = {
        (phase, event): Transition(P.CLOSED)
        for phase in (P.POLLING, P.UPGRADING, P.WEBSOCKET)
        for event in closing
    }
    table[P.POLLING, E.UPGRADE_STARTED] = Transition(P.UPGRADING)
    table[P.UPGRADING, E.UPGRADE_COMPLETED] = Transition(P.WEBSOCKET)
    table[P.UPGRADING, E.UPGRADE_FAILED] = Transition(P.POLLING)
    # The probing WebSocket may fail or go away after the session closed.
    table[P.CLOSED, E.UPGRADE_FAILED] = Transition(P.CLOSED)
    return table


#: Every legal move of a session's phase: ``(phase, event) -> Transition``. Anything
#: else raises ``RuntimeError``; closing a closed session is simply ignored.
TRANSITIONS: Mapping[tuple[SessionPhase, SessionEvent], Transition] = MappingProxyType(
    _transitions()
)


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """The client sent a message."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session ended; ``reason`` uses the reference server's words ("transport
    close", "ping timeout", "parse error", "transport error", "forced close")."""

    reason: str


@dataclass(frozen=True, slots=True)
class Upgraded:
    """The upgrade to WebSocket completed: the new transport carries everything now."""


@dataclass(frozen=True, slots=True)
class UpgradeFailed:
    """The upgrading transport sent something else than probe/upgrade: close it."""


Event = MessageReceived | SessionClosed | Upgraded | UpgradeFailed


class EngineIOSession:
    """One Engine.IO session, sans-I/O.

    ``outgoing`` holds encoded frames (``str`` text, ``bytes`` binary) for the current
    transport, bounded by ``capacity`` for :meth:`offer`; ``on_output`` (optional) is
    called whenever frames are queued, so the I/O layer can wake a waiting writer.
    Illegal moves (sending on a closed session, an upgrade of a WebSocket session) raise
    ``RuntimeError``.
    """

    __slots__ = (
        "_ping_deadline",
        "_ping_due",
        "_refreshed",
        "_transport",
        "capacity",
        "close_reason",
        "max_payload",
        "on_output",
        "outgoing",
        "phase",
        "ping_interval",
        "ping_timeout",
        "sid",
    )

    def __init__(
        self,
        sid: str,
        transport: str,
        *,
        ping_interval: float,
        ping_timeout: float,
        now: float,
        max_payload: int = 1_000_000,
        capacity: int = 1024,
        upgrades: bool = True,
        on_output: Callable[[], None] | None = None,
    ) -> None:
        if transport not in ("polling", "websocket"):
            raise ValueError(f"unknown transport {transport!r}")
        self.sid = sid
        #: Where the session is (:class:`SessionPhase`); moved only by :meth:`_move`.
        self.phase = SessionPhase.POLLING if transport == "polling" else SessionPhase.WEBSOCKET
        self._transport = transport
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.capacity = capacity
        self.close_reason: str | None = None
        self.outgoing: list[Frame] = []
        self.on_output = on_output
        self._ping_due: float | None = now + ping_interval
        self._ping_deadline: float | None = None
        self._refreshed = False
        handshake = {
            "sid": sid,
            "upgrades": ["websocket"] if transport == "polling" and upgrades else [],
            "pingInterval": round(ping_interval * 1000),
            "pingTimeout": round(ping_timeout * 1000),
            "maxPayload": max_payload,
        }
        self._queue(EngineIOPacket(T.OPEN, msgspec.json.encode(handshake).decode()))

    # -- the phase -----------------------------------------------------------------------

    def _move(self, event: SessionEvent) -> Transition:
        move = TRANSITIONS.get((self.phase, event))
        if move is None:
            raise RuntimeError(
                f"{event.value!r} is not a legal event while the session is {self.phase.value}"
            )
        self.phase = move.next
        if move.next is SessionPhase.WEBSOCKET:
            self._transport = "websocket"
        return move

    @property
    def state(self) -> EngineIOSessionState:
        """OPEN or CLOSED."""
        if self.phase is SessionPhase.CLOSED:
            return EngineIOSessionState.CLOSED
        return EngineIOSessionState.OPEN

    @property
    def transport(self) -> str:
        """``"polling"`` or ``"websocket"``: what carries the session (the last one, once
        closed)."""
        return self._transport

    @property
    def upgrading(self) -> bool:
        """True while a WebSocket probes to take the session over."""
        return self.phase is SessionPhase.UPGRADING

    # -- output ------------------------------------------------------------------------

    def _queue(self, packet: EngineIOPacket) -> None:
        self.outgoing.append(encode_packet(packet))
        if self.on_output is not None:
            self.on_output()

    def send(self, data: str | bytes) -> None:
        """Queue a message (no bound: the caller applies backpressure).

        Raises ``RuntimeError`` if the session is not open."""
        if self.state is not EngineIOSessionState.OPEN:
            raise RuntimeError(f"cannot send: the session is {self.state.value}")
        self._queue(EngineIOPacket(T.MESSAGE, data))

    def offer(self, frame: Frame) -> bool:
        """Queue an already-encoded frame unless ``capacity`` frames are waiting (or
        the session is not open). Never waits; False means it was not queued."""
        if self.state is not EngineIOSessionState.OPEN or len(self.outgoing) >= self.capacity:
            return False
        self.outgoing.append(frame)
        if self.on_output is not None:
            self.on_output()
        return True

    def take_outgoing(self) -> list[Frame]:
        """Every queued frame, in order; the queue is emptied."""
        frames = self.outgoing
        self.outgoing = []
        return frames

    # -- input -------------------------------------------------------------------------

    @property
    def awaiting_pong(self) -> bool:
        """True between a ping and its pong: only then, and for a pong, does
        :meth:`receive` use ``now``."""
        return self._ping_deadline is not None

    def receive_message(self, now: float) -> bool:
        """A MESSAGE packet from the client: :meth:`receive` without building the packet
        or the event (the path of the traffic). True if the application gets its data
        (False once closed)."""
        if self.phase is SessionPhase.CLOSED:
            return False
        if self._ping_deadline is not None and not self._refreshed:
            self._ping_deadline = now + self.ping_timeout
            self._refreshed = True
        return True

    def receive(self, packet: EngineIOPacket, now: float) -> list[Event]:
        """A packet from the client on the current transport (``now`` matters only for a
        pong and while :attr:`awaiting_pong`)."""
        if self.state is EngineIOSessionState.CLOSED:
            return []
        if self._ping_deadline is not None and not self._refreshed and packet.type is not T.PONG:
            # Any traffic proves the client alive once per heartbeat, as the reference
            # server's refresh of its ping timer does.
            self._ping_deadline = now + self.ping_timeout
            self._refreshed = True
        kind = packet.type
        if kind is T.PONG:
            self._ping_deadline = None
            self._ping_due = now + self.ping_interval
            return []
        if kind is T.PING:
            return self._close("transport error", SessionEvent.PROTOCOL_ERROR)
        if kind is T.MESSAGE:
            return [MessageReceived(packet.data)]
        if kind is T.CLOSE:
            return self._close("transport close")
        return []  # open, upgrade, noop: nothing to do on the current transport

    def protocol_error(self) -> list[Event]:
        """The transport received something that is not a packet."""
        return self._close("parse error", SessionEvent.PROTOCOL_ERROR)

    def transport_closed(self, reason: str = "transport close") -> list[Event]:
        """The transport went away (the WebSocket closed, a poll was abandoned)."""
        return self._close(reason)

    # -- time --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do next (None once closed)."""
        if self.state is EngineIOSessionState.CLOSED:
            return None
        if self._ping_deadline is not None:
            return self._ping_deadline
        return self._ping_due

    def tick(self, now: float) -> list[Event]:
        """Send the ping that is due, or close the session if the pong is late."""
        if self.state is EngineIOSessionState.CLOSED:
            return []
        if self._ping_deadline is not None:
            if now >= self._ping_deadline:
                return self._close("ping timeout", SessionEvent.PING_TIMEOUT)
            return []
        if self._ping_due is not None and now >= self._ping_due:
            # The pong is due ping_timeout after the ping was due, not after this
            # (possibly late) tick: the reference server's timers, whatever the caller's
            # lag (a polling client sees the ping at its next poll either way).
            self._ping_deadline = self._ping_due + self.ping_timeout
            self._ping_due = None
            self._refreshed = False
            if self.state is EngineIOSessionState.OPEN:
                self._queue(EngineIOPacket(T.PING))
        return []

    # -- upgrade -----------------------------------------------------------------------

    def can_upgrade(self) -> bool:
        """True if a WebSocket may take this session over now."""
        return (self.phase, SessionEvent.UPGRADE_STARTED) in TRANSITIONS

    def start_upgrade(self) -> None:
        """A WebSocket arrived with this session's id. Raises ``RuntimeError`` if the
        session cannot be upgraded (see :meth:`can_upgrade`)."""
        if not self.can_upgrade():
            raise RuntimeError("this session cannot be upgraded")
        self._move(SessionEvent.UPGRADE_STARTED)

    def upgrade_packet(self, packet: EngineIOPacket) -> tuple[list[Frame], list[Event]]:
        """A packet on the upgrading WebSocket: frames to write to it, and events.

        ``2probe`` is answered ``3probe``; ``5`` completes the upgrade (the session's
        queued frames then belong to the WebSocket); anything else fails the upgrade.
        """
        phase = self.phase
        if phase is not SessionPhase.UPGRADING and phase is not SessionPhase.CLOSED:
            raise RuntimeError("no upgrade in progress")
        if phase is SessionPhase.UPGRADING:
            if packet.type is T.PING and packet.data == "probe":
                return [encode_packet(EngineIOPacket(T.PONG, "probe"))], []
            if packet.type is T.UPGRADE:
                self._move(SessionEvent.UPGRADE_COMPLETED)
                return [], [Upgraded()]
        self._move(SessionEvent.UPGRADE_FAILED)
        return [], [UpgradeFailed()]

    def abandon_upgrade(self) -> None:
        """The upgrading WebSocket went away before the upgrade packet."""
        self._move(SessionEvent.UPGRADE_FAILED)

    # -- closing -----------------------------------------------------------------------

    def close(self, reason: str = "forced close") -> list[Event]:
        """The server closes the session. Over polling a close packet is queued for the
        next poll; a WebSocket is simply closed (as the reference server does)."""
        if self.state is not EngineIOSessionState.OPEN:
            return []
        if self.transport == "polling":
            self._queue(EngineIOPacket(T.CLOSE))
        return self._close(reason, SessionEvent.SERVER_CLOSE, keep_output=True)

    def _close(
        self,
        reason: str,
        event: SessionEvent = SessionEvent.TRANSPORT_CLOSED,
        keep_output: bool = False,
    ) -> list[Event]:
        if self.phase is SessionPhase.CLOSED:
            return []
        self._move(event)
        self.close_reason = reason
        self._ping_due = self._ping_deadline = None
        if not keep_output:
            self.outgoing.clear()
        return [SessionClosed(reason)]
