"""Hostile input: whatever a client sends, the runtime answers it and keeps the connection.

Three layers:

- the frame codec without I/O (``decode_frame``, ``decode_data``, ``json_depth_exceeds``):
  one test per class of malformed input, and properties over arbitrary text and bytes;
- property-based fuzzing with hypothesis of whole connections, in-process (TestClient) and
  under real servers (hypercorn trio, hypercorn asyncio, uvicorn, through the
  ``websockets`` client): every frame gets exactly one answer, in order, carrying the
  frame's id whenever the id is readable; a final well-formed request is still answered;
  nothing reaches the server (no exception out of the app, nothing in the server log);
- explicit cases (a 100,000-level nested frame, lone surrogates, binary frames) and the
  containment of wsgate's own failures (1011 for that connection only, logged once).

hypothesis drives the examples from a sync test parametrized by backend; each example's
body runs in ``anyio.run(..., backend=...)`` and asserts which event loop it is on. The runs
are derandomized (the same examples every time) and short; set
``WSGATE_FUZZ_EXAMPLES=2000`` to run that many examples per in-process test (a quarter of
it per real server), on fresh random examples.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import msgspec
import pytest
import servers
from apps import fuzz as fuzz_app
from conftest import BACKENDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import Client, ServerPool, ServerURL

from wsgate import App, BroadcastGroup, Json, WebSocket, on_connect, on_message, ws_controller
from wsgate.errors import ConfigurationError, WebSocketValidationError
from wsgate.frames import (
    DEFAULT_MAX_JSON_DEPTH,
    FrameError,
    decode_data,
    decode_frame,
    json_depth_exceeds,
)
from wsgate.testing import TestClient

server_pool = servers.server_pool
server_logs_clean = servers.server_logs_clean

_EXAMPLES = int(os.environ.get("WSGATE_FUZZ_EXAMPLES", "0") or 0)


def _settings(default: int, *, share: int = 1) -> settings:
    """Derandomized and short by default; ``WSGATE_FUZZ_EXAMPLES`` runs longer, randomly."""
    return settings(
        max_examples=(_EXAMPLES // share) if _EXAMPLES else default,
        derandomize=not _EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
        print_blob=True,
    )


def _running_backend() -> str:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "trio"
    return "asyncio"


@pytest.fixture(scope="module", params=servers.SERVER_PARAMS)
def fuzz_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ServerURL:
    """tests/apps/fuzz.py under each server kind."""
    return server_pool.get(request.param, "apps.fuzz:app")


# ==================================================================== the codec, no I/O


def _nested(n: int, inner: str = "") -> str:
    return "[" * n + inner + "]" * n


def _frame_error(text: str | bytes, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode_frame(text, max_depth)
    return info.value


def test_default_depth_is_64() -> None:
    assert DEFAULT_MAX_JSON_DEPTH == 64
    assert App().config.max_json_depth == 64


def test_a_100000_level_nested_frame_is_refused_with_its_id() -> None:
    text = '{"event":"echo","id":"deep","data":' + _nested(100_000) + "}"
    err = _frame_error(text)
    assert err.id == "deep"
    assert "64 levels" in err.message


def test_depth_limit_is_exact_and_counts_the_envelope() -> None:
    ok = decode_frame('{"event":"e","id":1,"data":' + _nested(63) + "}")
    assert bytes(ok.data) == _nested(63).encode()
    assert _frame_error('{"event":"e","id":1,"data":' + _nested(64) + "}").id == 1
    # Objects count like arrays.
    deep_objects = '{"a":' * 64 + "1" + "}" * 64
    assert _frame_error('{"event":"e","id":2,"data":' + deep_objects + "}").id == 2
    # A smaller limit.
    assert decode_frame('{"event":"e","data":[[1]]}', 3).event == "e"
    assert _frame_error('{"event":"e","id":3,"data":[[[1]]]}', 3).id == 3


def test_brackets_inside_strings_do_not_count() -> None:
    tricky = '"' + "[" * 500 + '\\"' + "{" * 500 + "\\\\" + '"'
    frame = decode_frame('{"event":"e","id":1,"data":[' + tricky + "]}")
    assert msgspec.json.decode(bytes(frame.data)) == ["[" * 500 + '"' + "{" * 500 + "\\"]


def test_the_top_level_id_of_a_too_deep_frame_is_found_wherever_it_is() -> None:
    deep = _nested(5000)
    assert _frame_error('{"event":"e","data":' + deep + ',"id":5}').id == 5
    assert _frame_error('{"event":"e","data":' + deep + ',"id":"five"}').id == "five"
    # Only a member of the envelope: not one inside data, nor "id": inside a string.
    decoys = '[{"id":1},"\\"id\\": 2","\\\\",{"a":{"id":3}},'
    assert _frame_error('{"event":"e","data":' + decoys + deep + "]}").id is None
    assert _frame_error('{"event":"e","data":' + decoys + deep + '],"id":4}').id == 4
    # The last one wins, as in msgspec; an id that is not a scalar cannot be read.
    assert _frame_error('{"id":1,"event":"e","data":' + deep + ',"id":2}').id == 2
    assert _frame_error('{"id":[1],"event":"e","data":' + deep + "}").id is None
    assert _frame_error('{"id":1.5,"event":"e","data":' + deep + "}").id is None
    # Unterminated, and as bytes.
    assert _frame_error(('{"id":7,"event":"e","data":' + "[" * 100_000).encode()).id == 7


def test_lone_surrogates_are_refused_with_the_id() -> None:
    for text, id in [
        ('{"event":"e","id":1,"data":"\ud800"}', 1),
        ('{"event":"e","data":{"\udfff":1},"id":"x"}', "x"),
        ('{"event":"\ud800","id":3}', 3),
        ('{"event":"e","id":"\ud800"}', None),  # the id itself cannot be read
    ]:
        err = _frame_error(text)
        assert err.id == id, text
        assert "UTF-8" in err.message
    # JSON-escaped lone surrogates are malformed JSON.
    assert "must be JSON" in _frame_error('{"event":"e","id":4,"data":"\\ud800"}').message


@pytest.mark.parametrize(
    ("text", "id", "fragment"),
    [
        ("", None, "must be JSON"),
        (b"", None, "must be JSON"),
        ("not json", None, "must be JSON"),
        ("[1, 2]", None, "JSON object"),
        ('"event"', None, "JSON object"),
        ('{"id": 1}', 1, "'event'"),
        ('{"event": 5, "id": "a"}', "a", "'event'"),
        ('{"event": null, "id": 2}', 2, "'event'"),
        ('{"event": "e", "id": 1.5}', None, "$.id"),
        ('{"event": "e", "id": true}', None, "$.id"),
        ('{"event": "e", "id": {"a": 1}}', None, "$.id"),
        ('{"event": "e", "id": [1]}', None, "$.id"),
        ('{"event": "e", "id": ' + "9" * 5000 + "}", None, "$.id"),
        ('{"event": "e\x00", "id": 1}', None, "must be JSON"),
        ('{"event": "e", "id": 1}\x00', None, "must be JSON"),
        ('{"event": "e", "id": 1', None, "must be JSON"),
        ('{"event": "e", "id": 1} {}', None, "must be JSON"),
        (b'{"event": "e\xff", "id": 1}', 1, "must be JSON"),
    ],
)
def test_each_malformed_class_is_a_frame_error(
    text: str | bytes, id: int | str | None, fragment: str
) -> None:
    err = _frame_error(text)
    assert err.id == id
    assert fragment in err.message


def test_accepted_oddities() -> None:
    # Duplicate keys: the last one wins (msgspec's rule).
    frame = decode_frame('{"event":"a","event":"b","id":1,"id":2}')
    assert (frame.event, frame.id) == ("b", 2)
    # Huge numbers in data are data: the handler's type decides.
    frame = decode_frame('{"event":"e","data":[1e999,' + "9" * 5000 + "]}")
    assert bytes(frame.data).startswith(b"[1e999,")
    # Big (arbitrary precision) integer ids, escaped NULs and long event names.
    assert decode_frame('{"event":"e","id":' + str(2**80) + "}").id == 2**80
    assert decode_frame('{"event":"e\\u0000"}').event == "e\x00"
    assert decode_frame('{"event":"' + "e" * 1_000_000 + '"}').event == "e" * 1_000_000


def test_decode_data_raises_only_validation_errors() -> None:
    point = msgspec.json.Decoder(dict[str, int])
    anything: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
    cases: list[tuple[msgspec.json.Decoder[Any], bytes, int | None, str]] = [
        (point, b'{"x": "1"}', None, "$.data[...]"),
        (point, b"\xff\xfe", None, "$.data"),
        (point, b"", None, "$.data"),
        (anything, b'"\xed\xa0\x80"', None, "$.data"),
        (anything, b"9" * 5000, None, "$.data"),
        (anything, _nested(100_000).encode(), 64, "$.data"),
        (anything, _nested(3000).encode(), None, "$.data"),  # no scan: RecursionError
    ]
    for decoder, raw, depth, path in cases:
        with pytest.raises(WebSocketValidationError) as info:
            decode_data(decoder, raw, "ev", depth)
        assert info.value.errors[0]["path"].startswith(path), raw[:20]
        assert "'ev'" in info.value.message
    assert decode_data(point, b'{"x": 1}', "ev", 64) == {"x": 1}
    assert decode_data(anything, msgspec.Raw(b"[[1]]"), "ev", 2) == [[1]]


def _reference_depth(text: str) -> int:
    """The deepest nesting, character by character, skipping strings as JSON does."""
    depth = best = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            best = max(best, depth)
        elif c in "]}":
            depth -= 1
    return best


_tricky_strings = st.text(st.sampled_from('[]{}"\\ax'), max_size=6)
_json_trees = st.recursive(
    st.none() | st.integers() | _tricky_strings,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(_tricky_strings, c, max_size=4),
    max_leaves=60,
)


@_settings(300)
@given(tree=_json_trees, cut=st.floats(0, 1), limit=st.integers(0, 12))
def test_depth_scan_matches_a_character_walk(tree: Any, cut: float, limit: int) -> None:
    # On JSON and on every prefix of it (what msgspec reads before it stops), short and
    # long (past the length where the scan stops counting and starts finding).
    text = json.dumps(tree)
    prefix = text[: int(len(text) * cut)]
    for t in (text, prefix, " " * 2100 + text, " " * 2100 + prefix):
        assert json_depth_exceeds(t, limit) == (_reference_depth(t) > limit), t
        assert json_depth_exceeds(t.encode(), limit) == (_reference_depth(t) > limit), t


@_settings(200)
@given(
    members=st.dictionaries(_tricky_strings.filter(lambda k: k != "id"), _json_trees, max_size=4),
    id=st.integers() | _tricky_strings | st.none(),
    id_at=st.integers(0, 5),
    deep_at=st.integers(0, 5),
)
def test_the_id_of_a_too_deep_frame_is_the_one_a_parser_reads(
    members: dict[str, Any], id: int | str | None, id_at: int, deep_at: int
) -> None:
    parts = [json.dumps(k) + ":" + json.dumps(v) for k, v in members.items()]
    parts.insert(min(id_at, len(parts)), '"id":' + json.dumps(id))
    parts.insert(min(deep_at, len(parts)), '"deep":' + _nested(100))
    text = "{" + ",".join(parts) + "}"
    assert _frame_error(text).id == id


@_settings(300)
@given(text=st.text() | st.binary(), limit=st.integers(1, 80))
def test_decode_frame_raises_only_frame_errors(text: str | bytes, limit: int) -> None:
    try:
        frame = decode_frame(text, limit)
    except FrameError as exc:
        assert exc.id is None or isinstance(exc.id, int | str)
    else:
        assert isinstance(frame.event, str)


@_settings(200)
@given(raw=st.binary() | st.text().map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_decode_data_raises_only_validation_errors_for_any_bytes(raw: bytes) -> None:
    for decoder in (msgspec.json.Decoder(), msgspec.json.Decoder(fuzz_app.Point)):
        try:
            decode_data(decoder, raw, "ev", 64)
        except WebSocketValidationError:
            pass


def test_max_json_depth_is_checked_at_startup() -> None:
    for bad in (0, -1, 1.5, "64"):
        with pytest.raises(ConfigurationError, match="max_json_depth"):
            App(max_json_depth=bad)  # type: ignore[arg-type]


# ============================================================= the model of a fuzz run

_ANY = object()  # the answer's id is not checked (a mutation touched the id)
_NO_SURROGATES = st.characters(exclude_categories=("Cs",))


def _texts(**kw: Any) -> st.SearchStrategy[str]:
    return st.text(_NO_SURROGATES, **kw)


@dataclass(frozen=True)
class Probe:
    """One frame to send and what its one answer may be."""

    payload: str | bytes
    #: Ids the answer may carry (None: no id); ``(_ANY,)`` to skip the check.
    ids: tuple[Any, ...]
    #: Events the answer may have (empty: any).
    events: tuple[str, ...]
    #: The answer's ``data`` when it is certain.
    data: Any = _ANY
    #: The error code when the answer is certainly an error.
    code: str | None = None


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _texts(max_size=20)
)
_values = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(_texts(max_size=6), c, max_size=3),
    max_leaves=12,
)

# (JSON text of the id, ids the answer may carry); None: no id member.
_ids: st.SearchStrategy[tuple[str | None, tuple[Any, ...]]] = st.one_of(
    st.just((None, (None,))),
    st.integers().map(lambda i: (str(i), (i,))),
    st.integers(-(2**64), 2**64).map(lambda i: (str(i), (i,))),
    _texts(max_size=30).map(lambda s: (json.dumps(s), (s,))),
    _texts(max_size=30).map(lambda s: (json.dumps(s, ensure_ascii=False), (s,))),
    st.integers(4400, 6000).map(lambda n: ("9" * n, (None,))),  # past int's digit limit
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (json.dumps(f), (None,))),
    st.booleans().map(lambda b: (json.dumps(b), (None,))),
    st.just(("null", (None,))),
    st.lists(_scalars, max_size=3).map(lambda v: (json.dumps(v), (None,))),
    st.dictionaries(_texts(max_size=4), _scalars, max_size=3).map(
        lambda v: (json.dumps(v), (None,))
    ),
)

# (JSON text of the event, the event if it is a string); None: no event member.
_events: st.SearchStrategy[tuple[str | None, str | None]] = st.one_of(
    st.sampled_from(["echo", "point"]).map(lambda e: (json.dumps(e), e)),
    _texts(max_size=40).map(lambda e: (json.dumps(e), e)),
    st.integers(1000, 200_000).map(lambda n: (json.dumps("e" * n), "e" * n)),
    st.just((None, None)),
    (st.integers() | st.none() | st.lists(st.integers(), max_size=2)).map(
        lambda v: (json.dumps(v), None)
    ),
)


@st.composite
def _envelopes(draw: st.DrawFn, path: str) -> Probe:
    """A JSON object with optional event, id and data members, in any order, with data
    that may be nested past the limit; and what its answer must be."""
    id_text, ids = draw(_ids)
    event_text, event = draw(_events)
    kind = draw(st.sampled_from(["none", "value", "nested"]))
    value: Any = None
    depth = 1
    data_text: str | None = None
    if kind == "value":
        value = draw(_values)
        data_text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    elif kind == "nested":
        n = draw(st.sampled_from([1, 62, 63, 64, 65, 1000, 5000, 100_000]) | st.integers(1, 80))
        data_text = _nested(n)
        value = json.loads(data_text) if n < 500 else None
        depth = n + 1
    members = [
        (name, text)
        for name, text in (("event", event_text), ("id", id_text), ("data", data_text))
        if text is not None
    ]
    members = draw(st.permutations(members))
    sep = draw(st.sampled_from([",", ", ", " ,\n"]))
    payload = "{" + sep.join(f'"{name}":{text}' for name, text in members) + "}"
    too_deep = depth > DEFAULT_MAX_JSON_DEPTH
    bad_id = ids == (None,) and id_text not in (None, "null")
    if too_deep or event is None or bad_id:
        return Probe(payload, ids, ("error",), code="invalid_frame")
    handled = {"/fuzz/echo": ("echo", "point"), "/fuzz/text": ("echo",)}[path]
    if event not in handled:
        return Probe(payload, ids, ("error",), code="unknown_event")
    if event == "echo":
        return Probe(payload, ids, ("echo",), data={"echo": value})
    return Probe(payload, ids, ("point", "error"))


@st.composite
def _mutated(draw: st.DrawFn, path: str) -> Probe:
    """An envelope cut short, or with a stray character inserted."""
    probe = draw(_envelopes(path))
    text = probe.payload
    assert isinstance(text, str)
    pos = draw(st.integers(0, len(text)))
    cut = draw(st.booleans())
    if cut:
        mutated = text[:pos]
    else:
        mutated = (
            text[:pos] + draw(st.sampled_from(list('\x00\x01"{}[]:,\\\x7f\u2028 '))) + text[pos:]
        )
    # The mutation may have changed or removed the id, or turned an invalid envelope into
    # a valid one ('"id":' into '"{id":'): any id and event may come back, but exactly one
    # answer must.
    return Probe(mutated, (_ANY,), ())


def _garbage(surrogates: bool) -> st.SearchStrategy[Probe]:
    texts = st.text(max_size=200) if surrogates else _texts(max_size=200)
    return texts.map(lambda t: Probe(t, (_ANY,), ("error", "echo", "point")))


@st.composite
def _surrogate_envelopes(draw: st.DrawFn) -> Probe:
    """A valid envelope but for a lone surrogate (only in-process: a server decodes UTF-8
    and never hands the app such a str)."""
    id = draw(st.integers() | _texts(max_size=10))
    surrogate = draw(st.characters(categories=("Cs",)))
    where = draw(st.sampled_from(["data", "event", "key"]))
    if where == "data":
        text = f'{{"event":"echo","id":{json.dumps(id)},"data":"a{surrogate}b"}}'
    elif where == "event":
        text = f'{{"event":"e{surrogate}","id":{json.dumps(id)}}}'
    else:
        text = f'{{"id":{json.dumps(id)},"data":{{"{surrogate}":1}},"event":"echo"}}'
    return Probe(text, (id,), ("error",), code="invalid_frame")


def _binaries(path: str) -> st.SearchStrategy[Probe]:
    if path == "/fuzz/text":
        return (st.binary(max_size=100) | st.just(b"")).map(
            lambda b: Probe(b, (None,), ("error",), code="unknown_event")
        )
    points = st.builds(
        lambda x, y: (x, y), st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1)
    )
    valid = points.map(
        lambda p: Probe(
            json.dumps({"x": p[0], "y": p[1]}).encode(),
            (None,),
            ("__binary__",),
            data={"binary_sum": p[0] + p[1]},
        )
    )
    invalid = st.one_of(
        st.binary(max_size=100),
        st.just(b"\xff\xfe{}"),
        st.just(b'{"x":1,"y":"\xed\xa0\x80"}'),
        st.sampled_from([70, 5000, 100_000]).map(lambda n: _nested(n).encode()),
    ).map(lambda b: Probe(b, (None,), ("error",), code="validation_error"))
    return valid | invalid


def _probes(path: str, *, surrogates: bool) -> st.SearchStrategy[list[Probe]]:
    one = st.one_of(
        _envelopes(path),
        _mutated(path),
        _garbage(surrogates),
        _binaries(path),
        *([_surrogate_envelopes()] if surrogates else []),
    )
    return st.lists(one, min_size=1, max_size=8)


def _check_answer(probe: Probe, answer: Any) -> None:
    assert isinstance(answer, dict), answer
    assert isinstance(answer.get("event"), str), answer
    if probe.events:
        assert answer["event"] in probe.events, (probe, answer)
    if probe.ids != (_ANY,):
        got = answer.get("id")
        assert any(type(got) is type(i) and got == i for i in probe.ids), (probe.ids, answer)
    if probe.code is not None:
        assert answer["data"]["code"] == probe.code, (probe, answer)
    if answer.get("event") == "error":
        assert set(answer["data"]) == {"code", "message", "detail"}, answer
    elif probe.data is not _ANY:
        assert answer["data"] == probe.data, (probe, answer)


def _final_request() -> tuple[str, str]:
    id = "final-" + uuid.uuid4().hex
    return json.dumps({"event": "echo", "id": id, "data": "still here"}), id


def _check_final(answer: Any, id: str) -> None:
    assert answer == {"event": "echo", "id": id, "data": {"echo": "still here"}}


# ================================================================ in-process fuzzing

_PATHS = st.sampled_from(["/fuzz/echo", "/fuzz/text"])


def _fuzz_case(*, surrogates: bool) -> st.SearchStrategy[tuple[str, list[Probe]]]:
    return _PATHS.flatmap(lambda p: st.tuples(st.just(p), _probes(p, surrogates=surrogates)))


async def _run_in_process(path: str, probes: list[Probe]) -> App:
    app = fuzz_app.make_app()
    async with TestClient(app) as client, client.websocket_connect(path) as ws:
        for probe in probes:
            if isinstance(probe.payload, bytes):
                await ws.send_bytes(probe.payload)
            else:
                await ws.send_text(probe.payload)
        for probe in probes:
            _check_answer(probe, await ws.receive_json())
        final, id = _final_request()
        await ws.send_text(final)
        _check_final(await ws.receive_json(), id)
    # Leaving the blocks re-raised anything the app raised: nothing did.
    return app


@pytest.mark.parametrize("backend", BACKENDS)
@_settings(150)
@given(case=_fuzz_case(surrogates=True))
def test_fuzz_in_process(
    backend: str, case: tuple[str, list[Probe]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="wsgate")
    path, probes = case

    async def body() -> App:
        assert _running_backend() == backend
        return await _run_in_process(path, probes)

    app = anyio.run(body, backend=backend)
    assert app.stats.internal_errors == 0
    assert app.stats.invalid_frames >= sum(p.code == "invalid_frame" for p in probes)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# ============================================================ real-server fuzzing


async def _run_on_server(url: str, probes: list[Probe]) -> None:
    final, id = _final_request()
    async with await Client.connect(url, max_queue=None) as c:

        def exchange() -> list[str | bytes]:
            for probe in probes:
                c.conn.send(probe.payload)
            c.conn.send(final)
            return [c.conn.recv(timeout=servers.RECV_TIMEOUT) for _ in range(len(probes) + 1)]

        answers = await anyio.to_thread.run_sync(exchange)
    for probe, answer in zip(probes, answers[:-1], strict=True):
        assert isinstance(answer, str), answer
        _check_answer(probe, json.loads(answer))
    assert isinstance(answers[-1], str)
    _check_final(json.loads(answers[-1]), id)


_SERVER_ERRORS = re.compile(r"Exception in ASGI|Error in ASGI|Traceback")


def _assert_server_log_clean(server: ServerURL) -> None:
    """Nothing reached the server: no exception out of the app, no traceback but the one
    the containment test provokes on purpose."""
    log = server.log()
    for pattern in servers.EXPECTED_LOG:
        log = pattern.sub("", log)
    bad = [line for line in log.splitlines() if _SERVER_ERRORS.search(line)]
    assert bad == [], f"{server.kind} logged: {bad[:10]}"


@pytest.mark.usefixtures("server_logs_clean")
@pytest.mark.parametrize("backend", BACKENDS)
@_settings(20, share=4)
@given(case=_fuzz_case(surrogates=False))
def test_fuzz_real_server(
    backend: str, case: tuple[str, list[Probe]], fuzz_server: ServerURL
) -> None:
    path, probes = case

    async def body() -> None:
        assert _running_backend() == backend
        await _run_on_server(f"{fuzz_server}{path}", probes)

    anyio.run(body, backend=backend)
    _assert_server_log_clean(fuzz_server)


# ============================================================ explicit cases, in-process


def _assert_error(frame: Any, id: Any, code: str) -> None:
    assert frame["event"] == "error", frame
    assert frame["id"] == id and type(frame["id"]) is type(id), frame
    assert frame["data"]["code"] == code, frame


async def test_in_process_deep_nesting_and_lone_surrogates_keep_the_connection() -> None:
    app = fuzz_app.make_app()
    async with TestClient(app) as client, client.websocket_connect("/fuzz/echo") as ws:
        await ws.send_text('{"event":"echo","id":1,"data":' + _nested(100_000) + "}")
        _assert_error(await ws.receive_json(), 1, "invalid_frame")
        await ws.send_text('{"event":"echo","id":"s","data":"\ud800"}')
        _assert_error(await ws.receive_json(), "s", "invalid_frame")
        await ws.send_text('{"event":"echo\udfff","id":3}')
        _assert_error(await ws.receive_json(), 3, "invalid_frame")
        await ws.send_text("")
        _assert_error(await ws.receive_json(), None, "invalid_frame")
        await ws.send_text('{"event":"echo","id":4}\x00')
        _assert_error(await ws.receive_json(), None, "invalid_frame")
        # Within the limit, the same shape is data like any other.
        reply = await ws.request("echo", json.loads(_nested(63)), id=5)
        assert reply == {"event": "echo", "id": 5, "data": {"echo": json.loads(_nested(63))}}
    assert app.stats.invalid_frames == 5
    assert app.stats.internal_errors == 0


async def test_in_process_binary_frames() -> None:
    app = fuzz_app.make_app()
    async with TestClient(app) as client:
        async with client.websocket_connect("/fuzz/echo") as ws:
            await ws.send_bytes(b'{"x": 1, "y": 2}')
            assert await ws.receive_json() == {"event": "__binary__", "data": {"binary_sum": 3}}
            for payload in (b"\xff\xfe", b"", b'{"x":1,"y":"\xed\xa0\x80"}', b"[" * 100_000):
                await ws.send_bytes(payload)
                frame = await ws.receive_json()
                _assert_error(frame, None, "validation_error")
                assert frame["data"]["detail"][0]["path"].startswith("$.data"), frame
            assert (await ws.request("echo", 1, id=1))["data"] == {"echo": 1}
        async with client.websocket_connect("/fuzz/text") as ws:
            await ws.send_bytes(b'{"x": 1, "y": 2}')
            _assert_error(await ws.receive_json(), None, "unknown_event")
            assert (await ws.request("echo", 2, id=2))["data"] == {"echo": 2}
    # Invalid data is a validation error, not an invalid frame.
    assert app.stats.invalid_frames == 0


async def test_in_process_long_event_names_and_odd_ids() -> None:
    app = fuzz_app.make_app()
    async with TestClient(app) as client, client.websocket_connect("/fuzz/echo") as ws:
        long = "e" * 1_000_000
        await ws.send_text(json.dumps({"event": long, "id": 1}))
        frame = await ws.receive_json()
        _assert_error(frame, 1, "unknown_event")
        assert frame["data"]["detail"] == {"event": long}
        assert len(frame["data"]["message"]) < 200  # the name is not repeated in full
        for id_text in ("1.5", "true", "false", '{"a":1}', "[1]", "9" * 5000):
            await ws.send_text('{"event":"echo","id":' + id_text + "}")
            _assert_error(await ws.receive_json(), None, "invalid_frame")
        await ws.send_text('{"event":"echo","id":' + str(2**80) + "}")
        assert await ws.receive_json() == {"event": "echo", "id": 2**80, "data": {"echo": None}}
        await ws.send_text('{"event":"nope","event":"echo","id":1,"id":2}')
        assert await ws.receive_json() == {"event": "echo", "id": 2, "data": {"echo": None}}


async def test_in_process_max_json_depth_is_per_app() -> None:
    app = fuzz_app.make_app(max_json_depth=3)
    async with TestClient(app) as client, client.websocket_connect("/fuzz/echo") as ws:
        assert (await ws.request("echo", [[1]], id=1))["data"] == {"echo": [[1]]}
        await ws.send_text('{"event":"echo","id":2,"data":[[[1]]]}')
        frame = await ws.receive_json()
        _assert_error(frame, 2, "invalid_frame")
        await ws.send_event("echo", [[[1]]], id=3)  # the id after the data
        _assert_error(await ws.receive_json(), 3, "invalid_frame")
        assert "3 levels" in frame["data"]["message"]
        await ws.send_bytes(b'{"x": [[1]], "y": 1}')
        _assert_error(await ws.receive_json(), None, "validation_error")


async def test_a_failure_inside_wsgate_closes_only_that_connection_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="wsgate")
    app = fuzz_app.make_app()
    async with TestClient(app) as client, client.websocket_connect("/fuzz/echo") as other:
        async with client.websocket_connect("/fuzz/contained") as ws:
            await ws.send_event("unencodable-detail", id=1)
            assert await ws.wait_closed() == (1011, "internal error")
        # Leaving the block re-raised anything the app raised: nothing did. The other
        # connection is untouched.
        assert await other.request("echo", 1, id=1) == {
            "event": "echo",
            "id": 1,
            "data": {"echo": 1},
        }
    assert app.stats.internal_errors == 1
    assert app.container.get(fuzz_app.Closes).codes == [1011]
    logged = [r for r in caplog.records if "runtime error" in r.getMessage()]
    assert len(logged) == 1
    assert "/fuzz/contained" in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is TypeError


async def test_a_failure_while_ending_a_connection_is_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="wsgate")

    class BrokenGroup(BroadcastGroup):
        async def unsubscribe_all(self, ws: WebSocket) -> None:
            raise RuntimeError("broken group")

    @ws_controller("/g")
    class G:
        @on_message("echo")
        async def echo(self, body: Json[Any]) -> Any:
            return body

    app = App(gateways=[G], providers=[BrokenGroup()])
    async with TestClient(app) as client, client.websocket_connect("/g") as ws:
        assert (await ws.request("echo", 1, id=1))["data"] == 1
    assert app.stats.internal_errors == 1
    logged = [r for r in caplog.records if "runtime error" in r.getMessage()]
    assert len(logged) == 1 and "/g" in logged[0].getMessage()


# ============================================================ explicit cases, real servers


@pytest.mark.usefixtures("server_logs_clean")
async def test_real_server_hostile_frames_keep_the_connection(fuzz_server: ServerURL) -> None:
    async with await Client.connect(f"{fuzz_server}/fuzz/echo", max_queue=None) as c:
        await c.send('{"event":"echo","id":1,"data":' + _nested(100_000) + "}")
        _assert_error(await c.recv_json(), 1, "invalid_frame")
        # A lone surrogate, JSON-escaped (a server hands the app only valid UTF-8).
        await c.send('{"event":"echo","id":2,"data":"\\ud800"}')
        _assert_error(await c.recv_json(), None, "invalid_frame")
        await c.send("")
        _assert_error(await c.recv_json(), None, "invalid_frame")
        await c.send('{"event":"echo","id":3}\x00')
        _assert_error(await c.recv_json(), None, "invalid_frame")
        for payload in (b"\xff\xfe", b"", b"[" * 100_000):
            await c.send(payload)
            _assert_error(await c.recv_json(), None, "validation_error")
        await c.send(json.dumps({"event": "e" * 100_000, "id": 4}))
        _assert_error(await c.recv_json(), 4, "unknown_event")
        assert await c.request("echo", "still here", id=5) == {
            "event": "echo",
            "id": 5,
            "data": {"echo": "still here"},
        }
    async with await Client.connect(f"{fuzz_server}/fuzz/text") as c:
        await c.send(b"\x00\x01")
        _assert_error(await c.recv_json(), None, "unknown_event")
        assert (await c.request("echo", 1, id=6))["data"] == {"echo": 1}
    _assert_server_log_clean(fuzz_server)


@pytest.mark.usefixtures("server_logs_clean")
async def test_real_server_contains_wsgate_failures(fuzz_server: ServerURL) -> None:
    marker = "wsgate runtime error on /fuzz/contained"
    before = fuzz_server.log().count(marker)
    async with await Client.connect(f"{fuzz_server}/fuzz/echo") as other:
        c = await Client.connect(f"{fuzz_server}/fuzz/contained")
        await c.send_event("unencodable-detail", id=1)
        code, reason, seen = await c.wait_closed()
        assert (code, reason, seen) == (1011, "internal error", [])
        assert (await other.request("echo", 1, id=1))["data"] == {"echo": 1}
    async with await Client.connect(f"{fuzz_server}/fuzz/probe") as probe:
        assert 1011 in (await probe.request("contained-closes", id=1))["data"]
        assert (await probe.request("stats", id=2))["data"]["internal_errors"] >= 1
    # Logged once, by wsgate; nothing reached the server.
    assert fuzz_server.log().count(marker) == before + 1
    _assert_server_log_clean(fuzz_server)


async def test_receive_as_raises_only_validation_errors() -> None:
    @ws_controller("/own")
    class Owner:
        @on_connect
        async def run(self, ws: WebSocket) -> None:
            await ws.accept()
            while True:
                try:
                    point = await ws.receive_as(fuzz_app.Point)
                except WebSocketValidationError as exc:
                    await ws.send_json({"invalid": exc.errors[0]["path"]})
                else:
                    await ws.send_json({"sum": point.x + point.y})

    async with TestClient(App(gateways=[Owner])) as client, client.websocket_connect("/own") as ws:
        for text in ('{"x":' + _nested(100_000) + "}", '{"x":1,"y":"\ud800"}', "", "[1"):
            await ws.send_text(text)
            assert await ws.receive_json() == {"invalid": "$"}
        await ws.send_text('{"x": 1, "y": "2"}')
        assert await ws.receive_json() == {"invalid": "$.y"}
        await ws.send_text('{"x": 1, "y": 2}')
        assert await ws.receive_json() == {"sum": 3}


@pytest.mark.usefixtures("server_logs_clean")
async def test_real_server_invalid_utf8_text_never_reaches_the_app(fuzz_server: ServerURL) -> None:
    # A text frame that is not UTF-8 (a lone surrogate encoded with surrogatepass): the
    # server's WebSocket layer refuses it (a protocol error) before the app sees it.
    def send_and_read() -> tuple[list[bytes], int | None, str]:
        raw = servers.RawClient.connect(f"{fuzz_server}/fuzz/echo")
        try:
            raw.send_frame(0x1, b'{"event":"echo","id":1,"data":"\xed\xa0\x80"}')
            return raw.read_until_close()
        except ConnectionError:
            return [], None, ""
        finally:
            raw.close()

    async def internal_errors() -> int:
        async with await Client.connect(f"{fuzz_server}/fuzz/probe") as probe:
            return int((await probe.request("stats", id=1))["data"]["internal_errors"])

    before = await internal_errors()
    payloads, code, _reason = await anyio.to_thread.run_sync(send_and_read)
    assert payloads == []
    assert code in (1007, None), code  # "invalid frame payload data", or a dropped TCP
    assert await internal_errors() == before
    _assert_server_log_clean(fuzz_server)
