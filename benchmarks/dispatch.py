"""The dispatch hot path: frames per second through envelope decode, validation of
``data``, the handler call and the encoding of the reply, in one process.

The frame (a text frame, as the ASGI server hands it over)::

    {"event":"chat.send","data":{"room":"lobby","text":"hello world","n":42},"id":7}

Variants, measured in the same process, alternated round by round (order rotated):

``msgspec floor``
    ``msgspec.json.Decoder(ChatSendFrame).decode(text)`` (``data`` typed as the
    ``ChatMsg`` Struct), then ``Encoder().encode({"event", "id", "data"})``. No routing,
    no handler: the floor any msgspec-based dispatcher pays.
``wsgate handle()``
    The real :meth:`wsgate.session.Session.handle` of a gateway
    ``@on_message("chat.send") async def send(self, body: Json[ChatMsg]) -> ChatMsg``,
    on a real connection opened through :class:`wsgate.testing.TestClient`. Each frame
    is decoded, routed, validated, handled and its reply encoded (``handle()`` returns
    the encoded reply; nothing is sent). This is the per-frame work of dispatch.
``wsgate handle() + reply``
    The same, and the reply is written as the runtime writes it: directly to the ASGI
    ``send`` (the test client's in-memory queue) when nothing is queued and no send is
    in flight. The clock stops when the N-th reply reached ``send``.
``wsgate full runtime``
    N frames are put on the connection's ASGI ``receive`` queue at once; the clock stops
    when the N-th reply reached ``send``. This adds the reader (which handles each frame
    in its own task, since this handler never suspends) and the ASGI receive. It uses
    fewer frames per round (``--frames / 4``).
``pydantic (envelope + per-event model)``
    What a competent Pydantic v2 user would write: ``TypeAdapter(Envelope).validate_json``
    (``data: Any``, no ``json.loads``), a dict lookup of the event's route,
    ``Model.model_validate(envelope.data)``, ``await handler(body)``, and
    ``Reply[Model](...).model_dump_json()`` with the reply's ``data`` typed per event.
``pydantic (discriminated union)``
    The faster Pydantic idiom, for reference: one ``validate_json`` of a union of
    per-event frame models discriminated on ``event`` (``data`` typed), then the same
    route lookup, handler call and typed reply.

The wsgate rows run on anyio's asyncio and trio backends (one ``anyio.run`` per backend
per round). The msgspec and Pydantic rows are synchronous or never suspend, so they do
not depend on a backend; the Pydantic dispatcher is async (its handler is awaited) and is
driven with ``coroutine.send(None)``.

How to read it: *frames/s* is per frame on one core (median, min and max over the
rounds). *ratio to msgspec* is each variant's frames/s divided by the msgspec floor's
frames/s **measured in the same round** (median and range of those per-round ratios):
1.0 would be "as fast as the bare codec", 0.25 "four times the cost of the codec".
The garbage collector is left on, as in a server.

Run: ``python -m benchmarks.dispatch [--rounds 15] [--frames 20000]``; writes
``benchmarks/results/dispatch.md``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import anyio
import anyio.lowlevel
import msgspec
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from benchmarks._common import (
    CountingApp,
    Summary,
    environment,
    markdown_table,
    publish,
    rotated,
)
from wsgate import App, Json, on_message, ws_controller
from wsgate.session import Session, SessionConfig
from wsgate.testing import TestClient, TestWebSocket

__all__ = ["main", "run"]

FRAME = '{"event":"chat.send","data":{"room":"lobby","text":"hello world","n":42},"id":7}'
REPLY = b'{"event":"chat.send","id":7,"data":{"room":"lobby","text":"hello world","n":42}}'
MESSAGE: dict[str, Any] = {"type": "websocket.receive", "text": FRAME}
BACKENDS = ("asyncio", "trio")
WARMUP = 2_000


# --------------------------------------------------------------------------- a. msgspec


class ChatMsg(msgspec.Struct):
    room: str
    text: str
    n: int


class ChatSendFrame(msgspec.Struct):
    event: str
    data: ChatMsg
    id: int | str | None = None


def bench_msgspec(n: int) -> float:
    """Frames/s of decode (typed data) + encode of a reply dict."""
    decode = msgspec.json.Decoder(ChatSendFrame).decode
    encode = msgspec.json.Encoder().encode
    frame = FRAME
    assert encode({"event": "chat.send", "id": 7, "data": decode(frame).data}) == REPLY
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        f = decode(frame)
        encode({"event": f.event, "id": f.id, "data": f.data})
    return n / (time.perf_counter() - t0)


# --------------------------------------------------------------------------- c. pydantic

M = TypeVar("M", bound=BaseModel)


class PChatMsg(BaseModel):
    room: str
    text: str
    n: int


class PEnvelope(BaseModel):
    event: str
    data: Any = None
    id: int | str | None = None


class PReply(BaseModel, Generic[M]):
    event: str
    id: int | str | None
    data: M


class PError(BaseModel):
    event: Literal["error"] = "error"
    id: int | str | None = None
    data: dict[str, Any]


async def p_send(body: PChatMsg) -> PChatMsg:
    return body


async def p_typing(body: PChatMsg) -> PChatMsg:
    return body


@dataclass(frozen=True, slots=True)
class PRoute:
    model: type[BaseModel]
    handler: Callable[[Any], Awaitable[Any]]
    reply: type[BaseModel]


P_ROUTES: dict[str, PRoute] = {
    "chat.send": PRoute(PChatMsg, p_send, PReply[PChatMsg]),
    "chat.typing": PRoute(PChatMsg, p_typing, PReply[PChatMsg]),
}


def _p_error(id: int | str | None, code: str, message: str) -> str:
    return PError(id=id, data={"code": code, "message": message}).model_dump_json()


class PydanticDispatcher:
    """Envelope through a TypeAdapter, then ``data`` through the event's model."""

    def __init__(self, routes: dict[str, PRoute]) -> None:
        self._envelope = TypeAdapter(PEnvelope)
        self._routes = routes

    async def handle(self, text: str) -> str:
        try:
            env = self._envelope.validate_json(text)
        except ValidationError as exc:
            return _p_error(None, "invalid_frame", str(exc))
        route = self._routes.get(env.event)
        if route is None:
            return _p_error(env.id, "unknown_event", env.event)
        try:
            body = route.model.model_validate(env.data)
        except ValidationError as exc:
            return _p_error(env.id, "validation_error", str(exc))
        result = await route.handler(body)
        return route.reply(event=env.event, id=env.id, data=result).model_dump_json()


