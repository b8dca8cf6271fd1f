"""Path templates, compiled once at startup.

A template is a path with ``{name}`` segments and optional converters::

    /chat/{room_id}            any text without "/"
    /items/{item_id:int}       digits, converted to int
    /objects/{key:uuid}        a UUID, converted to uuid.UUID
    /files/{rest:path}         the rest of the path, "/" included

Static paths are looked up in a dict; all dynamic templates are joined into one
regular expression whose ``lastgroup`` names the route, so matching costs one dict
lookup plus at most one regex match, whatever the number of routes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import ConfigurationError, WebSocketRouteNotFoundError

__all__ = ["CONVERTERS", "Route", "Router"]

T = TypeVar("T")

#: converter name -> (regex, function turning the matched text into a value)
CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?[0-9]+", int),
    "uuid": (
        r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
        uuid.UUID,
    ),
    "path": (r".*", str),
}

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?}")


@dataclass(frozen=True, slots=True)
class Route(Generic[T]):
    """One compiled template and the target it leads to."""

    template: str
    target: T
    param_names: tuple[str, ...] = ()
    param_types: tuple[str, ...] = ()
    converters: tuple[Callable[[str], Any], ...] = ()
    pattern: str = field(default="", repr=False)


def normalize(path: str) -> str:
    """Give a template or a request path one canonical form: a leading "/", no trailing "/"."""
    path = "/" + path.strip("/")
    return path


def compile_template(template: str, target: T) -> Route[T]:
    """Compile ``template`` into a :class:`Route`; raise :class:`ConfigurationError` if malformed."""
    template = normalize(template)
    names: list[str] = []
    types: list[str] = []
    convs: list[Callable[[str], Any]] = []
    pattern = ""
    pos = 0
    for m in _PARAM.finditer(template):
        name, conv = m.group(1), m.group(2) or "str"
        if conv not in CONVERTERS:
            raise ConfigurationError(
                f"path template {template!r}: unknown converter {conv!r} for parameter "
                f"{name!r}; use one of {', '.join(sorted(CONVERTERS))}"
            )
        if name in names:
            raise ConfigurationError(
                f"path template {template!r}: parameter {name!r} appears twice"
            )
        pattern += re.escape(template[pos : m.start()])
        regex, func = CONVERTERS[conv]
        pattern += f"({regex})"
        names.append(name)
        types.append(conv)
        convs.append(func)
        pos = m.end()
    rest = template[pos:]
    leftover = _PARAM.sub("", template)
    if "{" in leftover or "}" in leftover:
        raise ConfigurationError(
            f"path template {template!r}: unbalanced braces; parameters look like "
            "{name} or {name:int}"
        )
    pattern += re.escape(rest)
    return Route(template, target, tuple(names), tuple(types), tuple(convs), pattern)


class Router(Generic[T]):
    """Maps request paths to targets. Built once; :meth:`match` is the only per-request call."""

    def __init__(self, routes: Sequence[tuple[str, T]]) -> None:
        self._static: dict[str, Route[T]] = {}
        self._dynamic: list[Route[T]] = []
        seen: dict[str, tuple[str, str]] = {}
        for template, target in routes:
            route = compile_template(template, target)
            # Two templates that differ only in parameter names match the same paths.
            shape = _PARAM.sub(lambda m: "{" + (m.group(2) or "str") + "}", route.template)
            if shape in seen:
                other_template, other = seen[shape]
                raise ConfigurationError(
                    f"two routes share the path template {other_template!r} ({other}) and "
                    f"{route.template!r} ({_describe(target)}); give each gateway its own path"
                )
            seen[shape] = (route.template, _describe(target))
            if route.param_names:
                self._dynamic.append(route)
            else:
                self._static[route.template] = route
        self.routes: tuple[Route[T], ...] = (*self._static.values(), *self._dynamic)
        self._regex: re.Pattern[str] | None = None
        self._group_base: dict[str, tuple[Route[T], int]] = {}
        if self._dynamic:
            parts = []
            group_index = 1
            for i, route in enumerate(self._dynamic):
                # The outer named group closes last, so ``lastgroup`` names the route.
                parts.append(f"(?P<r{i}>{route.pattern})")
                self._group_base[f"r{i}"] = (route, group_index + 1)
                group_index += 1 + len(route.param_names)
            self._regex = re.compile("|".join(parts))

    def match(self, path: str) -> tuple[Route[T], dict[str, Any]] | None:
        """Return the route for ``path`` and its converted parameters, or None."""
        path = normalize(path)
        route = self._static.get(path)
        if route is not None:
            return route, {}
        if self._regex is None:
            return None
        m = self._regex.fullmatch(path)
        if m is None or m.lastgroup is None:
            return None
        route, first = self._group_base[m.lastgroup]
        groups = m.groups()
        params: dict[str, Any] = {}
        for k, (name, conv) in enumerate(zip(route.param_names, route.converters, strict=True)):
            text = groups[first - 1 + k]
            try:
                params[name] = conv(text)
            except ValueError:
                return None
        return route, params


    def resolve(self, path: str) -> tuple[Route[T], dict[str, Any]]:
        """Like :meth:`match`, but a path no route serves raises
        :class:`~wsgate.errors.WebSocketRouteNotFoundError`."""
        found = self.match(path)
        if found is None:
            raise WebSocketRouteNotFoundError(f"no WebSocket endpoint at {path!r}")
        return found


def _describe(target: object) -> str:
    name = getattr(target, "__qualname__", None) or getattr(target, "name", None)
    return str(name) if name else repr(target)
