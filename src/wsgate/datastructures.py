"""Small read-only views over the ASGI scope: headers, query parameters, state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

__all__ = ["Address", "Counters", "Headers", "QueryParams", "State"]


class Address(NamedTuple):
    """A peer address: ``host`` and ``port``."""

    host: str
    port: int


class _MultiMapping(Mapping[str, str]):
    """An immutable multi-valued mapping; ``m[key]`` gives the first value."""

    __slots__ = ("_dict", "_items")

    _fold: bool = False

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        d: dict[str, list[str]] = {}
        for k, v in items:
            d.setdefault(k.lower() if self._fold else k, []).append(v)
        self._dict = d

    def __getitem__(self, key: str) -> str:
        return self._dict[key.lower() if self._fold else key][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return (key.lower() if self._fold else key) in self._dict

    def getlist(self, key: str) -> list[str]:
        """Every value given for ``key``, in order (empty if none)."""
        return list(self._dict.get(key.lower() if self._fold else key, ()))

    def multi_items(self) -> list[tuple[str, str]]:
        """All ``(key, value)`` pairs, repeated keys included, in order."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class Headers(_MultiMapping):
    """Request headers: case-insensitive keys, several values per key allowed."""

    __slots__ = ()
    _fold = True

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> Headers:
        """Decode the ASGI ``headers`` list (latin-1, as HTTP requires)."""
        return cls(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]
        )


class QueryParams(_MultiMapping):
    """Query string parameters; several values per key allowed."""

    __slots__ = ()

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> QueryParams:
        """Parse the ASGI ``query_string``."""
        raw = scope.get("query_string", b"")
        text = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else str(raw)
        return cls(parse_qsl(text, keep_blank_values=True))


class State:
    """A plain attribute namespace for per-connection or per-app state.

    ``ws.state.user = user`` in ``@on_connect``, then ``ws.state.user`` in any handler.
    """

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        # Only called for missing attributes: say which one, and what is there.
        raise AttributeError(
            f"state has no attribute {name!r} (it has: {', '.join(self.__dict__) or 'nothing'})"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def __repr__(self) -> str:
        return f"State({self.__dict__!r})"


class Counters:
    """Base of the counter objects (``app.stats``, group and Redis stats): integer
    attributes named in ``__slots__``, all starting at 0."""

    __slots__: tuple[str, ...] = ()

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.as_dict()!r})"
