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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import msgspec

from .di import Container, type_hints
from .errors import ConfigurationError
from .frames import Frame
from .gateway import BINARY, HOOK_ATTR, MESSAGE_ATTR, WILDCARD, GatewayMeta, gateway_meta
from .params import HeaderParam, JsonBody, QueryParam
from .queues import Overflow
from .routing import CONVERTERS, compile_template
from .websocket import WebSocket

__all__ = [
    "MISSING",
    "DependencyPlan",
    "GatewayPlan",
    "HandlerPlan",
    "Kind",
    "Param",
    "compile_callable",
    "compile_gateway",
]

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
    #: The result of a per-connection dependency (``App(dependencies=[...])``); ``type``
    #: is the type it provides.
    DEPENDENCY = "dependency"


#: Kinds whose value is the same for every frame of a connection.
_CONSTANT = frozenset(
    {Kind.WS, Kind.PATH, Kind.QUERY, Kind.HEADER, Kind.PROVIDER, Kind.DEPENDENCY}
)


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
    #: The function to call, for plans of free functions (guards, dependencies); None
    #: for a gateway method (looked up on the instance by ``attr``).
    func: Any = None
    #: Guards that run before this handler for each frame (``@on_message(guards=)``).
    guards: tuple[HandlerPlan, ...] = ()

    @property
    def dependencies(self) -> tuple[Any, ...]:
        """The per-connection dependency types this callable takes."""
        return tuple(p.type for p in self.params if p.kind is Kind.DEPENDENCY)


@dataclass(frozen=True, slots=True)
class DependencyPlan:
    """A per-connection dependency, compiled for one gateway: called once per
    connection (``context``: entered as an async context manager, exited after
    ``@on_disconnect``), its result injected by ``type``."""

    type: Any
    call: HandlerPlan
    context: bool


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
    #: App guards, then the gateway's: run before ``@on_connect``.
    guards: tuple[HandlerPlan, ...] = ()
    #: The per-connection dependencies something of this gateway takes, by type.
    dependencies: Mapping[Any, DependencyPlan] = field(default_factory=dict)
    #: Their types in an order where each comes after the ones it takes.
    dependency_order: tuple[Any, ...] = ()

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
    dependencies: Mapping[Any, Any],
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
        if hook not in ("message", "message guard"):
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
    if annotation is not MISSING and _hashable(base) and base in dependencies:
        return Param(name, Kind.DEPENDENCY, base, default=default)
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
        f"({', '.join(path_params) or 'the route has none'}), register a provider of its "
        "type in App(providers=[...]) or a per-connection dependency returning it in "
        "App(dependencies=[...])"
    )


def _hashable(tp: Any) -> bool:
    try:
        hash(tp)
    except TypeError:
        return False
    return True


def _compile_params(
    func: Any,
    owner: str,
    *,
    skip_first: bool,
    hook: str,
    path_params: dict[str, str],
    container: Container,
    dependencies: Mapping[Any, Any],
) -> tuple[list[Param], bool]:
    """The extractors for ``func``'s parameters, and whether all are positional."""
    hints = type_hints(func, owner)
    sig = inspect.signature(func)
    params: list[Param] = []
    names = list(sig.parameters.items())
    if skip_first:
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
                dependencies=dependencies,
            )
        )
    return params, positional


