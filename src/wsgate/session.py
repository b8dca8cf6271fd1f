"""Running frames through a compiled plan: one gateway instance per connection.

Per frame: one envelope decode (``data`` kept raw), the pure :func:`route` step (a dict
lookup), one typed decode of ``data``, the handler call and one encode. :meth:`Session.handle`
never writes: it returns an :data:`~wsgate.outcome.Outcome` (the encoded answer, a close
after an error frame, a stream to start) and the runtime carries it out from the task
that should (see :mod:`wsgate.connection`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from . import status
from .errors import (
    WebSocketDisconnect,
    WebSocketError,
    WebSocketForbiddenError,
    WebSocketStateError,
    WebSocketValidationError,
)
from .frames import (
    DEFAULT_MAX_JSON_DEPTH,
    Frame,
    FrameError,
    decode_data,
    decode_frame,
    encode_error,
    encode_push,
    encode_reply,
    validation_error,
)
from .gateway import BINARY
from .outcome import CloseAfter, Outcome, StartStream
from .plan import MISSING, GatewayPlan, HandlerPlan, Kind, Param
from .state import Phase, truncate_reason

if TYPE_CHECKING:
    from .asgi import Message
    from .connection import Connection
    from .websocket import WebSocket

__all__ = ["Routed", "Session", "SessionConfig", "route"]

logger = logging.getLogger("wsgate")
_NULL_DATA = b"null"

#: What :func:`route` decides for one frame: the handler with the event and id, or the
#: error frame to answer with (id, code, message, detail).
Routed = (
    tuple[HandlerPlan, str, "int | str | None", Frame | None]
    | tuple[None, str, "int | str | None", tuple[str, str, Any]]
)


def route(plan: GatewayPlan, message: Message, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Routed:
    """Decide, without I/O, what handles an inbound ASGI message: ``(handler, event,
    id, frame)``, or ``(None, event, id, (code, message, detail))`` for an error frame
    (``invalid_frame``, ``unknown_event``). Never raises, whatever the message holds
    (JSON nested deeper than ``max_depth`` is ``invalid_frame``)."""
    text = message.get("text")
    if text is not None:
        try:
            frame = decode_frame(text, max_depth)
        except FrameError as exc:
            return None, "", exc.id, ("invalid_frame", exc.message, None)
        h = plan.handlers.get(frame.event) or plan.wildcard
        if h is None:
            event = frame.event
            return (
                None,
                event,
                frame.id,
                ("unknown_event", f"no handler for event {event[:100]!r}", {"event": event}),
            )
        return h, frame.event, frame.id, frame
    h = plan.binary or plan.wildcard
    if h is None:
        return (
            None,
            BINARY,
            None,
            ("unknown_event", "this endpoint does not take binary frames", {"event": BINARY}),
        )
    return h, BINARY, None, None


def _convert(value: Any, tp: Any, where: str) -> Any:
    try:
        return msgspec.convert(value, tp, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, f"$.{where}", where) from None


def _frame_value(p: Param, value: Any, frame: Frame | None, data: bytes | None) -> Any:
    kind = p.kind
    if kind is Kind.JSON:
        return value
    if kind is Kind.BYTES:
        return data if frame is None else bytes(frame.data)
    if kind is Kind.FRAME:
        return frame
    return None


def _constant_value(p: Param, ws: WebSocket, resolved: dict[Any, Any]) -> Any:
    kind = p.kind
    if kind is Kind.WS:
        return ws
    if kind is Kind.PROVIDER:
        return p.value
    if kind is Kind.DEPENDENCY:
        return resolved[p.type]
    if kind is Kind.PATH:
        value = ws.path_params.get(p.key, MISSING)
        if value is MISSING:
            return p.default
        return value if p.type is None else _convert(str(value), p.type, f"path.{p.key}")
    source = ws.query_params if kind is Kind.QUERY else ws.headers
    label = "query" if kind is Kind.QUERY else "headers"
    if p.value:  # list[T]
        values: Any = source.getlist(p.key)
        if not values and p.default is not MISSING:
            return p.default
    else:
        values = source.get(p.key, MISSING)
        if values is MISSING:
            if p.default is not MISSING:
                return p.default
            raise WebSocketValidationError(
                f"missing {label[:-1] if kind is Kind.HEADER else 'query'} parameter {p.key!r}",
                [{"path": f"$.{label}.{p.key}", "message": "required value is missing"}],
            )
    return _convert(values, p.type, f"{label}.{p.key}")


Entry = tuple[Callable[..., Any], dict[str, Any], list[Any]]
_NO_VALUES: dict[Any, Any] = {}
#: A session's handler entries before its first frame (never written to).
_NO_ENTRIES: dict[str, Entry] = {}


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a session needs of the App's configuration, and no more."""

    #: Nesting depth at which a frame's JSON is refused (``AppConfig.max_json_depth``).
    max_json_depth: int
    #: Streams (async-generator handlers) one connection may run at once
    #: (``AppConfig.max_streams``).
    max_streams: int


