"""The sans-I/O Engine.IO and Socket.IO codecs and the Engine.IO session state machine,
without sockets or clocks."""

from __future__ import annotations

import msgspec
import pytest

from wsgate.socketio.engineio_protocol import (
    EngineIOPacket,
    EngineIOPacketType,
    EngineIOProtocolError,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)
from wsgate.socketio.engineio_state import (
    EngineIOSession,
    EngineIOSessionState,
    MessageReceived,
    SessionClosed,
    Upgraded,
    UpgradeFailed,
)
from wsgate.socketio.socketio_protocol import (
    SocketIODecoder,
    SocketIOPacket,
    SocketIOPacketType,
    SocketIOProtocolError,
    encode_reply,
    to_wire_args,
)
from wsgate.socketio.socketio_protocol import (
    encode_packet as sio_encode,
)

E = EngineIOPacketType
S = SocketIOPacketType


# -- Engine.IO packets ---------------------------------------------------------------


def test_engineio_packets_round_trip() -> None:
    for packet, frame in [
        (EngineIOPacket(E.MESSAGE, "hello"), "4hello"),
        (EngineIOPacket(E.PING, "probe"), "2probe"),
        (EngineIOPacket(E.PONG), "3"),
        (EngineIOPacket(E.CLOSE), "1"),
        (EngineIOPacket(E.NOOP), "6"),
        (EngineIOPacket(E.MESSAGE, b"\x00\x01"), b"\x00\x01"),
    ]:
        assert encode_packet(packet) == frame
        assert decode_packet(frame) == packet


def test_engineio_bad_packets_raise() -> None:
    for frame in ["", "9", "x", "b"]:
        with pytest.raises(EngineIOProtocolError):
            decode_packet(frame)


def test_engineio_payload_with_binary() -> None:
    packets = [
        EngineIOPacket(E.MESSAGE, "hello"),
        EngineIOPacket(E.MESSAGE, b"\x01\x02\x03\x04"),
        EngineIOPacket(E.PING),
    ]
    payload = encode_payload(packets)
    assert payload == "4hello\x1ebAQIDBA==\x1e2"
    assert decode_payload(payload) == packets
    assert encode_payload(["4a", b"\xff"]) == "4a\x1eb/w=="


def test_engineio_payload_errors() -> None:
    with pytest.raises(EngineIOProtocolError):
        decode_payload("4ok\x1e")  # an empty packet after the separator
    with pytest.raises(EngineIOProtocolError):
        decode_payload("b!!!")
    with pytest.raises(EngineIOProtocolError):
        decode_payload("7x")


# -- Socket.IO packets ---------------------------------------------------------------


def _decode_all(frames: list[str | bytes]) -> SocketIOPacket:
    decoder = SocketIODecoder()
    out = [decoder.feed(f) for f in frames]
    assert all(p is None for p in out[:-1])
    assert out[-1] is not None
    return out[-1]


def test_socketio_encode_shapes() -> None:
    assert sio_encode(SocketIOPacket(S.CONNECT, "/", {"sid": "x"})) == ['0{"sid":"x"}']
    assert sio_encode(SocketIOPacket(S.CONNECT, "/admin")) == ["0/admin,"]
    assert sio_encode(SocketIOPacket(S.EVENT, "/", ["hi", 1, 2])) == ['2["hi",1,2]']
    assert sio_encode(SocketIOPacket(S.EVENT, "/chat", ["hi"], 12)) == ['2/chat,12["hi"]']
    assert sio_encode(SocketIOPacket(S.ACK, "/", [None], 3)) == ["33[null]"]
    assert sio_encode(SocketIOPacket(S.DISCONNECT, "/x")) == ["1/x,"]
    assert sio_encode(SocketIOPacket(S.CONNECT_ERROR, "/", {"message": "no"})) == [
        '4{"message":"no"}'
    ]


