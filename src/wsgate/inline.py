"""Run work inline in the calling task, and hand it off when it suspends.

The runtime's cheapest path for a frame is to handle it in the task that read it: a
handler that completes without suspending then costs no task switch. When it does
suspend (it waits for a reply, a lock, the network), the reader must go on reading, so
the handler is finished elsewhere: the task that started it keeps it and a new task
takes over reading. :class:`Resume` is what lets the starting task finish a coroutine
that it began with ``coro.send(None)``::

    coro = handle(frame)
    try:
        first = coro.send(None)        # run until it suspends, in this task
    except StopIteration as done:
        reply = done.value            # finished inline: no task switch
    else:
        start_new_reader()            # reading goes on in another task
        reply = await Resume(coro, first)

Used by the native gateways' reader (:mod:`wsgate.connection`) and by the Engine.IO
WebSocket loop alike.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["Resume"]


class Resume:
    """Await a coroutine that was already started with ``send(None)`` and suspended,
    from the same task: re-yield what it yielded and forward what the event loop sends
    back (or throws in, such as cancellation). Backend-agnostic: it is what ``await``
    itself does."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    return done.value
