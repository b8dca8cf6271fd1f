"""Compiling ``@on_socketio_event`` / ``@on_engineio_message`` methods into call plans,
once at startup: which parameter is the connection, which are the client's arguments
(and their msgspec types), which are providers."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import msgspec

from ..di import Container, type_hints
from ..errors import ConfigurationError
from ..frames import validation_errors
from .controllers import ENGINEIO_MESSAGE_ATTR, EVENT_ATTR

__all__ = [
    "ArgumentError",
    "EventHandler",
    "compile_engineio",
    "compile_events",
    "compile_method",
    "methods",
]

_MISSING: Any = object()
CONN, ARG, PROVIDER = "conn", "arg", "provider"


class ArgumentError(Exception):
    """A client argument failed validation; ``detail`` lists the failing paths."""

    def __init__(self, message: str, detail: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Param:
    kind: str
    name: str
    type: Any = _MISSING
    default: Any = _MISSING
    value: Any = None  # the provider instance
    keyword: bool = False


@dataclass(frozen=True, slots=True)
class EventHandler:
    """One handler method, ready to call with a connection and the client's arguments."""

    event: str
    attr: str
    qualname: str
    params: tuple[Param, ...]
    var_args: bool
    is_async: bool

    async def call(self, instance: Any, conn: Any, args: list[Any]) -> Any:
        """Call the handler; raises :class:`ArgumentError` for a bad argument."""
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        i = 0
        for p in self.params:
            if p.kind == CONN:
                value = conn
            elif p.kind == PROVIDER:
                value = p.value
            else:
                if i < len(args):
                    value = args[i]
                    if p.type is not _MISSING:
                        try:
                            value = msgspec.convert(value, p.type)
                        except msgspec.ValidationError as exc:
                            raise ArgumentError(
                                str(exc), validation_errors(exc, f"$[{i}]")
                            ) from exc
                elif p.default is not _MISSING:
                    value = p.default
                else:
                    raise ArgumentError(
                        f"missing argument {p.name!r}",
                        [{"path": f"$[{i}]", "message": "Object missing required argument"}],
                    )
                i += 1
            if p.keyword:
                keywords[p.name] = value
            else:
                positional.append(value)
        if self.var_args:
            positional.extend(args[i:])
        result = getattr(instance, self.attr)(*positional, **keywords)
        if self.is_async or inspect.isawaitable(result):
            result = await result
        return result


def _compile(
    cls: type,
    attr: str,
    fn: Any,
    event: str,
    conn_types: tuple[type, ...],
    container: Container,
    raw_args: bool = False,
) -> EventHandler:
    where = f"{cls.__qualname__}.{attr}"
    hints = type_hints(fn, where)
    sig = inspect.signature(fn)
    params: list[Param] = []
    var_args = False
    items = list(sig.parameters.items())
    raw = inspect.getattr_static(cls, attr)
    if not isinstance(raw, staticmethod) and items:
        items = items[1:]  # self / cls
    seen_conn = False
    for name, p in items:
        ann = hints.get(name, _MISSING)
        if p.kind is p.VAR_POSITIONAL:
            var_args = True
            continue
        if p.kind is p.VAR_KEYWORD:
            raise ConfigurationError(f"{where}: **{name} is not supported in a Socket.IO handler")
        keyword = p.kind is p.KEYWORD_ONLY
        default = p.default if p.default is not p.empty else _MISSING
        is_conn = (isinstance(ann, type) and issubclass(ann, conn_types)) or (
            ann is _MISSING and name == "conn" and not seen_conn
        )
        if is_conn:
            params.append(Param(CONN, name, keyword=keyword))
            seen_conn = True
        elif isinstance(ann, type) and container.can_provide(ann):
            params.append(Param(PROVIDER, name, value=container.get(ann), keyword=keyword))
        elif keyword:
            raise ConfigurationError(
                f"{where}: keyword-only parameter {name!r} is neither a provider nor the "
                "connection; client arguments are positional"
            )
        else:
            tp = _MISSING if ann is _MISSING or ann is Any or raw_args else ann
            if tp is not _MISSING:
                try:
                    msgspec.inspect.type_info(tp)
                except Exception as exc:
                    raise ConfigurationError(
                        f"{where}: parameter {name!r} has a type msgspec cannot validate "
                        f"({exc}); use a Struct, a dataclass, builtins, or a provider type"
                    ) from exc
            params.append(Param(ARG, name, tp, default))
    return EventHandler(
        event,
        attr,
        where,
        tuple(params),
        var_args,
        inspect.iscoroutinefunction(fn),
    )


def _methods(cls: type) -> list[tuple[str, Any]]:
    out = []
    for klass in reversed(cls.__mro__):
        for attr, raw in vars(klass).items():
            fn = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
            if callable(fn):
                out.append((attr, fn))
    # the most derived definition wins
    return list(dict(out).items())


def methods(cls: type) -> list[tuple[str, Any]]:
    """The callable attributes of ``cls`` and its bases, the most derived first found."""
    return _methods(cls)


def compile_method(
    cls: type, attr: str, event: str, conn_type: type, container: Container
) -> EventHandler:
    """The method ``attr`` of ``cls`` as a handler called with a ``conn_type`` connection
    and positional arguments (providers by type). Raises
    :class:`~wsgate.errors.ConfigurationError` naming the class, method and parameter."""
    return _compile(cls, attr, getattr(cls, attr), event, (conn_type,), container)


def compile_events(cls: type, conn_type: type, container: Container) -> dict[str, EventHandler]:
    """Every ``@on_socketio_event`` handler of ``cls`` by event name. Raises
    :class:`~wsgate.errors.ConfigurationError` naming the class, method and parameter."""
    handlers: dict[str, EventHandler] = {}
    for attr, fn in _methods(cls):
        for event in getattr(fn, EVENT_ATTR, ()):
            if event in handlers:
                raise ConfigurationError(
                    f"{cls.__qualname__}: two handlers for Socket.IO event {event!r} "
                    f"({handlers[event].attr} and {attr})"
                )
            handlers[event] = _compile(
                cls, attr, getattr(cls, attr), event, (conn_type,), container
            )
    return handlers


def compile_engineio(cls: type, conn_type: type, container: Container) -> EventHandler | None:
    """The ``@on_engineio_message`` handler of ``cls`` (at most one)."""
    found = [(attr, fn) for attr, fn in _methods(cls) if getattr(fn, ENGINEIO_MESSAGE_ATTR, False)]
    if len(found) > 1:
        names = ", ".join(a for a, _ in found)
        raise ConfigurationError(
            f"{cls.__qualname__}: several @on_engineio_message methods ({names})"
        )
    if not found:
        return None
    attr, _ = found[0]
    return _compile(cls, attr, getattr(cls, attr), "message", (conn_type,), container, True)
