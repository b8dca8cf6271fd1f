"""The sans-I/O pieces on their own: the envelope codec, the routing step, the Redis
payload codec. No sockets, no event loop."""

import msgspec
import pytest

from wsgate import Frame, Json, on_message, ws_controller
from wsgate.broadcast import _wire
from wsgate.di import Container
from wsgate.frames import FrameError, decode_frame, encode_error, encode_push, encode_reply
from wsgate.plan import compile_gateway
from wsgate.session import route


def test_decode_frame_reads_event_raw_data_and_id() -> None:
    f = decode_frame('{"event": "a", "data": {"x": [1, 2]}, "id": 7}')
    assert (f.event, bytes(f.data), f.id) == ("a", b'{"x": [1, 2]}', 7)
    g = decode_frame(b'{"event": "b", "id": "k"}')
    assert (g.event, bytes(g.data), g.id) == ("b", b"null", "k")


@pytest.mark.parametrize(
    ("text", "message", "frame_id"),
    [
        ("not json", "a frame must be JSON", None),
        ("[1, 2]", "a frame must be a JSON object with a string 'event'", None),
        ('{"data": 1, "id": 3}', "a frame needs a string 'event' field", 3),
        ('{"event": 5, "id": "x"}', "a frame needs a string 'event' field", "x"),
        ('{"event": "e", "id": 1.5}', "invalid frame", None),
        ('{"event": "e", "id": [1]}', "invalid frame", None),
    ],
)
def test_decode_frame_errors_say_what_is_wrong_and_keep_a_readable_id(
    text: str, message: str, frame_id: object
) -> None:
    with pytest.raises(FrameError) as err:
        decode_frame(text)
    assert err.value.message.startswith(message)
    assert err.value.id == frame_id


def test_encoders_produce_the_documented_envelopes() -> None:
    assert msgspec.json.decode(encode_reply("e", 1, {"a": 1})) == {
        "event": "e",
        "id": 1,
        "data": {"a": 1},
    }
    assert msgspec.json.decode(encode_push("e", None)) == {"event": "e", "data": None}
    assert msgspec.json.decode(encode_error("x", "bad", "no", [1])) == {
        "event": "error",
        "id": "x",
        "data": {"code": "bad", "message": "no", "detail": [1]},
    }


class Item(msgspec.Struct):
    name: str


@ws_controller("/r")
class Routed:
    @on_message("add")
    async def add(self, body: Json[Item]) -> None: ...

    @on_message("*")
    async def other(self, frame: Frame) -> None: ...


@ws_controller("/s")
class Strict:
    @on_message("only")
    async def only(self) -> None: ...


def text(s: str) -> dict[str, object]:
    return {"type": "websocket.receive", "text": s}


def test_route_picks_the_handler_or_the_error_without_io() -> None:
    plan = compile_gateway(Routed, Container([]))
    h, event, frame_id, frame = route(plan, text('{"event": "add", "id": 1}'))
    assert h is not None and h.attr == "add" and (event, frame_id) == ("add", 1)
    assert isinstance(frame, Frame)
    h, event, _, _ = route(plan, text('{"event": "unknown"}'))
    assert h is not None and h.attr == "other" and event == "unknown"  # the wildcard
    assert route(plan, {"type": "websocket.receive", "bytes": b"\x00"})[0] is not None

    strict = compile_gateway(Strict, Container([]))
    assert route(strict, text('{"event": "nope", "id": 2}')) == (
        None,
        "nope",
        2,
        ("unknown_event", "no handler for event 'nope'", {"event": "nope"}),
    )
    h, _, frame_id, error = route(strict, text('{"id": 9}'))
    assert h is None and frame_id == 9 and error[0] == "invalid_frame"  # type: ignore[index]
    h, event, _, error = route(strict, {"type": "websocket.receive", "bytes": b"x"})
    assert h is None and event == "__binary__" and error[0] == "unknown_event"  # type: ignore[index]


class Member:
    """Anything weak-referenceable stands for a connection in the payload codec."""


def test_redis_payload_round_trips_text_binary_and_exclude() -> None:
    worker = b"w" * 16
    a = Member()
    data = _wire.encode({"type": "websocket.send", "text": "héllo"}, worker, None)  # type: ignore[arg-type]
    d = _wire.decode(data)
    assert d is not None and d.message == {"type": "websocket.send", "text": "héllo"}
    assert d.origin == worker and d.exclude is None
    data = _wire.encode({"type": "websocket.send", "bytes": b"\x00\x01"}, worker, a)  # type: ignore[arg-type]
    d = _wire.decode(data)
    assert d is not None and d.message == {"type": "websocket.send", "bytes": b"\x00\x01"}
    assert d.exclude is a  # the same process resolves its own connection id


@pytest.mark.parametrize(
    "data",
    [b"", b"\x10" + b"w" * 10, b"\x20" + b"w" * 16 + b"x", b"\x12" + b"w" * 16 + b"short"],
)
def test_redis_payloads_that_are_not_ours_decode_to_none(data: bytes) -> None:
    assert _wire.decode(data) is None
    assert _wire.decode(b"\x10" + b"w" * 16 + b"\xff\xfe") is None  # text that is not UTF-8
