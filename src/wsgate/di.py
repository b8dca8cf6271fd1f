"""Providers and constructor injection, resolved once when the App is built.

Providers are app-wide singletons: classes (built once, their own constructor
arguments injected by type) or ready instances. A request for a type is met by a
provider of that exact type, else by the one provider that is a subclass of it, so
registering ``class Rooms(BroadcastGroup)`` satisfies every ``BroadcastGroup`` parameter.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .errors import ConfigurationError

__all__ = ["Container", "injectable"]

C = TypeVar("C", bound=type)
INJECTABLE_ATTR = "__wsgate_injectable__"
_MISSING = object()


def injectable() -> Callable[[C], C]:
    """Mark a class as a provider that ``App(providers=[...])`` builds once, injecting its
    constructor arguments by type."""

    def decorate(cls: C) -> C:
        setattr(cls, INJECTABLE_ATTR, True)
        return cls

    return decorate


def type_hints(func: Any, owner: str) -> dict[str, Any]:
    """``typing.get_type_hints`` with an error that names ``owner`` when a name is unknown."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise ConfigurationError(
            f"{owner}: cannot resolve a type annotation ({exc}); define the types the "
            "signature uses at module level, where wsgate can import them"
        ) from exc


def constructor_params(cls: type) -> list[tuple[str, Any, Any]]:
    """``(name, annotation, default)`` for each parameter of ``cls.__init__``."""
    init = cls.__init__  # type: ignore[misc]
    if init is object.__init__:
        return []
    hints = type_hints(init, f"{cls.__qualname__}.__init__")
    out = []
    for i, (name, p) in enumerate(inspect.signature(init).parameters.items()):
        if i == 0 or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = p.default if p.default is not p.empty else _MISSING
        out.append((name, hints.get(name, _MISSING), default))
    return out


class Container:
    """The App's providers: resolves a type to its singleton instance."""

    def __init__(self, providers: Iterable[Any], defaults: Iterable[Any] = ()) -> None:
        self._classes: list[type] = []
        self._instances: dict[type, Any] = {}
        for p in providers:
            if isinstance(p, type):
                if p in self._classes:
                    raise ConfigurationError(f"provider {p.__qualname__} is registered twice")
                self._classes.append(p)
            else:
                if type(p) in self._instances:
                    raise ConfigurationError(
                        f"two provider instances of {type(p).__qualname__} are registered"
                    )
                self._instances[type(p)] = p
        for d in defaults:
            if self._provider_for(type(d)) is None:
                self._instances[type(d)] = d
        # Build every class provider now, so a missing dependency or a cycle is a
        # startup error rather than a failure on the first connection.
        for cls in list(self._classes):
            self.get(cls)

    def _provider_for(self, tp: Any) -> type | None:
        if not isinstance(tp, type):
            return None
        candidates = list(dict.fromkeys([*self._instances, *self._classes]))
        if tp in candidates:
            return tp
        subs = [c for c in candidates if issubclass(c, tp)]
        if len(subs) > 1:
            names = ", ".join(c.__qualname__ for c in subs)
            raise ConfigurationError(
                f"several providers satisfy {tp.__qualname__} ({names}); register only one"
            )
        return subs[0] if subs else None

    def can_provide(self, tp: Any) -> bool:
        """True if some provider satisfies ``tp``."""
        return self._provider_for(tp) is not None

    def get(self, tp: Any, _stack: tuple[type, ...] = ()) -> Any:
        """The singleton satisfying ``tp``; built (with its dependencies) on first request."""
        key = self._provider_for(tp)
        if key is None:
            name = getattr(tp, "__qualname__", repr(tp))
            raise ConfigurationError(f"no provider for {name}; add it to App(providers=[...])")
        if key in self._instances:
            return self._instances[key]
        if key in _stack:
            chain = " -> ".join(c.__qualname__ for c in (*_stack, key))
            raise ConfigurationError(f"dependency cycle between providers: {chain}")
        kwargs = self.resolve_kwargs(key, (*_stack, key))
        instance = key(**kwargs)
        self._instances[key] = instance
        return instance

    def resolve_kwargs(self, cls: type, _stack: tuple[type, ...] = ()) -> dict[str, Any]:
        """Constructor arguments for ``cls``, each resolved by its type annotation."""
        kwargs: dict[str, Any] = {}
        for name, ann, default in constructor_params(cls):
            if ann is not _MISSING and self._provider_for(ann) is not None:
                kwargs[name] = self.get(ann, _stack)
            elif default is _MISSING:
                what = getattr(ann, "__qualname__", None) if ann is not _MISSING else None
                raise ConfigurationError(
                    f"{cls.__qualname__}.__init__: parameter {name!r}"
                    + (f" of type {what}" if what else " has no type annotation and")
                    + " cannot be injected; register a provider for it in "
                    "App(providers=[...]) or give it a default"
                )
        return kwargs

    def instances(self) -> list[Any]:
        """Every provider instance built so far."""
        return list(self._instances.values())
