"""The connection lifecycle machine and the outbox, without I/O (as h11 tests its state)."""

import pytest

from wsgate.errors import WebSocketDisconnect, WebSocketStateError
from wsgate.queues import Offer, Outbox, Overflow
from wsgate.state import ConnectionState, Phase, Receiver, WebSocketState


class NoWait:
    """A signal for queues used without tasks: nobody ever waits on it."""

    waiting = False

    async def wait(self) -> None:
        raise AssertionError("no test here waits")

    def set(self) -> None:
        pass


def test_accept_then_server_close_then_close_sent() -> None:
    s = ConnectionState()
    assert (s.phase, s.public, s.accepted) == (Phase.CONNECTING, WebSocketState.CONNECTING, False)
    s.accept()
    assert (s.phase, s.public, s.accepted, s.open) == (
        Phase.OPEN,
        WebSocketState.CONNECTED,
        True,
        True,
    )
    assert s.close(1000, "bye") is True
    assert (s.phase, s.public, s.close_code, s.close_reason) == (
        Phase.CLOSING,
        WebSocketState.DISCONNECTED,
        1000,
        "bye",
    )
    assert s.close(1011, "again") is False  # idempotent: the first close wins
    s.close_sent()
    assert (s.phase, s.close_code) == (Phase.CLOSED, 1000)
    assert s.peer_left is False


def test_the_first_close_keeps_its_code_whoever_closes_second() -> None:
    s = ConnectionState()
    s.accept()
    s.close(1001, "shutdown")
    s.peer_closed(1000, "client")
    assert (s.phase, s.close_code, s.close_reason, s.peer_left) == (
        Phase.CLOSED,
        1001,
        "shutdown",
        True,
    )
    t = ConnectionState()
    t.accept()
    t.peer_closed(4000, "mine")
    assert t.close(1000, "") is False
    assert (t.close_code, t.close_reason) == (4000, "mine")


def test_refusing_and_closing_before_accept() -> None:
    s = ConnectionState()
    s.refuse(1008, "HTTP 403")
    assert (s.phase, s.accepted, s.close_code) == (Phase.CLOSED, False, 1008)
    t = ConnectionState()
    assert t.close(4003, "no") is True
    assert (t.phase, t.accepted) == (Phase.CLOSED, False)


@pytest.mark.parametrize("setup", ["open", "closing", "closed", "refused"])
def test_illegal_moves_raise_and_name_the_state(setup: str) -> None:
    s = ConnectionState()
    if setup != "refused":
        s.accept()
    if setup == "closing":
        s.close(1000, "")
    if setup == "closed":
        s.peer_closed(1000, "")
    if setup == "refused":
        s.refuse(1008, "")
    with pytest.raises(WebSocketStateError, match="cannot accept: the connection is"):
        s.accept()
    with pytest.raises(WebSocketStateError, match="deny\\(\\) only works before accept"):
        s.refuse(1008, "")
    if setup != "closing":
        with pytest.raises(WebSocketStateError, match="no close frame was queued"):
            s.close_sent()


def test_errors_for_actions_tell_what_happened() -> None:
    s = ConnectionState()
    assert "accept() it first" in str(s.error("send"))
    s.accept()
    s.close(1000, "")
    err = s.error("send")
    assert isinstance(err, WebSocketStateError) and "closed by the server with code 1000" in str(err)
    t = ConnectionState()
    t.accept()
    t.peer_closed(1001, "gone")
    left = t.error("receive")
    assert isinstance(left, WebSocketDisconnect) and (left.close_code, left.reason) == (1001, "gone")


def test_ended_without_any_close_is_1006() -> None:
    s = ConnectionState()
    s.accept()
    s.ended()
    assert (s.phase, s.close_code) == (Phase.CLOSED, 1006)
    t = ConnectionState()
    t.accept()
    t.close(1000, "")
    t.ended()
    assert (t.phase, t.close_code) == (Phase.CLOSED, 1000)


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
