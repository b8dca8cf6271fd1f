"""Pushes as async iterators: :class:`Subscription` (``conn.events(...)``) and
:class:`Stream` (``conn.stream(...)``), and :class:`Subscribers`, the registry of a
connection's subscriptions that its reader feeds (the only way the connection and its
subscriptions reach each other)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec

from ._protocol import decode_data
from .errors import ConnectionClosed, ConnectionLost

if TYPE_CHECKING:
    from .connection import ClientConnection

__all__ = ["Push", "Stream", "Subscribers", "Subscription"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Push(Generic[T]):
    """A frame the server sent without being asked (a push, a broadcast, a stream item):
    its ``event`` and its ``data`` (decoded into the subscription's ``type`` if it has
    one, else plain JSON values)."""

    event: str
    data: T


class Subscription(Generic[T]):
    """The pushes of some events (every event when none is named), as an async iterator
    of :class:`Push`.

    It is registered as soon as :meth:`ClientConnection.events` returns, so nothing sent after
    that is missed, and stays registered across reconnects until it is closed (leaving
    its ``async with`` block, :meth:`close`, or being garbage collected). Iteration ends
    when the connection is closed for good, after the buffered pushes.

    Slow consumers: each subscription buffers at most ``queue_size`` pushes; when a push
    arrives at a full buffer the oldest one is dropped and :attr:`dropped` counts it. The
    connection's reader never waits for a subscriber, so replies are never held up by one.

    ``__anext__`` raises :class:`DataValidationError` when a push's data does not match
    ``type`` (the push is consumed; iterate again to go on).
    """

    def __init__(
        self,
        subscribers: Subscribers,
        events: Collection[str] | None,
        type: Any,
        queue_size: int,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size!r}")
        self._subscribers = subscribers
        #: The event names this subscription receives (None: all).
        self.events: frozenset[str] | None = frozenset(events) if events else None
        self.type = type
        #: Pushes dropped because the buffer was full.
        self.dropped = 0
        self._buffer: deque[tuple[str, msgspec.Raw]] = deque(maxlen=queue_size)
        self._wakeup = anyio.Event()
        self._finished = False
        self._closed_by_user = False
        self._lost: ConnectionLost | None = None
        #: Set by a stream once its request was answered: a lost connection then ends it.
        self._lost_on_drop = False
        self._unregister: Callable[[Subscription[Any]], None] | None = (
            subscribers.remove if subscribers.add(self) else None
        )

    # -- fed by Subscribers (never blocks) ---------------------------------------------

    def _put(self, event: str, data: msgspec.Raw) -> bool:
        """Buffer a push; True if the oldest one was dropped to make room."""
        full = len(self._buffer) == self._buffer.maxlen
        if full:
            self.dropped += 1
        self._buffer.append((event, data))
        self._wakeup.set()
        return full

    def _dropped_connection(self, code: int | None, reason: str) -> None:
        if self._lost_on_drop and self._lost is None:
            self._lost = ConnectionLost(
                f"the connection was lost (code {code}) while the stream was running; "
                "it is not resumed after a reconnect",
                code,
                reason,
            )
            self._wakeup.set()

    def _finish(self) -> None:
        self._finished = True
        self._wakeup.set()

    # -- the consumer's side ---------------------------------------------------------

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> Push[T]:
        while not self._buffer:
            if self._lost is not None:
                raise self._lost
            if self._finished:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        event, raw = self._buffer.popleft()
        return Push(event, decode_data(event, raw, self.type))

    async def receive(self) -> Push[T]:
        """The next push (waits for it). Raises :class:`ConnectionClosed` when the
        connection is closed for good and nothing is buffered, :class:`RuntimeError`
        when the subscription was closed."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            if self._closed_by_user:
                raise RuntimeError("receive(): this subscription was closed") from None
            raise self._subscribers.closed_error() from None

    def close(self) -> None:
        """Stop receiving pushes (idempotent); buffered ones can still be iterated."""
        unregister, self._unregister = self._unregister, None
        if unregister is not None:
            unregister(self)
        self._closed_by_user = True
        self._finish()

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        unregister = getattr(self, "_unregister", None)
        if unregister is not None:
            unregister(self)


