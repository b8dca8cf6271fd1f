"""The connection lifecycle machine and the outbox, without I/O (as h11 tests its state)."""

import pytest

from wsgate.errors import WebSocketDisconnect, WebSocketStateError
from wsgate.queues import Offer, Outbox, Overflow
from wsgate.state import (
    TRANSITIONS,
    Action,
    ConnectionState,
    Event,
    Phase,
    Receiver,
    WebSocketState,
)


class NoWait:
    """A signal for queues used without tasks: nobody ever waits on it."""

    waiting = False

    async def wait(self) -> None:
        raise AssertionError("no test here waits")

    def set(self) -> None:
        pass


A, E, P = Action, Event, Phase


def test_accept_then_server_close_then_close_sent() -> None:
    s = ConnectionState()
    assert (s.phase, s.public, s.accepted) == (P.CONNECTING, WebSocketState.CONNECTING, False)
    assert s.handle(E.HANDSHAKE_ACCEPTED) == (A.SEND_ACCEPT, A.FLUSH)
    assert (s.phase, s.public, s.accepted, s.open) == (P.OPEN, WebSocketState.CONNECTED, True, True)
    assert s.handle(E.SERVER_CLOSE, 1000, "bye") == (A.QUEUE_CLOSE,)
    assert (s.phase, s.public, s.close_code, s.close_reason) == (
        P.CLOSING,
        WebSocketState.DISCONNECTED,
        1000,
        "bye",
    )
    assert s.handle(E.SERVER_CLOSE, 1011, "again") == ()  # idempotent: the first close wins
    assert s.handle(E.CLOSE_SENT) == (A.DISCARD_OUTBOX, A.CANCEL_TASKS)
    assert (s.phase, s.close_code) == (P.CLOSED, 1000)
    assert s.peer_left is False


def test_an_owning_gateway_gets_a_reader_once_accepted() -> None:
    s = ConnectionState(owner=True)
    assert s.handle(E.HANDSHAKE_ACCEPTED) == (A.SEND_ACCEPT, A.START_READER, A.FLUSH)
    assert s.receiver is Receiver.OWNER
    # An owner that reads ASGI itself (took the receive side before accepting) gets none.
    t = ConnectionState(owner=True)
    t.hand_receive_to(Receiver.OWNER)
    assert A.START_READER not in t.handle(E.HANDSHAKE_ACCEPTED)
    # @on_connect returned without accepting: the runtime dispatches instead.
    u = ConnectionState(owner=True)
    u.dispatch_after_handshake()
    assert A.START_READER not in u.handle(E.HANDSHAKE_ACCEPTED)
    assert u.receiver is Receiver.HANDSHAKE


def test_the_first_close_keeps_its_code_whoever_closes_second() -> None:
    s = ConnectionState()
    s.handle(E.HANDSHAKE_ACCEPTED)
    s.handle(E.SERVER_CLOSE, 1001, "shutdown")
    assert s.handle(E.PEER_CLOSED, 1000, "client") == (A.DISCARD_OUTBOX, A.WAKE_WAITERS)
    assert (s.phase, s.close_code, s.close_reason, s.peer_left) == (
        P.CLOSED,
        1001,
        "shutdown",
        True,
    )
    t = ConnectionState()
    t.handle(E.HANDSHAKE_ACCEPTED)
    t.handle(E.PEER_CLOSED, 4000, "mine")
    assert t.handle(E.SERVER_CLOSE, 1000, "") == ()
    assert (t.close_code, t.close_reason) == (4000, "mine")


