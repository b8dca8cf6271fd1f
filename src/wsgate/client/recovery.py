"""History recovery as the client sees it, without I/O: the positions it saw, the URL
that presents them, and the ``wsgate.recovery`` frames.

- A frame from a group with history carries ``"pos": {"group", "offset", "epoch"}``:
  the client stores it as the group's position before anyone sees the frame.
- Every (re)connect presents the positions in the query parameter ``wsgate.since``:
  ``{"<group>": [<offset>, "<epoch>"], ...}`` as JSON, URL-encoded.
- After replaying what the client missed in a group it is subscribed to again, the
  server sends ``{"event": "wsgate.recovery", "data": {"group", "recovered", "missed",
  "offset", "epoch"}}``: ``offset``/``epoch`` are the position from then on.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus

import msgspec

from ..history import Position

__all__ = ["RECOVERY_EVENT", "SINCE_PARAM", "Positions", "Recovery", "with_since"]

logger = logging.getLogger("wsgate.client")

#: The handshake's query parameter that presents the client's positions.
SINCE_PARAM = "wsgate.since"
#: The event of the frame that says whether a group's missed frames were recovered.
RECOVERY_EVENT = "wsgate.recovery"


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :meth:`~wsgate.client.ClientConnection.on_recover` callbacks receive, once
    per group after a reconnect that presented a position in it.

    ``recovered``: True if every frame missed in ``group`` since the client's position
    was replayed (``missed`` of them, delivered before this); False if they could not
    be (the server restarted, the history expired or dropped them): the frames since
    are lost, and the client's position moves to the group's current one.
    """

    group: str
    recovered: bool
    missed: int


class WirePosition(msgspec.Struct, frozen=True):
    """A frame's ``pos`` member."""

    group: str
    offset: int
    epoch: str


class RecoveryData(msgspec.Struct, frozen=True):
    """The ``data`` of a ``wsgate.recovery`` frame."""

    group: str
    recovered: bool
    missed: int
    offset: int
    epoch: str


_pos_decoder = msgspec.json.Decoder(WirePosition)
_recovery_decoder = msgspec.json.Decoder(RecoveryData)
_encode = msgspec.json.encode


def with_since(url: str, positions: Mapping[str, Position]) -> str:
    """``url`` with the query parameter ``wsgate.since`` presenting ``positions``; the
    URL's other query parameters (and its fragment) are kept as they are, a previous
    ``wsgate.since`` is replaced. With no positions, ``url`` itself."""
    if not positions:
        return url
    since = {group: (pos.offset, pos.epoch) for group, pos in positions.items()}
    rest, hash_, fragment = url.partition("#")
    base, _, query = rest.partition("?")
    params = [
        part
        for part in query.split("&")
        if part and unquote_plus(part.split("=", 1)[0]) != SINCE_PARAM
    ]
    params.append(f"{SINCE_PARAM}={quote(_encode(since).decode(), safe='')}")
    return f"{base}?{'&'.join(params)}{hash_}{fragment}"


def check_positions(positions: Mapping[str, Position] | None) -> dict[str, Position]:
    """A copy of the positions given to ``connect(positions=...)``; :class:`TypeError`
    for anything but ``{group: Position}``."""
    if positions is None:
        return {}
    if not isinstance(positions, Mapping):
        raise TypeError(
            "connect(positions=...): expected a mapping {group: wsgate.history.Position} "
            f"(conn.positions()), got {type(positions).__name__}"
        )
    out: dict[str, Position] = {}
    for group, pos in positions.items():
        if not isinstance(group, str) or not isinstance(pos, Position):
            raise TypeError(
                "connect(positions=...): expected {group: wsgate.history.Position(epoch, "
                f"offset)}}, got {group!r}: {pos!r}"
            )
        out[group] = pos
    return out


class Positions:
    """The client's position in each group, and its ``on_recover`` callbacks.

    :param spawn: Runs the awaitable a callback returned, in the background.
    """

    def __init__(
        self, seed: dict[str, Position], spawn: Callable[[Callable[[], Any]], None]
    ) -> None:
        self._positions = seed
        self._callbacks: dict[int, Callable[[Recovery], object]] = {}
        self._next = 0
        self._spawn = spawn

    def snapshot(self) -> dict[str, Position]:
        """A copy of the positions."""
        return dict(self._positions)

    def url(self, url: str) -> str:
        """``url`` presenting the positions."""
        return with_since(url, self._positions)

    def saw(self, raw: msgspec.Raw) -> None:
        """A frame's ``pos`` member (ignored if malformed)."""
        try:
            pos = _pos_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.debug("ignored a malformed pos: %.200r", bytes(raw))
            return
        self._positions[pos.group] = Position(pos.epoch, pos.offset)

    def recovered(self, raw: msgspec.Raw) -> None:
        """A ``wsgate.recovery`` frame's data: store the position, call the callbacks."""
        try:
            data = _recovery_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.warning("ignored a malformed %s frame: %.200r", RECOVERY_EVENT, bytes(raw))
            return
        self._positions[data.group] = Position(data.epoch, data.offset)
        recovery = Recovery(data.group, data.recovered, data.missed)
        for fn in list(self._callbacks.values()):
            try:
                result = fn(recovery)
            except Exception:
                logger.exception("an on_recover callback failed for %r", data.group)
                continue
            if inspect.isawaitable(result):
                self._spawn(functools.partial(_logged, result, data.group))

    def add(self, fn: Callable[[Recovery], object]) -> Callable[[], None]:
        """Register ``fn``; returns the function that removes it."""
        if not callable(fn):
            raise TypeError(f"on_recover(fn): expected a callable, got {fn!r}")
        self._next += 1
        key = self._next
        self._callbacks[key] = fn

        def remove() -> None:
            self._callbacks.pop(key, None)

        return remove


async def _logged(awaitable: Any, group: str) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("an on_recover callback failed for %r", group)
