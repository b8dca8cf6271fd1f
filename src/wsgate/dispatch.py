"""Compiling a gateway class into an immutable dispatch plan, and running frames through it.

All reflection happens in :func:`compile_gateway`, once, when the App is built. Per
frame the runtime does one envelope decode, one dict lookup, one typed decode of
``data``, the handler call and one encode of the reply.
"""

from __future__ import annotations

import enum
import inspect
import logging
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import msgspec

from . import status
from .connection import Overflow
from .di import Container, type_hints
from .errors import (
    ConfigurationError,
    WebSocketDisconnect,
    WebSocketError,
    WebSocketStateError,
    WebSocketValidationError,
)
from .frames import (
    Frame,
    FrameError,
    decode_data,
    decode_frame,
    encode_error,
    encode_push,
    encode_reply,
    validation_errors,
)
from .gateway import BINARY, HOOK_ATTR, MESSAGE_ATTR, WILDCARD, GatewayMeta, gateway_meta
from .params import HeaderParam, JsonBody, QueryParam
from .routing import compile_template
from .websocket import WebSocket, WebSocketState

if TYPE_CHECKING:
    from .app import App

__all__ = ["GatewayPlan", "HandlerPlan", "compile_gateway"]

logger = logging.getLogger("wsgate")
_MISSING: Any = object()
_NULL_DATA = b"null"


class Kind(enum.Enum):
    WS = "ws"
    PATH = "path"
    QUERY = "query"
    HEADER = "header"
    PROVIDER = "provider"
    JSON = "json"
    BYTES = "bytes"
    FRAME = "frame"
    EXCEPTION = "exception"


#: Kinds whose value is the same for every frame of a connection.
_CONSTANT = frozenset({Kind.WS, Kind.PATH, Kind.QUERY, Kind.HEADER, Kind.PROVIDER})


@dataclass(frozen=True, slots=True)
class Param:
    """How one handler parameter gets its value."""

    name: str
    kind: Kind
    type: Any = None
    key: str = ""
    default: Any = _MISSING
    decoder: Any = None
    value: Any = None