@pytest.mark.parametrize(
    ("event", "code", "reason", "actions"),
    [
        (E.IDLE, 1001, "idle", (A.COUNT, A.QUEUE_CLOSE)),
        (E.FRAME_TOO_LARGE, 1009, "frame too large", (A.COUNT, A.QUEUE_CLOSE)),
        (E.RATE_EXCEEDED, 1008, "rate limit exceeded", (A.COUNT, A.QUEUE_CLOSE)),
        (E.SLOW_CONSUMER, 1013, "slow consumer", (A.COUNT, A.DISCARD_OUTBOX, A.QUEUE_CLOSE)),
        (E.OWNER_RETURNED, 1000, "", (A.QUEUE_CLOSE,)),
    ],
)
def test_the_machine_decides_how_the_runtime_closes(
    event: Event, code: int, reason: str, actions: tuple[Action, ...]
) -> None:
    s = ConnectionState()
    s.handle(E.HANDSHAKE_ACCEPTED)
    assert s.handle(event) == actions
    assert (s.phase, s.close_code, s.close_reason) == (P.CLOSING, code, reason)
    # The same event once closing changes nothing; before the accept it is ignored.
    assert s.handle(event) == ()
    t = ConnectionState()
    if event is not E.OWNER_RETURNED:
        assert t.handle(event) == ()
        assert t.phase is P.CONNECTING


def test_a_failed_transport_ends_the_connection_as_the_peer_leaving() -> None:
    s = ConnectionState()
    s.handle(E.HANDSHAKE_ACCEPTED)
    assert s.handle(E.TRANSPORT_FAILED) == (A.DISCARD_OUTBOX, A.WAKE_WAITERS, A.CANCEL_TASKS)
    assert (s.phase, s.close_code, s.peer_left) == (P.CLOSED, 1006, True)


def test_an_abort_sends_the_close_itself_and_the_peer_has_not_left() -> None:
    for setup in (None, E.HANDSHAKE_ACCEPTED):
        s = ConnectionState()
        if setup is not None:
            s.handle(setup)
        assert s.handle(E.ABORT, 1011, "internal error") == (A.SEND_CLOSE,)
        assert (s.phase, s.close_code, s.peer_left) == (P.CLOSED, 1011, False)
        assert s.handle(E.ABORT, 1011, "again") == ()


def test_refusing_expiring_and_closing_before_accept() -> None:
    s = ConnectionState()
    assert s.handle(E.HANDSHAKE_REFUSED, 1008, "HTTP 403") == (A.SEND_REFUSAL,)
    assert (s.phase, s.accepted, s.close_code) == (P.CLOSED, False, 1008)
    t = ConnectionState()
    assert t.handle(E.SERVER_CLOSE, 4003, "no") == (A.SEND_CLOSE,)
    assert (t.phase, t.accepted) == (P.CLOSED, False)
    u = ConnectionState()
    assert u.handle(E.HANDSHAKE_EXPIRED) == (A.COUNT, A.SEND_REFUSAL)
    assert (u.phase, u.close_code) == (P.CLOSED, 1013)


@pytest.mark.parametrize("setup", ["open", "closing", "closed", "refused"])
def test_illegal_moves_raise_and_name_the_state(setup: str) -> None:
    s = ConnectionState()
    if setup != "refused":
        s.handle(E.HANDSHAKE_ACCEPTED)
    if setup == "closing":
        s.handle(E.SERVER_CLOSE, 1000, "")
    if setup == "closed":
        s.handle(E.PEER_CLOSED, 1000, "")
    if setup == "refused":
        s.handle(E.HANDSHAKE_REFUSED, 1008, "")
    phase = s.phase
    with pytest.raises(WebSocketStateError, match="cannot accept: the connection is"):
        s.handle(E.HANDSHAKE_ACCEPTED)
    with pytest.raises(WebSocketStateError, match="deny\\(\\) only works before accept"):
        s.handle(E.HANDSHAKE_REFUSED, 1008, "")
    if setup == "open":
        with pytest.raises(WebSocketStateError, match="no close frame was queued"):
            s.handle(E.CLOSE_SENT)
    assert s.phase is phase  # an illegal move changes nothing