def test_socketio_binary_attachments_anywhere() -> None:
    data = ["up", {"a": b"\x01", "b": [b"\x02", 3]}, b"\x03"]
    frames = sio_encode(SocketIOPacket(S.EVENT, "/n", data, 4))
    assert frames[0] == (
        '53-/n,4["up",{"a":{"_placeholder":true,"num":0},'
        '"b":[{"_placeholder":true,"num":1},3]},{"_placeholder":true,"num":2}]'
    )
    assert frames[1:] == [b"\x01", b"\x02", b"\x03"]
    packet = _decode_all(frames)
    assert packet.type is S.EVENT and packet.namespace == "/n" and packet.id == 4
    assert packet.data == data
    ack = sio_encode(SocketIOPacket(S.ACK, "/", [b"z"], 9))
    assert ack == ['61-9[{"_placeholder":true,"num":0}]', b"z"]
    assert _decode_all(ack).type is S.ACK


def test_socketio_decode_text_packets() -> None:
    p = _decode_all(['2/chat,17["msg",{"x":1}]'])
    assert (p.type, p.namespace, p.id, p.data) == (S.EVENT, "/chat", 17, ["msg", {"x": 1}])
    p = _decode_all(['0{"token":"t"}'])
    assert (p.type, p.namespace, p.data) == (S.CONNECT, "/", {"token": "t"})
    p = _decode_all(["0/admin,"])
    assert (p.type, p.namespace, p.data) == (S.CONNECT, "/admin", None)
    assert _decode_all(["1"]).type is S.DISCONNECT
    assert _decode_all(["3/a,5[1,2]"]).data == [1, 2]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "9",
        "x",
        '2["connect"]',  # reserved event name
        "2[]",
        '2{"a":1}',
        "2[1",  # invalid JSON
        "0[1]",  # CONNECT payload must be an object
        '1{"a":1}',  # DISCONNECT carries nothing
        "3{}",  # ACK payload must be an array
        '5["x"]',  # no attachment count
        '50-["x"]',
        '511-["x"]',  # more than 10 attachments
        "2/chat,",  # an EVENT with a namespace and nothing after it
        "2/chat",  # a namespace without its comma
        "212",  # an ack id and no payload
        '2/a,7["x"',  # truncated JSON after a namespace and an ack id
        "3/a,5{}",  # ACK payload must be an array, after a namespace and an id
    ],
)
def test_socketio_malformed_packets_raise(text: str) -> None:
    with pytest.raises(SocketIOProtocolError):
        SocketIODecoder().feed(text)


def test_socketio_decoder_sequence_errors() -> None:
    decoder = SocketIODecoder()
    with pytest.raises(SocketIOProtocolError):
        decoder.feed(b"unexpected")
    assert decoder.feed('51-["x",{"_placeholder":true,"num":0}]') is None
    assert decoder.waiting
    with pytest.raises(SocketIOProtocolError):
        decoder.feed('2["y"]')
    bad = SocketIODecoder()
    bad.feed('51-["x",{"_placeholder":true,"num":5}]')
    with pytest.raises(SocketIOProtocolError):
        bad.feed(b"data")


@pytest.mark.parametrize(
    ("values", "plain"),
    [
        ([None], True),
        (["ok", 1, 2.5, True, {"nested": [1, {"a": "b"}]}], True),
        ([(1, 2)], True),  # a tuple goes as an array
        ([b"\x00"], False),  # binary: an attachment
        ([{"a": [b"\x01"]}], False),
        ([{1: "int key"}], False),  # converted by to_wire_args first
    ],
)
@pytest.mark.parametrize("namespace", ["/", "/chat"])
def test_reply_frames_are_those_of_the_packet(
    values: list[object], plain: bool, namespace: str
) -> None:
    """A handler's return value as ACK frames: the fast encoder takes plain JSON values
    and writes exactly what the full encoder writes; anything else it leaves to it."""
    head = "43" if namespace == "/" else f"43{namespace},"
    full = sio_encode(SocketIOPacket(S.ACK, namespace, to_wire_args(values), 7))
    fast = encode_reply(f"{head}7", values)
    if plain:
        assert fast == ["4" + str(full[0])]
    else:
        assert fast is None


