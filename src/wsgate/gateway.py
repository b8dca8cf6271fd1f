"""Decorators that declare gateways and the metadata they attach.

Metadata lives on the decorated object only: ``@ws_controller`` marks the class itself
(a subclass is not a gateway until decorated again), and the hook decorators mark the
function (a subclass override without the decorator is not a hook).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from .errors import DecoratorUsageError
from .queues import Overflow

__all__ = [
    "GatewayMeta",
    "MessageMeta",
    "on_connect",
    "on_disconnect",
    "on_error",
    "on_message",
    "ws_controller",
]

C = TypeVar("C", bound=type)
F = TypeVar("F")

GATEWAY_ATTR = "__wsgate_gateway__"
HOOK_ATTR = "__wsgate_hooks__"
MESSAGE_ATTR = "__wsgate_messages__"

#: The event name that catches events without a specific handler.
WILDCARD = "*"
#: The event name that receives binary frames.
BINARY = "__binary__"


@dataclass(frozen=True, slots=True)
class GatewayMeta:
    """What ``@ws_controller`` records about a class."""

    path: str
    tags: tuple[str, ...] = ()
    summary: str | None = None
    description: str | None = None
    concurrency: int = 1
    outbound_queue: int | None = None
    overflow: Overflow | None = None
    #: Events the gateway sends on its own (pushes, broadcasts): event -> type of ``data``.
    emits: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: Run before ``@on_connect`` (after the App's guards).
    guards: tuple[Callable[..., Any], ...] = ()


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What one ``@on_message(event)`` records about a method."""

    event: str
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    #: Run before the handler for each frame of this event.
    guards: tuple[Callable[..., Any], ...] = ()


def _guards(where: str, guards: Iterable[Callable[..., Any]] | None) -> tuple[Any, ...]:
    if guards is None:
        return ()
    if callable(guards):
        raise DecoratorUsageError(f"{where} guards takes a list of functions: guards=[{guards!r}]")
    out = tuple(guards)
    for g in out:
        if not callable(g) or isinstance(g, type):
            raise DecoratorUsageError(f"{where} guards must be functions, not {g!r}")
    return out


#: Event names a gateway cannot declare in ``emits``: the error frames' event, and the
#: names that route to the catch-all and binary handlers.
RESERVED_PUSH_EVENTS = frozenset({"error", "*", "__binary__"})


def ws_controller(
    path: str = "",
    tags: list[str] | None = None,
    summary: str | None = None,
    description: str | None = None,
    *,
    concurrency: int = 1,
    outbound_queue: int | None = None,
    overflow: Overflow | None = None,
    emits: Mapping[str, Any] | None = None,
    guards: Iterable[Callable[..., Any]] | None = None,
) -> Callable[[C], C]:
    """Mark a class as a WebSocket gateway mounted at ``path``.

    ``path`` may hold ``{name}`` parameters (``{id:int}``, ``{key:uuid}``,
    ``{rest:path}``), available as ``ws.path_params`` and as handler parameters of the
    same name. One instance of the class is built per connection, its constructor
    arguments injected by type from the App's providers.

    ``concurrency`` lets up to that many handlers of one connection run at once (default
    1: frames are handled in arrival order). ``outbound_queue`` and ``overflow`` override
    the App's outbox size and overflow policy for this gateway's connections.

    ``emits`` declares the events the gateway sends on its own (broadcasts, pushes), as
    ``{"chat.message": Posted}``: event name -> the type of the frame's ``data`` (a msgspec
    Struct, dataclass, TypedDict, builtin type, or ``None`` for ``data: null``). It
    changes nothing at run time; it goes into the AsyncAPI document and the generated
    TypeScript types. ``tags``, ``summary`` and ``description`` (default: the class
    docstring) go there too.

    ``guards`` are functions run before ``@on_connect`` (after the App's guards), with
    parameters injected like a handler's; one raising
    :class:`~wsgate.errors.WebSocketError` or returning ``False`` refuses the handshake.

    The bare form ``@ws_controller`` (no parentheses) raises
    :class:`~wsgate.errors.DecoratorUsageError`, and so does an ``emits`` that is not a
    mapping of event names to types msgspec can describe (the error names the class and
    the event).
    """
    if isinstance(path, type):
        raise DecoratorUsageError(
            f"@ws_controller was applied to {path.__qualname__} without parentheses; "
            'write @ws_controller("/path") (or @ws_controller() for the root)'
        )
    if not isinstance(path, str):
        raise DecoratorUsageError(f"@ws_controller path must be a str, not {type(path).__name__}")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise DecoratorUsageError(
            f"@ws_controller concurrency must be an int >= 1, not {concurrency!r}"
        )
    if outbound_queue is not None and outbound_queue < 1:
        raise DecoratorUsageError(
            f"@ws_controller outbound_queue must be >= 1, not {outbound_queue!r}"
        )
    if isinstance(tags, str):
        raise DecoratorUsageError(f"@ws_controller tags must be a list of str, not {tags!r}")

    checked_guards = _guards("@ws_controller", guards)

    def decorate(cls: C) -> C:
        if not isinstance(cls, type):
            raise DecoratorUsageError(
                f"@ws_controller decorates classes, not {type(cls).__name__} {cls!r}"
            )
        meta = GatewayMeta(
            path,
            tuple(tags or ()),
            summary,
            description,
            concurrency,
            outbound_queue,
            overflow,
            _check_emits(cls.__qualname__, emits),
            checked_guards,
        )
        setattr(cls, GATEWAY_ATTR, meta)
        return cls

    return decorate


