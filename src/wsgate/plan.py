"""Compiling a gateway class into an immutable dispatch plan, once, at startup.

All reflection happens in :func:`compile_gateway` when the App is built: handler
signatures, extractors, providers, the event table. A mistake raises
:class:`~wsgate.errors.ConfigurationError` naming the class, method and parameter. The
per-frame side is :mod:`wsgate.session`.
"""

from __future__ import annotations

import enum
import inspect
import typing
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from .connection import Overflow
from .di import Container, type_hints
from .errors import ConfigurationError
from .frames import Frame
from .gateway import BINARY, HOOK_ATTR, MESSAGE_ATTR, WILDCARD, GatewayMeta, gateway_meta
from .params import HeaderParam, JsonBody, QueryParam
from .routing import CONVERTERS, compile_template
from .websocket import WebSocket

__all__ = ["MISSING", "GatewayPlan", "HandlerPlan", "Kind", "Param", "compile_gateway"]

#: A parameter without a default.
MISSING: Any = object()


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
    default: Any = MISSING
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
    # The type a path converter already produces (str, int, uuid.UUID).
    return CONVERTERS[converter][1]


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
        conv = None if annotation is MISSING or base in (natural, Any) else base
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
        or (annotation is MISSING and name in ("exc", "error", "exception"))
    ):
        return Param(name, Kind.EXCEPTION)
    if annotation is MISSING and name == "ws":
        return Param(name, Kind.WS)
    if annotation is not MISSING and container.can_provide(base):
        return Param(name, Kind.PROVIDER, value=container.get(base))
    if default is not MISSING:
        return Param(name, Kind.PROVIDER, value=default)
    hint = (
        f"its type {getattr(base, '__qualname__', base)!s} is not a provider"
        if annotation is not MISSING
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
        default = p.default if p.default is not p.empty else MISSING
        params.append(
            _compile_param(
                owner,
                name,
                hints.get(name, MISSING),
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
    )