@dataclass(frozen=True, slots=True)
class HandlerPlan:
    """One method of a gateway, with the prepared extractors for its parameters."""

    attr: str
    qualname: str
    events: tuple[str, ...]
    params: tuple[Param, ...]
    is_async: bool
    is_stream: bool
    constant: tuple[Param, ...]
    json: Param | None
    per_frame: tuple[Param, ...]
    #: True if every parameter can be passed positionally (the fast call path).
    positional: bool = False
    #: Positions of the per-frame parameters (Json, bytes, Frame, exception).
    slots: tuple[tuple[int, Param], ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """Everything the runtime needs to serve one gateway class, computed at startup."""

    cls: type
    meta: GatewayMeta
    template: str
    ctor_kwargs: dict[str, Any]
    on_connect: HandlerPlan | None
    on_disconnect: HandlerPlan | None
    on_error: HandlerPlan | None
    handlers: dict[str, HandlerPlan]
    wildcard: HandlerPlan | None
    binary: HandlerPlan | None
    handler_plans: tuple[HandlerPlan, ...] = field(default=())

    @property
    def has_message_handlers(self) -> bool:
        """True if the runtime dispatches frames (the class has ``@on_message`` methods)."""
        return bool(self.handlers) or self.wildcard is not None or self.binary is not None

    @property
    def name(self) -> str:
        return self.cls.__qualname__


# --------------------------------------------------------------------------- compiling


def _unwrap(obj: Any) -> Any:
    return obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj


def _natural_type(converter: str) -> Any:
    return {"int": int, "uuid": uuid.UUID}.get(converter, str)


def _compile_param(
    owner: str,
    name: str,
    annotation: Any,
    default: Any,
    *,
    hook: str,
    path_params: dict[str, str],
    container: Container,
) -> Param:
    where = f"{owner}, parameter {name!r}"
    base: Any = annotation
    markers: tuple[Any, ...] = ()
    if typing.get_origin(annotation) is Annotated:
        base, *rest = typing.get_args(annotation)
        markers = tuple(rest)
    for m in markers:
        if isinstance(m, JsonBody):
            if hook not in ("message",):
                raise ConfigurationError(
                    f"{where}: Json[...] receives a frame's data, so it only works in "
                    "@on_message handlers"
                )
            try:
                decoder = msgspec.json.Decoder(base)
            except TypeError as exc:
                raise ConfigurationError(
                    f"{where}: msgspec cannot decode into {base!r} ({exc}); use a msgspec "
                    "Struct, dataclass, TypedDict or builtin type"
                ) from exc
            return Param(name, Kind.JSON, base, default=default, decoder=decoder)
        if isinstance(m, QueryParam | HeaderParam):
            kind = Kind.QUERY if isinstance(m, QueryParam) else Kind.HEADER
            key = m.alias or (name if kind is Kind.QUERY else name.replace("_", "-"))
            is_list = typing.get_origin(base) is list
            try:
                msgspec.convert([] if is_list else "", base, strict=False)
            except msgspec.ValidationError:
                pass
            except TypeError as exc:
                raise ConfigurationError(
                    f"{where}: msgspec cannot convert to {base!r} ({exc})"
                ) from exc
            return Param(name, kind, base, key=key, default=default, value=is_list)
    if base is WebSocket:
        return Param(name, Kind.WS)
    if name in path_params:
        natural = _natural_type(path_params[name])
        conv = None if annotation is _MISSING or base in (natural, Any) else base
        return Param(name, Kind.PATH, conv, key=name, default=default)
    if base is Frame:
        if hook != "message":
            raise ConfigurationError(f"{where}: a Frame is only available in @on_message handlers")
        return Param(name, Kind.FRAME)
    if base is bytes:
        if hook != "message":
            raise ConfigurationError(
                f"{where}: bytes (the frame payload) is only available in @on_message handlers"
            )
        return Param(name, Kind.BYTES)
    if hook == "error" and (
        (isinstance(base, type) and issubclass(base, BaseException))
        or (annotation is _MISSING and name in ("exc", "error", "exception"))
    ):
        return Param(name, Kind.EXCEPTION)
    if annotation is _MISSING and name == "ws":
        return Param(name, Kind.WS)
    if annotation is not _MISSING and container.can_provide(base):
        return Param(name, Kind.PROVIDER, value=container.get(base))
    if default is not _MISSING:
        return Param(name, Kind.PROVIDER, value=default)
    hint = (
        f"its type {getattr(base, '__qualname__', base)!s} is not a provider"
        if annotation is not _MISSING
        else "it has no type annotation"
    )
    raise ConfigurationError(
        f"{where}: nothing can supply it ({hint}). Annotate it as WebSocket, Json[T], "
        f"Query[T] or Header[T], name it after a path parameter "
        f"({', '.join(path_params) or 'the route has none'}), or register a provider of its "
        "type in App(providers=[...])"
    )


def _compile_handler(
    cls: type,
    attr: str,
    raw: Any,
    *,
    hook: str,
    events: tuple[str, ...],
    path_params: dict[str, str],
    container: Container,
) -> HandlerPlan:
    func = _unwrap(raw)
    owner = f"{cls.__qualname__}.{attr}"
    hints = type_hints(func, owner)
    sig = inspect.signature(func)
    params: list[Param] = []
    names = list(sig.parameters.items())
    if not isinstance(raw, staticmethod):
        names = names[1:]  # self or cls
    positional = True
    for name, p in names:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional = False
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConfigurationError(f"{owner}: *args/**kwargs cannot be injected ({name!r})")
        default = p.default if p.default is not p.empty else _MISSING
        params.append(
            _compile_param(
                owner,
                name,
                hints.get(name, _MISSING),
                default,
                hook=hook,
                path_params=path_params,
                container=container,
            )
        )
    jsons = [p for p in params if p.kind is Kind.JSON]
    if len(jsons) > 1:
        raise ConfigurationError(
            f"{owner}: parameters {', '.join(repr(p.name) for p in jsons)} are both Json[...]; "
            "a frame has one data field, so declare one Json parameter"
        )
    is_stream = inspect.isasyncgenfunction(func)
    if is_stream and hook != "message":
        raise ConfigurationError(f"{owner}: only @on_message handlers may be async generators")
    return HandlerPlan(
        attr=attr,
        qualname=owner,
        events=events,
        params=tuple(params),
        is_async=inspect.iscoroutinefunction(func),
        is_stream=is_stream,
        constant=tuple(p for p in params if p.kind in _CONSTANT),
        json=jsons[0] if jsons else None,
        per_frame=tuple(p for p in params if p.kind in (Kind.BYTES, Kind.FRAME, Kind.EXCEPTION)),
        positional=positional,
        slots=tuple((i, p) for i, p in enumerate(params) if p.kind not in _CONSTANT),
    )


def compile_gateway(cls: Any, container: Container) -> GatewayPlan:
    """Read a ``@ws_controller`` class once into a :class:`GatewayPlan`.

    Raises :class:`~wsgate.errors.ConfigurationError` naming the class, method and
    parameter for anything that could not work at run time.
    """
    if not isinstance(cls, type):
        raise ConfigurationError(f"App(gateways=[...]) takes @ws_controller classes, not {cls!r}")
    meta = gateway_meta(cls)
    if meta is None:
        inherited = next((b for b in cls.__mro__[1:] if gateway_meta(b) is not None), None)
        extra = (
            f" (it inherits from the gateway {inherited.__qualname__}, but gateway status is "
            "not inherited)"
            if inherited
            else ""
        )
        raise ConfigurationError(
            f'{cls.__qualname__} is not a gateway{extra}; decorate it with @ws_controller("/path")'
        )
    route = compile_template(meta.path, cls)
    path_params = dict(zip(route.param_names, route.param_types, strict=True))
    hooks: dict[str, HandlerPlan] = {}
    handlers: dict[str, HandlerPlan] = {}
    plans: list[HandlerPlan] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, raw in vars(klass).items():
            if attr in seen:
                continue
            seen.add(attr)
            func = _unwrap(raw)
            kinds: frozenset[str] = (
                getattr(func, HOOK_ATTR, frozenset()) if callable(func) else frozenset()
            )
            metas = getattr(func, MESSAGE_ATTR, ()) if callable(func) else ()
            if not kinds and not metas:
                continue
            if metas and kinds:
                raise ConfigurationError(
                    f"{cls.__qualname__}.{attr}: a method is either a lifecycle hook "
                    f"({', '.join(sorted(kinds))}) or a message handler, not both"
                )
            for kind in sorted(kinds):
                if kind in hooks:
                    raise ConfigurationError(
                        f"{cls.__qualname__}: two @{kind} hooks ({hooks[kind].attr} and {attr}); "
                        "keep one"
                    )
                plan = _compile_handler(
                    cls,
                    attr,
                    raw,
                    hook=kind.removeprefix("on_"),
                    events=(),
                    path_params=path_params,
                    container=container,
                )
                if plan.is_stream:
                    raise ConfigurationError(
                        f"{plan.qualname}: @{kind} cannot be an async generator"
                    )
                hooks[kind] = plan
            if metas:
                events = tuple(m.event for m in metas)
                plan = _compile_handler(
                    cls,
                    attr,
                    raw,
                    hook="message",
                    events=events,
                    path_params=path_params,
                    container=container,
                )
                plans.append(plan)
                for event in events:
                    if event in handlers:
                        raise ConfigurationError(
                            f"{cls.__qualname__}: two handlers for event {event!r} "
                            f"({handlers[event].attr} and {attr}); keep one"
                        )
                    handlers[event] = plan
    wildcard = handlers.pop(WILDCARD, None)
    binary = handlers.pop(BINARY, None)
    if meta.overflow is not None and not isinstance(meta.overflow, Overflow):
        raise ConfigurationError(f"{cls.__qualname__}: overflow must be an Overflow member")
    return GatewayPlan(
        cls=cls,
        meta=meta,
        template=route.template,
        ctor_kwargs=container.resolve_kwargs(cls),
        on_connect=hooks.get("on_connect"),
        on_disconnect=hooks.get("on_disconnect"),
        on_error=hooks.get("on_error"),
        handlers=handlers,
        wildcard=wildcard,
        binary=binary,
        handler_plans=tuple(plans),
    )


# --------------------------------------------------------------------------- running


def _convert(value: Any, tp: Any, where: str) -> Any:
    try:
        return msgspec.convert(value, tp, strict=False)
    except msgspec.ValidationError as exc:
        raise WebSocketValidationError(
            f"invalid {where}: {exc}", validation_errors(exc, f"$.{where}")
        ) from None


def _frame_value(p: Param, value: Any, frame: Frame | None, data: bytes | None) -> Any:
    kind = p.kind
    if kind is Kind.JSON:
        return value
    if kind is Kind.BYTES:
        return data if frame is None else bytes(frame.data)
    if kind is Kind.FRAME:
        return frame
    return None


def _constant_value(p: Param, ws: WebSocket) -> Any:
    kind = p.kind
    if kind is Kind.WS:
        return ws
    if kind is Kind.PROVIDER:
        return p.value
    if kind is Kind.PATH:
        value = ws.path_params.get(p.key, _MISSING)
        if value is _MISSING:
            return p.default
        return value if p.type is None else _convert(str(value), p.type, f"path.{p.key}")
    source = ws.query_params if kind is Kind.QUERY else ws.headers
    label = "query" if kind is Kind.QUERY else "headers"
    if p.value:  # list[T]
        values: Any = source.getlist(p.key)
        if not values and p.default is not _MISSING:
            return p.default
    else:
        values = source.get(p.key, _MISSING)
        if values is _MISSING:
            if p.default is not _MISSING:
                return p.default
            raise WebSocketValidationError(
                f"missing {label[:-1] if kind is Kind.HEADER else 'query'} parameter {p.key!r}",
                [{"path": f"$.{label}.{p.key}", "message": "required value is missing"}],
            )
    return _convert(values, p.type, f"{label}.{p.key}")


class Session:
    """One connection's gateway instance, bound methods and connection-constant arguments."""

    __slots__ = ("_entries", "app", "instance", "plan", "streams", "ws")

    def __init__(self, plan: GatewayPlan, app: App, ws: WebSocket) -> None:
        self.plan = plan
        self.app = app
        self.ws = ws
        self.instance = plan.cls(**plan.ctor_kwargs)
        self._entries: dict[str, tuple[Callable[..., Any], dict[str, Any], list[Any]]] = {}
        #: Streams (async-generator handlers) running on this connection.
        self.streams = 0

    def _entry(self, h: HandlerPlan) -> tuple[Callable[..., Any], dict[str, Any], list[Any]]:
        """The bound method, the connection-constant arguments by name, and the positional
        argument list with the constants in place (per-frame slots left None)."""
        entry = self._entries.get(h.attr)
        if entry is None:
            ws = self.ws
            consts = {p.name: _constant_value(p, ws) for p in h.constant}
            args = [consts.get(p.name) for p in h.params]
            entry = (getattr(self.instance, h.attr), consts, args)
            self._entries[h.attr] = entry
        return entry

    def _kwargs(self, h: HandlerPlan) -> dict[str, Any]:
        return self._entry(h)[1]

    def bound(self, h: HandlerPlan) -> Callable[..., Any]:
        return self._entry(h)[0]

    async def call_hook(self, h: HandlerPlan, exc: BaseException | None = None) -> Any:
        kwargs = dict(self._kwargs(h))
        for p in h.per_frame:
            if p.kind is Kind.EXCEPTION:
                kwargs[p.name] = exc
        result = self.bound(h)(**kwargs)
        if h.is_async or inspect.isawaitable(result):
            result = await result
        return result

    # -- frames ----------------------------------------------------------------------

    async def _send_frame(self, payload: bytes) -> None:
        # A frame answered after the connection closed (the client left mid-request, a
        # handler closed it, shutdown) has nobody to go to: drop the answer quietly.
        ws = self.ws
        if ws._connection_state is not WebSocketState.CONNECTED:
            return
        try:
            await ws.send({"type": "websocket.send", "text": payload.decode()})
        except (WebSocketDisconnect, WebSocketStateError):
            return

    async def send_error(
        self, id: int | str | None, code: str, message: str, detail: Any = None
    ) -> None:
        await self._send_frame(encode_error(id, code, message, detail))

    async def handle(self, message: dict[str, Any]) -> None:
        """Run one inbound ASGI message through the plan. Never raises for bad input."""
        plan = self.plan
        text = message.get("text")
        frame: Frame | None
        data: bytes | None = None
        if text is not None:
            try:
                frame = decode_frame(text, self.app.config.max_json_depth)
            except FrameError as exc:
                self.app.stats.invalid_frames += 1
                await self.send_error(exc.id, "invalid_frame", exc.message)
                return
            h = plan.handlers.get(frame.event) or plan.wildcard
            if h is None:
                await self.send_error(
                    frame.id,
                    "unknown_event",
                    f"no handler for event {frame.event[:100]!r}",
                    {"event": frame.event},
                )
                return
            event, frame_id = frame.event, frame.id
        else:
            frame, frame_id, event = None, None, BINARY
            data = message.get("bytes") or b""
            h = plan.binary or plan.wildcard
            if h is None:
                await self.send_error(
                    None,
                    "unknown_event",
                    "this endpoint does not take binary frames",
                    {"event": BINARY},
                )
                return
        try:
            entry = self._entries.get(h.attr) or self._entry(h)
            fn = entry[0]
            value: Any = None
            j = h.json
            if j is not None:
                raw = frame.data if frame is not None else data
                if j.default is not _MISSING and bytes(raw) == _NULL_DATA:  # type: ignore[arg-type]
                    value = j.default
                else:
                    # A binary frame's payload has not been depth-checked yet.
                    depth = self.app.config.max_json_depth if frame is None else None
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
                await self._start_stream(h, result, event, frame_id)
                return
            if frame_id is not None:
                payload = encode_reply(event, frame_id, result)
            elif result is not None:
                payload = encode_push(event, result)
            else:
                return
        except WebSocketValidationError as exc:
            await self.send_error(frame_id, "validation_error", exc.message, exc.errors)
            return
        except (WebSocketDisconnect, WebSocketStateError) as exc:
            if self.ws.connection_state is WebSocketState.DISCONNECTED:
                return
            await self._failed(h, event, frame_id, exc)
            return
        except WebSocketError as exc:
            await self.send_error(frame_id, exc.code, exc.message, exc.detail)
            if exc.close_code is not None:
                await self.ws.close(exc.close_code, exc.message)
            return
        except Exception as exc:
            await self._failed(h, event, frame_id, exc)
            return
        await self._send_frame(payload)

    async def _failed(
        self, h: HandlerPlan, event: str, frame_id: int | str | None, exc: BaseException
    ) -> None:
        ws = self.ws
        logger.error("handler %s failed on %s (event %r)", h.qualname, ws.path, event, exc_info=exc)
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
                if ws.connection_state is WebSocketState.CONNECTED:
                    if frame_id is not None:
                        await self.send_error(frame_id, "internal_error", "internal server error")
                    await ws.close(status.WS_1011_INTERNAL_ERROR, "internal error")
                return
            if frame_id is None:
                return
        if ws.connection_state is WebSocketState.CONNECTED:
            await self.send_error(frame_id, "internal_error", "internal server error")

    async def _start_stream(
        self, h: HandlerPlan, agen: Any, event: str, frame_id: int | str | None
    ) -> None:
        """Run an async-generator handler's stream beside the dispatcher."""
        if self.streams >= self.app.config.max_streams:
            await agen.aclose()
            await self.send_error(
                frame_id,
                "too_many_streams",
                f"at most {self.app.config.max_streams} streams may run on one connection",
            )
            return
        self.streams += 1
        # The request is answered before the stream's first item.
        if frame_id is not None:
            await self._send_frame(encode_reply(event, frame_id, None))
        tg = self.ws._conn.tg
        assert tg is not None
        tg.start_soon(self._run_stream, h, agen, event)

    async def _run_stream(self, h: HandlerPlan, agen: Any, event: str) -> None:
        ws = self.ws
        try:
            async for item in agen:
                if ws._connection_state is not WebSocketState.CONNECTED:
                    break
                await self._send_frame(encode_push(event, item))
        except Exception as exc:
            if ws.connection_state is WebSocketState.CONNECTED:
                await self._failed(h, event, None, exc)
        finally:
            self.streams -= 1
            with anyio.CancelScope(shield=True):
                await agen.aclose()

    async def dispatch(self) -> None:
        """Handle the frames the reader puts in the inbox until it is closed and empty.

        Runs as the connection's dispatcher task, started with the first frame. Frames
        are handled in arrival order, or up to ``concurrency`` at once.
        """
        conn = self.ws._conn
        inbox = conn.inbox
        n = self.plan.meta.concurrency
        if n == 1:
            handle = self.handle
            while True:
                message = inbox.get_nowait()
                if message is None:
                    if inbox.closed or inbox.retire:
                        inbox.retire = False  # idle: the next frame starts a dispatcher
                        return
                    await inbox.wait()
                    continue
                await handle(message)
        sem = anyio.Semaphore(n)
        tg = conn.tg
        assert tg is not None

        async def run(message: dict[str, Any]) -> None:
            try:
                await self.handle(message)
            finally:
                sem.release()

        while (message := await inbox.get()) is not None:
            await sem.acquire()
            tg.start_soon(run, message)
        for _ in range(n):
            await sem.acquire()
