"""Tasks wait, another task wakes them: the primitive under the runtime's queues.

In a fan-out, every member's writer waits once per broadcast, so the cost of a wait is
paid a thousand times per message. An ``anyio.Event`` allocates several objects per wait
(the Event, the backend's event, its waiter set or deque, a future or closure), and those
allocations are what makes CPython's collector run during a large fan-out. The signals
here reuse one list per signal and allocate only what the backend's scheduler itself
needs to park a task (a future on asyncio, the abort callback on trio).

This is the one place where wsgate speaks to a backend directly, the way hypercorn's
backend layers do: a small adapter per backend, chosen once by name, behind the same
three methods. Unknown backends get the portable ``anyio.Event`` version.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

import anyio
import sniffio

__all__ = ["Signal", "signal_class"]


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

    class _Resumed:
        """What a woken task is resumed with. Trio sends the parked coroutine an
        outcome and calls its ``unwrap()``; this shared one stands for
        ``outcome.Value(None)``, which ``reschedule`` would otherwise allocate per
        wake-up (a fan-out wakes a thousand writers at once, and those objects outlive
        the collections that run meanwhile)."""

        __slots__ = ()

        def unwrap(self) -> None:
            return None

    resumed: Any = _Resumed()

    try:
        # Private to trio: the trap that ``wait_task_rescheduled`` yields. Yielded
        # directly, a parked task holds no objects of its own (the public path holds two
        # coroutines, a generator and the trap for as long as it waits, and a fan-out
        # parks a thousand writers at a time: everything a parked task holds is
        # promoted by the collector and rescanned by its full collections).
        from trio._core._traps import WaitTaskRescheduled

        trap_class: Any = WaitTaskRescheduled
    except ImportError:  # pragma: no cover - a trio without it takes the public path
        trap_class = None

    class _Park:
        """What a lone waiter awaits, built once per signal, and stateless (two tasks
        may be inside it at once: one woken and not yet resumed, one parking): started
        with ``None``, it gives trio the trap (built once too); resumed with an outcome
        (trio never resumes with ``None``), it unwraps it, and a cancellation raises."""

        __slots__ = ("_trap",)

        def __init__(self, abort: Any) -> None:
            self._trap = trap_class(abort)

        def __await__(self) -> Any:
            return self

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            return self._trap

        def send(self, value: Any) -> Any:
            if value is None:
                return self._trap
            raise StopIteration(value.unwrap())

        def throw(self, exc: Any, *args: Any) -> Any:
            raise exc

        def close(self) -> None:
            pass

    class _TrioSignal:
        __slots__ = ("_alone", "_tasks")

        def __init__(self) -> None:
            self._tasks: list[Any] | None = None  # built with the first wait
            self._alone: Any = None  # what a lone waiter awaits

        @property
        def waiting(self) -> bool:
            return bool(self._tasks)

        def wait(self) -> Awaitable[None]:
            # Not a coroutine function: a lone waiter (a writer, a dispatcher: the
            # usual case) awaits the signal's own reusable awaitable.
            task = current_task()
            tasks = self._tasks
            if tasks is None:
                tasks = self._tasks = []

                def abort_first(_: Any) -> Any:
                    # A task that waited alone is first in the list until it is woken.
                    del tasks[0]
                    return succeeded

                self._alone = _Park(abort_first) if trap_class is not None else abort_first
            tasks.append(task)
            if len(tasks) == 1:
                alone = self._alone
                return alone if trap_class is not None else park(alone)

            def abort(_: Any) -> Any:
                tasks.remove(task)
                return succeeded

            return park(abort)

        def set(self) -> None:
            tasks = self._tasks
            if tasks:
                for task in tasks:
                    reschedule(task, resumed)
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
    """The Signal class for the running backend (built once per backend)."""
    name = sniffio.current_async_library()
    cls = _CLASSES.get(name)
    if cls is None:
        factory = _FACTORIES.get(name)
        cls = _CLASSES[name] = factory() if factory is not None else _EventSignal
    return cls