class PChatSendFrame(BaseModel):
    event: Literal["chat.send"]
    data: PChatMsg
    id: int | str | None = None


class PChatTypingFrame(BaseModel):
    event: Literal["chat.typing"]
    data: PChatMsg
    id: int | str | None = None


PFrame = Annotated[PChatSendFrame | PChatTypingFrame, Field(discriminator="event")]


class PydanticUnionDispatcher:
    """One ``validate_json`` of a discriminated union of per-event frame models."""

    def __init__(self, routes: dict[str, PRoute]) -> None:
        self._frames: TypeAdapter[PChatSendFrame | PChatTypingFrame] = TypeAdapter(PFrame)
        self._routes = routes

    async def handle(self, text: str) -> str:
        try:
            frame = self._frames.validate_json(text)
        except ValidationError as exc:
            return _p_error(None, "invalid_frame", str(exc))
        route = self._routes[frame.event]
        result = await route.handler(frame.data)
        return route.reply(event=frame.event, id=frame.id, data=result).model_dump_json()


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended")


def _bench_pydantic(dispatcher: PydanticDispatcher | PydanticUnionDispatcher, n: int) -> float:
    handle = dispatcher.handle
    frame = FRAME
    assert _drive(handle(frame)).encode() == REPLY

    async def loop() -> float:
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            await handle(frame)
        return n / (time.perf_counter() - t0)

    rate: float = _drive(loop())
    return rate


def bench_pydantic(n: int) -> float:
    return _bench_pydantic(PydanticDispatcher(P_ROUTES), n)


def bench_pydantic_union(n: int) -> float:
    return _bench_pydantic(PydanticUnionDispatcher(P_ROUTES), n)


# --------------------------------------------------------------------------- b. wsgate


@ws_controller("/chat")
class ChatGateway:
    @on_message("chat.send")
    async def send(self, body: Json[ChatMsg]) -> ChatMsg:
        return body

    @on_message("chat.typing")
    async def typing(self, body: Json[ChatMsg]) -> ChatMsg:
        return body


def _drain_client(cws: TestWebSocket) -> int:
    """Empty the test client's receive queue (replies nobody reads); returns how many."""
    stream = cws._from_app
    k = 0
    while True:
        try:
            stream.receive_nowait()
        except anyio.WouldBlock:
            return k
        k += 1


class _Conn:
    """One live test connection and a Session bound to its server-side WebSocket."""

    def __init__(self, app: App, counter: CountingApp, cws: TestWebSocket) -> None:
        (ws,) = app.connections
        self.counter = counter
        self.cws = cws
        # A second Session on the same connection: same plan, same WebSocket, same
        # connection as the one the runtime built.
        self.conn = app._connections[ws]
        self.session = Session(
            app.plans[0],
            SessionConfig(app.config.max_json_depth, app.config.max_streams),
            self.conn,
            ws,
        )

    async def handle_only(self, n: int) -> float:
        handle, message = self.session.handle, MESSAGE
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(n):
            await handle(message)
        return n / (time.perf_counter() - t0)

    async def handle_reply(self, n: int) -> float:
        handle, reply, message = self.session.handle, self.conn.send_reply, MESSAGE
        gc.collect()
        done = self.counter.expect(n)
        t0 = time.perf_counter()
        for _ in range(n):
            payload = await handle(message)
            assert payload is not None
            await reply(payload)
        await done.wait()
        rate = n / (time.perf_counter() - t0)
        assert _drain_client(self.cws) == n
        return rate

    async def full_runtime(self, n: int) -> float:
        n //= 4
        put, message = self.cws._to_app.send_nowait, MESSAGE
        gc.collect()
        done = self.counter.expect(n)
        t0 = time.perf_counter()
        for _ in range(n):
            put(message)
        await done.wait()
        rate = n / (time.perf_counter() - t0)
        assert _drain_client(self.cws) == n
        return rate


