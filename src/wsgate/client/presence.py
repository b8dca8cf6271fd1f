"""Presence groups as a client sees them: :meth:`ClientConnection.presence`.

A :class:`PresenceView` keeps ``{key: [meta, ...]}`` of one group from the server's
``presence.state`` (replace everything) and ``presence.diff`` (append the metas of
``joins``; remove one occurrence equal to each meta of ``leaves``) events, and calls
the callbacks registered with :meth:`~PresenceView.on_sync`,
:meth:`~PresenceView.on_join` and :meth:`~PresenceView.on_leave`. It is fed by the
connection's reader: callbacks run there and must not block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["PresenceView"]

logger = logging.getLogger("wsgate.client")

#: The metas of a key's entries.
Metas = list[Any]
#: ``{key: [meta, ...]}``.
Entries = dict[str, Metas]


class PresenceView:
    """The entries of one presence group, kept up to date from the server's events."""

    def __init__(self, group: str) -> None:
        #: The group's name.
        self.group = group
        self._entries: Entries = {}
        self._sync: dict[int, Callable[[Entries], object]] = {}
        self._join: dict[int, Callable[[str, Metas, Metas], object]] = {}
        self._leave: dict[int, Callable[[str, Metas, Metas], object]] = {}
        self._next = 0

    def list(self) -> Entries:
        """The current entries, ``{key: [meta, ...]}`` (a copy)."""
        return {k: list(v) for k, v in self._entries.items()}

    def _add(self, where: dict[int, Any], fn: Any, name: str) -> Callable[[], None]:
        if not callable(fn):
            raise TypeError(f"PresenceView.{name}() takes a function")
        self._next += 1
        n = self._next
        where[n] = fn
        return lambda: where.pop(n, None) and None

    def on_sync(self, fn: Callable[[Entries], object]) -> Callable[[], None]:
        """Call ``fn(entries)`` after every ``presence.state`` (also after a reconnect).
        Returns a function that removes it."""
        return self._add(self._sync, fn, "on_sync")

    def on_join(self, fn: Callable[[str, Metas, Metas], object]) -> Callable[[], None]:
        """Call ``fn(key, current, joined)`` when entries join under ``key`` (``current``:
        every entry of ``key`` now). Returns a function that removes it."""
        return self._add(self._join, fn, "on_join")

    def on_leave(self, fn: Callable[[str, Metas, Metas], object]) -> Callable[[], None]:
        """Call ``fn(key, current, left)`` when entries leave ``key`` (``current``: the
        entries it keeps, empty when it is gone). Returns a function that removes it."""
        return self._add(self._leave, fn, "on_leave")

    # -- fed by the connection ---------------------------------------------------------

    def apply(self, event: str, data: Any) -> None:
        """Apply a ``presence.state`` or ``presence.diff`` event's data."""
        if not isinstance(data, dict) or data.get("group") != self.group:
            return
        if event == "presence.state":
            entries = data.get("entries")
            if isinstance(entries, dict):
                self._entries = {
                    k: list(v) for k, v in entries.items() if isinstance(v, list) and v
                }
                self._call(self._sync, self.list())
        elif event == "presence.diff":
            joins, leaves = data.get("joins"), data.get("leaves")
            if isinstance(joins, dict):
                for key, metas in joins.items():
                    if isinstance(metas, list) and metas:
                        current = self._entries.setdefault(key, [])
                        current.extend(metas)
                        self._call(self._join, key, list(current), list(metas))
            if isinstance(leaves, dict):
                for key, metas in leaves.items():
                    self._leave_key(key, metas)

    def _leave_key(self, key: str, metas: Any) -> None:
        current = self._entries.get(key)
        if not isinstance(metas, list) or current is None:
            return
        left = []
        for meta in metas:
            if meta in current:  # equal decoded JSON: one occurrence per left entry
                current.remove(meta)
                left.append(meta)
        if not left:
            return
        if not current:
            del self._entries[key]
        self._call(self._leave, key, list(current), left)

    def _call(self, where: dict[int, Callable[..., object]], *args: Any) -> None:
        for fn in list(where.values()):
            try:
                fn(*args)
            except Exception:
                logger.exception("a presence callback of %r failed", self.group)