class Subscribers:
    """The subscriptions of one client connection (internal: made by the connection,
    given to each :class:`Subscription` it makes). The connection's reader delivers
    pushes through it and tells it when the connection drops or closes for good.

    :param closed_error: Makes the :class:`ConnectionClosed` that says why the
        connection is closed for good.
    """

    def __init__(self, closed_error: Callable[[], ConnectionClosed]) -> None:
        self._subscriptions: dict[int, Subscription[Any]] = {}
        self._closed = False
        self._closed_error = closed_error
        #: Pushes dropped because a subscription's buffer was full.
        self.dropped = 0

    def add(self, sub: Subscription[Any]) -> bool:
        """Register ``sub``; False (and ``sub`` finished at once) if the connection is
        closed for good."""
        if self._closed:
            sub._finish()  # noqa: SLF001 - this module's own class
            return False
        self._subscriptions[id(sub)] = sub
        return True

    def remove(self, sub: Subscription[Any]) -> None:
        """Unregister ``sub`` (nothing if it is not registered)."""
        self._subscriptions.pop(id(sub), None)

    def deliver(self, event: str, data: msgspec.Raw) -> None:
        """Buffer a push in every subscription of ``event`` (never blocks)."""
        for sub in list(self._subscriptions.values()):
            if (sub.events is None or event in sub.events) and sub._put(event, data):  # noqa: SLF001
                self.dropped += 1

    def connection_dropped(self, code: int | None, reason: str) -> None:
        """The connection dropped (it may reconnect): running streams end with
        :class:`ConnectionLost`."""
        for sub in list(self._subscriptions.values()):
            sub._dropped_connection(code, reason)  # noqa: SLF001 - this module's own class

    def close(self) -> None:
        """The connection is closed for good: every subscription ends after its buffered
        pushes, and later ones end at once."""
        self._closed = True
        for sub in list(self._subscriptions.values()):
            sub._finish()  # noqa: SLF001 - this module's own class

    def closed_error(self) -> ConnectionClosed:
        """The error that says why the connection is closed for good."""
        return self._closed_error()


class Stream(Generic[T]):
    """The items of an async-generator handler, as an async iterator of their ``data``.

    The first ``__anext__`` sends the request (answered with ``null`` at once); the items
    come as pushes of the same event and are buffered like a :class:`Subscription`'s.
    The protocol has no end-of-stream frame: stop with ``break`` (or leave the ``async
    with`` block). If the connection is lost, iteration raises :class:`ConnectionLost`
    after the buffered items: the server cancelled the stream and it is not restarted.
    Two concurrent streams (or a subscription) of the same event receive each other's
    items: the wire protocol cannot tell them apart.
    """

    def __init__(
        self,
        conn: ClientConnection,
        subscribers: Subscribers,
        event: str,
        data: Any,
        type: Any,
        timeout: float | None,
        queue_size: int,
    ) -> None:
        self._conn = conn
        self.event = event
        self._data = data
        self._timeout = timeout
        self._sub: Subscription[T] = Subscription(subscribers, (event,), type, queue_size)
        self._started = False

    @property
    def dropped(self) -> int:
        """Items dropped because the buffer was full."""
        return self._sub.dropped

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        if not self._started:
            self._started = True
            try:
                await self._conn.request(self.event, self._data, timeout=self._timeout)
            except BaseException:
                self._sub.close()
                raise
            self._sub._lost_on_drop = True  # noqa: SLF001 - this module's own class
        push = await self._sub.__anext__()
        return push.data

    def close(self) -> None:
        """Stop receiving items (the server's generator keeps running until the
        connection ends)."""
        self._sub.close()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