WSGATE_VARIANTS: dict[str, Callable[[_Conn, int], Awaitable[float]]] = {
    "wsgate handle()": _Conn.handle_only,
    "wsgate handle() + reply": _Conn.handle_reply,
    "wsgate full runtime": _Conn.full_runtime,
}


async def _wsgate_round(n: int, order: Sequence[str]) -> dict[str, float]:
    app = App(gateways=[ChatGateway])
    counter = CountingApp(app)
    out: dict[str, float] = {}
    async with TestClient(counter) as client, client.websocket_connect("/chat") as cws:
        reply = await cws.request("chat.send", {"room": "lobby", "text": "hello world", "n": 42}, 7)
        assert reply == msgspec.json.decode(REPLY), reply
        conn = _Conn(app, counter, cws)
        for name in order:  # warm up every path first
            await WSGATE_VARIANTS[name](conn, WARMUP)
        for name in order:
            out[name] = await WSGATE_VARIANTS[name](conn, n)
    return out


# --------------------------------------------------------------------------- the run

FLOOR = "msgspec floor"
SYNC_VARIANTS: dict[str, Callable[[int], float]] = {
    FLOOR: bench_msgspec,
    "pydantic (envelope + per-event model)": bench_pydantic,
    "pydantic (discriminated union)": bench_pydantic_union,
}
ROW_ORDER = [
    (FLOOR, "-"),
    *((name, b) for name in WSGATE_VARIANTS for b in BACKENDS),
    ("pydantic (envelope + per-event model)", "-"),
    ("pydantic (discriminated union)", "-"),
]


def run(rounds: int = 15, frames: int = 20_000, *, out: bool | Path = True) -> str:
    """Run the benchmark; print and (with ``out``) write the markdown report."""
    units = [*SYNC_VARIANTS, *(f"wsgate@{b}" for b in BACKENDS)]
    samples: dict[tuple[str, str], list[float]] = {k: [] for k in ROW_ORDER}
    ratios: dict[tuple[str, str], list[float]] = {k: [] for k in ROW_ORDER}
    for fn in SYNC_VARIANTS.values():  # warm-up, untimed
        fn(WARMUP)
    started = time.perf_counter()
    for r in range(rounds):
        got: dict[tuple[str, str], float] = {}
        for unit in rotated(units, r):
            if unit in SYNC_VARIANTS:
                got[(unit, "-")] = SYNC_VARIANTS[unit](frames)
            else:
                backend = unit.split("@")[1]
                order = rotated(list(WSGATE_VARIANTS), r)
                res = anyio.run(_wsgate_round, frames, order, backend=backend)
                got.update({(name, backend): v for name, v in res.items()})
        floor = got[(FLOOR, "-")]
        for key, value in got.items():
            samples[key].append(value)
            ratios[key].append(value / floor)
        print(f"  round {r + 1}/{rounds}: floor {floor:,.0f} frames/s", flush=True)
    elapsed = time.perf_counter() - started

    rows = []
    for key in ROW_ORDER:
        s, q = Summary.of(samples[key]), Summary.of(ratios[key])
        rows.append(
            [
                key[0],
                key[1],
                f"{s.median:,.0f}",
                f"{s.min:,.0f}",
                f"{s.max:,.0f}",
                f"{1e9 / s.median:,.0f}",
                f"{q.median:.3f} ({q.min:.3f}-{q.max:.3f})",
            ]
        )
    table = markdown_table(
        ["variant", "backend", "frames/s median", "min", "max", "ns/frame", "ratio to msgspec"],
        rows,
        left=2,
    )
    report = "\n".join(
        [
            "# Dispatch hot path",
            "",
            f"`python -m benchmarks.dispatch --rounds {rounds} --frames {frames}`: {rounds} "
            f"rounds of {frames:,} frames per variant ({frames // 4:,} for the full runtime), "
            f"variants alternated and rotated each round; {elapsed:.0f} s.",
            "",
            f"Frame: `{FRAME}`",
            "",
            table,
            "",
            "ratio to msgspec: the variant's frames/s over the msgspec floor's frames/s in the "
            "same round; median (min-max) over the rounds. ns/frame is 1e9 / median.",
            "",
            environment(),
            "",
        ]
    )
    publish("dispatch.md", report, out)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dispatch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    run(args.rounds, args.frames, out=not args.no_write)


if __name__ == "__main__":
    main()