def test_to_wire_args_keeps_bytes_and_converts_structs() -> None:
    class Point(msgspec.Struct):
        x: int
        raw: bytes

    assert to_wire_args([Point(1, b"\x00"), "s"]) == [{"x": 1, "raw": b"\x00"}, "s"]


# -- the Engine.IO session -----------------------------------------------------------


def _session(transport: str = "polling") -> EngineIOSession:
    return EngineIOSession("abc", transport, ping_interval=25.0, ping_timeout=20.0, now=0.0)


def test_session_open_packet() -> None:
    s = _session()
    (frame,) = s.take_outgoing()
    assert isinstance(frame, str) and frame[0] == "0"
    assert msgspec.json.decode(frame[1:]) == {
        "sid": "abc",
        "upgrades": ["websocket"],
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxPayload": 1_000_000,
    }
    ws = _session("websocket")
    assert msgspec.json.decode(ws.take_outgoing()[0][1:])["upgrades"] == []


def test_session_heartbeat_and_timeout() -> None:
    s = _session()
    s.take_outgoing()
    assert s.next_deadline() == 25.0
    assert s.tick(10.0) == [] and s.take_outgoing() == []
    assert s.tick(25.0) == []
    assert s.take_outgoing() == ["2"]
    assert s.next_deadline() == 45.0
    assert s.receive(EngineIOPacket(E.PONG), 30.0) == []
    assert s.next_deadline() == 55.0
    s.tick(55.0)
    assert s.take_outgoing() == ["2"]
    assert s.tick(74.9) == []
    assert s.tick(75.0) == [SessionClosed("ping timeout")]
    assert s.state is EngineIOSessionState.CLOSED
    assert s.next_deadline() is None


def test_session_pong_deadline_runs_from_when_the_ping_was_due() -> None:
    # A late tick (a sweep that runs every so often) queues the ping late, but the pong
    # is still due ping_timeout after the ping was: the reference server's timers.
    s = _session()
    s.take_outgoing()
    assert s.tick(25.3) == []
    assert s.take_outgoing() == ["2"]
    assert s.next_deadline() == 45.0
    assert s.tick(45.0) == [SessionClosed("ping timeout")]


def test_session_traffic_refreshes_the_ping_timeout_once() -> None:
    s = _session()
    s.tick(25.0)
    assert s.receive(EngineIOPacket(E.MESSAGE, "x"), 40.0) == [MessageReceived("x")]
    assert s.next_deadline() == 60.0  # refreshed by the message
    s.receive(EngineIOPacket(E.MESSAGE, "y"), 50.0)
    assert s.next_deadline() == 60.0  # only once per heartbeat


def test_a_message_refreshes_the_ping_timeout_once_on_the_fast_path_too() -> None:
    s = _session()
    s.tick(25.0)
    assert s.receive_message(40.0)
    assert s.next_deadline() == 60.0
    assert s.receive_message(50.0)
    assert s.next_deadline() == 60.0
    s.close()
    assert not s.receive_message(55.0)  # closed: the application gets nothing


def test_session_client_ping_and_close() -> None:
    s = _session()
    assert s.receive(EngineIOPacket(E.PING), 1.0) == [SessionClosed("transport error")]
    s = _session()
    assert s.receive(EngineIOPacket(E.CLOSE), 1.0) == [SessionClosed("transport close")]
    assert s.receive(EngineIOPacket(E.MESSAGE, "late"), 2.0) == []
    with pytest.raises(RuntimeError):
        s.send("x")


def test_session_server_close_keeps_the_close_packet() -> None:
    s = _session()
    s.take_outgoing()
    s.send("bye")
    assert s.close() == [SessionClosed("forced close")]
    assert s.take_outgoing() == ["4bye", "1"]
    assert s.close() == []
    ws = _session("websocket")
    ws.take_outgoing()
    ws.send("bye")
    assert ws.close() == [SessionClosed("forced close")]
    assert ws.take_outgoing() == ["4bye"]  # the WebSocket itself is closed, no packet