def test_every_phase_answers_every_runtime_event() -> None:
    """Events the runtime detects on its own (a sweep, a limit, a send) may arrive in any
    phase: the table has an answer for each, so none of them can raise mid-connection."""
    runtime_events = [
        E.PEER_CLOSED,
        E.TRANSPORT_FAILED,
        E.IDLE,
        E.FRAME_TOO_LARGE,
        E.RATE_EXCEEDED,
        E.SLOW_CONSUMER,
        E.SERVER_CLOSE,
        E.ABORT,
        E.ENDED,
    ]
    missing = [(p, e) for p in Phase for e in runtime_events if (p, e) not in TRANSITIONS]
    assert missing == []
    assert all(t.next >= p for (p, _e), t in TRANSITIONS.items())  # never back


def test_errors_for_actions_tell_what_happened() -> None:
    s = ConnectionState()
    assert "accept() it first" in str(s.error("send"))
    s.handle(E.HANDSHAKE_ACCEPTED)
    s.handle(E.SERVER_CLOSE, 1000, "")
    err = s.error("send")
    assert isinstance(err, WebSocketStateError) and "closed by the server with code 1000" in str(err)
    t = ConnectionState()
    t.handle(E.HANDSHAKE_ACCEPTED)
    t.handle(E.PEER_CLOSED, 1001, "gone")
    left = t.error("receive")
    assert isinstance(left, WebSocketDisconnect) and (left.close_code, left.reason) == (1001, "gone")


def test_ended_without_any_close_is_1006() -> None:
    s = ConnectionState()
    s.handle(E.HANDSHAKE_ACCEPTED)
    s.handle(E.ENDED)
    assert (s.phase, s.close_code) == (P.CLOSED, 1006)
    t = ConnectionState()
    t.handle(E.HANDSHAKE_ACCEPTED)
    t.handle(E.SERVER_CLOSE, 1000, "")
    t.handle(E.ENDED)
    assert (t.phase, t.close_code) == (P.CLOSED, 1000)


def test_the_receive_side_is_handed_over_once() -> None:
    s = ConnectionState()
    assert s.receiver is Receiver.HANDSHAKE
    s.check_receive()
    s.hand_receive_to(Receiver.RUNTIME)
    with pytest.raises(WebSocketStateError, match="runtime reads every frame"):
        s.check_receive()
    with pytest.raises(WebSocketStateError, match="already handed"):
        s.hand_receive_to(Receiver.OWNER)


def msg(i: int) -> dict[str, object]:
    return {"type": "websocket.send", "text": str(i)}


def texts(box: Outbox) -> list[object]:
    return [m["text"] for m in box.take()]


@pytest.mark.parametrize(
    ("policy", "outcome", "kept"),
    [
        (Overflow.DROP_NEWEST, Offer.DROPPED, ["0", "1"]),
        (Overflow.DROP_OLDEST, Offer.REPLACED, ["1", "2"]),
        (Overflow.CLOSE, Offer.SLOW, ["0", "1"]),
        (Overflow.CLOSE_POLICY, Offer.SLOW, ["0", "1"]),
    ],
)
def test_each_overflow_policy_on_the_outbox_alone(
    policy: Overflow, outcome: Offer, kept: list[str]
) -> None:
    box = Outbox(2, NoWait)
    assert box.offer(msg(0), policy) is Offer.QUEUED
    assert box.offer(msg(1), policy) is Offer.QUEUED
    assert box.full
    assert box.offer(msg(2), policy) is outcome
    assert texts(box) == kept


def test_frames_in_flight_count_against_the_capacity() -> None:
    box = Outbox(2, NoWait)
    box.offer(msg(0), Overflow.DROP_NEWEST)
    box.offer(msg(1), Overflow.DROP_NEWEST)
    batch = box.take()
    assert len(batch) == 2 and len(box) == 2 and not box  # held by the writer, unsent
    # Nothing queued to drop: DROP_OLDEST drops the new frame.
    assert box.offer(msg(2), Overflow.DROP_OLDEST) is Offer.DROPPED
    box.sent_one()
    assert box.offer(msg(3), Overflow.DROP_NEWEST) is Offer.QUEUED
    assert box.discard() == 2  # one in flight, one queued
    assert len(box) == 0
    box.sent_one()  # a send that completes after the discard does not go negative
    assert len(box) == 0