class Session:
    """One connection's gateway instance, bound methods and connection-constant arguments."""

    __slots__ = (
        "_entries",
        "concurrency",
        "config",
        "conn",
        "instance",
        "max_depth",
        "plan",
        "sequential",
        "stats",
        "streams",
        "values",
        "ws",
    )

    def __init__(
        self,
        plan: GatewayPlan,
        config: SessionConfig,
        conn: Connection,
        ws: WebSocket,
        values: dict[Any, Any] | None = None,
    ) -> None:
        self.plan = plan
        self.config = config
        self.conn = conn
        #: The App's counters (the connection's).
        self.stats = conn.stats
        self.ws = ws
        #: The connection's per-connection dependency results, by type.
        self.values = _NO_VALUES if values is None else values
        self.instance = plan.cls(**plan.ctor_kwargs)
        self._entries: dict[str, Entry] = _NO_ENTRIES  # its own dict with the first entry
        #: Handlers of one connection that may run at once (``@ws_controller(concurrency=)``).
        self.concurrency = plan.meta.concurrency
        self.sequential = self.concurrency == 1
        self.max_depth = config.max_json_depth
        #: Streams (async-generator handlers) running on this connection.
        self.streams = 0

    def _entry(self, h: HandlerPlan) -> Entry:
        """The bound method, the connection-constant arguments by name, and the positional
        argument list with the constants in place (per-frame slots left None)."""
        entry = self._entries.get(h.attr)
        if entry is None:
            ws, values = self.ws, self.values
            consts = {p.name: _constant_value(p, ws, values) for p in h.constant}
            args = [consts.get(p.name) for p in h.params]
            fn = h.func if h.func is not None else getattr(self.instance, h.attr)
            entry = (fn, consts, args)
            if self._entries is _NO_ENTRIES:
                self._entries = {}
            self._entries[h.attr] = entry
        return entry

    async def call_once(self, h: HandlerPlan) -> Any:
        """Call a guard or dependency that runs once per connection (nothing cached);
        returns what it returned (awaited if awaitable, except an async context manager,
        which is returned as is)."""
        ws, values = self.ws, self.values
        kwargs = {p.name: _constant_value(p, ws, values) for p in h.constant}
        for p in h.per_frame:
            kwargs[p.name] = None
        result = h.func(**kwargs)
        if h.is_async or inspect.isawaitable(result):
            result = await result
        return result

    async def _check_guards(self, h: HandlerPlan, frame: Frame | None) -> None:
        """Run the handler's message guards; raises WebSocketError (a refusal)."""
        for g in h.guards:
            fn, consts, _ = self._entries.get(g.attr) or self._entry(g)
            kwargs = consts
            if g.per_frame:
                kwargs = dict(consts)
                for p in g.per_frame:
                    kwargs[p.name] = frame
            try:
                result = fn(**kwargs)
                if g.is_async or inspect.isawaitable(result):
                    result = await result
            except WebSocketError:
                self.stats.forbidden_frames += 1
                raise
            if result is False:
                self.stats.forbidden_frames += 1
                event = frame.event if frame is not None else BINARY
                raise WebSocketForbiddenError(f"not allowed to send {event!r}")

    async def call_hook(self, h: HandlerPlan, exc: BaseException | None = None) -> Any:
        """Call a lifecycle hook (``@on_connect``, ``@on_disconnect``, ``@on_error``)."""
        fn, consts, _ = self._entry(h)
        kwargs = dict(consts)
        for p in h.per_frame:
            if p.kind is Kind.EXCEPTION:
                kwargs[p.name] = exc
        result = fn(**kwargs)
        if h.is_async or inspect.isawaitable(result):
            result = await result
        return result

    # -- frames ----------------------------------------------------------------------

    async def handle(self, message: Message) -> Outcome:
        """Run one inbound ASGI message through the plan; returns what to do about it:
        the encoded answer to send (a reply, a push, an error frame), a close after an
        error frame, a stream to start, or None. Never writes, and never raises for bad
        input or a failing handler: those become error frames."""
        h, event, frame_id, extra = route(self.plan, message, self.max_depth)
        if h is None:
            code, text, detail = extra  # type: ignore[misc]
            if code == "invalid_frame":
                self.stats.invalid_frames += 1
            return encode_error(frame_id, code, text, detail)
        frame: Frame | None = extra  # type: ignore[assignment]
        data: bytes | None = None if frame is not None else (message.get("bytes") or b"")
        try:
            entry = self._entries.get(h.attr) or self._entry(h)
            if h.guards:
                await self._check_guards(h, frame)
            fn = entry[0]
            value: Any = None
            j = h.json
            if j is not None:
                raw: Any = frame.data if frame is not None else data
                if j.default is not MISSING and bytes(raw) == _NULL_DATA:
                    value = j.default
                else:
                    # A binary frame's payload has not been depth-checked yet.
                    depth = self.max_depth if frame is None else None
                    value = decode_data(j.decoder, raw, event, depth)
            if not h.slots:
                result = fn(*entry[2]) if h.positional else fn(**entry[1])
            elif h.positional:
                args = entry[2].copy()
                for i, p in h.slots:
                    args[i] = value if p.kind is Kind.JSON else _frame_value(p, value, frame, data)
                result = fn(*args)
            else:
                kwargs = dict(entry[1])
                for _, p in h.slots:
                    kwargs[p.name] = _frame_value(p, value, frame, data)
                result = fn(**kwargs)
            if h.is_async or inspect.isawaitable(result):
                result = await result
            elif inspect.isasyncgen(result):
                return await self._start_stream(h, result, event, frame_id)
            if frame_id is not None:
                return encode_reply(event, frame_id, result)
            if result is not None:
                return encode_push(event, result)
            return None
        except WebSocketValidationError as exc:
            return encode_error(frame_id, "validation_error", exc.message, exc.errors)
        except (WebSocketDisconnect, WebSocketStateError) as exc:
            if self.conn.lifecycle.phase > Phase.OPEN:
                return None  # the connection ended under the handler: nobody to tell
            return await self._failed(h, event, frame_id, exc)
        except WebSocketError as exc:
            error = encode_error(frame_id, exc.code, exc.message, exc.detail)
            if exc.close_code is not None:
                return CloseAfter(error, exc.close_code, truncate_reason(exc.message))
            return error
        except Exception as exc:
            return await self._failed(h, event, frame_id, exc)

    async def _failed(
        self, h: HandlerPlan, event: str, frame_id: int | str | None, exc: BaseException
    ) -> bytes | CloseAfter | None:
        ws = self.ws
        logger.error("handler %s failed on %s (event %r)", h.qualname, ws.path, event, exc_info=exc)
        internal = encode_error(frame_id, "internal_error", "internal server error")
        hook = self.plan.on_error
        if hook is not None:
            try:
                await self.call_hook(hook, exc)
            except Exception as hook_exc:
                if not isinstance(hook_exc, WebSocketDisconnect):
                    logger.error(
                        "@on_error hook %s raised; closing with 1011",
                        hook.qualname,
                        exc_info=hook_exc,
                    )
                return CloseAfter(
                    internal if frame_id is not None else None,
                    status.WS_1011_INTERNAL_ERROR,
                    "internal error",
                )
            if frame_id is None:
                return None
        return internal

    async def _start_stream(
        self, h: HandlerPlan, agen: Any, event: str, frame_id: int | str | None
    ) -> bytes | StartStream:
        """Run an async-generator handler's stream beside the dispatcher; the request is
        answered (with null) before the stream's first item."""
        limit = self.config.max_streams
        if self.streams >= limit:
            await agen.aclose()
            return encode_error(
                frame_id,
                "too_many_streams",
                f"at most {limit} streams may run on one connection",
            )
        self.streams += 1
        reply = encode_reply(event, frame_id, None) if frame_id is not None else None
        return StartStream(reply, partial(self._run_stream, h, agen, event))

    async def _run_stream(self, h: HandlerPlan, agen: Any, event: str) -> None:
        conn = self.conn
        try:
            async for item in agen:
                if conn.lifecycle.phase is not Phase.OPEN:
                    break
                await conn.send_reply(encode_push(event, item))
        except Exception as exc:
            if conn.lifecycle.phase is Phase.OPEN:
                await conn.answer(await self._failed(h, event, None, exc))
        finally:
            self.streams -= 1
            with anyio.CancelScope(shield=True):
                await agen.aclose()
