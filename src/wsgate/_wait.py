"""Tasks wait, another task wakes them: the primitive under the runtime's queues.

In a fan-out, every member's writer waits once per broadcast, so the cost of a wait is
paid a thousand times per message. An ``anyio.Event`` allocates several objects per wait
(the Event, the backend's event, its waiter set or deque, a future or closure), and those
allocations are what makes CPython's collector run during a large fan-out. The signals
here reuse one list per signal and allocate only what the backend's scheduler itself
needs to park a task: on trio, the coroutine of ``trio.lowlevel.wait_task_rescheduled``
and the outcome ``trio.lowlevel.reschedule`` resumes it with; on asyncio, a future.
Only public APIs are used (``trio.lowlevel``, ``asyncio`` futures), so a trio upgrade
cannot break them silently.

This is the one place where wsgate speaks to a backend directly, the way hypercorn's
backend layers do: a small adapter per backend, chosen once by name, behind the same
three methods. Unknown backends get the portable ``anyio.Event`` version.

The plain path: with the environment variable ``WSGATE_PLAIN_WAITS=1`` every backend
gets the portable ``anyio.Event`` version and broadcasts wake every writer at once (no
:class:`~wsgate.relay.WakeRelay`). It is there to compare the fast path against (in
benchmarks) and to run the suite on the plain path (``nox -s tests-plain-waits``). The
variable is read when a connection or a broadcast group first needs it, so set it before
the server starts.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Any, Protocol

import anyio
import sniffio

__all__ = ["PLAIN_WAITS_ENV", "Signal", "plain_waits", "signal_class"]

#: The environment variable that selects the plain path (``1`` turns it on).
PLAIN_WAITS_ENV = "WSGATE_PLAIN_WAITS"


def plain_waits() -> bool:
    """True when ``WSGATE_PLAIN_WAITS=1``: plain ``anyio.Event`` waits, no wake relay."""
    return os.environ.get(PLAIN_WAITS_ENV) == "1"


class Signal(Protocol):
    """Tasks :meth:`wait`; :meth:`set` wakes every task waiting now (a no-op when none
    is). A wait is cancellable like any other checkpoint."""

    @property
    def waiting(self) -> bool: ...

    def wait(self) -> Awaitable[None]: ...

    def set(self) -> None: ...


class _EventSignal:
    """The portable version, on ``anyio.Event``."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    @property
    def waiting(self) -> bool:
        return self._event is not None

    async def wait(self) -> None:
        ev = self._event
        if ev is None:
            ev = self._event = anyio.Event()
        await ev.wait()

    def set(self) -> None:
        ev = self._event
        if ev is not None:
            self._event = None
            ev.set()


def _trio_signal() -> type:
    import trio

    current_task = trio.lowlevel.current_task
    park = trio.lowlevel.wait_task_rescheduled
    reschedule = trio.lowlevel.reschedule
    succeeded = trio.lowlevel.Abort.SUCCEEDED

    class _TrioSignal:
        __slots__ = ("_abort_first", "_tasks")

        def __init__(self) -> None:
            self._tasks: list[Any] | None = None  # built with the first wait
            self._abort_first: Any = None  # the abort callback of a lone waiter

        @property
        def waiting(self) -> bool:
            return bool(self._tasks)

        def wait(self) -> Awaitable[None]:
            # Not a coroutine function: the caller awaits trio's own coroutine directly
            # (one coroutine fewer per wait, and one level fewer to resume through).
            task = current_task()
            tasks = self._tasks
            if tasks is None:
                tasks = self._tasks = []

                def abort_first(_: Any) -> Any:
                    # A task that waited alone is first in the list until it is woken.
                    del tasks[0]
                    return succeeded

                self._abort_first = abort_first
            tasks.append(task)
            if len(tasks) == 1:
                # The usual case (a writer, a dispatcher): a callback built once.
                return park(self._abort_first)

            def abort(_: Any) -> Any:
                tasks.remove(task)
                return succeeded

            return park(abort)

        def set(self) -> None:
            tasks = self._tasks
            if tasks:
                for task in tasks:
                    reschedule(task)
                tasks.clear()

    return _TrioSignal


def _asyncio_signal() -> type:
    import asyncio

    get_loop = asyncio.get_running_loop

    class _AsyncioSignal:
        __slots__ = ("_futures",)

        def __init__(self) -> None:
            self._futures: list[asyncio.Future[None]] | None = None  # built with the first wait

        @property
        def waiting(self) -> bool:
            return bool(self._futures)

        async def wait(self) -> None:
            fut: asyncio.Future[None] = get_loop().create_future()
            futures = self._futures
            if futures is None:
                futures = self._futures = []
            futures.append(fut)
            try:
                await fut
            finally:
                if not fut.done() or fut.cancelled():
                    try:
                        futures.remove(fut)
                    except ValueError:
                        pass

        def set(self) -> None:
            futures = self._futures
            if futures:
                for fut in futures:
                    if not fut.done():
                        fut.set_result(None)
                futures.clear()

    return _AsyncioSignal


_FACTORIES = {"trio": _trio_signal, "asyncio": _asyncio_signal}
_CLASSES: dict[str, type] = {}


def signal_class() -> type[Signal]:
    """The Signal class for the running backend (built once per backend), or the
    portable one on the plain path (``WSGATE_PLAIN_WAITS=1``)."""
    name = "plain" if plain_waits() else sniffio.current_async_library()
    cls = _CLASSES.get(name)
    if cls is None:
        factory = _FACTORIES.get(name)
        cls = _CLASSES[name] = factory() if factory is not None else _EventSignal
    return cls
