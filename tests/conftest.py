"""Every async test runs on trio and on asyncio (the anyio pytest plugin).

``WSGATE_BACKENDS=trio`` (or ``asyncio``) narrows the run to one backend; the nox
sessions use it to run the suite once per backend.

A test (or a module, through ``pytestmark``) marked ``virtual_time`` runs on a virtual
clock: whenever every task is waiting, the clock jumps to the next deadline. Timeouts,
heartbeats and backoffs of any length then take no real time, and a slow machine cannot
make them fire early or late. On trio the clock is ``trio.testing.MockClock`` with
``autojump_threshold=0``; on asyncio it is a ``looptime`` event loop. Only tests that
stay in-process (``wsgate.testing``, an httpx ASGI transport) can run on it: a real
server in another thread or process makes progress the virtual clock cannot see.

On the virtual clock, wait on what the user sees (a frame, a close, a timeout of a
receive) and read ``anyio.current_time()`` around it. ``anyio.wait_all_tasks_blocked()``
polls with 0.1 s sleeps on asyncio, so there it moves the clock: do not use it between
two readings of the time. (There ``anyio_backend`` is a ``(name, options)`` pair: a test
that needs the backend's name asks for ``anyio_backend_name``.)
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis_server import RedisServer, require_binary

BACKENDS = [
    b.strip() for b in os.environ.get("WSGATE_BACKENDS", "trio,asyncio").split(",") if b.strip()
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "virtual_time: run on a virtual clock that jumps to the next deadline when every "
        "task waits (in-process tests only)",
    )


def _virtual_clock_options(backend: str) -> dict[str, Any]:
    if backend == "trio":
        from trio.testing import MockClock

        return {"clock": MockClock(autojump_threshold=0)}
    try:
        import looptime
    except ImportError:
        pytest.fail("virtual_time tests on asyncio need looptime: pip install -e '.[test]'")
    return {"loop_factory": looptime.new_event_loop}


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    backend = str(request.param)
    if request.node.get_closest_marker("virtual_time") is None:
        return backend
    return backend, _virtual_clock_options(backend)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    # Mark coroutine tests before pytest parametrizes them, so that the backend
    # parameter combines with any other parametrization (and honours WSGATE_BACKENDS).
    if inspect.iscoroutinefunction(obj) and name.startswith("test"):
        pytest.mark.anyio(obj)
        pytest.mark.usefixtures("anyio_backend")(obj)


# -- a real Redis/Valkey server (tests/redis_server.py) ---------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One server for the module; tests keep apart through a prefix or names of their own."""
    with RedisServer(require_binary()) as server:
        yield server


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server this test may kill and restart."""
    with RedisServer(require_binary()) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key and channel prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:10]}"