def test_session_offer_is_bounded() -> None:
    s = EngineIOSession("a", "polling", ping_interval=1, ping_timeout=1, now=0, capacity=2)
    woken = []
    s.on_output = lambda: woken.append(1)
    s.take_outgoing()
    assert s.offer("4a") and s.offer("4b")
    assert not s.offer("4c")
    assert s.take_outgoing() == ["4a", "4b"] and len(woken) == 2


def test_session_upgrade() -> None:
    s = _session()
    s.take_outgoing()
    assert s.can_upgrade()
    s.start_upgrade()
    assert not s.can_upgrade()
    frames, events = s.upgrade_packet(EngineIOPacket(E.PING, "probe"))
    assert frames == ["3probe"] and events == []
    s.send("during")
    frames, events = s.upgrade_packet(EngineIOPacket(E.UPGRADE))
    assert events == [Upgraded()] and s.transport == "websocket"
    assert s.take_outgoing() == ["4during"]
    with pytest.raises(RuntimeError):
        s.start_upgrade()


def test_session_failed_upgrade() -> None:
    s = _session()
    s.start_upgrade()
    assert s.upgrade_packet(EngineIOPacket(E.MESSAGE, "x")) == ([], [UpgradeFailed()])
    assert s.transport == "polling" and s.can_upgrade()
    with pytest.raises(RuntimeError):
        s.upgrade_packet(EngineIOPacket(E.UPGRADE))
    with pytest.raises(RuntimeError):
        _session("websocket").start_upgrade()


def test_session_parse_error() -> None:
    assert _session().protocol_error() == [SessionClosed("parse error")]


def test_session_phases_follow_the_table_through_an_upgrade() -> None:
    from wsgate.socketio.engineio_state import TRANSITIONS, SessionEvent, SessionPhase

    s = _session()
    assert (s.phase, s.transport, s.upgrading) == (SessionPhase.POLLING, "polling", False)
    s.start_upgrade()
    assert (s.phase, s.upgrading) == (SessionPhase.UPGRADING, True)
    assert not s.can_upgrade()  # a second WebSocket cannot take it over
    frames, events = s.upgrade_packet(EngineIOPacket(E.PING, "probe"))
    assert (frames, events) == (["3probe"], [])
    assert s.upgrade_packet(EngineIOPacket(E.UPGRADE)) == ([], [Upgraded()])
    assert (s.phase, s.transport, s.upgrading) == (SessionPhase.WEBSOCKET, "websocket", False)
    with pytest.raises(RuntimeError, match="cannot be upgraded"):
        s.start_upgrade()
    # Every open phase can close, and a closed session moves nowhere but an upgrade's end.
    for phase in (SessionPhase.POLLING, SessionPhase.UPGRADING, SessionPhase.WEBSOCKET):
        assert TRANSITIONS[phase, SessionEvent.PING_TIMEOUT].next is SessionPhase.CLOSED
    assert {e for (p, e) in TRANSITIONS if p is SessionPhase.CLOSED} == {
        SessionEvent.UPGRADE_FAILED
    }


def test_an_upgrade_fails_back_to_polling_and_a_session_closed_meanwhile_fails_it() -> None:
    from wsgate.socketio.engineio_state import SessionPhase

    s = _session()
    s.start_upgrade()
    assert s.upgrade_packet(EngineIOPacket(E.MESSAGE, "x")) == ([], [UpgradeFailed()])
    assert (s.phase, s.transport) == (SessionPhase.POLLING, "polling")
    s.start_upgrade()
    s.abandon_upgrade()  # the probing WebSocket went away
    assert s.phase is SessionPhase.POLLING and s.can_upgrade()
    with pytest.raises(RuntimeError, match="not a legal event"):
        s.abandon_upgrade()  # no upgrade in progress
    s.start_upgrade()
    assert s.transport_closed() == [SessionClosed("transport close")]
    # The probing WebSocket's upgrade packet after the close fails the upgrade.
    assert s.upgrade_packet(EngineIOPacket(E.UPGRADE)) == ([], [UpgradeFailed()])
    assert (s.phase, s.state) == (SessionPhase.CLOSED, EngineIOSessionState.CLOSED)
