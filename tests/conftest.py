"""Every async test runs on trio and on asyncio (the anyio pytest plugin).

``WSGATE_BACKENDS=trio`` (or ``asyncio``) narrows the run to one backend; the nox
sessions use it to run the suite once per backend.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import pytest

BACKENDS = [
    b.strip() for b in os.environ.get("WSGATE_BACKENDS", "trio,asyncio").split(",") if b.strip()
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    # Mark coroutine tests before pytest parametrizes them, so that the backend
    # parameter combines with any other parametrization (and honours WSGATE_BACKENDS).
    if inspect.iscoroutinefunction(obj) and name.startswith("test"):
        pytest.mark.anyio(obj)
        pytest.mark.usefixtures("anyio_backend")(obj)
