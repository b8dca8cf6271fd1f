"""Where the wsgate dispatch path spends its time, and what two cheaper sketches gain.

Three parts, all in one process:

1. **cProfile** of ``Session.handle()`` (the ``wsgate handle()`` row of
   :mod:`benchmarks.dispatch`) and of the full runtime (reader -> inbound channel ->
   dispatch -> outbox -> writer), listing the functions by own time. cProfile inflates
   the cost of every Python call, so read its *calls per frame* and the order, not its
   times.
2. **Step costs**: each step of ``handle()`` timed alone with ``timeit`` (best of 5), to
   compare with the measured ``handle()`` total. What the steps do not add up to is the
   Python plumbing between them.
3. **Sketches**, measured against the real code, alternated round by round, as ratios:

   ``fast handle``
       A ``Session`` subclass whose ``handle()`` takes a fast path for text frames whose
       handler takes only ``Json[T]``: a per-connection route table (bound method,
       decoder) built on first use, the handler called positionally, the reply appended
       to the outbox without the ``_send_frame -> ws.send -> Outbox.put`` coroutine
       chain when the outbox has room. Errors and every other handler shape fall back to
       ``Session.handle``.
   ``nowait hops``
       ``Connection._reader`` hands frames to the inbound channel with ``send_nowait``
       (``await send`` only when it is full) and ``Session.dispatch`` takes queued
       frames with ``receive_nowait`` (``await receive`` only when it is empty): anyio's
       ``send``/``receive`` always yield to the event loop first, which costs a loop
       iteration per frame and per hop.

   The sketches copy the logic of ``src/wsgate`` as it was when written; they show the
   size of the gain, they are not patches (they skip e.g. the wildcard and stream paths).

Run: ``python -m benchmarks.profile_dispatch [--rounds 7]`` (about 15 s); writes
``benchmarks/results/profile_dispatch.md``. Not part of ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import re
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import anyio
import msgspec

import wsgate.app
from benchmarks._common import (
    CountingApp,
    Summary,
    environment,
    markdown_table,
    rotated,
    write_result,
)
from benchmarks.dispatch import (
    FRAME,
    REPLY,
    ChatGateway,
    ChatSendFrame,
    _Conn,
)
from wsgate import App
from wsgate.connection import Connection
from wsgate.dispatch import _MISSING, Session
from wsgate.encoding import encode
from wsgate.errors import (
    WebSocketDisconnect,
    WebSocketError,
    WebSocketStateError,
    WebSocketValidationError,
)
from wsgate.frames import _frame_decoder, _Push, _Reply, decode_frame, encode_reply
from wsgate.testing import TestClient
from wsgate.websocket import WebSocketState

__all__ = ["main"]

Message = dict[str, Any]
BACKENDS = ("asyncio", "trio")


# --------------------------------------------------------------------------- sketches


class FastSession(Session):
    """Sketch 1: a fast path for text frames routed to a ``Json[T]``-only handler."""

    __slots__ = ("_routes",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._routes: dict[str, Any] = {}

    def _route(self, event: str) -> Any:
        h = self.plan.handlers.get(event)
        if (
            h is None
            or h.is_stream
            or not h.is_async
            or h.per_frame
            or h.constant
            or h.json is None
            or h.json.default is not _MISSING
        ):
            return False
        return (h, self.bound(h), h.json.decoder)

    async def handle(self, message: Message) -> None:
        text = message.get("text")
        if text is None:
            return await Session.handle(self, message)
        try:
            frame = _frame_decoder.decode(text)
        except msgspec.DecodeError:
            return await Session.handle(self, message)
        event = frame.event
        route = self._routes.get(event)
        if route is None:
            route = self._routes[event] = self._route(event)
        if not route:
            return await Session.handle(self, message)
        h, fn, decoder = route
        frame_id = frame.id
        try:
            body = decoder.decode(frame.data)
        except msgspec.DecodeError:
            return await Session.handle(self, message)  # the error frame, built there
        try:
            result = await fn(body)
        except WebSocketValidationError as exc:
            await self.send_error(frame_id, "validation_error", exc.message, exc.errors)
            return None
        except (WebSocketDisconnect, WebSocketStateError) as exc:
            if self.ws.connection_state is not WebSocketState.DISCONNECTED:
                await self._failed(h, event, frame_id, exc)
            return None
        except WebSocketError as exc:
            await self.send_error(frame_id, exc.code, exc.message, exc.detail)
            if exc.close_code is not None:
                await self.ws.close(exc.close_code, exc.message[:120])
            return None
        except Exception as exc:
            await self._failed(h, event, frame_id, exc)
            return None
        if frame_id is not None:
            payload = encode(_Reply(event, frame_id, result))
        elif result is not None:
            payload = encode(_Push(event, result))
        else:
            return None
        out: Message = {"type": "websocket.send", "text": payload.decode()}
        ws = self.ws
        outbox = ws._conn.outbox
        q = outbox._queue
        # What an ``Outbox.put_nowait(message) -> bool`` would do.
        if (
            ws._connection_state is WebSocketState.CONNECTED
            and not outbox.finished
            and len(q) < outbox.capacity
        ):
            q.append(out)
            outbox._wake_writer()
        else:
            await ws.send(out)
        return None


async def _nowait_reader(self: Connection) -> None:
    """Sketch 2a: ``Connection._reader`` with ``send_nowait`` first."""
    receive = self.receive
    assert self.inbound_send is not None
    inbound = self.inbound_send
    ws = self.ws
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                try:
                    inbound.send_nowait(message)
                except anyio.WouldBlock:
                    await inbound.send(message)
            elif kind == "websocket.disconnect":
                ws._peer_closed(message.get("code", 1005), message.get("reason") or "")
                break
    finally:
        inbound.close()
    self.peer_left = True
    dropped = self.outbox.finish(discard=True)
    if dropped:
        self.stats.dropped_frames += dropped
    done = self.dispatch_done
    if done is not None and self.grace > 0:
        with anyio.move_on_after(self.grace):
            await done.wait()
    assert self.tg is not None
    self.tg.cancel_scope.cancel()


_original_dispatch = Session.dispatch


async def _nowait_dispatch(self: Session) -> None:
    """Sketch 2b: ``Session.dispatch`` (concurrency 1) with ``receive_nowait`` first."""
    if self.plan.meta.concurrency != 1:
        return await _original_dispatch(self)
    ws = self.ws
    conn = ws._conn
    ws._runtime_receives = True
    inbound = conn.inbound_recv
    assert inbound is not None and conn.tg is not None
    done = conn.dispatch_done = anyio.Event()
    handle = self.handle
    try:
        while True:
            try:
                message = inbound.receive_nowait()
            except anyio.WouldBlock:
                try:
                    message = await inbound.receive()
                except anyio.EndOfStream:
                    break
            except anyio.EndOfStream:
                break
            await handle(message)
    finally:
        done.set()
    return None


@contextmanager
def patched(fast_handle: bool, nowait_hops: bool) -> Iterator[None]:
    """Install the sketches for the App's runtime (module and class attributes, restored
    on exit): ``App._run`` builds ``wsgate.app.Session``."""
    targets = [(wsgate.app, "Session"), (Connection, "_reader"), (Session, "dispatch")]
    saved = [getattr(obj, name) for obj, name in targets]
    try:
        if fast_handle:
            setattr(wsgate.app, "Session", FastSession)  # noqa: B010
        if nowait_hops:
            setattr(Connection, "_reader", _nowait_reader)  # noqa: B010
            setattr(Session, "dispatch", _nowait_dispatch)  # noqa: B010
        yield
    finally:
        for (obj, name), value in zip(targets, saved, strict=True):
            setattr(obj, name, value)


# --------------------------------------------------------------------------- running


async def _with_conn(fn: Callable[[_Conn], Any], session_cls: type[Session] = Session) -> Any:
    app = App(gateways=[ChatGateway])
    counter = CountingApp(app)
    async with TestClient(counter) as client, client.websocket_connect("/chat") as cws:
        reply = await cws.request("chat.send", {"room": "lobby", "text": "hello world", "n": 42}, 7)
        assert reply == msgspec.json.decode(REPLY), reply
        conn = _Conn(app, counter, cws)
        conn.session = session_cls(app.plans[0], app, conn.session.ws)
        return await fn(conn)


def _cprofile(which: str, n: int, backend: str, top: int) -> str:
    async def go(conn: _Conn) -> pstats.Stats:
        fn = conn.handle_only if which == "handle" else conn.full_runtime
        await fn(n // 10)
        prof = cProfile.Profile()
        prof.enable()
        await fn(n)
        prof.disable()
        return pstats.Stats(prof)

    stats = anyio.run(_with_conn, go, backend=backend)
    frames = n if which == "handle" else n // 4
    rows = []
    entries: dict[Any, Any] = getattr(stats, "stats")  # noqa: B009
    for (path, line, func), (_cc, nc, tt, ct, _callers) in entries.items():
        if nc < frames / 2:  # the benchmark's own loop, gc.collect, set-up
            continue
        short = re.sub(r"^.*/(lib/python3\.\d+/(site-packages/)?|src/)", "", path)
        rows.append((tt, ct, nc, f"{short}:{line}({func})" if line else func))
    rows.sort(reverse=True)
    out = [
        [name, f"{nc / frames:.2f}", f"{tt / frames * 1e9:,.0f}", f"{ct / frames * 1e9:,.0f}"]
        for tt, ct, nc, name in rows[:top]
    ]
    return (
        markdown_table(
            ["function (own time order)", "calls/frame", "own ns/frame", "cum ns/frame"], out
        )
        + "\n\n(cProfile counts every resumption of a coroutine as a call.)"
    )


def _step_costs() -> str:
    app = App(gateways=[ChatGateway])
    h = app.plans[0].handlers["chat.send"]
    assert h.json is not None
    dec = h.json.decoder
    frame = decode_frame(FRAME)
    body = dec.decode(frame.data)
    fn = ChatGateway().send
    floor_dec = msgspec.json.Decoder(ChatSendFrame).decode
    floor_enc = msgspec.json.Encoder().encode
    payload = encode_reply("chat.send", 7, body)

    def drive(coro: Any) -> None:
        try:
            coro.send(None)
        except StopIteration:
            pass

    def empty() -> None:
        pass

    def copy_kwargs(consts: dict[str, Any], value: Any) -> dict[str, Any]:
        kwargs = dict(consts)
        kwargs["body"] = value
        return kwargs

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("decode_frame(text) (envelope, data kept Raw)", lambda: decode_frame(FRAME)),
        ("plan.handlers.get(event)", lambda: app.plans[0].handlers.get("chat.send")),
        ("Json decoder.decode(frame.data)", lambda: dec.decode(frame.data)),
        ("kwargs = dict(consts); kwargs[name] = body", lambda: copy_kwargs({}, body)),
        ("handler(**kwargs), coroutine run to completion", lambda: drive(fn(**{"body": body}))),
        ("handler(body), coroutine run to completion", lambda: drive(fn(body))),
        ("encode_reply(event, id, result)", lambda: encode_reply("chat.send", 7, body)),
        ("payload.decode()", lambda: payload.decode()),
        ("ASGI message dict", lambda: {"type": "websocket.send", "text": "x"}),
        ("(lambda call overhead, subtract from each row)", empty),
        (
            "msgspec floor: typed decode + encode reply dict",
            lambda: floor_enc({"event": (f := floor_dec(FRAME)).event, "id": f.id, "data": f.data}),
        ),
    ]
    rows = []
    number = 200_000
    for label, stmt in steps:
        best = min(timeit.repeat(stmt, number=number, repeat=5)) / number
        rows.append([label, f"{best * 1e9:,.0f}"])
    return markdown_table(["step", "ns"], rows)


def _ab(rounds: int, frames: int) -> str:
    """Baseline vs sketches, alternated and rotated per round; ratios per round."""
    results: dict[tuple[str, str], list[float]] = {}
    handle_variants: dict[str, type[Session]] = {"Session": Session, "FastSession": FastSession}
    runtime_variants = {
        "baseline": (False, False),
        "fast handle": (True, False),
        "nowait hops": (False, True),
        "both": (True, True),
    }
    for r in range(rounds):
        for backend in rotated(BACKENDS, r):
            got: dict[str, float] = {}
            for name in rotated(list(handle_variants), r):

                async def handle_only(conn: _Conn) -> float:
                    await conn.handle_only(2_000)
                    return await conn.handle_only(frames)

                got[f"handle(): {name}"] = anyio.run(
                    _with_conn, handle_only, handle_variants[name], backend=backend
                )
            for name in rotated(list(runtime_variants), r):

                async def full(conn: _Conn) -> float:
                    await conn.full_runtime(2_000)
                    return await conn.full_runtime(frames)

                with patched(*runtime_variants[name]):
                    got[f"full runtime: {name}"] = anyio.run(_with_conn, full, backend=backend)
            for key, value in got.items():
                base = got[
                    "handle(): Session" if key.startswith("handle") else "full runtime: baseline"
                ]
                results.setdefault((key, backend), []).append(value)
                results.setdefault((key + " ratio", backend), []).append(value / base)
        print(f"  sketches: round {r + 1}/{rounds}", flush=True)
    rows = []
    for (key, backend), values in results.items():
        if key.endswith(" ratio"):
            continue
        s = Summary.of(values)
        q = Summary.of(results[(key + " ratio", backend)])
        rows.append(
            [
                key,
                backend,
                f"{s.median:,.0f}",
                f"{s.min:,.0f}-{s.max:,.0f}",
                f"{q.median:.2f} ({q.min:.2f}-{q.max:.2f})",
            ]
        )
    rows.sort(key=lambda row: (row[0].split(":")[0], row[1]))
    return markdown_table(
        ["variant", "backend", "frames/s median", "min-max", "ratio to baseline"], rows, left=2
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_dispatch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    gc.collect()
    t0 = time.perf_counter()
    parts = [
        "# Profile of the dispatch path",
        "",
        f"`python -m benchmarks.profile_dispatch --rounds {args.rounds} --frames {args.frames}`",
        "",
        "## cProfile: Session.handle() (asyncio)",
        "",
        _cprofile("handle", args.frames, "asyncio", args.top),
        "",
        "## cProfile: full runtime, frames through the connection (asyncio)",
        "",
        _cprofile("full", args.frames, "asyncio", args.top),
        "",
        "## cProfile: full runtime, frames through the connection (trio)",
        "",
        _cprofile("full", args.frames, "trio", args.top),
        "",
        "## Step costs (timeit, best of 5)",
        "",
        _step_costs(),
        "",
        "## Sketches vs the real code (alternated rounds)",
        "",
        _ab(args.rounds, args.frames),
        "",
        environment(),
        "",
    ]
    report = "\n".join(parts)
    print(report)
    print(f"{time.perf_counter() - t0:.0f} s")
    if not args.no_write:
        print(f"written to {write_result('profile_dispatch.md', report)}")


if __name__ == "__main__":
    main()