def _check_emits(owner: str, emits: Mapping[str, Any] | None) -> dict[str, Any]:
    """``emits`` as a plain dict, or :class:`DecoratorUsageError` saying what is wrong."""
    if emits is None:
        return {}
    where = f"@ws_controller(emits=...) on {owner}"
    if not isinstance(emits, Mapping):
        raise DecoratorUsageError(
            f"{where}: emits must be a dict of event name -> data type, e.g. "
            f'emits={{"chat.message": Posted}}, not {type(emits).__name__}'
        )
    checked: dict[str, Any] = {}
    for event, tp in emits.items():
        if not isinstance(event, str) or not event:
            raise DecoratorUsageError(f"{where}: event names must be non-empty str, not {event!r}")
        if event in RESERVED_PUSH_EVENTS:
            raise DecoratorUsageError(
                f'{where}: {event!r} is reserved (error frames use "error"; "*" and '
                '"__binary__" route client frames); choose another event name'
            )
        if isinstance(tp, str):
            raise DecoratorUsageError(
                f"{where}: the type of {event!r} is the string {tp!r}; pass the type itself "
                f"(emits={{{event!r}: {tp}}})"
            )
        try:
            msgspec.json.schema(tp)
        except Exception as exc:
            raise DecoratorUsageError(
                f"{where}: msgspec cannot describe the type of {event!r} ({tp!r}: {exc}); "
                "use a msgspec Struct, dataclass, TypedDict, builtin type or None"
            ) from exc
        checked[event] = tp
    return checked


def gateway_meta(cls: type) -> GatewayMeta | None:
    """The class's own ``@ws_controller`` metadata (never a base class's)."""
    meta = cls.__dict__.get(GATEWAY_ATTR)
    return meta if isinstance(meta, GatewayMeta) else None


def _target(obj: Any) -> Any:
    """Where a marker goes: the function inside a staticmethod/classmethod."""
    if isinstance(obj, staticmethod | classmethod):
        return obj.__func__
    return obj


def _mark_hook(kind: str) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        target = _target(fn)
        if not callable(target):
            raise DecoratorUsageError(f"@{kind} decorates functions, not {fn!r}")
        hooks: set[str] = set(getattr(target, HOOK_ATTR, ()))
        hooks.add(kind)
        setattr(target, HOOK_ATTR, frozenset(hooks))
        return fn

    decorate.__name__ = kind
    decorate.__doc__ = f"Mark a method as the gateway's ``@{kind}`` hook."
    return decorate


def on_connect(fn: F) -> F:
    """Mark the method that runs when a handshake arrives, before accept.

    Return normally to accept (unless it already accepted, denied or closed); raise
    :class:`~wsgate.errors.WebSocketError` to refuse (HTTP 403 with a JSON body, or
    ``close_code``). In a gateway without ``@on_message`` handlers, a method that accepts
    the connection itself owns it until it returns (then the connection closes with 1000).
    Works above or below ``@staticmethod`` / ``@classmethod``.
    """
    return _mark_hook("on_connect")(fn)


def on_disconnect(fn: F) -> F:
    """Mark the method that runs once when an accepted connection ends, however it ends.

    It runs shielded from the cancellation that ended the connection, for a bounded time;
    ``ws.close_code`` / ``ws.close_reason`` tell how it ended. Its exceptions are logged.
    """
    return _mark_hook("on_disconnect")(fn)


def on_error(fn: F) -> F:
    """Mark the method that receives exceptions raised by message handlers.

    Returning normally keeps the connection open (a frame with an ``id`` still gets its
    ``internal_error`` frame); raising closes it with 1011.
    """
    return _mark_hook("on_error")(fn)


def on_message(
    event: str,
    summary: str | None = None,
    description: str | None = None,
    tags: list[str] | None = None,
    *,
    guards: Iterable[Callable[..., Any]] | None = None,
) -> Callable[[F], F]:
    """Route frames whose ``event`` is ``event`` to this method.

    Stack several to route several events to one method. ``"*"`` catches events without
    a specific handler; ``"__binary__"`` receives binary frames. The method's parameters
    say what it needs (``body: Json[T]``, ``ws: WebSocket``, path parameters,
    ``Query[T]``, ``Header[T]``, providers); its return value is the reply.
    ``summary``, ``description`` (default: the method's docstring) and ``tags`` go into
    the AsyncAPI document. Raises :class:`~wsgate.errors.DecoratorUsageError` for a
    missing or empty event name.

    ``guards`` run before the handler for each frame of this event (parameters injected
    like a handler's, ``frame: Frame`` included); one raising
    :class:`~wsgate.errors.WebSocketError` or returning ``False`` answers the frame with
    an error frame (``forbidden``) instead, and the connection stays open.
    """
    if callable(event) or isinstance(event, staticmethod | classmethod):
        raise DecoratorUsageError(
            '@on_message needs the event name: write @on_message("chat.send")'
        )
    if not isinstance(event, str) or not event:
        raise DecoratorUsageError(f"@on_message event must be a non-empty str, not {event!r}")
    if isinstance(tags, str):
        raise DecoratorUsageError(f"@on_message tags must be a list of str, not {tags!r}")
    meta = MessageMeta(
        event,
        summary,
        description,
        tags=tuple(tags or ()),
        guards=_guards("@on_message", guards),
    )

    def decorate(fn: F) -> F:
        target = _target(fn)
        if not callable(target):
            raise DecoratorUsageError(f"@on_message decorates functions, not {fn!r}")
        metas: tuple[MessageMeta, ...] = getattr(target, MESSAGE_ATTR, ())
        setattr(target, MESSAGE_ATTR, (*metas, meta))
        return fn

    return decorate