def _compile_handler(
    cls: type,
    attr: str,
    raw: Any,
    *,
    hook: str,
    events: tuple[str, ...],
    path_params: dict[str, str],
    container: Container,
    dependencies: Mapping[Any, Any],
) -> HandlerPlan:
    func = _unwrap(raw)
    owner = f"{cls.__qualname__}.{attr}"
    params, positional = _compile_params(
        func,
        owner,
        skip_first=not isinstance(raw, staticmethod),
        hook=hook,
        path_params=path_params,
        container=container,
        dependencies=dependencies,
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


def callable_name(func: Any) -> str:
    """``module.qualname`` of a function, for messages."""
    inner = getattr(func, "__wrapped__", func)
    qualname = getattr(inner, "__qualname__", None) or repr(inner)
    module = getattr(inner, "__module__", None)
    return f"{module}.{qualname}" if module and module != "builtins" else str(qualname)


def compile_callable(
    func: Callable[..., Any],
    *,
    key: str,
    owner: str,
    hook: str,
    path_params: dict[str, str],
    container: Container,
    dependencies: Mapping[Any, Any],
    call: Callable[..., Any] | None = None,
) -> HandlerPlan:
    """Compile a free function (a guard, a per-connection dependency) with the same
    extractors as a handler. ``owner`` names it in errors (e.g. ``"guard auth
    (protecting ChatGateway)"``); ``key`` identifies it within a connection; ``call`` is
    what to call, if not ``func`` (whose signature is read)."""
    if not callable(func) or isinstance(func, type):
        raise ConfigurationError(f"{owner}: expected a function, not {func!r}")
    params, positional = _compile_params(
        func,
        owner,
        skip_first=False,
        hook=hook,
        path_params=path_params,
        container=container,
        dependencies=dependencies,
    )
    return HandlerPlan(
        attr=key,
        qualname=owner,
        events=(),
        params=tuple(params),
        is_async=inspect.iscoroutinefunction(call or func),
        is_stream=False,
        constant=tuple(p for p in params if p.kind in _CONSTANT),
        json=None,
        per_frame=tuple(p for p in params if p.kind is Kind.FRAME),
        positional=positional,
        slots=tuple((i, p) for i, p in enumerate(params) if p.kind not in _CONSTANT),
        func=call or func,
    )


def _compile_guards(
    guards: Sequence[Callable[..., Any]],
    *,
    prefix: str,
    protecting: str,
    hook: str,
    path_params: dict[str, str],
    container: Container,
    dependencies: Mapping[Any, Any],
) -> tuple[HandlerPlan, ...]:
    plans = []
    for i, guard in enumerate(guards):
        if inspect.isasyncgenfunction(guard) or inspect.isgeneratorfunction(guard):
            raise ConfigurationError(
                f"guard {callable_name(guard)} (protecting {protecting}) is a generator; "
                "a guard returns (or raises WebSocketError to refuse)"
            )
        plans.append(
            compile_callable(
                guard,
                key=f"{prefix}:{i}",
                owner=f"guard {callable_name(guard)} (protecting {protecting})",
                hook=hook,
                path_params=path_params,
                container=container,
                dependencies=dependencies,
            )
        )
    return tuple(plans)


def compile_gateway(
    cls: Any,
    container: Container,
    *,
    guards: Sequence[Callable[..., Any]] = (),
    dependencies: Mapping[Any, Any] | None = None,
) -> GatewayPlan:
    """Read a ``@ws_controller`` class once into a :class:`GatewayPlan`.

    ``guards`` are the App's (run before the gateway's own); ``dependencies`` maps each
    per-connection dependency's type to its :class:`~wsgate.dependencies.Dependency`.
    Raises :class:`~wsgate.errors.ConfigurationError` naming the class, method and
    parameter for anything that could not work at run time.
    """
    deps: Mapping[Any, Any] = dependencies or {}
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
                    dependencies=deps,
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
                    dependencies=deps,
                )
                for m in metas:
                    if m.event in handlers:
                        raise ConfigurationError(
                            f"{cls.__qualname__}: two handlers for event {m.event!r} "
                            f"({handlers[m.event].attr} and {attr}); keep one"
                        )
                    if m.guards:
                        message_guards = _compile_guards(
                            m.guards,
                            prefix=f"guard:{attr}:{m.event}",
                            protecting=f"{cls.__qualname__}.{attr} for event {m.event!r}",
                            hook="message guard",
                            path_params=path_params,
                            container=container,
                            dependencies=deps,
                        )
                        handlers[m.event] = replace(plan, guards=message_guards)
                    else:
                        handlers[m.event] = plan
    wildcard = handlers.pop(WILDCARD, None)
    binary = handlers.pop(BINARY, None)
    if meta.overflow is not None and not isinstance(meta.overflow, Overflow):
        raise ConfigurationError(f"{cls.__qualname__}: overflow must be an Overflow member")
    gateway_guards = _compile_guards(
        (*guards, *meta.guards),
        prefix="guard",
        protecting=cls.__qualname__,
        hook="guard",
        path_params=path_params,
        container=container,
        dependencies=deps,
    )
    users: list[HandlerPlan] = [*gateway_guards, *hooks.values(), *handlers.values()]
    for h in handlers.values():
        users.extend(h.guards)
    if wildcard is not None:
        users.extend((wildcard, *wildcard.guards))
    if binary is not None:
        users.extend((binary, *binary.guards))
    dependency_plans, order = _compile_dependencies(
        cls.__qualname__, users, path_params, container, deps
    )
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
        guards=gateway_guards,
        dependencies=dependency_plans,
        dependency_order=order,
    )


def _compile_dependencies(
    gateway: str,
    users: list[HandlerPlan],
    path_params: dict[str, str],
    container: Container,
    deps: Mapping[Any, Any],
) -> tuple[dict[Any, DependencyPlan], tuple[Any, ...]]:
    """Compile the per-connection dependencies the gateway's callables take (and the ones
    those take), against the gateway's path; return them and a resolution order."""
    plans: dict[Any, DependencyPlan] = {}
    order: list[Any] = []

    def visit(tp: Any, chain: tuple[Any, ...]) -> None:
        if tp in plans:
            return
        dep = deps[tp]
        if tp in chain:
            names = " -> ".join(deps[t].name for t in (*chain, tp))
            raise ConfigurationError(f"dependency cycle between per-connection dependencies: {names}")
        call = compile_callable(
            dep.signature,
            key=f"dependency:{dep.name}",
            owner=f"dependency {dep.name} (for gateway {gateway})",
            hook="dependency",
            path_params=path_params,
            container=container,
            dependencies=deps,
            call=dep.factory,
        )
        for inner in call.dependencies:
            visit(inner, (*chain, tp))
        plans[tp] = DependencyPlan(tp, call, dep.context)
        order.append(tp)

    for user in users:
        for tp in user.dependencies:
            visit(tp, ())
    return plans, tuple(order)
